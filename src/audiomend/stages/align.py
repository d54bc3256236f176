"""Align: estimate the delay between two recordings (GCC-PHAT) and remove it.

:func:`estimate_delay` finds how many samples ``other`` lags ``reference``: the peak of the
phase-transform weighted cross-correlation (GCC-PHAT), refined to a fraction of a sample by
band-limited (windowed-sinc) interpolation of the correlation around its peak. The :class:`Align`
stage then shifts a stream earlier by that delay: the integer part is exact (it becomes the
processor's latency, or a delay line for negative delays), the fractional part is a
windowed-sinc fractional-delay FIR run in streaming form.

References
----------
C. Knapp, G. Carter, "The generalized correlation method for estimation of time delay",
IEEE Trans. ASSP 24(4), 1976.
T. Laakso et al., "Splitting the unit delay", IEEE Signal Processing Magazine 13(1), 1996.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from audiomend.dsp import check_audio
from audiomend.errors import BadAudioError, BadOptionError
from audiomend.stages.base import Stage, register
from audiomend.stream import Block, Processor

#: Half-length of the fractional-delay FIR in samples (the filter has ``2 * HALF_TAPS`` taps).
HALF_TAPS = 16
#: Kaiser window shape of the fractional-delay FIR (about 80 dB stop band).
KAISER_BETA = 8.0


def _fractional_taps(fraction: float) -> np.ndarray:
    """Taps ``k[j]``, ``j = -HALF_TAPS+1 .. HALF_TAPS``, interpolating ``x(n + fraction)`` from ``x(n + j)``."""
    j = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1, dtype=np.float64)
    if fraction == 0.0:
        return (j == 0).astype(np.float64)
    window = np.kaiser(2 * HALF_TAPS + 1, KAISER_BETA)
    # Kaiser window evaluated at the fractional position (centre at ``fraction``).
    pos = j - fraction
    w = np.interp(pos, np.arange(-HALF_TAPS, HALF_TAPS + 1), window, left=0.0, right=0.0)
    taps = np.sinc(pos) * w
    return taps / taps.sum()


class AlignProcessor(Processor):
    """Shift a stream earlier by ``delay_samples`` (``out[n] = in[n + delay]``), zeros past the end.

    The integer part ``I = floor(delay)`` and the fractional FIR's look-ahead become the latency
    when the total advance is positive; a negative advance (the stream must be delayed) is a
    zero-filled delay line with no latency.
    """

    def __init__(self, channels: int, delay_samples: float) -> None:
        whole = math.floor(delay_samples)
        fraction = float(delay_samples - whole)
        if fraction < 1e-9:
            fraction = 0.0
        elif fraction > 1 - 1e-9:
            whole, fraction = whole + 1, 0.0
        if fraction == 0.0:
            self._fir = None
            half = 0
        else:
            # y[m] = sum_j k[j] x[m - HALF + j] = x~(m - HALF + fraction): a causal FIR.
            self._fir = _fractional_taps(fraction)[::-1].copy()
            half = HALF_TAPS
        advance = whole + half  # out[n] = y[n + advance]
        super().__init__(channels, latency_samples=max(advance, 0))
        self._history = np.zeros((channels, 0 if self._fir is None else len(self._fir) - 1))
        self._delay_line = np.zeros((channels, max(-advance, 0)), np.float32)

    def _push(self, block: Block) -> Block:
        n = block.shape[1]
        if self._fir is not None:
            buf = np.concatenate([self._history, block], axis=1)
            y = signal.oaconvolve(buf, self._fir[np.newaxis, :], mode="valid", axes=1) if n \
                else np.zeros((self.channels, 0))
            self._history = buf[:, buf.shape[1] - self._history.shape[1]:]
            block = y.astype(np.float32)
        if self._delay_line.shape[1]:
            buf = np.concatenate([self._delay_line, block], axis=1)
            block, self._delay_line = buf[:, :n], buf[:, n:]
        return block


@register
@dataclass(frozen=True)
class Align(Stage):
    """Shift audio earlier by ``delay_samples`` (as :func:`estimate_delay` returns it); same length.

    Parameters
    ----------
    delay_samples : float, samples (may be fractional or negative). Positive: the input lags the
        reference, so it is moved earlier and zeros fill its end.
    """

    name: ClassVar[str] = "align"
    delay_samples: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.delay_samples):
            raise BadOptionError(f"align: delay_samples must be finite, got {self.delay_samples}")

    def processor(self, sample_rate: int, channels: int) -> Processor:
        return AlignProcessor(channels, self.delay_samples)


def _mono64(audio: np.ndarray) -> np.ndarray:
    return audio.astype(np.float64).mean(axis=0)


def estimate_delay(reference: np.ndarray, other: np.ndarray, sample_rate: int, *,
                   max_delay_s: float = 1.0) -> float:
    """Estimate by how many samples ``other`` lags ``reference`` (GCC-PHAT, sub-sample).

    Channels are averaged. The correlation peak is searched within ``+-max_delay_s`` and refined
    by windowed-sinc interpolation of the correlation around the integer peak.

    Parameters
    ----------
    reference, other : np.ndarray [shape=(channels, samples)], same ``sample_rate``; lengths may
        differ.
    sample_rate : int, Hz.
    max_delay_s : float > 0, the largest delay searched, in seconds.

    Returns
    -------
    delay_samples : float. Positive when ``other`` lags (is later than) ``reference``:
        ``other[n] ~ reference[n - delay]``.

    Raises
    ------
    BadAudioError
        Empty or silent input.
    BadOptionError
        ``max_delay_s`` not positive.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.standard_normal((1, 4000)).astype(np.float32)
    >>> late = np.concatenate([np.zeros((1, 25), np.float32), ref[:, :-25]], axis=1)
    >>> round(estimate_delay(ref, late, 16000), 3)
    25.0
    """
    reference = check_audio(reference, sample_rate, name="reference")
    other = check_audio(other, sample_rate, name="other")
    if not max_delay_s > 0:
        raise BadOptionError(f"max_delay_s must be > 0, got {max_delay_s}")
    if reference.shape[1] == 0 or other.shape[1] == 0:
        raise BadAudioError("cannot estimate a delay from empty audio")
    r, o = _mono64(reference), _mono64(other)
    if not (np.any(r) and np.any(o)):
        raise BadAudioError("cannot estimate a delay: the reference or the other signal is silent")
    n_fft = 1 << math.ceil(math.log2(len(r) + len(o)))
    cross = np.fft.rfft(o, n_fft) * np.conj(np.fft.rfft(r, n_fft))
    magnitude = np.abs(cross)
    cross /= np.maximum(magnitude, 1e-12 * max(magnitude.max(), 1e-30))
    cc = np.fft.irfft(cross, n_fft)
    max_lag = min(int(max_delay_s * sample_rate), n_fft // 2 - HALF_TAPS - 2)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = cc[lags]
    peak = int(lags[int(np.argmax(values))])
    # Band-limited interpolation of the correlation at peak + delta, delta in [-1, 1].
    m = np.arange(-HALF_TAPS, HALF_TAPS + 1)
    local = cc[(peak + m) % n_fft]
    deltas = np.linspace(-1.0, 1.0, 401)
    pos = deltas[:, np.newaxis] - m[np.newaxis, :]
    kernel = np.sinc(pos) * np.kaiser(2 * HALF_TAPS + 1, KAISER_BETA)[np.newaxis, :]
    curve = kernel @ local
    i = int(np.argmax(curve))
    delta = deltas[i]
    if 0 < i < len(deltas) - 1:  # parabolic vertex on the fine grid
        a, b, c = curve[i - 1], curve[i], curve[i + 1]
        denom = a - 2 * b + c
        if denom < 0:
            delta += 0.5 * (a - c) / denom * (deltas[1] - deltas[0])
    return float(peak + delta)


def align(reference: np.ndarray, other: np.ndarray, sample_rate: int, *,
          max_delay_s: float = 1.0) -> tuple[NDArray[np.float32], float]:
    """Estimate the delay of ``other`` against ``reference`` and remove it.

    Parameters
    ----------
    reference, other : np.ndarray [shape=(channels, samples)] at ``sample_rate`` Hz.
    sample_rate : int, Hz.
    max_delay_s : float > 0, the largest delay searched, in seconds.

    Returns
    -------
    aligned : np.ndarray [shape=other.shape, dtype=float32], ``other`` shifted earlier by the
        delay (zeros fill the end; a negative delay shifts it later).
    delay_samples : float, as :func:`estimate_delay`.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.standard_normal((1, 3000)).astype(np.float32)
    >>> take = np.concatenate([np.zeros((1, 7), np.float32), ref[:, :-7]], axis=1)
    >>> out, d = align(ref, take, 8000)
    >>> d, bool(np.allclose(out[:, :-7], ref[:, :-7]))
    (7.0, True)
    """
    other = check_audio(other, sample_rate, name="other")
    delay = estimate_delay(reference, other, sample_rate, max_delay_s=max_delay_s)
    if abs(delay - round(delay)) < 0.02:  # well within the estimator's precision: keep it exact
        delay = float(round(delay))
    return Align(delay_samples=delay)(other, sample_rate), delay
