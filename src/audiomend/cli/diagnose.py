"""``audiomend diagnose``: say what is wrong with a recording (nothing is written)."""

from __future__ import annotations

import json
import math

import click

_UNITS = {"clipping": ("clipped fraction", "{:.2e}"), "hum": ("dB re signal", "{:.1f}"),
          "noise": ("SNR dB", "{:.1f}"), "reverb": ("RT60 s", "{:.2f}"),
          "bandwidth": ("Hz", "{:.0f}"), "clicks": ("clicks/s", "{:.2f}"),
          "level": ("LUFS", "{:.1f}"), "dc": ("offset", "{:+.5f}")}


def table(diagnosis, path: str) -> str:
    """The diagnosis as an aligned text table."""
    from audiomend.diagnose import DAMAGES

    d = diagnosis
    lines = [(f"{path}: {d.duration_s:.2f} s, {d.sample_rate} Hz, {d.channels} ch, "
              f"loudness {d.loudness_lufs:.1f} LUFS, peak {d.peak_dbfs:.1f} dBFS"),
             f"  {'damage':<10} {'value':>10}  {'unit':<17} {'confidence':>10}  present"]
    for name in DAMAGES:
        f = getattr(d, name)
        unit, fmt = _UNITS[name]
        value = fmt.format(f.value) if math.isfinite(f.value) else "-"
        extra = ""
        if name == "hum":
            extra = f"  ({f.mains_hz:g} Hz mains)"
        elif name == "clipping" and f.present:
            extra = f"  (level {f.level:.3f})"
        lines.append(f"  {name:<10} {value:>10}  {unit:<17} {f.confidence:>10.2f}  "
                     f"{'YES' if f.present else 'no'}{extra}")
    return "\n".join(lines)


@click.command("diagnose")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--block-s", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Analysis block length in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object to stdout.")
def command(path, block_s, as_json):
    """Say what is wrong with FILE: clipping, hum, noise, reverberation, band limit, clicks, level.

    \b
    Examples:
      audiomend diagnose interview.wav
      audiomend diagnose interview.wav --json | jq .damages
    """
    from audiomend.diagnose import diagnose_file

    d = diagnose_file(path, block_s=block_s)
    if as_json:
        click.echo(json.dumps({"path": str(path), **d.to_dict()}))
    else:
        click.echo(table(d, str(path)))
