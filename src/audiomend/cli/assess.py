"""``audiomend assess``: measure quality of a file, a pair, or a folder (PESQ, ESTOI, DNSMOS, ...).

\b
Forms:
  audiomend assess FILE                       reference-free metrics (DNSMOS, levels, ...)
  audiomend assess FILE --reference REF       all metrics, REF resampled to FILE's rate if needed
  audiomend assess FOLDER [--reference REFS]  per-file rows and means; files paired by name
  audiomend assess CORPUS                     CORPUS holds clean/ and noisy/ (or degraded/)
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click
import numpy as np

from audiomend.errors import AudiomendError, BadOptionError


def audio_files(folder: Path) -> list[Path]:
    """Audio files directly inside ``folder`` (not recursive), sorted by name; hidden files skipped.

    Audio means an extension in :func:`audiomend.io.audio_extensions` (``.m4a`` and the like
    only when ffmpeg is installed).
    """
    from audiomend.io import audio_files as list_audio

    return list_audio(folder, recursive=False)


def find_reference(estimate: Path, ref_folder: Path) -> Path | None:
    """The file in ``ref_folder`` with the same name as ``estimate``, else the same stem."""
    same = ref_folder / estimate.name
    if same.is_file():
        return same
    matches = [p for p in audio_files(ref_folder) if p.stem == estimate.stem]
    return matches[0] if len(matches) == 1 else None


def corpus_folders(folder: Path) -> tuple[Path, Path] | None:
    """``(estimates, references)`` when ``folder`` is a corpus with clean/ and noisy/ or degraded/."""
    clean = folder / "clean"
    sides = [folder / s for s in ("noisy", "degraded") if (folder / s).is_dir()]
    if not clean.is_dir() or not sides:
        return None
    if len(sides) > 1:
        raise BadOptionError(f"{folder}: holds both noisy/ and degraded/; pass the one to score "
                             f"and --reference {clean}")
    return sides[0], clean


def score_file(estimate: Path, reference: Path | None, names: list[str]) -> dict[str, Any]:
    """Load a file (and its reference, resampled to its rate) and compute ``names``.

    Returns a JSON-ready dict: ``file``, ``reference``, ``sample_rate``, ``metrics`` and
    ``time_s``, plus ``reference_resampled_from_hz`` when the reference was resampled; or
    ``file`` and ``error`` (one line naming the file) when it cannot be scored.
    """
    from audiomend.io import info, load
    from audiomend.metrics import assess

    start = time.perf_counter()
    row: dict[str, Any] = {"file": str(estimate), "reference": str(reference) if reference else None}
    try:
        audio, rate = load(estimate)
        ref = None
        if reference is not None:
            ref_rate = info(reference).sample_rate
            ref, _ = load(reference, sample_rate=rate)
            if ref_rate != rate:
                row["reference_resampled_from_hz"] = ref_rate
        row["sample_rate"] = rate
        row["metrics"] = assess(audio, rate, reference=ref, metrics=names)
    except AudiomendError as err:
        message = str(err)
        if str(estimate) not in message and (reference is None or str(reference) not in message):
            message = f"{estimate}: {message}"
        return {"file": str(estimate), "reference": row["reference"], "error": message}
    row["time_s"] = round(time.perf_counter() - start, 3)
    return row


def _format(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return str(value)
    if unit == "Hz" or abs(value) >= 1000:
        return f"{value:.0f}"
    if unit in ("", "FS"):
        return f"{value:.4f}"
    return f"{value:.3f}"


def _console(stderr: bool = False, width: int | None = None):
    from rich.console import Console

    console = Console(stderr=stderr)
    if width and not console.is_terminal:
        console = Console(stderr=stderr, width=max(width, 80))
    return console


def _print_single(row: dict[str, Any]) -> None:
    from rich.table import Table

    from audiomend.metrics import METRICS

    title = row["file"] + (f"  vs  {row['reference']}" if row.get("reference") else "")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("", style="dim")
    for name, value in row["metrics"].items():
        m = METRICS[name]
        table.add_row(name, _format(value, m.unit), m.unit,
                      "higher is better" if m.higher_is_better else "lower is better")
    console = _console(width=len(title))
    console.print(title, markup=False, highlight=False, soft_wrap=True)
    console.print(table)


def _print_folder(rows: list[dict[str, Any]], names: list[str], means: dict[str, float]) -> None:
    from rich.table import Table

    from audiomend.metrics import METRICS

    table = Table(show_footer=False)
    table.add_column("file", no_wrap=True)
    for name in names:
        unit = METRICS[name].unit
        table.add_column(f"{name}\n{unit}" if unit else name, justify="right")
    for row in rows:
        if "metrics" in row:
            table.add_row(Path(row["file"]).name,
                          *(_format(row["metrics"][n], METRICS[n].unit) for n in names))
    ok = sum("metrics" in r for r in rows)
    table.add_section()
    table.add_row(f"mean (n={ok})", *(_format(means[n], METRICS[n].unit) if n in means else "-"
                                      for n in names), style="bold")
    width = 30 + sum(max(len(n), 8) + 3 for n in names)
    _console(width=width).print(table)


def _means(rows: Iterable[dict[str, Any]], names: list[str]) -> dict[str, float]:
    ok = [r["metrics"] for r in rows if "metrics" in r]
    if not ok:
        return {}
    return {n: float(np.mean([m[n] for m in ok])) for n in names}


def _run(jobs: list[tuple[Path, Path | None]], names: list[str], n_jobs: int,
         progress: bool) -> list[dict[str, Any]]:
    """Score every (estimate, reference) job, in processes when ``n_jobs > 1``; input order kept."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    results: list[dict[str, Any] | None] = [None] * len(jobs)
    bar = Progress(TextColumn("assess"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=_console(stderr=True), transient=True, disable=not progress)
    with bar:
        task = bar.add_task("assess", total=len(jobs))
        if n_jobs <= 1 or len(jobs) <= 1:
            for i, (est, ref) in enumerate(jobs):
                results[i] = score_file(est, ref, names)
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs))) as pool:
                futures = {pool.submit(score_file, est, ref, names): i
                           for i, (est, ref) in enumerate(jobs)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.advance(task)
    return [r for r in results if r is not None]


def _parse_metrics(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    from audiomend.metrics import METRICS

    names = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise click.BadParameter(f"unknown metric {', '.join(unknown) or '(none given)'}; "
                                 f"known: {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


HELP = """Measure quality: PESQ, STOI/ESTOI, SI-SDR, SNR, LSD (with a reference), DNSMOS and levels.

\b
Forms:
  audiomend assess FILE                       reference-free metrics (DNSMOS, levels, ...)
  audiomend assess FILE --reference REF       all metrics, REF resampled to FILE's rate if needed
  audiomend assess FOLDER [--reference REFS]  per-file rows and means; files paired by name
  audiomend assess CORPUS                     CORPUS holds clean/ and noisy/ (or degraded/)

A folder prints per-file rows and the means; --json prints one object per file and a final
summary object with the means. Exit 1 when a file could not be scored (one line each on stderr).
"""


@click.command(name="assess", help=HELP)
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--reference", "-r", type=click.Path(exists=True, path_type=Path), default=None,
              help="Clean reference file (or folder of files with the same names).")
@click.option("--metrics", "-m", callback=_parse_metrics, default=None, metavar="NAMES",
              help="Comma-separated metric names (default: every applicable metric; "
                   "reference metrics need --reference).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per file to stdout (a folder adds a summary object).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes for a folder.")
def command(target: Path, reference: Path | None, metrics: list[str] | None, as_json: bool,
            jobs: int) -> None:
    from audiomend.io import audio_extensions
    from audiomend.metrics import resolve_names

    start = time.perf_counter()
    folder_mode = target.is_dir()
    if folder_mode:
        pair: tuple[Path, Path | None] | None = corpus_folders(target) if reference is None else None
        est_dir, ref_dir = pair if pair else (target, reference)
        if ref_dir is not None and not ref_dir.is_dir():
            raise click.BadParameter(f"{ref_dir} is a file; with a folder, --reference must be a "
                                     f"folder of files with the same names", param_hint="--reference")
        estimates = audio_files(est_dir)
        if not estimates:
            raise BadOptionError(f"{est_dir}: no audio files ({', '.join(audio_extensions())})")
        jobs_list: list[tuple[Path, Path | None]] = []
        missing: list[dict[str, Any]] = []
        for est in estimates:
            ref = find_reference(est, ref_dir) if ref_dir is not None else None
            if ref_dir is not None and ref is None:
                missing.append({"file": str(est), "reference": None,
                                "error": f"{est}: no file named {est.name} (or {est.stem}.*) "
                                         f"in {ref_dir}"})
            else:
                jobs_list.append((est, ref))
        have_reference = ref_dir is not None
    else:
        if reference is not None and reference.is_dir():
            raise click.BadParameter(f"{reference} is a folder; give a reference file for one "
                                     f"file", param_hint="--reference")
        jobs_list, missing, have_reference = [(target, reference)], [], reference is not None
    names = resolve_names(metrics, have_reference=have_reference)

    rows = missing + _run(jobs_list, names, jobs, progress=folder_mode)
    rows.sort(key=lambda r: r["file"])
    failed = [r for r in rows if "error" in r]
    for r in rows:
        if "reference_resampled_from_hz" in r:
            click.echo(f"audiomend: note: reference {r['reference']} is "
                       f"{r['reference_resampled_from_hz']} Hz; resampled to {r['sample_rate']} Hz",
                       err=True)
    for r in failed:
        click.echo(f"audiomend: error: {r['error']}", err=True)
    means = _means(rows, names)
    wall = time.perf_counter() - start
    if as_json:
        for r in rows:
            click.echo(json.dumps(r))
        if folder_mode:
            click.echo(json.dumps({"summary": "mean", "files": len(rows) - len(failed),
                                   "failed": len(failed), "metrics": means,
                                   "wall_time_s": round(wall, 2)}))
    elif folder_mode:
        _print_folder(rows, names, means)
        click.echo(f"{len(rows) - len(failed)} files scored, {len(failed)} failed, "
                   f"{wall:.1f} s", err=True)
    elif not failed:
        _print_single(rows[0])
    if failed:
        sys.stdout.flush()
        click.get_current_context().exit(1)
