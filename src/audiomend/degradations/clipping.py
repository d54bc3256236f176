"""Hard and soft clipping, at a threshold relative to each channel's peak or absolute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audiomend.degradations.base import Degradation, check_range, prepare, register


def clip(
    audio: np.ndarray,
    sample_rate: int,
    *,
    threshold_db: float = -6.0,
    threshold: float | None = None,
    soft: bool = False,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Clip audio like an overloaded converter (hard) or a saturating amplifier (soft).

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    threshold_db : float <= 0
        Clip level in dB relative to each channel's peak: -6 clips everything above half the peak.
        Ignored when ``threshold`` is given.
    threshold : float > 0 or None
        Absolute clip level (linear, full scale 1.0), the same for every channel.
    soft : bool
        False: hard clipping, exactly the samples with ``|x| > t`` become ``sign(x) * t`` and all
        others are untouched. True: ``t * tanh(x / t)``, a smooth saturation that never exceeds
        ``t`` and bends every sample a little.
    rng : unused (clipping is deterministic); accepted so every damage has the same signature.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]

    Raises
    ------
    BadOptionError
        ``threshold_db > 0`` or ``threshold <= 0``.

    Examples
    --------
    >>> clip(np.array([[0.1, -0.9, 0.5]], np.float32), 16000, threshold=0.4).tolist()
    [[0.10000000149011612, -0.4000000059604645, 0.4000000059604645]]
    """
    x = prepare(audio, sample_rate)
    check_range(threshold_db, "threshold_db", None, 0.0)
    if threshold is not None:
        t = np.full((x.shape[0], 1), check_range(threshold, "threshold", 0.0, None, inclusive=False),
                    np.float32)
    else:
        peak = np.abs(x).max(axis=-1, keepdims=True) if x.shape[-1] else np.zeros((x.shape[0], 1))
        t = (peak * 10.0 ** (threshold_db / 20.0)).astype(np.float32)
    if x.shape[-1] == 0:
        return x.copy()
    if soft:
        safe = np.where(t > 0, t, np.float32(1.0))
        return np.where(t > 0, safe * np.tanh(x / safe), x).astype(np.float32)
    return np.clip(x, -t, t).astype(np.float32)


@register
@dataclass(frozen=True)
class Clip(Degradation):
    """Parameters of :func:`clip`."""

    name = "clip"
    threshold_db: float = -6.0
    threshold: float | None = None
    soft: bool = False

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return clip(audio, sample_rate, threshold_db=self.threshold_db, threshold=self.threshold,
                    soft=self.soft)

