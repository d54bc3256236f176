"""Run a batch: plan against the journal (skip, run, refuse), dispatch to an engine, journal results.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from audiomend.io import load, save
>>> from audiomend.batch.manifest import jobs_from_folder
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = save(d / "in" / "a.wav", np.zeros((1, 800), np.float32), 8000)
>>> jobs = jobs_from_folder(d / "in", d / "out", options=None)
>>> plan = plan_batch(jobs, d / "out")
>>> len(plan.to_run), len(plan.skipped)
(1, 0)
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiomend.batch.engines import (
    PerFileFn,
    default_function,
    options_dict,
    run_engine,
    settings_hash,
)
from audiomend.batch.journal import CONFLICT, SKIP, Journal, JournalRecord, decide
from audiomend.batch.manifest import Job
from audiomend.errors import AudiomendError, BadOptionError


class SettingsChangedError(BadOptionError):
    """Files in the output folder were restored with other settings and ``force`` was not given."""


@dataclass
class BatchPlan:
    """What a run will do. ``durations_s`` maps job keys to header durations (0 when unreadable)."""

    jobs: list[Job]
    to_run: list[Job]
    skipped: list[Job]
    changed: list[Job]
    previous: dict[str, JournalRecord]
    durations_s: dict[str, float] = field(default_factory=dict)

    @property
    def audio_to_run_s(self) -> float:
        return sum(self.durations_s.get(j.key, 0.0) for j in self.to_run)


@dataclass
class BatchSummary:
    """The outcome of :func:`run_batch`.

    Attributes
    ----------
    total : jobs in the batch; done, failed : in this run; skipped : already done and valid.
    audio_s : audio restored in this run, seconds; wall_s : wall time of this run, seconds.
    records : this run's journal records, in completion order.
    previous : the journal's last record for every skipped job (for reports).
    thumbnails : key -> {"before", "after"} base64 JPEG spectrograms (with ``want_scores``).
    """

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    records: list[JournalRecord] = field(default_factory=list)
    previous: list[JournalRecord] = field(default_factory=list)
    thumbnails: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def failures(self) -> list[JournalRecord]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def throughput(self) -> float:
        """Audio hours restored per wall-clock hour in this run."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _describe_change(old: dict | None, new: dict | None) -> str:
    old, new = old or {}, new or {}
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
             if old.get(k) != new.get(k)]
    return ", ".join(diffs[:3]) or "settings hash differs"


def plan_batch(jobs: Iterable[Job], out_dir: str | os.PathLike, *, force: bool = False,
               journal: Journal | None = None) -> BatchPlan:
    """Compare jobs with the journal in ``out_dir``: which to skip, run, or refuse.

    A job is skipped when its last record says done with the same settings hash, the input's
    sha256 is unchanged and the output exists with its recorded sha256. A job done with other
    settings is a change: refused unless ``force`` (then rerun).

    Raises
    ------
    SettingsChangedError
        Some outputs were made with other settings and ``force`` is False.
    """
    jobs = list(jobs)
    journal = journal or Journal.in_folder(out_dir)
    previous = journal.latest()
    to_run, skipped, changed = [], [], []
    for job in jobs:
        verdict = decide(previous.get(job.key), settings_hash=settings_hash(job.options),
                         input_path=job.input_path, output_path=job.output_path)
        if verdict == SKIP:
            skipped.append(job)
        elif verdict == CONFLICT:
            changed.append(job)
            to_run.append(job)
        else:
            to_run.append(job)
    if changed and not force:
        first = changed[0]
        raise SettingsChangedError(
            f"{out_dir}: {len(changed)} file(s) were already restored with other settings "
            f"(e.g. {first.key}: {_describe_change(previous[first.key].options, options_dict(first.options))}); "
            f"rerun with --force to redo them with the new settings, or choose another -o")
    durations = {}
    from audiomend.io import info

    for job in to_run:
        try:
            durations[job.key] = info(job.input_path).duration_s
        except AudiomendError:
            durations[job.key] = 0.0
    return BatchPlan(jobs, to_run, skipped, changed, previous, durations)


def _remove_partials(jobs: Iterable[Job]) -> None:
    """Delete temporary outputs a killed run left behind (only those of this batch's outputs)."""
    by_dir: dict[Path, set[str]] = {}
    for job in jobs:
        out = Path(job.output_path)
        by_dir.setdefault(out.parent, set()).add(out.name)
    for folder, names in by_dir.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            n = entry.name
            if not n.startswith(".") or not (".partial" in n or n.endswith(".tmp")):
                continue
            stem = n.lstrip(".")
            if any(stem.startswith(name + ".") for name in names):
                with contextlib.suppress(OSError):
                    entry.unlink()


def run_batch(
    jobs: Iterable[Job],
    out_dir: str | os.PathLike,
    *,
    fn: PerFileFn | None = None,
    engine: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    want_scores: bool = False,
    dnsmos: bool = False,
    on_plan: Callable[[BatchPlan], Any] | None = None,
    on_result: Callable[[JournalRecord], Any] | None = None,
) -> BatchSummary:
    """Restore every job not already done, resumably; return the summary.

    Parameters
    ----------
    jobs : from :func:`~audiomend.batch.manifest.jobs_from_folder` or ``jobs_from_manifest``.
    out_dir : the output folder; holds the journal ``.audiomend-journal.jsonl``.
    fn : per-file function ``fn(input_path, output_path, options)``; default
        :func:`audiomend.pipeline.restore_file`. Must be importable by name (pickled to workers).
    engine : ``"local"`` (worker processes) or ``"dask"``.
    workers : number of workers; None = CPU cores (local, LocalCluster).
    scheduler : Dask scheduler address (``tcp://host:8786``); None starts a LocalCluster.
    force : redo files done with other settings instead of refusing.
    want_scores, dnsmos : measure reference-free scores before/after for a report.
    on_plan : called once with the :class:`BatchPlan` before any work starts.
    on_result : called with each new journal record, in completion order.

    Raises
    ------
    SettingsChangedError, JournalBusyError, BadOptionError
        Before any file is processed.
    """
    jobs = list(jobs)
    fn = fn or default_function()
    summary = BatchSummary(total=len(jobs))
    t0 = time.perf_counter()
    with Journal.in_folder(out_dir) as journal:
        plan = plan_batch(jobs, out_dir, force=force, journal=journal)
        summary.skipped = len(plan.skipped)
        summary.previous = [plan.previous[j.key] for j in plan.skipped]
        if on_plan is not None:
            on_plan(plan)
        _remove_partials(plan.to_run)
        if plan.to_run:
            for result in run_engine(engine, fn, plan.to_run, workers=workers,
                                     scheduler=scheduler, want_scores=want_scores, dnsmos=dnsmos):
                record = JournalRecord.from_dict(result)
                if result.get("thumbnails"):
                    summary.thumbnails[record.key] = result["thumbnails"]
                journal.append(record)
                summary.records.append(record)
                if record.status == "done":
                    summary.done += 1
                    summary.audio_s += record.duration_s or 0.0
                else:
                    summary.failed += 1
                summary.wall_s = time.perf_counter() - t0
                if on_result is not None:
                    on_result(record)
    summary.wall_s = time.perf_counter() - t0
    return summary
