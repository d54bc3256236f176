"""Build two 48 kHz *dev* sets of light noise on band-limited speech (tuning the denoiser's depth).

The 48 kHz sources are the smoke clips (../shared/data/smoke/speech/*_48k_*.flac) at -26 dBFS
RMS; each gets held-out training noises (every 10th of ../shared/data/train/noise, as
make_dev_corpus.py) at an SNR drawn in [LO, HI] dB, then passes through 8 or 16 kHz and back
(soxr, as eval/multi/bwe48k). Two references for the same degraded files:

- ``OUT/clean_ref``: the clean speech (did the denoiser help?);
- ``OUT/noisy_ref``: the speech with its noise, full band: a master whose room tone belongs to
  it (how much does the denoiser take that is not damage?).

    python benchmarks/make_dev_light48.py /tmp/dev48 --snr-db 15,24 --seed 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from make_dev_corpus import held_out

from audiomend.degradations.bandlimit import bandlimit
from audiomend.degradations.noise import add_noise
from audiomend.io import load
from audiomend.train.data import _files

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VIA_RATES_HZ = (8000, 16000)
NOISES_PER_CLIP = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--snr-db", default="15,24", metavar="LO,HI")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    lo, hi = (float(v) for v in args.snr_db.split(","))
    noises = held_out(_files([DATA / "train" / "noise"]), 10)
    rng = np.random.default_rng(args.seed)
    sets = {name: args.out_dir / name for name in ("clean_ref", "noisy_ref")}
    for folder in sets.values():
        for kind in ("clean", "degraded"):
            (folder / kind).mkdir(parents=True, exist_ok=True)
    count = 0
    for source in sorted((DATA / "smoke" / "speech").glob("*_48k_*.flac")):
        speech, rate = load(source)
        speech = speech / np.sqrt(np.mean(speech ** 2)) * 10.0 ** (-26.0 / 20.0)
        for via in VIA_RATES_HZ:
            for k in range(NOISES_PER_CLIP):
                snr = rng.uniform(lo, hi)
                noisy = add_noise(speech, rate, snr_db=snr, noise=str(noises[rng.integers(len(noises))]),
                                  rng=rng)
                degraded = bandlimit(noisy, rate, mode="resample", resample_hz=via)
                name = f"{source.stem}_via{via // 1000}k_{k}_snr{snr:.0f}.wav"
                for folder, reference in ((sets["clean_ref"], speech), (sets["noisy_ref"], noisy)):
                    sf.write(folder / "clean" / name, reference.T, rate, subtype="FLOAT")
                    sf.write(folder / "degraded" / name, degraded.T, rate, subtype="FLOAT")
                count += 1
    print(f"{count} pairs in each of {', '.join(str(f) for f in sets.values())}")


if __name__ == "__main__":
    main()
