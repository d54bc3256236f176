"""The network's attenuation limit on reverberant speech without noise, on simulated rooms.

Held-out training speech (every 20th clip of ``train/speech``, the slice ``audiomend train``
validates on) is placed in simulated shoebox rooms (RT60 0.5-1.3 s, or ``--rt60-s``; rooms the
networks never heard, image sources + a statistical tail), at -26 dBFS, and scored two ways:

- **A, the room is damage**: input = the reverberant speech, reference = the dry speech;
- **B, the room belongs to the recording**: input = the reverberant speech low-passed at 3.4, 4
  or 5.5 kHz (10th order), reference = the reverberant speech. Here any dereverberation counts as
  harm; it measures what the chain takes from a band-limited master recorded in a room.

For every file the chain plans a denoise for, the planned chain runs with the denoise stage's
attenuation limit fixed at each value of ``--limits``; "no WPE" drops the dereverb stage. Means
of PESQ-WB / ESTOI per set; with ``--by-noise`` also split by whether the diagnosis found noise,
with ``--by-rt60`` the files without noise found also by the diagnosis's RT60 estimate.
Never run on ``eval/``.

    OMP_NUM_THREADS=1 python benchmarks/reverb_limit.py --seed 3
    OMP_NUM_THREADS=1 python benchmarks/reverb_limit.py --seed 5 --rt60-s 0.3,1.1 \
        --limits 20,15,12,9 --by-rt60 0.8,0.9,1.0,1.1
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from light_noise_limit import run, with_limit
from make_dev_corpus import SHARED, held_out

from audiomend.degradations.bandlimit import bandlimit
from audiomend.degradations.reverb import reverberate
from audiomend.diagnose import diagnose
from audiomend.io import load
from audiomend.metrics import compute
from audiomend.pipeline import plan
from audiomend.train.data import _files

ROOMS_M = ((5.0, 4.0, 3.0), (6.0, 4.0, 3.0), (8.0, 6.0, 3.0))
CUTOFFS_HZ = (3400.0, 4000.0, 5500.0)
METRICS = ("pesq_wb", "estoi")


def rooms(rng: np.random.Generator, speech: list[Path], per_clip: int,
          rt60_range_s: tuple[float, float] = (0.5, 1.3)):
    """Yield (name, dry, reverberant, low-passed reverberant, rt60_s, sample_rate); 16 kHz clips
    at -26 dBFS rms, scaled together to peak at most 0.9; RT60 uniform in ``rt60_range_s``."""
    for path in speech:
        dry, rate = load(path)
        dry = dry[:, : 6 * rate]
        dry = (dry * 10 ** (-26 / 20) / np.sqrt(np.mean(dry ** 2) + 1e-12)).astype(np.float32)
        for _ in range(per_clip):
            rt60 = float(rng.uniform(*rt60_range_s))
            room = ROOMS_M[int(rng.integers(len(ROOMS_M)))]
            wet = reverberate(dry, rate, rt60_s=rt60, room_m=room,
                              rng=np.random.default_rng(int(rng.integers(1 << 30))))
            peak = max(float(np.abs(wet).max()), float(np.abs(dry).max()))
            scale = min(1.0, 0.9 / peak)
            cutoff = float(rng.choice(CUTOFFS_HZ))
            wet, ref = wet * scale, dry * scale
            yield path.stem, ref, wet, bandlimit(wet, rate, cutoff_hz=cutoff), rt60, rate


def rt60_bin(rt60_s: float, edges: list[float]) -> str:
    """The label of the bin of ``edges`` (s) that holds ``rt60_s``: '< 0.8', '0.8-0.9', '>= 1.0'."""
    if rt60_s < edges[0]:
        return f"< {edges[0]:g}"
    for lo, hi in itertools.pairwise(edges):
        if lo <= rt60_s < hi:
            return f"{lo:g}-{hi:g}"
    return f">= {edges[-1]:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rooms-per-clip", type=int, default=2)
    parser.add_argument("--limits", default="40,30,25,20,15,12")
    parser.add_argument("--by-noise", action="store_true")
    parser.add_argument("--rt60-s", default="0.5,1.3", help="range of the rooms' RT60, s")
    parser.add_argument("--by-rt60", default="", help="also split the files without noise found "
                        "by estimated RT60 at these edges, s (e.g. 0.8,0.9,1.0)")
    args = parser.parse_args()
    limits = [float(v) for v in args.limits.split(",")]
    edges = [float(v) for v in args.by_rt60.split(",") if v]
    speech = held_out(_files([SHARED / "speech"]), 20)
    rng = np.random.default_rng(args.seed)
    columns = ["input", "planned"] + [f"{v:g} dB" for v in limits] + ["no WPE"]
    scores: dict[tuple[str, str], list] = {}
    for name, dry, wet, lowpassed, rt60, rate in rooms(rng, speech, args.rooms_per_clip,
                                                    tuple(float(v) for v in args.rt60_s.split(","))):
        for set_name, audio, reference in (("A", wet, dry), ("B", lowpassed, wet)):
            diagnosis = diagnose(audio, rate)
            stages = plan(diagnosis)
            if not any(s.name == "denoise" for s in stages):
                continue   # nothing for the limit to change
            outputs = {"input": audio, "planned": run(stages, audio, rate)}
            for limit in limits:
                outputs[f"{limit:g} dB"] = run(with_limit(stages, limit), audio, rate)
            outputs["no WPE"] = run([s for s in stages if s.name != "dereverb"], audio, rate)
            row = {k: [compute(m, y, rate, reference=reference) for m in METRICS]
                   for k, y in outputs.items()}
            group = "noise found" if diagnosis.noise.present else "no noise found"
            keys = [(set_name, "all")] + ([(set_name, group)] if args.by_noise else [])
            if edges and not diagnosis.noise.present:
                keys.append((set_name, f"no noise, est. RT60 {rt60_bin(diagnosis.reverb.rt60_s, edges)}"))
            for key in keys:
                scores.setdefault(key, []).append([row[c] for c in columns])
            print(f"{set_name} {name[:24]:24s} rt60 {rt60:.2f} est {diagnosis.reverb.rt60_s:.2f} "
                  f"{group:15s} " + " ".join(f"{c}:{v[0]:.2f}/{v[1]:.3f}" for c, v in row.items()),
                  flush=True)
    print(f"\nseed {args.seed}; PESQ-WB / ESTOI means\n")
    print("| set | files | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for (set_name, group), rows in sorted(scores.items()):
        means = np.mean(rows, axis=0)
        print(f"| {set_name} {group} | {len(rows)} | "
              + " | ".join(f"{p:.3f} / {e:.3f}" for p, e in means) + " |")


if __name__ == "__main__":
    main()
