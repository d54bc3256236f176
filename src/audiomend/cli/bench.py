"""``audiomend bench``: score restoration systems side by side on a paired corpus."""

from __future__ import annotations

import json
import math
import shlex
import sys

import click

from audiomend.errors import BadOptionError

DEFAULT_SYSTEMS = "noisy,noisereduce,rnnoise,deepfilternet3,audiomend"


def _parse_commands(values: tuple[str, ...]) -> dict[str, str]:
    commands: dict[str, str] = {}
    for value in values:
        name, sep, template = value.partition("=")
        if not sep or not name.strip() or not template.strip():
            raise BadOptionError(f"--system-cmd {value!r}: expected NAME='command {{in}} {{out}}'")
        commands[name.strip()] = template.strip().strip("'\"")
    return commands


@click.command("bench")
@click.option("--corpus", "corpus_dir", type=click.Path(file_okay=False), required=True,
              help="Corpus folder: clean/ + degraded/ (or noisy/), or category subfolders of them. "
                   "With --make-corpus, the folder to create.")
@click.option("--systems", default=DEFAULT_SYSTEMS, show_default=True,
              help="Comma-separated systems: noisy, clean, noisereduce, noisereduce_stationary, "
                   "rnnoise, deepfilternet3, audiomend, stage:<name>, cmd:<name>.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Markdown report; .csv, .json and .png are written next to it.")
@click.option("--metrics", default=None,
              help="Comma-separated metric names (default: pesq_wb,estoi,si_sdr,lsd,dnsmos_sig,"
                   "dnsmos_bak,dnsmos_ovrl).")
@click.option("--categories", default=None, help="Comma-separated categories to keep (default all).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes; each runs systems on one thread.")
@click.option("--system-cmd", "system_cmds", multiple=True, metavar="NAME='CMD {in} {out}'",
              help="An external system, scored as cmd:NAME. Repeatable.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Score only the first N files of each category.")
@click.option("--make-corpus", is_flag=True,
              help="Build the corpus at --corpus first, from --clean-dir (+ --noise-dir, --rir-dir).")
@click.option("--clean-dir", type=click.Path(file_okay=False), help="Clean speech (--make-corpus).")
@click.option("--noise-dir", type=click.Path(file_okay=False), help="Noise recordings (--make-corpus).")
@click.option("--rir-dir", type=click.Path(file_okay=False), help="Room impulse responses (--make-corpus).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --make-corpus.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Pairs to make with --make-corpus (default: one per clean file).")
@click.option("--sample-rate-hz", "sample_rate_hz", type=int, default=None,
              help="Resample the --make-corpus pairs to this rate (default: keep each file's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per scored file to stdout.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def command(corpus_dir, systems, output, metrics, categories, jobs, system_cmds, limit,
            make_corpus, clean_dir, noise_dir, rir_dir, seed, count, sample_rate_hz, as_json,
            no_progress):
    """Score restoration systems side by side on the same files with the same scorer.

    \b
    Examples:
      audiomend bench --corpus ../shared/data/eval/vbd32 \\
          --systems noisy,noisereduce,rnnoise,deepfilternet3,audiomend -o benchmarks/results_vbd32.md
      audiomend bench --make-corpus --clean-dir speech/ --noise-dir noise/ --rir-dir rir/ \\
          --seed 7 --corpus /tmp/corpus7
      audiomend bench --corpus /tmp/corpus7 --systems noisy,cmd:sox \\
          --system-cmd sox='sox {in} {out} highpass 100' -o /tmp/sox.md
    """
    from audiomend.bench import corpus as corpus_mod
    from audiomend.bench import report
    from audiomend.bench.run import DEFAULT_METRICS, bench, machine_info

    if make_corpus:
        if not clean_dir:
            raise click.UsageError("--make-corpus needs --clean-dir")
        corpus_mod.make_corpus(corpus_dir, clean_dir=clean_dir, noise_dir=noise_dir,
                               rir_dir=rir_dir, seed=seed, count=count,
                               sample_rate=sample_rate_hz, progress=not no_progress)
        click.echo(f"corpus written to {corpus_dir}", err=True)
        if not output:
            return
    elif any((clean_dir, noise_dir, rir_dir, count, sample_rate_hz)):
        raise click.UsageError("--clean-dir/--noise-dir/--rir-dir/--count/--sample-rate-hz only "
                               "go with --make-corpus")

    names = [s.strip() for s in systems.split(",") if s.strip()]
    if not names:
        raise BadOptionError("--systems: give at least one system")
    metric_names = ([m.strip() for m in metrics.split(",") if m.strip()] if metrics
                    else list(DEFAULT_METRICS))
    wanted = [c.strip() for c in categories.split(",")] if categories else None
    pairs = corpus_mod.discover(corpus_dir, categories=wanted)
    if limit:
        by_category: dict[str, list] = {}
        for pair in pairs:
            by_category.setdefault(pair.category, []).append(pair)
        pairs = [p for group in by_category.values() for p in group[:limit]]

    def emit(row) -> None:
        if as_json:
            click.echo(json.dumps(report._json_safe(row.flat())))

    result = bench(pairs, names, metrics=metric_names, jobs=jobs,
                   commands=_parse_commands(system_cmds), progress=not no_progress,
                   corpus=str(corpus_dir), on_result=emit)
    for name, reason in result.skipped.items():
        click.echo(f"{name}: {reason}", err=True)
    if output:
        # The command that regenerates the report (display-only flags left out).
        argv = ["audiomend", "bench", *(a for a in sys.argv[2:] if a not in ("--json", "--no-progress"))] \
            if sys.argv[1:2] == ["bench"] else []
        result.settings["command"] = shlex.join(argv) if argv else ""
        written = report.write_all(result, output, machine=machine_info(),
                                   command=result.settings["command"])
        click.echo("wrote " + ", ".join(map(str, written)), err=True)
    elif not as_json:
        click.echo(report.markdown(result))
    failed = sum(1 for r in result.rows if r.error and math.isnan(r.process_s))  # did not run
    if failed:
        raise click.exceptions.Exit(1)
