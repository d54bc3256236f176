"""``audiomend restore``: diagnose a recording, repair what is wrong, write the result."""

from __future__ import annotations

import json
import sys

import click

from audiomend.errors import BadOptionError


def _names(value: str | None, option: str) -> tuple[str, ...] | None:
    """Parse a comma-separated stage list; an unknown name is a usage error listing valid ones."""
    if value is None:
        return None
    from audiomend.pipeline import check_stage_names

    try:
        return tuple(check_stage_names(value.split(","), option=option))
    except BadOptionError as e:
        raise click.BadParameter(str(e).split(": ", 1)[1], param_hint=option) from None


def describe(name: str, f) -> str:
    """One finding in a few words."""
    if name == "hum":
        return f"hum {f.mains_hz:g} Hz at {f.value:.0f} dB"
    if name == "dc":
        return f"DC offset {f.value:+.4f}"
    if name == "clicks":
        return f"clicks {f.value:.1f}/s"
    if name == "clipping":
        return f"clipping {100 * f.value:.2f}% of samples"
    if name == "noise":
        return f"noise (SNR {f.value:.0f} dB)"
    if name == "reverb":
        return f"reverberation (RT60 {f.value:.2f} s)"
    if name == "bandwidth":
        return f"band limited to {f.value / 1000:.1f} kHz"
    return f"level {f.value:.1f} LUFS"


def summary(result) -> str:
    """A few human lines: what was found, what was done, how fast."""
    d = result.diagnosis
    found = [describe(name, getattr(d, name)) for name in d.damages]
    lines = [(f"{result.input_path}: {d.duration_s:.1f} s, {d.sample_rate} Hz, {d.channels} ch, "
              f"{d.loudness_lufs:.1f} LUFS")]
    if not d.level.present and any(s["name"] == "loudness" and s["gain_db"] != 0.0
                                   for s in result.stages):
        found.append(f"level {d.loudness_lufs:.1f} LUFS, off target")
    lines.append("  found: " + (", ".join(found) if found else "nothing to repair"))
    done = []
    for s in result.stages:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in s.items() if k != "name")
        done.append(f"{s['name']}({params})")
    lines.append("  done:  " + (" -> ".join(done) if done else "nothing (output = input)"))
    lines.append(f"  wrote {result.output_path} ({result.sample_rate} Hz) in "
                 f"{result.processing_s:.1f} s, RTF {result.rtf:.3f}")
    if result.report_path:
        lines.append(f"  report: {result.report_path}")
    return "\n".join(lines)


@click.command("restore")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="Output file; the extension picks the format (.wav .flac .ogg .mp3 ...).")
@click.option("--stages", default=None, metavar="NAMES",
              help="Run exactly these stages (comma-separated), found or not: dehum, declick, "
                   "declip, denoise, dereverb, bandwidth, loudness.")
@click.option("--skip", default=None, metavar="NAMES", help="Never run these stages (comma-separated).")
@click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Overall repair strength, 0 (leave alone) to 1.")
@click.option("--target-lufs", type=float, default=None,
              help="Normalise the loudness to this target in LUFS (e.g. -16 podcast, -23 EBU R128) "
                   "when off by more than 3 LU. Default: the level is changed only when clearly "
                   "wrong (too quiet or too loud), towards -16 LUFS.")
@click.option("--sample-rate", "sample_rate_hz", type=click.IntRange(min=1), default=None,
              help="Output sample rate in Hz (default: the input's); above it, the band is extended.")
@click.option("--denoiser", default="neural", show_default=True,
              help="Denoiser in the denoise slot: neural (our network), classical (spectral), "
                   "deepfilternet3 or rnnoise (peers, 48 kHz inside; need "
                   "pip install 'audiomend[peers]').")
@click.option("--no-neural", is_flag=True, help="Use no neural model: same as --denoiser classical.")
@click.option("--subtype", default=None, help="Output subtype, e.g. PCM_24, FLOAT (default: the input's).")
@click.option("--block-s", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Streaming block length in seconds (memory only; output does not change).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Also write an HTML report (diagnosis, stages, spectrograms, scores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object to stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No summary and no progress bar on stderr.")
def command(input_path, output_path, stages, skip, strength, target_lufs, sample_rate_hz, denoiser,
            no_neural, subtype, block_s, report_path, as_json, quiet):
    """Diagnose IN, repair what is wrong, write the result to -o OUT.

    \b
    Examples:
      audiomend restore interview.mp3 -o fixed.wav
      audiomend restore talk.wav -o talk_fixed.flac --skip dereverb --strength 0.7
      audiomend restore call_16k.wav -o call_48k.wav --sample-rate 48000 --report report.html
    """
    from audiomend.pipeline import RestoreOptions, restore_file

    if no_neural:
        denoiser = "classical"
    options = RestoreOptions(
        stages=_names(stages, "--stages"), skip=_names(skip, "--skip") or (),
        strength=strength, target_lufs=target_lufs, sample_rate=sample_rate_hz,
        denoiser=denoiser, block_s=block_s, subtype=subtype,
    )
    if quiet or not sys.stderr.isatty():
        result = restore_file(input_path, output_path, options, report_path=report_path)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]restore[/]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("restore", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = restore_file(input_path, output_path, options, progress=progress,
                                  report_path=report_path)
    if as_json:
        click.echo(json.dumps({"options": options.to_dict(), **result.to_dict()}))
    if not quiet:
        click.echo(summary(result), err=True)
