"""Band-limiting: a low-pass filter, down-and-up resampling, or the telephone band.

Filters are Butterworth sections run forwards and backwards (``sosfiltfilt``): zero phase, so the
output stays sample-aligned with the input. The magnitude response is the square of an
``order``-order Butterworth: -6 dB at the cutoff, falling 12 dB/octave per order above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from audiomend.degradations.base import (
    Degradation,
    check_choice,
    check_range,
    fit_length,
    prepare,
    register,
)
from audiomend.dsp import resample
from audiomend.errors import BadOptionError

MODES = ("lowpass", "resample", "telephone")

#: The telephone band, Hz (ITU-T G.712 narrowband).
TELEPHONE_BAND_HZ = (300.0, 3400.0)


def _filtfilt(sos: np.ndarray, x: np.ndarray) -> NDArray[np.float32]:
    """Zero-phase ``sosfiltfilt`` along the last axis in float64, padding shortened to fit ``x``."""
    n = x.shape[-1]
    if n < 2:
        return x.copy()
    default_pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    out = signal.sosfiltfilt(sos, x.astype(np.float64), axis=-1, padlen=min(default_pad, n - 1))
    return out.astype(np.float32)


def bandlimit(
    audio: np.ndarray,
    sample_rate: int,
    *,
    mode: str = "lowpass",
    cutoff_hz: float = 4000.0,
    order: int = 10,
    resample_hz: int = 8000,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Remove the high band (and, for ``telephone``, the low band) of each channel.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    mode : "lowpass" (Butterworth at ``cutoff_hz``), "resample" (soxr down to ``resample_hz`` and
        back up: a brick-wall at its Nyquist), or "telephone" (Butterworth band-pass 300-3400 Hz).
    cutoff_hz : float > 0, low-pass cutoff (the -6 dB point) in Hz; "lowpass" only. At or above
        the Nyquist frequency nothing is removed.
    order : int in 1..24, Butterworth order of each of the two passes ("lowpass", "telephone").
    resample_hz : int, intermediate rate in Hz; "resample" only. At or above ``sample_rate``
        nothing is removed.
    rng : unused (deterministic); accepted so every damage has the same signature.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32], aligned with the input.

    Raises
    ------
    BadOptionError
        Unknown ``mode``, bad ``order``/``cutoff_hz``/``resample_hz``, or a telephone band above
        the Nyquist frequency.

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> x = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 6000 * t)]).astype(np.float32)
    >>> y = bandlimit(x, 16000, cutoff_hz=4000.0)
    >>> np.round(np.sqrt(np.mean(y[:, 2000:-2000] ** 2, axis=1) * 2), 2).tolist()
    [1.0, 0.0]
    """
    x = prepare(audio, sample_rate)
    check_choice(mode, "mode", MODES)
    if int(order) != order or not 1 <= order <= 24:
        raise BadOptionError(f"order={order!r} must be a whole number in 1..24")
    nyquist = sample_rate / 2.0
    if mode == "lowpass":
        cutoff_hz = check_range(cutoff_hz, "cutoff_hz", 0.0, None, inclusive=False)
        if cutoff_hz >= nyquist:
            return x.copy()
        sos = signal.butter(int(order), cutoff_hz, btype="lowpass", fs=sample_rate, output="sos")
        return _filtfilt(sos, x)
    if mode == "telephone":
        low, high = TELEPHONE_BAND_HZ
        if high >= nyquist:
            raise BadOptionError(f"the telephone band needs a rate above {2 * high:.0f} Hz, "
                                 f"got {sample_rate} Hz")
        sos = signal.butter(int(order), [low, high], btype="bandpass", fs=sample_rate,
                            output="sos")
        return _filtfilt(sos, x)
    rate = check_range(resample_hz, "resample_hz", 1000.0, None)
    if int(rate) != rate:
        raise BadOptionError(f"resample_hz={resample_hz!r} must be a whole number of Hz")
    if rate >= sample_rate or x.shape[-1] == 0:
        return x.copy()
    y = resample(resample(x, sample_rate, int(rate)), int(rate), sample_rate)
    return fit_length(y, x.shape[-1])


@register
@dataclass(frozen=True)
class Bandlimit(Degradation):
    """Parameters of :func:`bandlimit`."""

    name = "bandlimit"
    mode: str = "lowpass"
    cutoff_hz: float = 4000.0
    order: int = 10
    resample_hz: int = 8000

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return bandlimit(audio, sample_rate, mode=self.mode, cutoff_hz=self.cutoff_hz,
                         order=self.order, resample_hz=self.resample_hz)
