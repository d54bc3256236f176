"""``audiomend batch``: restore a whole folder or manifest, resumably, on local workers or Dask."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from audiomend.batch.manifest import OUTPUT_FORMATS
from audiomend.errors import AudiomendError, BadOptionError


def restore_option_decorators(f: Any) -> Any:
    """The options of ``audiomend restore`` (same names, types and ranges), defaulting to None so
    that only what is given overrides :class:`~audiomend.pipeline.RestoreOptions`' defaults."""
    for deco in reversed([
        click.option("--stages", default=None, metavar="NAMES",
                     help="Run exactly these stages (comma-separated), found or not: dehum, "
                          "declick, declip, denoise, dereverb, bandwidth, loudness."),
        click.option("--skip", default=None, metavar="NAMES",
                     help="Never run these stages (comma-separated)."),
        click.option("--strength", type=click.FloatRange(0.0, 1.0), default=None,
                     help="Overall repair strength, 0 (leave alone) to 1  [default: 1.0]."),
        click.option("--target-lufs", type=float, default=None,
                     help="Normalise the loudness to this target in LUFS (default: only a "
                          "clearly wrong level is changed, towards -16 LUFS)."),
        click.option("--sample-rate", "sample_rate", type=click.IntRange(min=1), default=None,
                     help="Output sample rate in Hz (default: each input's)."),
        click.option("--denoiser", default=None,
                     help="Denoiser in the denoise slot: neural, classical, deepfilternet3 or "
                          "rnnoise  [default: neural]."),
        click.option("--subtype", default=None,
                     help="Output subtype, e.g. PCM_24, FLOAT (default: each input's)."),
        click.option("--block-s", type=click.FloatRange(min=0.1), default=None,
                     help="Streaming block length in seconds (memory only)  [default: 10]."),
    ]):
        f = deco(f)
    return f


def build_options(**given: Any) -> Any:
    """RestoreOptions from the CLI values; options not given keep RestoreOptions' defaults."""
    from audiomend.batch.manifest import split_names
    from audiomend.pipeline import RestoreOptions

    kwargs = {k: v for k, v in given.items() if v is not None}
    for k in ("stages", "skip"):
        if k in kwargs:
            kwargs[k] = split_names(kwargs[k])
    try:
        return RestoreOptions(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, AudiomendError):
            raise
        raise BadOptionError(str(e)) from None


def check_options(jobs: list[Any]) -> None:
    """Refuse unknown stage names (in the options or a manifest row) before anything runs."""
    try:
        from audiomend.pipeline import RestoreOptions, check_stage_names
    except ImportError:
        return
    seen = set()
    for job in jobs:
        o = job.options
        if not isinstance(o, RestoreOptions) or o in seen:
            continue
        seen.add(o)
        if o.stages is not None:
            check_stage_names(o.stages, option="--stages")
        check_stage_names(o.skip, option="--skip")


def _load_function(spec: str) -> Any:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise BadOptionError(f"--function {spec}: expected MODULE:NAME")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise BadOptionError(f"--function {spec}: cannot import ({e})") from None


def _fmt_h(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA –"
    seconds = int(seconds)
    return f"ETA {seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _reason(record: Any) -> str:
    error = record.error or "unknown error"
    return error if error.startswith(record.input) else f"{record.input}: {error}"


class _Progress:
    """Files done/failed/remaining, audio hours, throughput and ETA on stderr."""

    def __init__(self, *, bar: bool, log_each: bool) -> None:
        self.bar, self.log_each = bar, log_each
        self.t0 = time.perf_counter()
        self.done = self.failed = 0
        self.audio_s = 0.0
        self.total = 0
        self.audio_total_s = 0.0
        self._progress = None
        self._task = None

    def start(self, plan: Any) -> None:
        self.t0 = time.perf_counter()
        self.total = len(plan.to_run)
        self.audio_total_s = plan.audio_to_run_s
        if plan.skipped:
            click.echo(f"batch: {len(plan.skipped)} file(s) already done and valid, skipped", err=True)
        if plan.changed:
            click.echo(f"batch: --force: redoing {len(plan.changed)} file(s) restored with other "
                       f"settings", err=True)
        if self.bar and self.total:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("batch"), BarColumn(), TextColumn("{task.description}"),
                                      TimeElapsedColumn(), console=Console(stderr=True),
                                      transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self._text(), total=self.total)

    def _text(self) -> str:
        elapsed = time.perf_counter() - self.t0
        left = self.total - self.done - self.failed
        speed = self.audio_s / elapsed if elapsed > 0 and self.audio_s else None
        eta = (max(self.audio_total_s - self.audio_s, 0.0) / speed) if speed else None
        if left == 0:
            eta = 0.0
        return (f"{self.done} done · {self.failed} failed · {left} left · "
                f"{self.audio_s / 3600:.2f} h audio · "
                f"{f'{speed:.1f}' if speed else '–'} h/h · {_fmt_eta(eta)}")

    def update(self, record: Any) -> None:
        if record.status == "done":
            self.done += 1
            self.audio_s += record.duration_s or 0.0
        else:
            self.failed += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=self._text())
        elif self.log_each:
            n = self.done + self.failed
            what = (f"done {record.input} ({record.duration_s or 0:.1f} s, RTF {record.rtf or 0:.3f})"
                    if record.status == "done" else f"FAILED {_reason(record)}")
            click.echo(f"batch [{n}/{self.total}] {what}", err=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@click.command("batch")
@click.argument("source", type=click.Path(exists=True, path_type=Path), metavar="IN_DIR|MANIFEST")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output folder: mirrors the input tree and holds the journal.")
@restore_option_decorators
@click.option("--workers", type=int, default=None,
              help="Worker processes (local) or LocalCluster workers (dask); default: CPU cores.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: worker processes on this machine; dask: a Dask cluster.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Existing Dask scheduler address, or its --scheduler-file JSON (with --engine "
                   "dask); default: start a LocalCluster.")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default=None,
              help="Write every output in this format (default: keep each input's; needed for "
                   "inputs in formats audiomend cannot write, such as .opus or .m4a).")
@click.option("--force", is_flag=True,
              help="Redo files already restored with other settings instead of refusing.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar or per-file lines: the summary only (for logs).")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="Write an HTML report: totals, per-file diagnosis, scores before/after.")
@click.option("--dnsmos", is_flag=True, help="With --report: add DNSMOS scores (slower).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file to stdout.")
@click.option("--function", "function_spec", default=None, hidden=True, metavar="MODULE:NAME",
              help="Per-file function instead of audiomend.pipeline.restore_file (testing).")
@click.pass_context
def command(ctx: click.Context, source: Path, out_dir: Path, stages: str | None, skip: str | None,
            strength: float | None, target_lufs: float | None, sample_rate: int | None,
            denoiser: str | None, subtype: str | None, block_s: float | None,
            workers: int | None, engine: str, scheduler: str | None, fmt: str | None,
            force: bool, quiet: bool, report_path: Path | None, dnsmos: bool, as_json: bool,
            function_spec: str | None) -> None:
    """Restore every audio file in IN_DIR (or listed in a CSV/JSONL manifest) into OUT_DIR.

    Audio files are those with an extension in audiomend.io.AUDIO_EXTENSIONS (.wav .flac .ogg
    .opus .mp3 .aiff .aif .w64), plus .m4a .aac .wma when ffmpeg is installed; hidden files
    and folders are skipped. The input tree is mirrored under OUT_DIR with the same names and
    formats (inputs audiomend cannot write, such as .opus, need --format). A journal
    (OUT_DIR/.audiomend-journal.jsonl) makes the batch resumable: rerunning the same command
    skips finished files and redoes missing or interrupted ones. Bad files are reported and
    skipped; the exit code is 1 when any file failed. Without a terminal, one line per file
    is logged.

    A manifest has an 'input' column, an optional 'output' (relative to OUT_DIR) and optional
    per-row options (strength, stages, skip, target_lufs, sample_rate, denoiser, subtype).

    \b
    Examples:
      audiomend batch archive/ -o restored/
      audiomend batch archive/ -o restored/ --strength 0.7 --format flac --workers 8
      audiomend batch files.csv -o restored/ --engine dask --scheduler tcp://10.0.0.5:8786
    """
    from audiomend.batch import jobs_from_folder, jobs_from_manifest, run_batch
    from audiomend.batch.runner import SettingsChangedError

    def usage(message: str) -> None:
        click.echo(f"audiomend: error: {message}", err=True)
        ctx.exit(2)

    if scheduler and engine != "dask":
        usage("--scheduler needs --engine dask")
    if workers is not None and workers < 1:
        usage(f"--workers {workers}: need at least 1")
    if dnsmos and report_path is None:
        usage("--dnsmos only applies with --report")
    given = {"stages": stages, "skip": skip, "strength": strength, "target_lufs": target_lufs,
             "sample_rate": sample_rate, "denoiser": denoiser, "subtype": subtype,
             "block_s": block_s}
    try:
        fn = _load_function(function_spec) if function_spec else None
        if fn is not None and getattr(fn, "build_options", None):
            options = fn.build_options(**given)
        else:
            options = build_options(**given)
        if source.is_dir():
            jobs = jobs_from_folder(source, out_dir, options=options, fmt=fmt)
        elif source.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
            jobs = jobs_from_manifest(source, out_dir, options=options, fmt=fmt)
        else:
            raise BadOptionError(f"{source}: give a folder or a .csv/.jsonl manifest")
        check_options(jobs)
    except BadOptionError as e:
        usage(str(e))
        return
    if not jobs:
        click.echo(f"batch: no audio files found in {source}", err=True)
        ctx.exit(0)

    bar = not quiet and sys.stderr.isatty()
    progress = _Progress(bar=bar, log_each=not quiet and not bar)

    def on_result(record: Any) -> None:
        progress.update(record)
        if as_json:
            click.echo(json.dumps(record.to_dict(), default=str))

    def on_plan(plan: Any) -> None:
        progress.start(plan)
        if as_json:
            for job in plan.skipped:
                click.echo(json.dumps({"status": "skipped", "key": job.key, "input": job.input_path,
                                       "output": job.output_path}))

    from audiomend.batch.journal import JOURNAL_NAME

    if not quiet and (out_dir / JOURNAL_NAME).exists():
        click.echo(f"batch: checking {out_dir / JOURNAL_NAME} against {len(jobs)} file(s) "
                   f"(checksums of finished files)", err=True)
    try:
        summary = run_batch(jobs, out_dir, fn=fn, engine=engine, workers=workers,
                            scheduler=scheduler, force=force, want_scores=report_path is not None,
                            dnsmos=dnsmos, on_plan=on_plan, on_result=on_result)
    except SettingsChangedError as e:
        usage(str(e))
        return
    finally:
        progress.stop()

    click.echo(f"batch: {summary.done} restored, {summary.failed} failed, {summary.skipped} "
               f"skipped (already done) of {summary.total}; {_fmt_h(summary.audio_s)} of audio "
               f"in {_fmt_h(summary.wall_s)} wall = {summary.throughput:.1f} audio h per wall h",
               err=True)
    for record in summary.failures:
        click.echo(f"  failed: {_reason(record)}", err=True)
    if report_path is not None:
        from audiomend.batch.report import write_batch_report

        write_batch_report(report_path, summary.records + summary.previous,
                           title=f"audiomend batch: {source}", wall_s=summary.wall_s,
                           thumbnails=summary.thumbnails)
        click.echo(f"batch: report written to {report_path}", err=True)
    ctx.exit(summary.exit_code)
