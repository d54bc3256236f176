"""Declick: detect impulsive clicks as outliers of an autoregressive model and interpolate them.

Speech is well predicted by a short autoregressive (AR, "LPC") model; a click is not. In each
segment of 64 ms (cross-faded with its neighbours, :class:`~audiomend.stream.SegmentProcessor`):

1. fit an AR model of order ``~fs/1000 + 8`` (autocorrelation method, Levinson-Durbin), all
   segments and channels at once;
2. filter the signal by the prediction-error filter and then by its time reverse (the matched
   filter of an impulse through the model). This two-sided statistic peaks *on* a click; it is
   divided by its local spread (mean absolute value within +-5 ms), so an onset after silence
   or a loud vowel is not an outlier while a click, a few samples long, hardly raises it;
3. samples beyond ``threshold`` (in local standard deviations) and within 12 dB of the local
   maximum, in any channel (so the channels share the decision), are dilated by 0.25 ms and
   merged into gaps; gaps longer than ``max_click_ms`` are not clicks and are left alone;
4. each gap is filled by least-squares AR interpolation (Vaseghi & Rayner; Janssen et al.): the
   missing samples that minimise the prediction error of the model over the gap and ``p``
   samples either side, a small dense solve per gap;
5. a second pass refits the model on the repaired segment (clicks bias the first fit) and
   repeats detection and interpolation on the original samples.

``strength`` blends the original and the repaired signal. Clean speech is essentially untouched:
the default threshold (12) sits above the largest outliers voiced speech produces (glottal
pulses, plosive onsets): on clean LibriSpeech/VCTK/ARCTIC training clips it finds 0-0.5 false
clicks a second, and their interpolation keeps the clip at 39 dB SI-SDR or better.

References
----------
S. Vaseghi, P. Rayner, "Detection and suppression of impulsive noise in speech communication
systems", IEE Proceedings I 137(1), 1990.
A. Janssen, R. Veldhuis, L. Vries, "Adaptive interpolation of discrete-time signals that can be
modeled as autoregressive processes", IEEE Trans. ASSP 34(2), 1986.
S. Godsill, P. Rayner, *Digital Audio Restoration*, Springer 1998, ch. 5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import signal
from scipy.linalg import toeplitz
from scipy.ndimage import maximum_filter1d

from audiomend.dsp import check_audio
from audiomend.errors import BadOptionError
from audiomend.stages._common import check_strength, passthrough
from audiomend.stages.base import Stage, register
from audiomend.stream import Block, Processor, SegmentProcessor

#: Segment length in seconds; neighbours overlap by a quarter of it.
SEGMENT_S = 0.064
#: Flagged samples are extended by this much on each side, in milliseconds.
DILATE_MS = 0.25
#: The residual's local spread is measured within +- this many milliseconds.
SPREAD_MS = 5.0
#: Default detection threshold, in local standard deviations of the two-sided AR residual.
DEFAULT_THRESHOLD = 12.0
#: Default longest gap treated as a click, in milliseconds.
DEFAULT_MAX_CLICK_MS = 2.0


def ar_order(sample_rate: int) -> int:
    """AR model order for a rate: about one coefficient per kHz plus 8, between 10 and 40."""
    return int(np.clip(round(sample_rate / 1000) + 8, 10, 40))


def _detector_sizes(sample_rate: int, max_click_ms: float) -> tuple[int, int, int, int]:
    """``(segment, dilate, half_window, max_len)`` in samples: the segment length, the dilation
    of flagged samples, the half-width of the spread window and the longest gap (dilation
    included) treated as a click. One definition for :class:`DeclickProcessor` and
    :func:`detect_clicks`."""
    segment = max(round(SEGMENT_S * sample_rate), 64)
    dilate = max(round(DILATE_MS * 1e-3 * sample_rate), 1)
    half_window = max(round(SPREAD_MS * 1e-3 * sample_rate), 4)
    max_len = max(round(max_click_ms * 1e-3 * sample_rate), 1) + 2 * dilate
    return segment, dilate, half_window, max_len


def _levinson(r: np.ndarray) -> np.ndarray:
    """Batched Levinson-Durbin: autocorrelations ``(..., p + 1)`` -> filters ``(..., p + 1)``, a0 = 1."""
    p = r.shape[-1] - 1
    a = np.zeros(r.shape)
    a[..., 0] = 1.0
    err = r[..., 0].copy()
    for i in range(1, p + 1):
        acc = np.sum(a[..., :i] * r[..., i:0:-1], axis=-1)
        k = -acc / np.maximum(err, 1e-30)
        a_prev = a[..., :i + 1].copy()
        a[..., 1:i + 1] = a_prev[..., 1:i + 1] + k[..., np.newaxis] * a_prev[..., i - 1::-1][..., :i]
        err = err * (1.0 - k * k)
    return a


def _fit_ar(x: np.ndarray, order: int) -> np.ndarray:
    """AR prediction-error filters ``(..., order + 1)`` for segments ``(..., n)`` (Hann-windowed)."""
    n = x.shape[-1]
    w = x * signal.get_window("hann", n, fftbins=False)
    spec = np.fft.rfft(w, 2 * n, axis=-1)
    r = np.fft.irfft(np.abs(spec) ** 2, 2 * n, axis=-1)[..., : order + 1]
    r[..., 0] = r[..., 0] * (1.0 + 1e-6) + 1e-20  # white-noise floor: stable on silence
    return _levinson(r)


def _statistic(x: np.ndarray, a: np.ndarray, half_window: int) -> np.ndarray:
    """Two-sided residual ``(..., n)`` over its local spread; 0 where undefined.

    ``e[n] = sum_k a[k] x[n-k]`` (forward prediction error), ``d[n] = sum_k a[k] e[n+k]`` (its
    matched filter), divided by ``sqrt(sum a^2)``. The spread is the mean of ``|d|`` within
    ``+-half_window`` samples (times sqrt(pi/2), a standard deviation for Gaussian noise): local,
    so an onset after silence is not an outlier, and hardly raised by the click itself.
    """
    n, p = x.shape[-1], a.shape[-1] - 1
    e = np.zeros(x.shape)
    for k in range(p + 1):
        e[..., p:] += a[..., k, np.newaxis] * x[..., p - k: n - k]
    d = np.zeros(x.shape)
    if n <= 2 * p:
        return d
    for k in range(p + 1):
        d[..., p: n - p] += a[..., k, np.newaxis] * e[..., p + k: n - p + k]
    d = np.abs(d) / np.sqrt(np.sum(a * a, axis=-1))[..., np.newaxis]
    inner = d[..., p: n - p]
    csum = np.concatenate([np.zeros(inner.shape[:-1] + (1,)), np.cumsum(inner, axis=-1)], axis=-1)
    m = inner.shape[-1]
    lo = np.clip(np.arange(m) - half_window, 0, m)
    hi = np.clip(np.arange(m) + half_window + 1, 0, m)
    spread = (csum[..., hi] - csum[..., lo]) / (hi - lo) * math.sqrt(math.pi / 2)
    floor = 1e-6 * np.sqrt(np.mean(x * x, axis=-1, keepdims=True)) + 1e-9
    out = np.zeros(x.shape)
    out[..., p: n - p] = inner / np.maximum(spread, floor)
    return out


def _flags(stat: np.ndarray, threshold: float, order: int) -> np.ndarray:
    """Samples beyond ``threshold`` that are also within 12 dB of the largest value nearby.

    The matched filter spreads an impulse over +-``order`` samples (the autocorrelation of the
    prediction-error filter); keeping only the samples near the local maximum confines a gap to
    the click itself.
    """
    local_max = maximum_filter1d(stat, size=2 * order + 1, axis=-1, mode="constant")
    return (stat > threshold) & (stat >= 0.25 * local_max)


def _gaps(flags: np.ndarray, dilate: int, max_len: int) -> list[tuple[int, int]]:
    """Runs of flagged samples, dilated, merged; those longer than ``max_len`` are dropped."""
    if not flags.any():
        return []
    idx = np.flatnonzero(flags)
    starts = np.maximum(idx - dilate, 0)
    ends = np.minimum(idx + dilate + 1, len(flags))
    # Merge overlapping [start, end) intervals (idx is sorted, so starts are too).
    new_run = np.ones(len(idx), bool)
    new_run[1:] = starts[1:] > np.maximum.accumulate(ends)[:-1]
    run_starts = starts[new_run]
    run_ends = np.maximum.reduceat(ends, np.flatnonzero(new_run))
    return [(int(s), int(e)) for s, e in zip(run_starts, run_ends) if e - s <= max_len]


def _interpolate(x: np.ndarray, a: np.ndarray, start: int, end: int) -> np.ndarray:
    """Least-squares AR interpolation of ``x[start:end]`` (one channel) given filter ``a``."""
    p = len(a) - 1
    lo, hi = max(start - p, 0), min(end + p, len(x))
    w = x[lo:hi]
    m = hi - lo
    rows = m - p
    if rows <= 0:
        return x[start:end]
    # Prediction-error matrix: (A w)[i] = sum_k a[k] w[i + p - k], i = 0..rows-1.
    col = np.zeros(rows)
    col[0] = a[p]
    row = np.zeros(m)
    row[: p + 1] = a[::-1]
    A = toeplitz(col, row)
    unknown = np.arange(start - lo, end - lo)
    known = np.setdiff1d(np.arange(m), unknown, assume_unique=True)
    solution, *_ = np.linalg.lstsq(A[:, unknown], -A[:, known] @ w[known], rcond=None)
    return solution


class DeclickProcessor(SegmentProcessor):
    """AR-residual click detection and least-squares AR interpolation; see the module doc."""

    def __init__(self, channels: int, sample_rate: int, threshold: float, strength: float,
                 max_click_ms: float) -> None:
        length, self._dilate, self._half_window, self._max_len = _detector_sizes(
            sample_rate, max_click_ms)
        super().__init__(channels, length, length // 4)
        self.order = ar_order(sample_rate)
        self.threshold = float(threshold)
        self.strength = float(strength)
        self.clicks_found = 0

    def process_segment(self, segment: Block) -> np.ndarray:  # pragma: no cover - batched below
        return self.process_frames(segment[:, np.newaxis])[:, 0]

    def process_frames(self, frames: Block) -> np.ndarray:
        x = frames.astype(np.float64)                          # (C, F, L)
        a = _fit_ar(x, self.order)                             # (C, F, p + 1)
        stat = _statistic(x, a, self._half_window)
        flags = _flags(stat, self.threshold, self.order).any(axis=0)  # (F, L), shared
        if not flags.any():
            return frames
        out = x.copy()
        for f in np.flatnonzero(flags.any(axis=1)):
            gaps = _gaps(flags[f], self._dilate, self._max_len)
            if not gaps:
                continue
            repaired = x[:, f].copy()
            for c in range(self.channels):
                for s, e in gaps:
                    repaired[c, s:e] = _interpolate(repaired[c], a[c, f], s, e)
            # Second pass: refit on the repaired segment, detect again on the original samples.
            a2 = _fit_ar(repaired, self.order)
            flags2 = _flags(_statistic(x[:, f], a2, self._half_window), self.threshold,
                            self.order).any(axis=0)
            gaps2 = _gaps(flags2 | flags[f], self._dilate, self._max_len)
            repaired = x[:, f].copy()
            for c in range(self.channels):
                for s, e in gaps2:
                    repaired[c, s:e] = _interpolate(repaired[c], a2[c], s, e)
            self.clicks_found += len(gaps2)
            out[:, f] = x[:, f] + self.strength * (repaired - x[:, f])
        return out.astype(np.float32)


@register
@dataclass(frozen=True)
class Declick(Stage):
    """Detect clicks as AR-model outliers and interpolate them.

    Parameters
    ----------
    threshold : float > 0, detection threshold in local standard deviations of the two-sided
        AR residual. Lower finds fainter clicks and risks touching speech.
    strength : float in [0, 1]; 0 passes the audio through unchanged, 1 fully repairs.
    max_click_ms : float > 0, the longest gap (ms) repaired as a click.
    """

    name: ClassVar[str] = "declick"
    threshold: float = DEFAULT_THRESHOLD
    strength: float = 1.0
    max_click_ms: float = DEFAULT_MAX_CLICK_MS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise BadOptionError(f"declick: threshold must be > 0, got {self.threshold}")
        check_strength("declick", self.strength)
        if not (math.isfinite(self.max_click_ms) and 0 < self.max_click_ms <= 20):
            raise BadOptionError(f"declick: max_click_ms must be in (0, 20] ms, "
                                 f"got {self.max_click_ms}")

    def processor(self, sample_rate: int, channels: int) -> Processor:
        if self.strength == 0.0:
            return passthrough(channels)
        return DeclickProcessor(channels, sample_rate, self.threshold, self.strength,
                                self.max_click_ms)


def declick(audio: np.ndarray, sample_rate: int, *, threshold: float = DEFAULT_THRESHOLD,
            strength: float = 1.0, max_click_ms: float = DEFAULT_MAX_CLICK_MS
            ) -> NDArray[np.float32]:
    """Detect and interpolate clicks in ``audio``.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    threshold : float > 0, local standard deviations of the two-sided AR residual.
    strength : float in [0, 1], blend of original (0) and repaired (1).
    max_click_ms : float > 0, longest gap repaired, in ms.

    Returns
    -------
    np.ndarray [shape=audio.shape, dtype=float32], aligned with the input.

    Examples
    --------
    >>> t = np.arange(8000) / 8000
    >>> clean = (0.3 * np.sin(2 * np.pi * 300 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    >>> damaged = clean.copy()
    >>> damaged[[1000, 3000, 5000]] += 0.8
    >>> repaired = declick(damaged[np.newaxis], 8000)[0]
    >>> bool(np.abs(repaired - clean).max() < 0.05)
    True
    """
    audio = check_audio(audio, sample_rate)
    return Declick(threshold=threshold, strength=strength, max_click_ms=max_click_ms)(
        audio, sample_rate)


class ClickEstimate(NamedTuple):
    """What :func:`detect_clicks` found in a block.

    rate_per_s : clicks per second of audio.
    confidence : in [0, 1], how clearly the detected clicks exceed the threshold, and how many.
    """

    rate_per_s: float
    confidence: float


def detect_clicks(audio: np.ndarray, sample_rate: int, *,
                  threshold: float = DEFAULT_THRESHOLD,
                  max_click_ms: float = DEFAULT_MAX_CLICK_MS) -> ClickEstimate:
    """Count clicks in a block (about 10 s) without repairing them; cheap (< 1 % of real time).

    Same detector as :class:`Declick` (one pass, channels averaged), on back-to-back segments.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    threshold, max_click_ms : as :class:`Declick`.

    Returns
    -------
    ClickEstimate(rate_per_s, confidence).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = 0.01 * rng.standard_normal(16000).astype(np.float32)
    >>> x[rng.choice(16000, 5, replace=False)] += 0.5
    >>> detect_clicks(x[np.newaxis], 16000).rate_per_s
    5.0
    """
    audio = check_audio(audio, sample_rate)
    n = audio.shape[1]
    if n == 0:
        return ClickEstimate(0.0, 0.0)
    x = audio.astype(np.float64).mean(axis=0)
    length, dilate, half_window, max_len = _detector_sizes(sample_rate, max_click_ms)
    order = ar_order(sample_rate)
    # Segments overlapping by 2p: the testable middles [p, length - p) tile the timeline.
    hop = length - 2 * order
    n_seg = max(1, math.ceil(n / hop))
    padded = np.zeros((n_seg - 1) * hop + length)
    padded[order: order + n] = x
    segments = np.lib.stride_tricks.sliding_window_view(padded, length)[::hop][:n_seg]
    stat = _statistic(segments, _fit_ar(segments, order), half_window)
    stat[:, :order] = 0.0
    stat[:, length - order:] = 0.0
    # Lay the testable middles back on the timeline and find runs there.
    seg_flags = _flags(stat, threshold, order)
    flags = np.zeros(len(padded), bool)
    for i in np.flatnonzero(seg_flags.any(axis=1)):
        flags[i * hop: i * hop + length] |= seg_flags[i]
    peaks = []
    gaps = _gaps(flags, dilate, max_len)
    if gaps:
        full = np.zeros(len(padded))
        for i in np.flatnonzero((stat > threshold).any(axis=1)):
            np.maximum(full[i * hop: i * hop + length], stat[i], out=full[i * hop: i * hop + length])
        peaks = [float(full[s:e].max()) for s, e in gaps]
    rate = len(gaps) / (n / sample_rate)
    if not gaps:
        return ClickEstimate(0.0, 0.0)
    margin = float(np.clip(np.log(np.median(peaks) / threshold) / np.log(2.0), 0.0, 1.0))
    confidence = margin * (1.0 - math.exp(-len(gaps) / 3.0))
    return ClickEstimate(round(rate, 4), round(confidence, 3))
