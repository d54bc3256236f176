"""Wrong gain: too quiet (gain down over a noise floor) or overloaded (gain up, clipped)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audiomend.degradations.base import Degradation, as_rng, check_range, prepare, register


def gain(
    audio: np.ndarray,
    sample_rate: int,
    *,
    gain_db: float = -25.0,
    noise_floor_dbfs: float | None = -85.0,
    clip_full_scale: bool = True,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Scale each channel by ``gain_db``, add a noise floor, and clip at full scale.

    A too-quiet recording is ``gain_db < 0`` with a converter noise floor that the gain cannot
    lift out of; an overloaded one is ``gain_db > 0``: everything beyond +-1.0 is clipped.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    gain_db : float in -120..60, dB.
    noise_floor_dbfs : float in -200..0 or None
        RMS of white Gaussian noise added after the gain, in dB relative to full scale (a full
        scale sine is -3 dBFS RMS). None adds no noise (the damage is then deterministic).
    clip_full_scale : bool, clip the result to [-1, 1] like a fixed-point converter.
    rng : np.random.Generator or None (None = ``default_rng(0)``); draws the noise floor.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]

    Raises
    ------
    BadOptionError
        ``gain_db`` or ``noise_floor_dbfs`` out of range.

    Examples
    --------
    >>> gain(np.array([[0.5, -0.25]], np.float32), 16000, gain_db=6.0206, noise_floor_dbfs=None).tolist()
    [[1.0, -0.5]]
    """
    x = prepare(audio, sample_rate)
    g = 10.0 ** (check_range(gain_db, "gain_db", -120.0, 60.0) / 20.0)
    y = x.astype(np.float64) * g
    if noise_floor_dbfs is not None:
        level = 10.0 ** (check_range(noise_floor_dbfs, "noise_floor_dbfs", -200.0, 0.0) / 20.0)
        y += level * as_rng(rng).standard_normal(y.shape)
    if clip_full_scale:
        y = np.clip(y, -1.0, 1.0)
    return y.astype(np.float32)


@register
@dataclass(frozen=True)
class Gain(Degradation):
    """Parameters of :func:`gain`."""

    name = "gain"
    random = True
    independent_channels = True
    gain_db: float = -25.0
    noise_floor_dbfs: float | None = -85.0
    clip_full_scale: bool = True
    seed: int = 0

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return gain(audio, sample_rate, gain_db=self.gain_db, noise_floor_dbfs=self.noise_floor_dbfs,
                    clip_full_scale=self.clip_full_scale, rng=self.rng())
