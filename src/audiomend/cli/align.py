"""``audiomend align``: estimate the delay of a take against a reference and write it aligned."""

from __future__ import annotations

import json
import os

import click


def write_aligned(take: str | os.PathLike, output: str | os.PathLike, delay_samples: float, *,
                  block_s: float = 10.0) -> None:
    """Stream ``take`` through the :class:`~audiomend.stages.align.Align` stage into ``output``.

    Memory does not grow with the file's length; ``output`` keeps the take's length, rate and
    (when the format allows) bit depth, and is written atomically (a temporary file renamed when
    complete). Writing over ``take`` is refused.
    """
    from pathlib import Path

    from audiomend.errors import BadOptionError
    from audiomend.io import blocks, info, output_format, same_file
    from audiomend.pipeline import AtomicWriter
    from audiomend.stages.align import Align

    header = info(take)
    out = Path(output)
    if same_file(out, take):
        raise BadOptionError(f"{out}: refusing to overwrite the input file; choose another output path")
    if out.is_dir():
        raise BadOptionError(f"{out}: is a directory; give an output file name")
    fmt, subtype = output_format(out, like=take)
    processor = Align(delay_samples=delay_samples).processor(header.sample_rate, header.channels)
    with AtomicWriter(out, header.sample_rate, header.channels, fmt, subtype) as writer:
        for block in blocks(take, block_s=block_s):
            writer.write(processor.process(block))
        writer.write(processor.flush())


@click.command("align")
@click.argument("reference", metavar="REFERENCE", type=click.Path(dir_okay=False))
@click.argument("take", metavar="TAKE", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write TAKE shifted into alignment here (same length and rate as TAKE).")
@click.option("--max-delay-s", type=click.FloatRange(min=0.0, min_open=True), default=1.0,
              show_default=True, help="Largest delay searched, in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object to stdout.")
def command(reference, take, output, max_delay_s, as_json):
    """Estimate how much TAKE lags REFERENCE (GCC-PHAT, sub-sample) and remove the delay.

    A positive delay means TAKE is late. With -o, TAKE is shifted (integer part exact, fraction by
    a windowed-sinc filter) and written with its own length, rate and bit depth. When the rates
    differ, REFERENCE is resampled to TAKE's rate for the estimate (said on stderr).

    \b
    Examples:
      audiomend align studio.wav phone.wav -o phone_aligned.wav
      audiomend align ref.flac take.flac --json
    """
    from audiomend.io import info
    from audiomend.stages.align import estimate_delay_files

    ref_rate = info(reference).sample_rate
    delay, rate = estimate_delay_files(reference, take, max_delay_s=max_delay_s)
    resampled = ref_rate != rate
    if resampled:
        click.echo(f"audiomend: {reference} is at {ref_rate} Hz, {take} at {rate} Hz: resampling "
                   f"the reference to {rate} Hz for the estimate", err=True)
    if abs(delay - round(delay)) < 0.02:  # well within the estimator's precision: keep it exact
        delay = float(round(delay))
    if output is not None:
        write_aligned(take, output, delay)
    result = {"reference": str(reference), "take": str(take), "sample_rate": rate,
              "delay_samples": round(delay, 3), "delay_ms": round(1000.0 * delay / rate, 4),
              "reference_resampled": resampled, "output": None if output is None else str(output)}
    if as_json:
        click.echo(json.dumps(result))
    else:
        late = "late" if delay > 0 else "early" if delay < 0 else "aligned"
        line = (f"{take}: {delay:+.3f} samples ({result['delay_ms']:+.3f} ms at {rate} Hz, "
                f"{late} against {reference})")
        if output is not None:
            line += f"; aligned take written to {output}"
        click.echo(line)
