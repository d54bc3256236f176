"""A constant delay (integer or fractional samples) within the same length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audiomend.degradations.base import Degradation, check_range, prepare, register
from audiomend.dsp import fractional_delay


def delay(
    audio: np.ndarray,
    sample_rate: int,
    *,
    delay_ms: float = 1.0,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Delay each channel by ``delay_ms`` (positive: later, zeros enter at the start).

    The length is kept: the last ``delay`` samples fall off the end. A delay that is a whole
    number of samples (within 1e-6 sample) is an exact shift; otherwise an FFT phase ramp gives
    a band-limited fractional delay (:func:`audiomend.dsp.fractional_delay`).

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    delay_ms : float in -10000..10000, milliseconds (``delay_ms * sample_rate / 1000`` samples).
    rng : unused (deterministic); accepted so every damage has the same signature.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]

    Raises
    ------
    BadOptionError
        ``delay_ms`` out of range.

    Examples
    --------
    >>> delay(np.array([[1.0, 2.0, 3.0, 4.0]], np.float32), 1000, delay_ms=1.0).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """
    x = prepare(audio, sample_rate)
    samples = check_range(delay_ms, "delay_ms", -10000.0, 10000.0) * sample_rate / 1000.0
    if abs(samples - round(samples)) < 1e-6:
        samples = float(round(samples))
    return fractional_delay(x, samples)


@register
@dataclass(frozen=True)
class Delay(Degradation):
    """Parameters of :func:`delay`."""

    name = "delay"
    delay_ms: float = 1.0

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return delay(audio, sample_rate, delay_ms=self.delay_ms)
