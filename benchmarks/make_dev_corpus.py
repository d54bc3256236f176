"""Build the *dev* corpus: the held-out slice of ../shared/data/train, damaged like eval/multi.

Model selection and chain tuning use this corpus, never ../shared/data/eval. The held-out files
are exactly those `audiomend train` keeps out of training (every 20th speech clip, every 10th
noise, every 5th room, in sorted order), so the network has not heard them.

    python benchmarks/make_dev_corpus.py /tmp/dev --seed 11
    audiomend bench --corpus /tmp/dev --systems noisy,audiomend -o /tmp/dev_results.md

Writes one category folder per damage (noise, reverb, noise_reverb, clip, bandlimit, gain, hum,
clean), each with clean/, degraded/ and recipes.jsonl, 16 kHz, `--count` pairs per category.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from audiomend.degradations.chain import Chain, Step, make_corpus
from audiomend.train.data import _files

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"

#: The categories of eval/multi, with ranges taken from ../shared/data/README.md.
CATEGORIES = {
    "clean": Chain(()),
    "noise": Chain((Step("noise", 1.0, {"snr_db": (-2.0, 15.0)}),)),
    "reverb": Chain((Step("reverb", 1.0, {}),)),
    "noise_reverb": Chain((Step("reverb", 1.0, {}), Step("noise", 1.0, {"snr_db": (-2.0, 15.0)}))),
    "clip": Chain((Step("clip", 1.0, {"threshold_db": (-14.0, -4.0)}),)),
    "bandlimit": Chain((Step("bandlimit", 1.0, {"cutoff_hz": [3400.0, 4000.0, 5500.0]}),)),
    "gain": Chain((Step("gain", 1.0, {"gain_db": (-35.0, -20.0), "noise_floor_dbfs": -85.0}),)),
    "hum": Chain((Step("hum", 1.0, {"mains_hz": [50.0, 60.0], "level_db": (-20.0, -3.0)}),)),
    # band-limited speech with light noise: what a denoiser meets on telephone or low-rate sources
    "noise_bandlimit": Chain((Step("noise", 1.0, {"snr_db": (10.0, 25.0)}),
                              Step("bandlimit", 1.0, {"cutoff_hz": [3400.0, 4000.0, 5500.0]}))),
    # light noise only (SNR 18-30 dB): where a denoiser has little to gain and much to lose
    "light_noise": Chain((Step("noise", 1.0, {"snr_db": (18.0, 30.0)}),)),
}


def held_out(files: list[Path], every: int) -> list[Path]:
    return [f for i, f in enumerate(files) if i % every == every - 1]


def link_all(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        os.symlink(f.resolve(), folder / f.name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--only", default="", help="comma-separated categories (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        speech = link_all(held_out(_files([SHARED / "speech"]), 20), tmp / "speech")
        noise = link_all(held_out(_files([SHARED / "noise"]), 10), tmp / "noise")
        rir = link_all(held_out(_files([SHARED / "rir"]), 5), tmp / "rir")
        only = set(filter(None, args.only.split(",")))
        for i, (name, chain) in enumerate(CATEGORIES.items()):
            if only and name not in only:
                continue
            make_corpus(speech, args.out_dir / name, noise_dir=noise, rir_dir=rir, chain=chain,
                        seed=args.seed + i, sample_rate=16000, count=args.count, progress=False)
            print(f"{name}: {args.count} pairs", flush=True)


if __name__ == "__main__":
    main()
