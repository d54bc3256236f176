"""The networks' attenuation limit against the estimated SNR, on the dev light-noise sets.

For every dev file the chain plans a denoise for, run the planned chain with the denoise stage's
attenuation limit fixed at each value of ``--limits`` (and as planned), and print PESQ-WB /
ESTOI / SI-SDR per file and per set. Files the chain does not denoise are counted in the means
(unchanged by the limit). Dev sets only (benchmarks/make_dev_corpus.py, make_dev_light48.py).

    python benchmarks/make_dev_corpus.py /tmp/dev --seed 11 --only noise,noise_bandlimit,light_noise --count 13
    python benchmarks/make_dev_light48.py /tmp/dev48 --snr-db 15,24 --seed 5
    OMP_NUM_THREADS=1 python benchmarks/light_noise_limit.py /tmp/dev/light_noise \\
        /tmp/dev/noise_bandlimit /tmp/dev/noise /tmp/dev48/clean_ref /tmp/dev48/noisy_ref
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from audiomend.diagnose import diagnose
from audiomend.io import load
from audiomend.metrics import compute
from audiomend.pipeline import RestoreChain, plan


def run(stages: list, audio: np.ndarray, rate: int) -> np.ndarray:
    return RestoreChain(stages, rate, rate, audio.shape[0]).run(audio)


def with_limit(stages: list, limit_db: float) -> list:
    return [dataclasses.replace(s, attenuation_limit_db=limit_db) if s.name == "denoise" else s
            for s in stages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--limits", default="30,24,18,15,12,9")
    parser.add_argument("--denoiser", default="neural")
    parser.add_argument("--metrics", default="pesq_wb,estoi,si_sdr", help="comma-separated")
    args = parser.parse_args()
    limits = [float(v) for v in args.limits.split(",")]
    metrics = args.metrics.split(",")
    print("set | file | est. SNR dB | limit planned | " + " | ".join(
        ["input", "planned"] + [f"{v:g} dB" for v in limits]) + f"  ({'/'.join(metrics)})")
    for folder in args.dirs:
        totals: dict[str, list] = {}
        for path in sorted((folder / "degraded").glob("*")):
            audio, rate = load(path)
            reference, _ = load(folder / "clean" / path.name)
            diagnosis = diagnose(audio, rate)
            stages = plan(diagnosis, denoiser=args.denoiser)
            denoise = [s for s in stages if s.name == "denoise"]
            outputs = {"input": audio, "planned": run(stages, audio, rate)}
            for limit in limits:
                outputs[f"{limit:g}"] = run(with_limit(stages, limit), audio, rate) if denoise \
                    else outputs["planned"]
            row = {k: [compute(m, y, rate, reference=reference) for m in metrics]
                   for k, y in outputs.items()}
            for k, v in row.items():
                totals.setdefault(k, []).append(v)
            if denoise:
                print(f"{folder.name} | {path.stem[:30]} | {diagnosis.noise.snr_db:.1f} | "
                      f"{denoise[0].attenuation_limit_db:g} | "
                      + " | ".join("/".join(f"{x:.3g}" for x in v) for v in row.values()),
                      flush=True)
        print(f"**{folder.name} mean ({len(totals['input'])} files)** | | | | " + " | ".join(
            "/".join(f"{x:.3f}" for x in np.mean(v, axis=0)) for v in totals.values()), flush=True)


if __name__ == "__main__":
    main()
