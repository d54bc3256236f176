"""Mains hum: a 50 or 60 Hz fundamental and its harmonics, with a slow, slight frequency drift."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audiomend.degradations.base import (
    Degradation,
    active_power,
    as_rng,
    check_range,
    prepare,
    register,
)


def hum_signal(samples: int, sample_rate: int, *, mains_hz: float = 50.0, harmonics: int = 6,
               drift_hz: float = 0.1, rng: np.random.Generator | None = None) -> NDArray[np.float64]:
    """Unit-RMS hum ``(samples,)``: the fundamental and ``harmonics - 1`` overtones below Nyquist.

    Harmonic ``k`` has amplitude ``1/k`` and a random phase; the fundamental wanders by up to
    ``drift_hz`` around ``mains_hz`` (a sinusoidal drift with a random period of 5-20 s), and
    every harmonic follows it.
    """
    gen = as_rng(rng)
    ks = np.arange(1, int(harmonics) + 1)
    phases = gen.uniform(0, 2 * np.pi, ks.size)
    drift_rate = gen.uniform(0.05, 0.2)
    drift_phase = gen.uniform(0, 2 * np.pi)
    ks = ks[ks * (mains_hz + drift_hz) < sample_rate / 2]
    if samples == 0 or ks.size == 0:
        return np.zeros(samples)
    t = np.arange(samples) / sample_rate
    freq = mains_hz + drift_hz * np.sin(2 * np.pi * drift_rate * t + drift_phase)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    out = np.zeros(samples)
    for k in ks:  # a handful of harmonics, each vectorised over time
        out += np.sin(k * phase + phases[k - 1]) / k
    return out / np.sqrt(np.sum(1.0 / ks.astype(float) ** 2) / 2.0)


def hum(
    audio: np.ndarray,
    sample_rate: int,
    *,
    mains_hz: float = 50.0,
    harmonics: int = 6,
    level_db: float = -20.0,
    drift_hz: float = 0.1,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Add mains hum to each channel at ``level_db`` relative to its speech.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32 speech.
    sample_rate : int, Hz.
    mains_hz : float in 10..1000, mains frequency (50 or 60 Hz).
    harmonics : int in 1..100, number of components (fundamental included) with amplitudes 1/k;
        those at or above the Nyquist frequency are dropped.
    level_db : float in -100..40, hum power relative to the speech power measured on active frames
        (:func:`~audiomend.degradations.base.active_power`), in dB.
    drift_hz : float in 0..5, peak deviation of the slowly drifting fundamental, Hz.
    rng : np.random.Generator or None (None = ``default_rng(0)``); draws phases and drift. Every
        channel gets the same hum (the same mains), scaled to its own speech level.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]
        A silent channel is returned unchanged (no speech level to refer to).

    Raises
    ------
    BadOptionError
        A parameter out of range.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32)
    >>> y = hum(x, 16000, level_db=-10.0)
    >>> round(float(10 * np.log10(np.mean((y - x) ** 2) / np.mean(x ** 2))), 1)
    -10.0
    """
    x = prepare(audio, sample_rate)
    mains_hz = check_range(mains_hz, "mains_hz", 10.0, 1000.0)
    check_range(harmonics, "harmonics", 1, 100)
    level_db = check_range(level_db, "level_db", -100.0, 40.0)
    drift_hz = check_range(drift_hz, "drift_hz", 0.0, 5.0)
    tone = hum_signal(x.shape[-1], sample_rate, mains_hz=mains_hz, harmonics=int(harmonics),
                      drift_hz=drift_hz, rng=rng)
    scale = np.sqrt(active_power(x, sample_rate) * 10.0 ** (level_db / 10.0))
    return (x + scale[:, None] * tone[None, :]).astype(np.float32)


@register
@dataclass(frozen=True)
class Hum(Degradation):
    """Parameters of :func:`hum`."""

    name = "hum"
    random = True
    mains_hz: float = 50.0
    harmonics: int = 6
    level_db: float = -20.0
    drift_hz: float = 0.1
    seed: int = 0

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return hum(audio, sample_rate, mains_hz=self.mains_hz, harmonics=self.harmonics,
                   level_db=self.level_db, drift_hz=self.drift_hz, rng=self.rng())
