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
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
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


#: Inputs no longer than this (each, in seconds) are correlated whole, in one transform.
WHOLE_MAX_S = 20.0
#: Longer inputs: the number of analysis segments, spread evenly over the common length ...
SEGMENTS = 16
#: ... and the length of each reference segment, in seconds.
SEGMENT_S = 4.0


@dataclass(frozen=True)
class _Plan:
    """Which windows of the two signals are correlated: reference window ``k`` is
    ``[ref_starts[k], + ref_length)``, the other's is ``[ref_starts[k] + offset, + other_length)``
    (zeros outside the signals). Index ``j`` of a window pair's correlation is lag ``j + offset``."""

    ref_starts: tuple[int, ...]
    ref_length: int
    other_length: int
    offset: int
    n_fft: int
    max_lag: int

    @property
    def ref_windows(self) -> list[tuple[int, int]]:
        return [(s, self.ref_length) for s in self.ref_starts]

    @property
    def other_windows(self) -> list[tuple[int, int]]:
        return [(s + self.offset, self.other_length) for s in self.ref_starts]


def _plan(n_ref: int, n_other: int, sample_rate: int, max_delay_s: float) -> _Plan:
    max_lag = int(max_delay_s * sample_rate)
    if max(n_ref, n_other) <= WHOLE_MAX_S * sample_rate:
        n_fft = 1 << math.ceil(math.log2(n_ref + n_other))
        return _Plan((0,), n_ref, n_other, 0, n_fft,
                     min(max_lag, n_fft // 2 - HALF_TAPS - 2))
    length = int(SEGMENT_S * sample_rate)
    margin = max_lag + HALF_TAPS + 2  # room for the interpolation around a peak at the bound
    last = max(min(n_ref, n_other) - length, 0)
    starts = tuple(sorted({round(float(x)) for x in np.linspace(0, last, SEGMENTS)}))
    other_length = length + 2 * margin
    n_fft = 1 << math.ceil(math.log2(length + other_length))
    return _Plan(starts, length, other_length, -margin, n_fft, max_lag)


def _mono_window(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    """``audio[:, start:start + length]`` averaged over channels, float64, zeros outside."""
    return _collect([audio], [(start, length)])[0]


def _collect(blocks: Iterable[np.ndarray], windows: list[tuple[int, int]]) -> list[np.ndarray]:
    """Cut mono float64 windows ``(start, length)`` out of a stream of ``(channels, n)`` blocks."""
    out = [np.zeros(length) for _, length in windows]
    position = 0
    end = max((s + n for s, n in windows), default=0)
    for block in blocks:
        n = block.shape[1]
        for buf, (start, length) in zip(out, windows):
            lo, hi = max(start, position), min(start + length, position + n)
            if hi > lo:
                buf[lo - start:hi - start] = block[:, lo - position:hi - position].mean(
                    axis=0, dtype=np.float64)
        position += n
        if position >= end:
            break
    return out


def _seekable(path: Path) -> bool:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            return bool(f.seekable())
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return False


def _read_windows(path: Path, windows: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    """Mono float64 windows ``(start, length)`` read one at a time by seeking in ``path``."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        for start, length in windows:
            buf = np.zeros(length)
            lo, hi = max(start, 0), min(start + length, f.frames)
            if hi > lo:
                f.seek(lo)
                chunk = f.read(hi - lo, dtype="float32", always_2d=True)
                if not np.isfinite(chunk).all():
                    raise BadAudioError(f"{path}: NaN or infinite samples near "
                                        f"{lo / f.samplerate:.2f} s")
                buf[lo - start:lo - start + chunk.shape[0]] = chunk.mean(axis=1, dtype=np.float64)
            yield buf


def _delay_from_windows(plan: _Plan, refs: Iterable[np.ndarray],
                        others: Iterable[np.ndarray]) -> float:
    """GCC-PHAT of the summed cross-spectra of the window pairs, peak refined to a sub-sample.

    The pairs are consumed one at a time, so lazily read windows are never all held.
    """
    n_fft = plan.n_fft
    cross = np.zeros(n_fft // 2 + 1, np.complex128)
    ref_heard = other_heard = False
    for r, o in zip(refs, others, strict=True):
        r_any, o_any = bool(np.any(r)), bool(np.any(o))
        ref_heard, other_heard = ref_heard or r_any, other_heard or o_any
        if r_any and o_any:
            cross += np.fft.rfft(o, n_fft) * np.conj(np.fft.rfft(r, n_fft))
    if not (ref_heard and other_heard):
        raise BadAudioError("cannot estimate a delay: the reference or the other signal is silent")
    magnitude = np.abs(cross)
    cross /= np.maximum(magnitude, 1e-12 * max(magnitude.max(), 1e-30))
    cc = np.fft.irfft(cross, n_fft)
    offset = plan.offset  # cc index j is lag j + offset

    def at(lags: np.ndarray) -> np.ndarray:
        return cc[(lags - offset) % n_fft]

    lags = np.arange(-plan.max_lag, plan.max_lag + 1)
    peak = int(lags[int(np.argmax(at(lags)))])
    # Band-limited interpolation of the correlation at peak + delta, delta in [-1, 1].
    m = np.arange(-HALF_TAPS, HALF_TAPS + 1)
    local = at(peak + m)
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


def _check_max_delay(max_delay_s: float) -> None:
    if not max_delay_s > 0 or not math.isfinite(max_delay_s):
        raise BadOptionError(f"max_delay_s must be > 0 and finite, got {max_delay_s}")


def estimate_delay(reference: np.ndarray, other: np.ndarray, sample_rate: int, *,
                   max_delay_s: float = 1.0) -> float:
    """Estimate by how many samples ``other`` lags ``reference`` (GCC-PHAT, sub-sample).

    Channels are averaged. Inputs up to :data:`WHOLE_MAX_S` seconds are correlated whole; longer
    ones on :data:`SEGMENTS` windows of :data:`SEGMENT_S` seconds spread over their common length
    (each other-window extended by ``max_delay_s`` on both sides), whose cross-spectra are summed
    before the phase transform, so the work and memory do not grow with the duration. The peak
    is searched within ``+-max_delay_s`` and refined by windowed-sinc interpolation of the
    correlation around the integer peak.

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
    _check_max_delay(max_delay_s)
    if reference.shape[1] == 0 or other.shape[1] == 0:
        raise BadAudioError("cannot estimate a delay from empty audio")
    plan = _plan(reference.shape[1], other.shape[1], sample_rate, max_delay_s)
    refs = (_mono_window(reference, s, n) for s, n in plan.ref_windows)
    others = (_mono_window(other, s, n) for s, n in plan.other_windows)
    return _delay_from_windows(plan, refs, others)


def estimate_delay_files(reference: str | os.PathLike, other: str | os.PathLike, *,
                         max_delay_s: float = 1.0) -> tuple[float, int]:
    """:func:`estimate_delay` between two files, reading only the analysis windows.

    Memory and work do not grow with the files' length: the windows are read by seeking (or
    cut from one streamed pass when the format cannot seek). When the rates differ, the
    reference is resampled to ``other``'s rate while it streams (soxr, aligned).

    Parameters
    ----------
    reference, other : paths to audio files :func:`audiomend.io.load` reads.
    max_delay_s : float > 0, the largest delay searched, in seconds.

    Returns
    -------
    (delay_samples, sample_rate) : the delay in samples at ``other``'s rate (as
        :func:`estimate_delay`), and that rate in Hz.

    Raises
    ------
    BadAudioError
        A missing, empty, undecodable or silent file.
    BadOptionError
        ``max_delay_s`` not positive.

    Examples
    --------
    >>> import tempfile, soundfile as sf
    >>> x = 0.1 * np.random.default_rng(0).standard_normal(8000)
    >>> d = tempfile.mkdtemp()
    >>> sf.write(f"{d}/r.wav", x, 8000, subtype="FLOAT")
    >>> sf.write(f"{d}/t.wav", np.roll(x, 9), 8000, subtype="FLOAT")
    >>> delay, rate = estimate_delay_files(f"{d}/r.wav", f"{d}/t.wav")
    >>> round(delay, 3), rate
    (9.0, 8000)
    """
    from audiomend.io import blocks, info
    from audiomend.stream import ResampleProcessor

    _check_max_delay(max_delay_s)
    ref_info, other_info = info(reference), info(other)
    rate = other_info.sample_rate
    for i in (ref_info, other_info):
        if i.frames == 0:
            raise BadAudioError(f"{i.path}: no samples; cannot estimate a delay from empty audio")
    resampled = ref_info.sample_rate != rate
    n_ref = round(ref_info.frames * rate / ref_info.sample_rate) if resampled else ref_info.frames
    plan = _plan(n_ref, other_info.frames, rate, max_delay_s)
    if resampled:
        resampler = ResampleProcessor(1, ref_info.sample_rate, rate)

        def stream() -> Iterator[np.ndarray]:
            for block in blocks(reference):
                yield resampler.process(block.mean(axis=0, keepdims=True))
            yield resampler.flush()

        refs: Iterable[np.ndarray] = _collect(stream(), plan.ref_windows)
    elif _seekable(Path(reference)):
        refs = _read_windows(Path(reference), plan.ref_windows)
    else:
        refs = _collect(blocks(reference), plan.ref_windows)
    if _seekable(Path(other)):
        others: Iterable[np.ndarray] = _read_windows(Path(other), plan.other_windows)
    else:
        others = _collect(blocks(other), plan.other_windows)
    return _delay_from_windows(plan, refs, others), rate


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
