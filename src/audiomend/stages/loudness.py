"""Loudness: a constant gain to a loudness target, then a look-ahead true-peak limiter.

The planner measures the integrated loudness (ITU-R BS.1770 / EBU R128, via pyloudnorm) during
the diagnosis pass and sets ``gain_db = target_lufs - measured_lufs`` (:func:`loudness_gain_db`).
The :class:`Loudness` stage applies that gain and limits true peaks to ``true_peak_dbfs``:

1. the true peak around each sample is estimated on a 4x oversampled signal (polyphase
   windowed-sinc interpolation, the same idea as BS.1770's true-peak meter), the maximum over
   channels, so every channel gets the same gain;
2. the gain needed at each sample is held over a look-ahead window (a sliding minimum), released
   at a constant rate in dB per second (a running minimum of ``gain_db + rate * age``), and
   smoothed by a moving average as long as the look-ahead, which gives a ramp-down attack that
   is complete before the peak arrives;
3. the look-ahead is the processor's latency, so output stays aligned with the input.

Every step is vectorised over the block and carries its state between blocks, so the output
does not depend on the block sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy import signal
from scipy.ndimage import minimum_filter1d

from audiomend.dsp import check_audio
from audiomend.errors import BadAudioError, BadOptionError, MissingDependencyError
from audiomend.stages.base import Stage, register
from audiomend.stream import Block, Processor

#: Oversampling factor of the true-peak estimate.
OVERSAMPLING = 4
#: Half-length of each interpolation phase filter, in input samples.
INTERP_HALF_TAPS = 16
#: Look-ahead (and attack ramp) of the limiter, in milliseconds.
LOOKAHEAD_MS = 2.0
#: Release rate of the limiter, in dB per second (6 dB of reduction recovers in 60 ms).
RELEASE_DB_PER_S = 100.0
#: Safety margin below the ceiling, in dB, covering the interpolation error of the estimate.
MARGIN_DB = 0.2
#: The gain is held flat this many samples either side of a peak, so the interpolation filter
#: around the peak sees a constant gain (a ramping gain would raise the inter-sample peak).
HOLD_SAMPLES = 4


def _interpolation_filters() -> np.ndarray:
    """``(OVERSAMPLING - 1, 2 * INTERP_HALF_TAPS)`` causal FIRs giving ``x(n - H + 1 + p/OS)``."""
    h = INTERP_HALF_TAPS
    j = np.arange(-h + 1, h + 1, dtype=np.float64)
    window_grid = np.arange(-h, h + 1)
    window = np.kaiser(2 * h + 1, 8.0)
    rows = []
    for p in range(1, OVERSAMPLING):
        pos = j - p / OVERSAMPLING
        taps = np.sinc(pos) * np.interp(pos, window_grid, window)
        rows.append(taps[::-1])  # causal form: y[m] = sum_e taps_rev[e] x[m - e]
    return np.array(rows)


class LoudnessProcessor(Processor):
    """Constant gain then a look-ahead true-peak limiter, same gain on every channel."""

    def __init__(self, channels: int, sample_rate: int, gain_db: float, true_peak_dbfs: float)\
            -> None:
        self._lookahead = max(round(LOOKAHEAD_MS * 1e-3 * sample_rate), 1)
        self._interp_delay = INTERP_HALF_TAPS  # the phase filters need H samples of look-ahead
        k = HOLD_SAMPLES
        super().__init__(channels, latency_samples=self._lookahead + self._interp_delay + k)
        self._gain = float(10.0 ** (gain_db / 20.0))
        self._ceiling_db = float(true_peak_dbfs) - MARGIN_DB
        self._release_db = RELEASE_DB_PER_S / sample_rate
        self._filters = _interpolation_filters()
        h = INTERP_HALF_TAPS
        # x history for the phase filters; needed gains for the sliding minimum and the average.
        self._x_hist = np.zeros((channels, 2 * h - 1))
        self._need_hist = np.zeros(self._lookahead + 2 * k)  # last L + 2k needed gains (dB)
        self._smooth_hist = np.zeros(self._lookahead - 1)    # last L-1 released gains (dB)
        self._released = 0.0                                  # released gain at the last sample
        # raw samples not yet output: the delay line of L + H samples
        self._delay = np.zeros((channels, self.latency_samples))

    def _push(self, block: Block) -> Block:
        n = block.shape[1]
        if n == 0:
            return block
        h, la = INTERP_HALF_TAPS, self._lookahead
        x = block.astype(np.float64) * self._gain
        buf = np.concatenate([self._x_hist, x], axis=1)
        self._x_hist = buf[:, -(2 * h - 1):]
        # Peak over [m - H + 1, m - H + 2) for each new m: the sample and 3 inter-sample values.
        peak = np.abs(buf[:, h - 1: h - 1 + n])
        for taps in self._filters:
            interp = signal.oaconvolve(buf, taps[np.newaxis, :], mode="valid", axes=1)
            peak = np.maximum(peak, np.abs(interp))
        peak = peak.max(axis=0)  # shared across channels: the stereo image stays put
        need = np.minimum(0.0, self._ceiling_db - 20.0 * np.log10(np.maximum(peak, 1e-12)))
        # need[i] is the gain (dB) sample m - H may take, m the i-th new input sample.
        # 1) hold over the look-ahead and k either side: held[i] = min(need[i - L - 2k .. i]).
        span = la + 2 * HOLD_SAMPLES
        ext = np.concatenate([self._need_hist, need])
        held = minimum_filter1d(ext, size=span + 1, origin=span // 2, mode="nearest")[span:]
        self._need_hist = ext[-span:]
        # 2) release at a constant rate: r[i] = min(prev + rate*(i+1), min_j<=i (held[j] + rate*(i-j))).
        steps = self._release_db * np.arange(1, n + 1)
        released = steps + np.minimum(self._released, np.minimum.accumulate(held - steps))
        released = np.minimum(released, 0.0)
        self._released = float(released[-1])
        # 3) attack ramp: average over the last L values; smooth[i] <= need[i - L - 2k .. i - L + 1],
        #    so the gain is flat within k samples of the sample it is applied to, i - L - k.
        ext = np.concatenate([self._smooth_hist, released])
        csum = np.concatenate([[0.0], np.cumsum(ext)])
        smooth = (csum[la:] - csum[:-la]) / la
        self._smooth_hist = ext[len(ext) - (la - 1):] if la > 1 else np.zeros(0)
        gain = 10.0 ** (smooth / 20.0)
        # Delay the signal by L + H + k so that gain and samples line up.
        dbuf = np.concatenate([self._delay, x], axis=1)
        delayed, self._delay = dbuf[:, :n], dbuf[:, n:]
        return (delayed * gain).astype(np.float32)


@register
@dataclass(frozen=True)
class Loudness(Stage):
    """A constant gain (from the planner) followed by a look-ahead true-peak limiter.

    Parameters
    ----------
    gain_db : float, dB, applied to every channel (see :func:`loudness_gain_db`).
    true_peak_dbfs : float <= 0, dBTP: the output's true peak never exceeds this ceiling.
    """

    name: ClassVar[str] = "loudness"
    gain_db: float = 0.0
    true_peak_dbfs: float = -1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.gain_db) or abs(self.gain_db) > 120:
            raise BadOptionError(f"loudness: gain_db must be within +-120 dB, got {self.gain_db}")
        if not (math.isfinite(self.true_peak_dbfs) and -60 <= self.true_peak_dbfs <= 0):
            raise BadOptionError(
                f"loudness: true_peak_dbfs must be in [-60, 0] dBTP, got {self.true_peak_dbfs}")

    def processor(self, sample_rate: int, channels: int) -> Processor:
        return LoudnessProcessor(channels, sample_rate, self.gain_db, self.true_peak_dbfs)


def loudness(audio: np.ndarray, sample_rate: int, *, gain_db: float = 0.0,
             true_peak_dbfs: float = -1.0) -> NDArray[np.float32]:
    """Apply ``gain_db`` and limit the true peak to ``true_peak_dbfs``.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    gain_db : float, dB, the same for every channel.
    true_peak_dbfs : float <= 0, dBTP ceiling of the output (4x oversampled peak).

    Returns
    -------
    np.ndarray [shape=audio.shape, dtype=float32], aligned with the input.

    Examples
    --------
    >>> t = np.arange(8000) / 8000
    >>> x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[np.newaxis]
    >>> y = loudness(x, 8000, gain_db=12.0, true_peak_dbfs=-1.0)
    >>> y.shape, bool(np.abs(y).max() <= 10 ** (-1 / 20))
    ((1, 8000), True)
    """
    audio = check_audio(audio, sample_rate)
    return Loudness(gain_db=gain_db, true_peak_dbfs=true_peak_dbfs)(audio, sample_rate)


def loudness_gain_db(measured_lufs: float, target_lufs: float = -16.0) -> float:
    """The gain in dB that takes a measured integrated loudness to ``target_lufs``.

    Silence (``measured_lufs`` of ``-inf``) gets 0 dB: there is nothing to bring up.

    >>> loudness_gain_db(-30.0), loudness_gain_db(float("-inf"))
    (14.0, 0.0)
    """
    if not math.isfinite(target_lufs):
        raise BadOptionError(f"target_lufs must be finite, got {target_lufs}")
    if not math.isfinite(measured_lufs):
        return 0.0
    return float(target_lufs - measured_lufs)


def measure_loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated) of ``audio`` in LUFS, via pyloudnorm.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], at least 0.4 s long.
    sample_rate : int, Hz.

    Returns
    -------
    float, LUFS; ``-inf`` for digital silence (every block falls under the absolute gate).

    Raises
    ------
    BadAudioError
        Audio shorter than one 400 ms gating block.

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> x = (0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[np.newaxis]
    >>> round(measure_loudness_lufs(x, 16000), 1)
    -23.1
    """
    audio = check_audio(audio, sample_rate)
    if audio.shape[1] < int(0.4 * sample_rate) + 1:
        raise BadAudioError(f"loudness: need at least 0.4 s of audio to measure loudness, "
                            f"got {audio.shape[1] / sample_rate:.3f} s")
    try:
        import pyloudnorm
    except ImportError as e:
        raise MissingDependencyError("measuring loudness needs pyloudnorm: pip install pyloudnorm")\
            from e
    meter = pyloudnorm.Meter(sample_rate)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(meter.integrated_loudness(audio.T.astype(np.float64)))
