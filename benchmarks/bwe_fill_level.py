"""The band extension's fill level against the band edge, on training speech (never eval).

Clean 16 kHz clips of ``train/speech`` (every ``--every``-th, the first 6 s) are band-limited the
way the damage simulator does it (10th-order low-pass at each ``--cutoffs`` frequency; "8k" is
a trip through 8 kHz and back with soxr, like telephone-rate material), diagnosed, and extended
by the planned ``bandwidth`` stage at each fill level of ``--levels-db`` (the stage's
``fill_gain_db``: dB against its extrapolated envelope) and at the planned level ("default",
which follows the band edge and the estimated SNR). Files where the diagnosis finds no band
limit are counted and skipped, as the chain would leave them. Prints PESQ-WB means per cutoff
and level, and how many files each level makes worse than the input.

The band extension is classical (nothing trained on these clips), so all of train/speech may be
used; the held-out slice is excluded anyway to keep it clean for the network's dev sets.

    OMP_NUM_THREADS=1 python benchmarks/bwe_fill_level.py --cutoffs 3400,4000
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from light_noise_limit import run
from make_dev_corpus import SHARED

from audiomend.degradations.bandlimit import bandlimit
from audiomend.diagnose import diagnose
from audiomend.dsp import resample
from audiomend.io import load
from audiomend.metrics import compute
from audiomend.pipeline import plan
from audiomend.train.data import _files


def limit_band(clean: np.ndarray, rate: int, cutoff: str) -> np.ndarray:
    if cutoff == "8k":
        return resample(resample(clean, rate, 8000), 8000, rate)[:, : clean.shape[1]]
    return bandlimit(clean, rate, cutoff_hz=float(cutoff))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoffs", default="3400,4000,5500,8k")
    parser.add_argument("--levels-db", default="-30,-33,-36,-40,-45")
    parser.add_argument("--every", type=int, default=2, help="take every n-th training clip")
    args = parser.parse_args()
    levels = [float(v) for v in args.levels_db.split(",")]
    files = [f for i, f in enumerate(_files([SHARED / "speech"]))
             if i % 20 != 19 and i % args.every == 0]      # not the held-out slice
    for cutoff in args.cutoffs.split(","):
        rows, skipped = [], 0
        for path in files:
            clean, rate = load(path)
            clean = clean[:, : 6 * rate]
            degraded = limit_band(clean, rate, cutoff)
            stages = plan(diagnose(degraded, rate), stages=["bandwidth"])
            if not stages:
                skipped += 1
                continue
            (stage,) = stages
            row = [compute("pesq_wb", degraded, rate, reference=clean)]
            for level in levels:
                fixed = dataclasses.replace(stage, fill_gain_db=level)
                row.append(compute("pesq_wb", run([fixed], degraded, rate), rate, reference=clean))
            row.append(compute("pesq_wb", run([stage], degraded, rate), rate, reference=clean))
            rows.append(row)
            print(f"{cutoff} {path.stem[:28]:28s} edge {stage.cutoff_hz:6.0f} "
                  + " ".join(f"{v:.3f}" for v in row), flush=True)
        scores = np.array(rows)
        print(f"\ncutoff {cutoff}: {len(rows)} files ({skipped} without a band limit found); "
              f"input {scores[:, 0].mean():.3f}; " + "; ".join(
                  f"{name} {scores[:, i + 1].mean():.3f} (worse on {int((scores[:, i + 1] < scores[:, 0]).sum())})"
                  for i, name in enumerate([f"{lv:g} dB" for lv in levels] + ["default"])) + "\n",
              flush=True)


if __name__ == "__main__":
    main()
