"""``audiomend train``: train the restoration network on CPU (needs the 'train' extra)."""

from __future__ import annotations

import click

from audiomend.errors import BadOptionError


@click.command(name="train")
@click.option("--speech", "speech", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of clean speech (repeatable).")
@click.option("--noise", "noise", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of noise recordings (repeatable).")
@click.option("--rir", "rir", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of room impulse responses (repeatable).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run folder (runs/NAME).")
@click.option("--steps", default=24000, show_default=True, help="Total optimiser steps.")
@click.option("--batch-size", default=16, show_default=True, help="Examples of 2 s per step.")
@click.option("--learning-rate", default=1e-3, show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the data mixing and initialisation.")
@click.option("--threads", default=1, show_default=True, help="torch CPU threads.")
@click.option("--hidden", default=256, show_default=True, help="GRU width (units per layer).")
@click.option("--embed", default=128, show_default=True, help="Width of the spectral compression layer.")
@click.option("--p-rolloff", "p_rolloff", default=0.0, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="Share of examples low-passed at 7.0-7.9 kHz, like resampled 16 kHz material.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
def command(speech, noise, rir, out, steps, batch_size, learning_rate, seed, threads, hidden, embed, p_rolloff, resume) -> None:
    """Train the mask network with examples mixed on the fly by audiomend's damage simulator.

    \b
    Example (the shipped model):
      ../shared/data/get-asterisk-prompts /tmp/asterisk
      audiomend train --speech ../shared/data/train/speech --speech /tmp/asterisk \\
          --noise ../shared/data/train/noise --rir ../shared/data/train/rir --out runs/maskgru16k
    Then: audiomend export runs/maskgru16k -o src/audiomend/model/weights/maskgru16k.onnx
    """
    from audiomend.train import require_torch

    require_torch()
    from audiomend.train.loop import TrainConfig, train

    if steps <= 0 or batch_size <= 0:
        raise BadOptionError("--steps and --batch-size must be positive")
    config = TrainConfig(speech=list(speech), noise=list(noise), rir=list(rir), steps=steps,
                         batch_size=batch_size, learning_rate=learning_rate, seed=seed, threads=threads,
                         hidden=hidden, embed=embed, p_rolloff=p_rolloff)
    checkpoint = train(config, out, resume=resume, progress=lambda m: click.echo(m, err=True))
    click.echo(f"checkpoint: {checkpoint}", err=True)
