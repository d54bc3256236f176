"""``audiomend align``: estimate the delay of a take against a reference and write it aligned."""

from __future__ import annotations

import json

import click


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
    from audiomend.io import load, save
    from audiomend.stages.align import align

    ref, ref_rate = load(reference)
    audio, rate = load(take)
    resampled = ref_rate != rate
    if resampled:
        from audiomend.dsp import resample

        click.echo(f"audiomend: {reference} is at {ref_rate} Hz, {take} at {rate} Hz: resampling "
                   f"the reference to {rate} Hz for the estimate", err=True)
        ref = resample(ref, ref_rate, rate)
    aligned, delay = align(ref, audio, rate, max_delay_s=max_delay_s)
    if output is not None:
        save(output, aligned, rate, like=take)
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
