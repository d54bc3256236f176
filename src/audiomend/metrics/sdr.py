"""Signal-to-distortion family: SI-SDR, SNR and segmental SNR, at the signals' own rate.

All three compare ``estimate`` with a ``reference`` of the same rate; multichannel input is
scored per channel and averaged. None of them aligns in time: a delayed estimate scores low
(run ``audiomend align`` first).
"""

from __future__ import annotations

import numpy as np

from audiomend.dsp import frame_signal
from audiomend.metrics.base import per_channel_mean, prepare_pair, register

#: Per-frame SNR limits of segmental SNR, in dB (Hansen & Pellom 1998; Loizou 2007).
SEGSNR_MIN_DB = -10.0
SEGSNR_MAX_DB = 35.0

_TINY = 1e-20


def _energy_ratio_db(signal: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Per row of ``(channels, samples)``: ``10 log10(sum signal^2 / sum noise^2)``, each sum
    floored at 1e-20 (so identical signals give a large finite value, not inf)."""
    return 10 * np.log10(np.maximum(np.sum(signal**2, axis=1), _TINY)
                         / np.maximum(np.sum(noise**2, axis=1), _TINY))


@register("si_sdr", needs_reference=True, higher_is_better=True, unit="dB",
          description="scale-invariant signal-to-distortion ratio")
def si_sdr(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019).

    Both signals are made zero-mean; the reference is scaled by the least-squares gain
    ``alpha = <est, ref> / <ref, ref>``, and ``SI-SDR = 10 log10(|alpha ref|^2 / |est - alpha ref|^2)``.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples) or (samples,)], the signal to score.
    sample_rate : int, Hz (both signals).
    reference : np.ndarray, the clean signal at ``sample_rate``; a mono reference serves every
        channel of the estimate.

    Returns
    -------
    float, dB; the mean over channels. A perfect (scaled) copy gives a very large value (> 100 dB).

    Raises
    ------
    MetricError
        Missing, silent, unrelated or length-mismatched reference (see ``prepare_pair``).

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> ref = np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 3 * t)
    >>> noise = np.random.default_rng(0).standard_normal(16000)
    >>> noise *= np.linalg.norm(ref) / np.linalg.norm(noise) / 10  # 20 dB below
    >>> round(si_sdr(ref + noise, 16000, reference=ref))
    20

    References
    ----------
    J. Le Roux, S. Wisdom, H. Erdogan, J. R. Hershey, "SDR - half-baked or well done?", ICASSP 2019.
    """
    est, ref = prepare_pair(estimate, reference, sample_rate, metric="si_sdr")
    est = est.astype(np.float64) - est.mean(axis=1, keepdims=True, dtype=np.float64)
    ref = ref.astype(np.float64) - ref.mean(axis=1, keepdims=True, dtype=np.float64)
    alpha = np.sum(est * ref, axis=1, keepdims=True) / np.maximum(
        np.sum(ref * ref, axis=1, keepdims=True), _TINY)
    target = alpha * ref
    return per_channel_mean(list(_energy_ratio_db(target, est - target)))


@register("snr", needs_reference=True, higher_is_better=True, unit="dB",
          description="signal-to-noise ratio, no scaling (reference vs estimate - reference)")
def snr(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Signal-to-noise ratio in dB: ``10 log10(sum ref^2 / sum (est - ref)^2)``, no scaling.

    Unlike SI-SDR, a gain error counts as noise: ``0.5 * ref`` scores 6.02 dB.

    Parameters
    ----------
    estimate, reference : np.ndarray [shape=(channels, samples)], same rate, same recording.
    sample_rate : int, Hz.

    Returns
    -------
    float, dB, mean over channels; identical signals give a very large value (~200 dB).

    Raises
    ------
    MetricError
        As :func:`si_sdr`.

    Examples
    --------
    >>> ref = np.sin(np.arange(8000) / 5.0)
    >>> round(snr(0.5 * ref, 8000, reference=ref), 2)
    6.02
    """
    est, ref = prepare_pair(estimate, reference, sample_rate, metric="snr")
    est, ref = est.astype(np.float64), ref.astype(np.float64)
    return per_channel_mean(list(_energy_ratio_db(ref, est - ref)))


@register("segsnr", needs_reference=True, higher_is_better=True, unit="dB",
          description="segmental SNR: mean of per-frame SNR clipped to [-10, 35] dB")
def segsnr(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Segmental SNR in dB, as in Loizou's ``comp_snr`` (Hansen & Pellom 1998).

    Frames of 30 ms with a Hann window and a 7.5 ms hop (75 % overlap). For each frame,
    ``10 log10(sum ref^2 / (sum (est - ref)^2 + eps) + eps)`` is clipped to [-10, 35] dB; the
    result is the mean over all frames (silent frames included, as in the original definition)
    and then over channels.

    Parameters
    ----------
    estimate, reference : np.ndarray [shape=(channels, samples)], same rate, same recording.
    sample_rate : int, Hz.

    Returns
    -------
    float, dB in [-10, 35].

    Raises
    ------
    MetricError
        As :func:`si_sdr`, or a signal shorter than one 30 ms frame.

    Examples
    --------
    >>> ref = np.sin(np.arange(8000) / 5.0)
    >>> round(segsnr(0.5 * ref, 8000, reference=ref), 2)
    6.02
    """
    frame = max(round(0.030 * sample_rate), 2)
    est, ref = prepare_pair(estimate, reference, sample_rate, metric="segsnr",
                            min_duration_s=frame / sample_rate)
    hop = max(frame // 4, 1)
    window = np.hanning(frame)
    ref_f = frame_signal(ref.astype(np.float64), frame, hop) * window
    err_f = frame_signal(est.astype(np.float64) - ref.astype(np.float64), frame, hop) * window
    eps = np.finfo(np.float64).eps
    sig_e = np.sum(ref_f**2, axis=-1)
    err_e = np.sum(err_f**2, axis=-1)
    per_frame = 10 * np.log10(sig_e / (err_e + eps) + eps)
    per_frame = np.clip(per_frame, SEGSNR_MIN_DB, SEGSNR_MAX_DB)
    return per_channel_mean(list(per_frame.mean(axis=-1)))
