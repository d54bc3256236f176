"""Clicks and crackle: short impulsive bursts at random times, as on damaged vinyl or bad cables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from audiomend.degradations.base import Degradation, as_rng, check_range, prepare, register

#: Length of one click, seconds: a decaying, sign-alternating burst.
CLICK_S = 0.0005


def clicks(
    audio: np.ndarray,
    sample_rate: int,
    *,
    rate_per_s: float = 5.0,
    amplitude: float = 0.5,
    crackle_per_s: float = 0.0,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Add clicks (and optional crackle) to every channel at the same instants.

    Click times are a Poisson process of ``rate_per_s``; each click is a 0.5 ms burst whose peak
    is ``amplitude`` times a random factor in 0.5..1 with a random sign. Crackle is the same at
    ``crackle_per_s`` with a tenth of the amplitude.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    rate_per_s : float in 0..10000, mean clicks per second.
    amplitude : float in 0..10, peak click amplitude (full scale 1.0).
    crackle_per_s : float in 0..100000, mean crackle impulses per second.
    rng : np.random.Generator or None (None = ``default_rng(0)``).

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]

    Raises
    ------
    BadOptionError
        A parameter out of range.

    Examples
    --------
    >>> y = clicks(np.zeros((1, 16000), np.float32), 16000, rate_per_s=20.0, amplitude=0.5)
    >>> 0.25 <= float(np.abs(y).max()) <= 0.5
    True
    """
    x = prepare(audio, sample_rate)
    rate = check_range(rate_per_s, "rate_per_s", 0.0, 10000.0)
    amplitude = check_range(amplitude, "amplitude", 0.0, 10.0)
    crackle = check_range(crackle_per_s, "crackle_per_s", 0.0, 100000.0)
    gen = as_rng(rng)
    n = x.shape[-1]
    impulses = np.zeros(n)
    for per_s, amp in ((rate, amplitude), (crackle, amplitude / 10.0)):
        count = gen.poisson(per_s * n / sample_rate)
        where = gen.integers(0, max(n, 1), count)
        size = gen.uniform(0.5, 1.0, count) * gen.choice([-1.0, 1.0], count) * amp
        if n:
            np.add.at(impulses, where, size)
    length = max(round(CLICK_S * sample_rate), 1)
    shape = np.exp(-4.0 * np.arange(length) / length) * np.cos(np.pi * 0.7 * np.arange(length))
    burst = signal.oaconvolve(impulses, shape)[:n] if n else impulses
    return (x + burst[None, :]).astype(np.float32)


@register
@dataclass(frozen=True)
class Clicks(Degradation):
    """Parameters of :func:`clicks`."""

    name = "clicks"
    random = True
    rate_per_s: float = 5.0
    amplitude: float = 0.5
    crackle_per_s: float = 0.0
    seed: int = 0

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return clicks(audio, sample_rate, rate_per_s=self.rate_per_s, amplitude=self.amplitude,
                      crackle_per_s=self.crackle_per_s, rng=self.rng())
