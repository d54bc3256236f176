"""Denoiser variants on the dev corpus: classical, network, level-normalised network, hybrids.

Re-runnable (for instance after the network's weights change): prints one Markdown table per
category with the mean PESQ-WB, ESTOI, SI-SDR and DNSMOS OVRL over the pairs. Tune on the dev
corpus only (``benchmarks/make_dev_corpus.py``), never on ``shared/data/eval``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/denoise_dev.py --corpus /tmp/dev \\
        --categories noise,clean,reverb,noise_reverb,gain [--systems noisy,classical,neural]

Systems (every one runs a single denoiser at full strength on the degraded file, except
``audiomend``, the whole planned chain):

- ``noisy``: the input.
- ``classical``: the MMSE-LSA denoiser (``Denoise(backend="classical")``).
- ``neural-raw``: the network fed the input's own level (as before level normalisation).
- ``neural``: the network with the input gain the planner gives it
  (:func:`audiomend.stages.neural.input_gain_for_loudness` of the diagnosed loudness).
- ``geo``, ``product``, ``softprod``, ``min``: the network's gain ``n`` combined per bin with
  the classical MMSE-LSA gain ``c`` computed on the network's STFT grid: ``sqrt(n * c)``,
  ``n * c``, ``n * sqrt(c)``, ``min(n, c)``.
- ``serial``: the network, then the classical denoiser at strength 0.5 as a post-filter.
- ``audiomend``: ``audiomend.pipeline.restore`` with default options.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiomend.diagnose import diagnose
from audiomend.errors import MetricError
from audiomend.metrics import compute
from audiomend.stream import ChainProcessor

METRICS = ("pesq_wb", "estoi", "si_sdr", "dnsmos_ovrl")
SYSTEMS = ("noisy", "classical", "neural-raw", "neural", "geo", "product", "softprod", "min",
           "serial", "audiomend")


#: Loudness window the network's input is brought into (``--window-lufs``).
WINDOW_LUFS: tuple[float, float] | None = None


def _input_gain_db(audio: np.ndarray, sample_rate: int) -> float:
    from audiomend.stages.neural import INPUT_WINDOW_LUFS, input_gain_for_loudness

    return input_gain_for_loudness(diagnose(audio, sample_rate).loudness_lufs,
                         window_lufs=WINDOW_LUFS or INPUT_WINDOW_LUFS)


def _hybrid_class():
    """A NeuralProcessor whose gain is combined per bin with the classical MMSE-LSA gain, both on
    the network's STFT grid (the classical time constants converted to its hop)."""
    from audiomend.stages.denoise import LsaGain
    from audiomend.stages.neural import NeuralProcessor

    class Hybrid(NeuralProcessor):
        def __init__(self, sample_rate: int, channels: int, *, combine: str, **kwargs) -> None:
            super().__init__(sample_rate, channels, **kwargs)
            self.combine = combine
            self.classical = LsaGain(self.frame_length // 2 + 1,
                                     hop_s=self.hop_length / sample_rate,
                                     frame_s=self.frame_length / sample_rate)

        def gains(self, power: np.ndarray) -> np.ndarray:
            network = super().gains(power)                                  # (T, F)
            classical = self.classical(power.T.astype(np.float64)).T
            if self.combine == "geo":
                return np.sqrt(np.maximum(network, 0.0) * classical)
            if self.combine == "product":
                return network * classical
            if self.combine == "softprod":
                return network * np.sqrt(classical)
            return np.minimum(network, classical)

    return Hybrid


def run_system(name: str, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The output of system ``name`` for ``audio`` ``(channels, samples)``, aligned, same rate."""
    from audiomend.stages.denoise import DenoiseProcessor
    from audiomend.stages.neural import NeuralProcessor

    channels = audio.shape[0]
    if name == "noisy":
        return audio
    if name == "audiomend":
        from audiomend.pipeline import restore

        return restore(audio, sample_rate)[0]
    if name == "classical":
        return DenoiseProcessor(channels, sample_rate).run(audio)

    def network(**kwargs) -> NeuralProcessor:
        from audiomend.model.runtime import DEFAULT_MODEL

        return NeuralProcessor(sample_rate, channels, strength=1.0, attenuation_limit_db=30.0,
                               model_name=DEFAULT_MODEL, **kwargs)

    if name == "neural-raw":
        return network().run(audio)
    gain = _input_gain_db(audio, sample_rate)
    if name == "neural":
        return network(input_gain_db=gain).run(audio)
    if name in ("geo", "product", "softprod", "min"):
        from audiomend.model.runtime import DEFAULT_MODEL

        return _hybrid_class()(sample_rate, channels, combine=name, strength=1.0,
                               attenuation_limit_db=30.0, model_name=DEFAULT_MODEL,
                               input_gain_db=gain).run(audio)
    if name == "serial":
        chain = ChainProcessor(channels, [network(input_gain_db=gain),
                                          DenoiseProcessor(channels, sample_rate, strength=0.5)])
        return chain.run(audio)
    raise SystemExit(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")


def score(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> dict[str, float]:
    out = {}
    for metric in METRICS:
        try:
            out[metric] = compute(metric, estimate, sample_rate, reference=reference,
                                  check_pairing=False)
        except MetricError:  # a wrecked output scores NaN rather than stopping the table
            out[metric] = float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="/tmp/dev")
    parser.add_argument("--categories", default="noise,clean,reverb,noise_reverb,gain")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--limit", type=int, default=0, help="pairs per category (0 = all)")
    parser.add_argument("--window-lufs", default="",
                        help="LOW,HIGH loudness window for the network's input (default: the stage's)")
    args = parser.parse_args()
    if args.window_lufs:
        global WINDOW_LUFS
        low, high = (float(v) for v in args.window_lufs.split(","))
        WINDOW_LUFS = (low, high)
    systems = [s for s in args.systems.split(",") if s]
    for category in [c for c in args.categories.split(",") if c]:
        folder = Path(args.corpus) / category
        files = sorted((folder / "degraded").iterdir())
        if args.limit:
            files = files[: args.limit]
        rows = {s: [] for s in systems}
        seconds = {s: 0.0 for s in systems}
        for path in files:
            noisy, rate = sf.read(path, dtype="float32", always_2d=True)
            clean, _ = sf.read(folder / "clean" / path.name, dtype="float32", always_2d=True)
            n = min(len(noisy), len(clean))
            noisy, clean = noisy[:n].T.copy(), clean[:n].T.copy()
            for system in systems:
                t0 = time.perf_counter()
                out = run_system(system, noisy, rate)
                seconds[system] += time.perf_counter() - t0
                rows[system].append(score(out, clean, rate))
        print(f"\n## {category} ({len(files)} pairs)\n")
        print("| system | " + " | ".join(METRICS) + " | s |")
        print("|---" * (len(METRICS) + 2) + "|")
        for system in systems:
            means = [np.nanmean([r[m] for r in rows[system]]) for m in METRICS]
            print(f"| {system} | " + " | ".join(f"{v:.3f}" for v in means)
                  + f" | {seconds[system]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
