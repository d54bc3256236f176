"""Declipping: find flat runs at the waveform's extremes and rebuild the samples the clipper cut.

Clipping flattens every peak above a level to that level. :func:`detect_clipping` finds it from
the signal alone: the positive and negative extremes of a block are each tested for *runs* of
samples sitting exactly at the extreme (a clean recording reaches its maximum once; a clipped
one sits there for several samples, many times). The level need not be full scale: audio clipped
and then turned down keeps its flat tops at the new level (e.g. 0.3), and the two polarities may
clip at different levels.

:class:`Declip` rebuilds the clipped samples with A-SPADE (analysis sparse audio declipper,
Kitić et al. 2015; Záviška et al. 2019): in short overlapping windows, the signal is assumed sparse
in a redundant DFT frame; an ADMM loop alternates hard thresholding of the frame coefficients
(keeping the ``k`` largest, ``k`` growing each iteration) with a projection onto the *consistent*
set: reliable samples equal the input, clipped samples lie beyond the clip level on their side.
All windows of a segment are solved together in one batched FFT per iteration. Only clipped
samples change; the output exceeds the old clip level where the peaks were, on purpose (the
loudness stage sets the final peak).

References
----------
S. Kitić, N. Bertin, R. Gribonval, "Sparsity and cosparsity for audio declipping: a flexible
non-convex approach", LVA/ICA 2015. P. Záviška, P. Rajmic, O. Mokrý, Z. Průša, "A proper version
of synthesis-based sparse audio declipper", ICASSP 2019 (and their survey, 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from audiomend.dsp import check_audio
from audiomend.errors import BadOptionError
from audiomend.stages._common import check_strength, pow2_samples
from audiomend.stages.base import Stage, register
from audiomend.stream import Processor, SegmentProcessor

#: Relative tolerance for "at the clip level": 16/24-bit and float clipping are exactly flat, so a
#: tiny margin suffices (0.2 LSB of 16 bit at a level of 0.065).
_LEVEL_TOL = 1e-4
#: Extremes below this (-60 dBFS) are never called clipping (dither, digital near-silence).
_MIN_LEVEL = 1e-3
#: Samples in runs (>= 2 consecutive at the extreme) needed to call one polarity clipped.
_MIN_RUN_SAMPLES = 4
#: Or: this many samples sharing the exact maximum, when the maximum is above -42 dBFS (262 LSB
#: of 16 bit, where ties by chance are rare).
_MIN_TIES = 3
_MIN_TIE_LEVEL = 8e-3
#: A-SPADE: at most this many ADMM iterations; the number of kept coefficients grows by
#: ``_K_STEP_HZ`` worth of frame bins per iteration (A-SPADE's k += 1, at a fraction of the cost;
#: tuned on train/speech).
_ITERATIONS = 30
_K_STEP_HZ = 125.0
#: Stop a window when the distance of its consistent signal to the sparse one is below this
#: fraction of the window's norm.
_CONVERGED = 1e-3
#: DFT redundancy of the frame (zero-padding factor).
_REDUNDANCY = 2
#: A-SPADE window: the power of two nearest this duration (1024 samples at 16 kHz, 4096 at 48 kHz).
_WINDOW_S = 0.064


@dataclass(frozen=True)
class ClipEstimate:
    """What :func:`detect_clipping` found.

    Attributes
    ----------
    fraction : float in [0, 1], the fraction of samples (all channels) sitting at a clip level.
    level : float > 0, the linear clip level of the block (of the polarity with more clipped
        samples); the peak magnitude when nothing is clipped.
    confidence : float in [0, 1], how sure the detector is that the block is clipped.
    positive_level, negative_level : float or None, the clip level of each polarity as a positive
        magnitude, None when that polarity is not clipped.
    """

    fraction: float
    level: float
    confidence: float
    positive_level: float | None = None
    negative_level: float | None = None


def _run_samples(at: np.ndarray) -> np.ndarray:
    """Per row of a boolean ``(rows, n)`` mask, the number of True samples with a True neighbour."""
    nb = np.zeros_like(at)
    nb[:, 1:] |= at[:, :-1]
    nb[:, :-1] |= at[:, 1:]
    return np.count_nonzero(at & nb, axis=1)


def _polarity_level(x: np.ndarray, prior: float | None = None, *,
                    symmetric: bool = False) -> tuple[float | None, int, int]:
    """Test one polarity of ``(channels, n)`` audio (``x`` positive side up) for clipping.

    Returns ``(level or None, samples at the level, samples in runs at the level)``. A ``prior``
    level (from earlier audio) lowers the evidence needed when the extreme sits exactly on it; with
    ``symmetric`` (the prior is the other polarity's level) one sample exactly there suffices.
    """
    if x.size == 0:
        return None, 0, 0
    peak = float(x.max())
    if peak < _MIN_LEVEL:
        return None, 0, 0
    at = x >= peak * (1.0 - _LEVEL_TOL)
    in_runs = int(_run_samples(at).sum())
    needed = _MIN_RUN_SAMPLES
    if prior is not None and abs(peak - prior) <= prior * _LEVEL_TOL:
        needed = 0 if symmetric else 2
    n_at = int(np.count_nonzero(at))
    # Light clipping of sharp peaks leaves single flat samples: several samples sharing the exact
    # maximum is evidence too (a clean signal reaches its maximum once), above quantisation level.
    ties = n_at >= _MIN_TIES and peak >= _MIN_TIE_LEVEL
    if in_runs < needed and not ties:
        return None, n_at, in_runs
    return peak, n_at, max(in_runs, n_at if ties else 0)


def detect_clipping(audio: np.ndarray, sample_rate: int) -> ClipEstimate:
    """Detect hard clipping: flat runs at the positive and/or negative extreme of the block.

    Cheap (a few vectorised passes; RTF well below 0.01), meant for ~10 s blocks of a diagnosis.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz (checked, not used: the test is on sample values).

    Returns
    -------
    ClipEstimate
        ``fraction`` of samples at a clip level, the clip ``level`` (linear, need not be 1.0),
        ``confidence``, and the level of each polarity.

    Raises
    ------
    BadAudioError
        If ``audio`` is not valid audio.

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> x = (0.3 * np.clip(np.sin(2 * np.pi * 5 * t), -0.6, 0.6) / 0.6).astype(np.float32)[None]
    >>> est = detect_clipping(x, 16000)
    >>> round(est.level, 3), est.fraction > 0.3, est.confidence > 0.9
    (0.3, True, True)
    >>> detect_clipping(np.zeros((1, 100), np.float32), 16000).confidence
    0.0
    """
    audio = check_audio(audio, sample_rate)
    total = audio.size
    if total == 0:
        return ClipEstimate(0.0, 0.0, 0.0)
    pos, n_pos, runs_pos = _polarity_level(audio)
    neg, n_neg, runs_neg = _polarity_level(-audio, pos, symmetric=True)
    if pos is None and neg is not None:
        pos, n_pos, runs_pos = _polarity_level(audio, neg, symmetric=True)
    counted = (n_pos if pos is not None else 0) + (n_neg if neg is not None else 0)
    runs = (runs_pos if pos is not None else 0) + (runs_neg if neg is not None else 0)
    if pos is None and neg is None:
        return ClipEstimate(0.0, float(np.abs(audio).max()), 0.0)
    if neg is None or (pos is not None and n_pos >= n_neg):
        level = pos
    else:
        level = neg
    # Evidence grows with the number of samples in flat runs: 4 -> 0.33, 20 -> 0.86, 50 -> 0.99.
    confidence = float(1.0 - np.exp(-runs / 10.0))
    return ClipEstimate(fraction=counted / total, level=float(level), confidence=confidence,
                        positive_level=pos, negative_level=neg)


def aspade(frames: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, k_step: int,
           iterations: int = _ITERATIONS) -> NDArray[np.float32]:
    """Batched A-SPADE: sparse reconstruction of windows consistent with box constraints.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_windows, n)], the observed (clipped) windows, unwindowed.
    lower, upper : np.ndarray [shape=(n_windows, n)], the consistent set: ``lower == upper ==``
        the observation where reliable, ``[level, inf)`` or ``(-inf, -level]`` where clipped.
    k_step : int > 0, how many more coefficients (rfft bins) are kept at each iteration.
    iterations : int, the most ADMM iterations. A window stops when its consistent signal is
        within ``1e-3`` of its norm from the sparse one; its result does not depend on which other
        windows share the batch.

    Returns
    -------
    np.ndarray [shape=(n_windows, n)], float32, within ``[lower, upper]``.
    """
    n_windows, n = frames.shape
    size = _REDUNDANCY * n
    n_bins = size // 2 + 1
    scale = np.float32(1.0 / np.sqrt(size))
    weights = np.full(n_bins, 2.0, np.float32)   # interior rfft bins stand for two DFT bins
    weights[0] = weights[-1] = 1.0
    x = frames.astype(np.float32)
    tolerance = _CONVERGED * np.sqrt(np.sum(np.square(x, dtype=np.float64), axis=1))
    coefs = np.fft.rfft(x, size, axis=1) * scale        # A x, a Parseval tight frame
    dual = np.zeros_like(coefs)
    active = np.arange(n_windows)
    for i in range(iterations):
        v = coefs[active] + dual[active]
        mag = np.abs(v)
        k = min((i + 1) * k_step, n_bins)
        threshold = np.partition(mag, n_bins - k, axis=1)[:, n_bins - k: n_bins - k + 1]
        z = np.where(mag >= threshold, v, 0)
        xa = np.fft.irfft(z - dual[active], size, axis=1)[:, :n] * np.float32(np.sqrt(size))
        xa = np.clip(xa, lower[active], upper[active]).astype(np.float32)
        ca = np.fft.rfft(xa, size, axis=1) * scale
        residual = ca - z
        x[active], coefs[active] = xa, ca
        dual[active] += residual
        # A window whose consistent signal is (almost) k-sparse has converged: freeze it.
        err = np.sqrt(np.sum(weights * (residual.real ** 2 + residual.imag ** 2), axis=1))
        active = active[err > tolerance[active]]
        if active.size == 0:
            break
    return x


class DeclipProcessor(SegmentProcessor):
    """Streaming declipper: ~2 s segments, cross-faded; A-SPADE on 64 ms windows inside each.

    Parameters
    ----------
    channels : int, channel count.
    sample_rate : int, Hz.
    level : float or None, the clip level (symmetric); None detects it per segment and polarity,
        remembering the last level found.
    strength : float in [0, 1], 0 leaves the input, 1 is the full reconstruction.
    """

    def __init__(self, channels: int, sample_rate: int, level: float | None = None,
                 strength: float = 1.0) -> None:
        self.window = pow2_samples(_WINDOW_S, sample_rate)
        self.hop = self.window // 2
        bin_hz = sample_rate / (_REDUNDANCY * self.window)
        self.k_step = max(1, round(_K_STEP_HZ / bin_hz))
        n_hops = max(int(np.ceil((2.0 * sample_rate - self.window) / self.hop)), 2)
        super().__init__(channels, self.window + n_hops * self.hop, self.window)
        self.level = level
        self.strength = float(strength)
        self._priors: list[list[float | None]] = [[None, None] for _ in range(channels)]
        self._ola = np.sin(np.pi * (np.arange(self.window) + 0.5) / self.window) ** 2

    def _bounds(self, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lower/upper bounds of the consistent set and the clipped mask, per channel."""
        lower, upper = seg.copy(), seg.copy()
        clipped = np.zeros(seg.shape, bool)
        for c in range(seg.shape[0]):
            found: float | None = None
            for side, sign in ((0, 1.0), (1, -1.0)):
                x = sign * seg[c:c + 1]
                if self.level is not None:
                    level: float | None = self.level
                else:
                    level, _, _ = _polarity_level(x, self._priors[c][side])
                    other = self._priors[c][1 - side] if side == 0 else found
                    if level is None and other is not None:
                        level, _, _ = _polarity_level(x, other, symmetric=True)
                    if level is not None:
                        self._priors[c][side] = level
                    found = level
                if level is None:
                    continue
                mask = x[0] >= level * (1.0 - _LEVEL_TOL)
                clipped[c] |= mask
                if sign > 0:
                    upper[c, mask] = np.inf
                else:
                    lower[c, mask] = -np.inf
        return lower, upper, clipped

    def process_segment(self, segment: np.ndarray) -> np.ndarray:
        lower, upper, clipped = self._bounds(segment)
        if not clipped.any() or self.strength == 0.0:
            return segment
        n, h = self.window, self.hop
        starts = np.arange(0, segment.shape[1] - n + 1, h)
        idx = starts[:, None] + np.arange(n)
        frames = segment[:, idx]                                   # (channels, windows, n)
        busy = clipped[:, idx].any(axis=2)
        out = frames.copy()
        if busy.any():
            out[busy] = aspade(frames[busy], lower[:, idx][busy], upper[:, idx][busy],
                               k_step=self.k_step)
        # Overlap-add of the windows (hop = n/2), normalised by the summed window.
        acc = np.zeros(segment.shape, np.float64)
        weight = np.zeros(segment.shape[1])
        for r in range(n // h):
            part = (out[:, :, r * h:(r + 1) * h] * self._ola[r * h:(r + 1) * h]).reshape(
                segment.shape[0], -1)
            acc[:, r * h: r * h + part.shape[1]] += part
            weight[r * h: r * h + part.shape[1]] += np.tile(self._ola[r * h:(r + 1) * h],
                                                            len(starts))
        rebuilt = (acc / weight).astype(np.float32)
        rebuilt = np.clip(rebuilt, lower, upper)   # an average of consistent windows is consistent
        result = np.where(clipped, segment + self.strength * (rebuilt - segment), segment)
        return result.astype(np.float32)


@register
@dataclass(frozen=True)
class Declip(Stage):
    """Rebuild hard-clipped peaks (A-SPADE). See :func:`declip`.

    Attributes
    ----------
    level : float > 0 or None, the linear clip level; None detects it per segment and polarity.
    strength : float in [0, 1], blend between input (0) and reconstruction (1).
    """

    name: ClassVar[str] = "declip"
    level: float | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.level is not None and not (np.isfinite(self.level) and self.level > 0):
            raise BadOptionError(f"declip: level must be a positive linear amplitude, got {self.level}")
        check_strength("declip", self.strength)

    def processor(self, sample_rate: int, channels: int) -> Processor:
        return DeclipProcessor(channels, sample_rate, self.level, self.strength)


def declip(audio: np.ndarray, sample_rate: int, *, level: float | None = None,
           strength: float = 1.0) -> NDArray[np.float32]:
    """Rebuild hard-clipped samples of ``audio``; unclipped samples are left unchanged.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    level : float > 0 or None, the linear clip level (both polarities). None (default) detects
        the level of each polarity per ~2 s segment, which also handles asymmetric clipping and
        clipping followed by a gain change.
    strength : float in [0, 1], 1 (default) replaces clipped samples by the reconstruction.

    Returns
    -------
    np.ndarray [shape=(channels, samples)], float32. Rebuilt peaks exceed the clip level.

    Raises
    ------
    BadAudioError
        If ``audio`` is not valid audio.
    BadOptionError
        If ``level`` or ``strength`` is out of range.

    Examples
    --------
    >>> t = np.arange(8000) / 8000
    >>> clean = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)[None]
    >>> fixed = declip(np.clip(clean, -0.35, 0.35), 8000)
    >>> float(np.abs(fixed).max()) > 0.45
    True
    """
    return Declip(level=level, strength=strength)(audio, sample_rate)
