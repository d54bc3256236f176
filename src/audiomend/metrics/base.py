"""The metric registry and the checks every metric shares (validation, pairing, alignment).

A metric is a plain function ``fn(estimate, sample_rate, *, reference=None) -> float`` registered
under a name with :func:`register`. Reference metrics compare ``estimate`` with ``reference``,
both at ``sample_rate``; :func:`prepare_pair` validates the pair, matches channels, trims a few
samples of length difference and refuses pairs that are not two versions of one recording.

The "same recording?" and "silent signal" guards protect files paired by hand. A caller that
pairs files by construction and must score even a wrecked output (the bench) turns them off for
a block with :func:`pairing_checks` (``audiomend.metrics.assess(..., check_pairing=False)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audiomend.dsp import check_audio
from audiomend.errors import MetricError

#: Two signals whose normalised cross-correlation never reaches this are not the same recording.
MIN_CORRELATION = 0.1

#: Lags searched for the correlation check, in seconds: unrelated speech clips reach 0.1 only
#: rarely within +-50 ms, far more often over all lags.
MAX_ALIGNED_LAG_S = 0.05

#: Beyond MAX_ALIGNED_LAG_S, a peak this high means "same recording, delayed".
CLEARLY_RELATED = 0.3

#: Largest length difference that is trimmed, as a fraction of the longer signal.
MAX_LENGTH_MISMATCH = 0.01

#: A signal whose RMS is below this (-100 dBFS) is treated as silence.
SILENCE_RMS = 1e-5

MetricFunction = Callable[..., float]

#: Whether the pairing and silence guards are on in the current context (see pairing_checks).
_CHECK_PAIRING: ContextVar[bool] = ContextVar("audiomend_metrics_check_pairing", default=True)


@contextmanager
def pairing_checks(enabled: bool) -> Iterator[None]:
    """Turn the guards against wrongly paired or silent input on or off inside a ``with`` block.

    Off, :func:`prepare_pair` no longer refuses an unrelated or delayed pair (cross-correlation
    check) nor a silent reference, and :func:`check_estimate` no longer refuses a silent
    estimate (RMS below :data:`SILENCE_RMS`); the scores themselves are unchanged. Exact zeros
    and too-short signals still fail in the metrics that cannot score them. The setting is a
    context variable: it holds for this thread (or task) only and is restored on exit.

    Parameters
    ----------
    enabled : bool, False to turn the guards off.

    Examples
    --------
    >>> x = np.sin(np.arange(16000) / 5.0)[None].astype(np.float32)
    >>> noise = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32)
    >>> with pairing_checks(False):
    ...     est, ref = prepare_pair(noise, x, 16000, metric="demo")
    >>> prepare_pair(noise, x, 16000, metric="demo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    audiomend.errors.MetricError: demo: estimate and reference look unrelated ...
    """
    token = _CHECK_PAIRING.set(bool(enabled))
    try:
        yield
    finally:
        _CHECK_PAIRING.reset(token)


@dataclass(frozen=True)
class Metric:
    """A registered metric: its name, what it needs and how to read its value.

    Attributes
    ----------
    name : registry key, e.g. ``"pesq_wb"``.
    needs_reference : True when the metric compares the estimate with a clean reference.
    higher_is_better : True for quality scores (PESQ, STOI), False for distances (LSD).
    unit : ``"dB"``, ``"MOS"``, ``"Hz"``, ``"LUFS"``, ``"dBFS"``, ``"FS"`` or ``""``.
    description : one line for tables and ``--help``.
    fn : the function ``fn(estimate, sample_rate, *, reference=None) -> float``.
    """

    name: str
    needs_reference: bool
    higher_is_better: bool
    unit: str
    description: str
    fn: MetricFunction

    def __call__(self, estimate: np.ndarray, sample_rate: int, *,
                 reference: np.ndarray | None = None) -> float:
        return self.fn(estimate, sample_rate, reference=reference)


#: Every registered metric by name, in registration order.
METRICS: dict[str, Metric] = {}


def register(name: str, *, needs_reference: bool, higher_is_better: bool, unit: str,
             description: str) -> Callable[[MetricFunction], MetricFunction]:
    """Function decorator: add the function to :data:`METRICS` under ``name``; returns it unchanged."""

    def wrap(fn: MetricFunction) -> MetricFunction:
        if name in METRICS and METRICS[name].fn is not fn:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = Metric(name, needs_reference, higher_is_better, unit, description, fn)
        return fn

    return wrap


def check_estimate(estimate: np.ndarray, sample_rate: int, *, metric: str,
                   min_duration_s: float = 0.0, allow_silence: bool = False
                   ) -> NDArray[np.float32]:
    """Validate one signal for ``metric``: float32 ``(channels, samples)``, long enough, not silent
    (unless ``allow_silence`` or :func:`pairing_checks` is off)."""
    audio = check_audio(estimate, sample_rate, name="estimate")
    duration = audio.shape[1] / sample_rate
    if duration < min_duration_s or audio.shape[1] == 0:
        raise MetricError(f"{metric}: estimate is {duration:.3f} s long; "
                          f"this metric needs at least {min_duration_s:g} s")
    if not allow_silence and _CHECK_PAIRING.get() and _rms(audio) < SILENCE_RMS:
        raise MetricError(f"{metric}: estimate is silent (RMS below -100 dBFS); "
                          f"there is nothing to score")
    return audio


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def _match_channels(est: np.ndarray, ref: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if est.shape[0] == ref.shape[0]:
        return est, ref
    if ref.shape[0] == 1:
        return est, np.broadcast_to(ref, (est.shape[0], ref.shape[1]))
    if est.shape[0] == 1:
        return np.broadcast_to(est, (ref.shape[0], est.shape[1])), ref
    raise MetricError(f"{metric}: estimate has {est.shape[0]} channels and reference "
                      f"{ref.shape[0]}; give the same count (or a mono reference)")


def normalised_xcorr(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|xcorr(a, b)| / (||a|| ||b||)`` of the zero-mean signals at every lag, and the lags.

    A positive lag means ``a`` is late relative to ``b``. Computed with one FFT.

    >>> x = np.sin(np.arange(1000) / 7.0)
    >>> values, lags = normalised_xcorr(x, x)
    >>> round(float(values[lags == 0][0]), 6)
    1.0
    """
    a = np.asarray(a, np.float64) - np.mean(a)
    b = np.asarray(b, np.float64) - np.mean(b)
    lags = np.arange(-(b.size - 1), a.size)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        return np.zeros(lags.size), lags
    size = 1 << int(np.ceil(np.log2(a.size + b.size - 1)))
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    # lags 0..len(a)-1 at the start, negative lags -(len(b)-1)..-1 at the end.
    xc = np.concatenate([xc[size - (b.size - 1):], xc[: a.size]]) if b.size > 1 else xc[: a.size]
    return np.abs(xc) / norm, lags


def _check_related(est: np.ndarray, ref: np.ndarray, sample_rate: int, metric: str,
                   tolerate_delay: bool) -> None:
    """Raise MetricError unless some channel pair is the same recording, roughly aligned."""
    max_lag = round(MAX_ALIGNED_LAG_S * sample_rate)
    best_near, best_far, far_lag = 0.0, 0.0, 0
    for e, r in zip(est, ref):
        values, lags = normalised_xcorr(e, r)
        near = np.abs(lags) <= max_lag
        best_near = max(best_near, float(values[near].max()))
        k = int(np.argmax(values))
        if values[k] > best_far:
            best_far, far_lag = float(values[k]), int(lags[k])
    if best_near >= MIN_CORRELATION:
        return
    if best_far >= CLEARLY_RELATED:
        if tolerate_delay:
            return
        raise MetricError(
            f"{metric}: estimate is {1000 * far_lag / sample_rate:+.0f} ms "
            f"{'late' if far_lag > 0 else 'early'} relative to the reference; this metric does not "
            f"align the signals: align them first (audiomend align)")
    raise MetricError(
        f"{metric}: estimate and reference look unrelated (normalised cross-correlation peak "
        f"{best_near:.3f} < {MIN_CORRELATION} within +-{1000 * MAX_ALIGNED_LAG_S:.0f} ms); "
        f"check that the files are paired correctly")


def prepare_pair(estimate: np.ndarray, reference: np.ndarray | None, sample_rate: int, *,
                 metric: str, min_duration_s: float = 0.01, tolerate_delay: bool = False
                 ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Validate an (estimate, reference) pair and return them with equal shapes.

    Channels: equal counts pair up; a mono side is repeated to the other's count. Lengths: a
    difference up to 1 % of the longer signal is trimmed from the end of the longer one.

    Raises
    ------
    MetricError
        No reference; lengths differ by more than 1 %; either side silent or shorter than
        ``min_duration_s``; the signals are unrelated (normalised cross-correlation peak below
        0.1 within +-50 ms on every channel), which usually means the files were paired wrongly;
        or, unless ``tolerate_delay`` (for metrics that align by themselves, like PESQ), they are
        the same recording offset by more than 50 ms (peak >= 0.3 at a larger lag). The silence
        and relatedness checks are skipped while :func:`pairing_checks` is off.
    """
    if reference is None:
        raise MetricError(f"{metric} compares with a clean reference; pass reference=")
    est = check_estimate(estimate, sample_rate, metric=metric, min_duration_s=min_duration_s)
    ref = check_audio(reference, sample_rate, name="reference")
    checks = _CHECK_PAIRING.get()
    if checks and _rms(ref) < SILENCE_RMS:
        raise MetricError(f"{metric}: reference is silent (RMS below -100 dBFS); "
                          f"it cannot serve as a reference")
    n_est, n_ref = est.shape[1], ref.shape[1]
    if n_est != n_ref:
        longer = max(n_est, n_ref)
        if abs(n_est - n_ref) > MAX_LENGTH_MISMATCH * longer:
            raise MetricError(
                f"{metric}: estimate has {n_est} samples and reference {n_ref} "
                f"({n_est / sample_rate:.3f} s vs {n_ref / sample_rate:.3f} s at {sample_rate} Hz); "
                f"they differ by more than 1 %, so they are not two versions of one recording "
                f"(or one was cut or resampled; check both files' rates)")
        n = min(n_est, n_ref)
        est, ref = est[:, :n], ref[:, :n]
    est, ref = _match_channels(est, ref, metric)
    if checks:
        _check_related(est, ref, sample_rate, metric, tolerate_delay)
    return np.ascontiguousarray(est), np.ascontiguousarray(ref)


def per_channel_mean(values: list[float]) -> float:
    """Mean of per-channel scores as a Python float."""
    return float(np.mean(np.asarray(values, dtype=np.float64)))
