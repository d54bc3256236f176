"""``audiomend degrade``: damage clean speech on purpose, one file or a whole corpus.

One file: each option turns on one damage; they are applied in this fixed order (the physical
order of a recording chain): reverb, noise, hum, gain, clip, clicks, low-pass, mp3, dropouts,
delay. Random damages get their own seed, drawn from ``--seed``.

Corpus: ``--corpus CLEAN_DIR -o OUT_DIR`` writes clean/degraded pairs and ``recipes.jsonl`` with
the default chain of damages (see :func:`audiomend.degradations.chain.make_corpus`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from audiomend.errors import BadOptionError

#: The order single-file damages are applied in (names in DEGRADATIONS).
ORDER = ("reverb", "noise", "hum", "gain", "clip", "clicks", "bandlimit", "mp3", "dropouts", "delay")


def build_recipe(*, seed: int = 0, noise_snr_db=None, noise_file=None, noise_color="white",
                 reverb_rt60_s=None, rir_file=None, clip_threshold_db=None, soft_clip=False,
                 lowpass_hz=None, gain_db=None, noise_floor_dbfs=None, hum_hz=None,
                 hum_level_db=-20.0, clicks_per_s=None, click_amplitude=0.5, dropout_rate=None,
                 packet_ms=20.0, delay_ms=None, mp3_kbps=None):
    """The :class:`~audiomend.degradations.chain.Recipe` the options describe, in :data:`ORDER`."""
    import numpy as np

    from audiomend.degradations import (
        AddNoise,
        Bandlimit,
        Clicks,
        Clip,
        Delay,
        Dropouts,
        Gain,
        Hum,
        Mp3,
        Reverberate,
    )
    from audiomend.degradations.chain import MAX_SEED, Recipe

    gen = np.random.default_rng(seed)
    seeds = {name: int(gen.integers(MAX_SEED)) for name in ORDER}  # one per slot, always drawn
    chosen = {}
    if reverb_rt60_s is not None or rir_file is not None:
        chosen["reverb"] = Reverberate(rir=str(rir_file) if rir_file else None,
                                       rt60_s=reverb_rt60_s if reverb_rt60_s is not None else 0.6,
                                       seed=seeds["reverb"])
    if noise_file is not None and noise_snr_db is None:
        raise click.UsageError("--noise-file needs --noise-snr-db")
    if noise_snr_db is not None:
        chosen["noise"] = AddNoise(snr_db=noise_snr_db, noise=str(noise_file) if noise_file else None,
                                   color=noise_color, seed=seeds["noise"])
    if hum_hz is not None:
        chosen["hum"] = Hum(mains_hz=hum_hz, level_db=hum_level_db, seed=seeds["hum"])
    if gain_db is not None:
        chosen["gain"] = Gain(gain_db=gain_db, noise_floor_dbfs=noise_floor_dbfs, seed=seeds["gain"])
    if clip_threshold_db is not None:
        chosen["clip"] = Clip(threshold_db=clip_threshold_db, soft=soft_clip)
    if clicks_per_s is not None:
        chosen["clicks"] = Clicks(rate_per_s=clicks_per_s, amplitude=click_amplitude,
                                  seed=seeds["clicks"])
    if lowpass_hz is not None:
        chosen["bandlimit"] = Bandlimit(cutoff_hz=lowpass_hz)
    if mp3_kbps is not None:
        chosen["mp3"] = Mp3(bitrate_kbps=mp3_kbps)
    if dropout_rate is not None:
        chosen["dropouts"] = Dropouts(packet_ms=packet_ms, loss_rate=dropout_rate,
                                      seed=seeds["dropouts"])
    if delay_ms is not None:
        chosen["delay"] = Delay(delay_ms=delay_ms)
    return Recipe(tuple(chosen[name] for name in ORDER if name in chosen), seed)


def _one_file(input_path: Path, output: Path, recipe, recipe_out: Path | None, as_json: bool) -> None:
    import numpy as np

    from audiomend.io import load, save

    audio, rate = load(input_path)
    start = time.perf_counter()
    damaged = recipe.apply(audio, rate)
    elapsed = time.perf_counter() - start
    peak = float(np.abs(damaged).max()) if damaged.size else 0.0
    if peak > 1.0:
        click.echo(f"audiomend: note: {output} peaks at {20 * np.log10(peak):+.1f} dBFS; a PCM "
                   f"file clips it at full scale", err=True)
    save(output, damaged, rate, like=input_path)
    if recipe_out is not None:
        recipe_out.parent.mkdir(parents=True, exist_ok=True)
        recipe_out.write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
    duration = audio.shape[1] / rate
    if as_json:
        click.echo(json.dumps({"input": str(input_path), "output": str(output), "sample_rate": rate,
                               "channels": int(audio.shape[0]), "duration_s": round(duration, 4),
                               "recipe": recipe.to_dict(), "seconds": round(elapsed, 4),
                               "rtf": round(elapsed / duration, 5) if duration else None}))
    else:
        names = ", ".join(recipe.names) or "nothing"
        click.echo(f"{output}: {names} ({duration:.2f} s, RTF {elapsed / max(duration, 1e-9):.3f})",
                   err=True)


@click.command(name="degrade")
@click.argument("input_path", metavar="INPUT", required=False,
                type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output file (one file) or folder (--corpus).")
@click.option("--noise-snr-db", type=float, help="Add noise at this SNR, dB (speech on active frames).")
@click.option("--noise-file", type=click.Path(path_type=Path), help="Recorded noise (else coloured).")
@click.option("--noise-color", type=click.Choice(["white", "pink", "brown"]), default="white",
              show_default=True, help="Colour of generated noise.")
@click.option("--reverb-rt60-s", type=float, help="Simulated shoebox room with this RT60, seconds.")
@click.option("--rir-file", type=click.Path(path_type=Path), help="Recorded room impulse response.")
@click.option("--clip-threshold-db", type=float, help="Clip at this level relative to the peak, dB (<= 0).")
@click.option("--soft-clip", is_flag=True, help="Soft (tanh) instead of hard clipping.")
@click.option("--lowpass-hz", type=float, help="10th-order zero-phase low-pass at this cutoff, Hz.")
@click.option("--gain-db", type=float, help="Change the gain by this much, dB (clipped at full scale).")
@click.option("--noise-floor-dbfs", type=float, default=None,
              help="With --gain-db: add a noise floor at this RMS level, dBFS.")
@click.option("--hum-hz", type=float, help="Add mains hum at this fundamental, Hz (50 or 60).")
@click.option("--hum-level-db", type=float, default=-20.0, show_default=True,
              help="Hum level relative to speech, dB.")
@click.option("--clicks-per-s", type=float, help="Add clicks at this mean rate, per second.")
@click.option("--click-amplitude", type=float, default=0.5, show_default=True,
              help="Peak click amplitude (full scale 1.0).")
@click.option("--dropout-rate", type=float, help="Lose packets with this probability (0..1).")
@click.option("--packet-ms", type=float, default=20.0, show_default=True, help="Packet length, ms.")
@click.option("--delay-ms", type=float, help="Delay by this much (fractional samples ok), ms.")
@click.option("--mp3-kbps", type=int, help="Code through MP3 at this bitrate, kbit/s.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of all random draws.")
@click.option("--recipe", "recipe_in", type=click.Path(path_type=Path),
              help="Apply a recipe JSON saved by --recipe-out (instead of damage options).")
@click.option("--recipe-out", type=click.Path(path_type=Path),
              help="Write the recipe applied, as JSON.")
@click.option("--corpus", "corpus_dir", type=click.Path(path_type=Path),
              help="Corpus mode: folder of clean speech; -o is the output folder.")
@click.option("--noise-dir", type=click.Path(path_type=Path), help="Corpus mode: recorded noises.")
@click.option("--rir-dir", type=click.Path(path_type=Path), help="Corpus mode: recorded RIRs.")
@click.option("--count", type=click.IntRange(min=1), help="Corpus mode: number of pairs.")
@click.option("--sample-rate", type=click.IntRange(min=1000), help="Corpus mode: resample to this rate, Hz.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file to stdout.")
def command(input_path, output, noise_snr_db, noise_file, noise_color, reverb_rt60_s, rir_file,
            clip_threshold_db, soft_clip, lowpass_hz, gain_db, noise_floor_dbfs, hum_hz,
            hum_level_db, clicks_per_s, click_amplitude, dropout_rate, packet_ms, delay_ms,
            mp3_kbps, seed, recipe_in, recipe_out, corpus_dir, noise_dir, rir_dir, count,
            sample_rate, as_json):
    """Damage clean speech on purpose: one file, or a corpus of clean/degraded pairs.

    \b
    Damages are applied in this order: reverb, noise, hum, gain, clip, clicks,
    low-pass, mp3, dropouts, delay.

    \b
    Examples:
      audiomend degrade clean.wav -o damaged.wav --noise-snr-db 5 --reverb-rt60-s 0.6 --seed 7
      audiomend degrade --corpus clean/ --noise-dir noise/ --rir-dir rir/ -o corpus/ --count 100
    """
    if corpus_dir is not None:
        if input_path is not None:
            raise click.UsageError("give either INPUT or --corpus, not both")
        from audiomend.degradations.chain import make_corpus

        records = make_corpus(corpus_dir, output, noise_dir=noise_dir, rir_dir=rir_dir, seed=seed,
                              sample_rate=sample_rate, count=count,
                              progress=sys.stderr.isatty() or not as_json)
        if as_json:
            for record in records:
                click.echo(json.dumps(record))
        else:
            click.echo(f"{output}: {len(records)} pairs, recipes in {output / 'recipes.jsonl'}",
                       err=True)
        return
    if input_path is None:
        raise click.UsageError("give an INPUT file, or --corpus CLEAN_DIR")
    if noise_dir is not None or rir_dir is not None or count is not None or sample_rate is not None:
        raise click.UsageError("--noise-dir, --rir-dir, --count and --sample-rate need --corpus")
    if recipe_in is not None:
        from audiomend.degradations.chain import Recipe

        try:
            text = recipe_in.read_text()
        except OSError as e:
            raise BadOptionError(f"{recipe_in}: cannot read recipe ({e.strerror or e})") from None
        except UnicodeDecodeError:
            raise BadOptionError(f"{recipe_in}: recipe is not a text (JSON) file") from None
        recipe = Recipe.from_json(text)
    else:
        recipe = build_recipe(
            seed=seed, noise_snr_db=noise_snr_db, noise_file=noise_file, noise_color=noise_color,
            reverb_rt60_s=reverb_rt60_s, rir_file=rir_file, clip_threshold_db=clip_threshold_db,
            soft_clip=soft_clip, lowpass_hz=lowpass_hz, gain_db=gain_db,
            noise_floor_dbfs=noise_floor_dbfs, hum_hz=hum_hz, hum_level_db=hum_level_db,
            clicks_per_s=clicks_per_s, click_amplitude=click_amplitude, dropout_rate=dropout_rate,
            packet_ms=packet_ms, delay_ms=delay_ms, mp3_kbps=mp3_kbps)
        if not recipe.degradations:
            raise click.UsageError("no damage requested; give e.g. --noise-snr-db 5 or --recipe FILE")
    _one_file(input_path, output, recipe, recipe_out, as_json)
