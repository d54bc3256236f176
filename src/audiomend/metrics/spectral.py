"""Log-spectral distance (LSD), at the signals' own rate."""

from __future__ import annotations

import numpy as np

from audiomend.dsp import frame_signal
from audiomend.metrics.base import per_channel_mean, prepare_pair, register

#: STFT size and hop of LSD, in samples (at the signals' own rate).
LSD_N_FFT = 2048
LSD_HOP = 512

#: Power floor of LSD: 1e-12 (-120 dB) in the normalisation below, just above the quantisation
#: noise of 16-bit audio (about -132 dB per bin), so bands empty in both signals compare equal.
LSD_POWER_FLOOR = 1e-12


def _power_db(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    spec = np.fft.rfft(frames * window, axis=-1)
    power = (spec.real**2 + spec.imag**2) / np.sum(window) ** 2
    return 10 * np.log10(power + LSD_POWER_FLOOR)


@register("lsd", needs_reference=True, higher_is_better=False, unit="dB",
          description="log-spectral distance, 2048-point STFT at the file's rate")
def lsd(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Log-spectral distance in dB (lower is better; identical signals give 0).

    Definition, at the signals' own rate: frames of ``N = 2048`` samples with a
    symmetric Hann window ``w`` (``np.hanning``) and a hop of 512 samples, no padding (a partial
    last frame is dropped). For each frame ``t`` and bin ``k = 0..1024``,
    ``P[t, k] = |FFT(w x_t)[k]|^2 / (sum w)^2`` (a full-scale sine peaks at about -6 dB), and

        LSD = mean_t sqrt( mean_k (10 log10(P_ref[t, k] + 1e-12) - 10 log10(P_est[t, k] + 1e-12))^2 )

    averaged over all frames (silent frames included) and then over channels. The 1e-12 floor
    (-120 dB) is just above 16-bit quantisation noise, so a band that is empty in both signals
    adds nothing, and a band missing from the estimate costs at most its level above -120 dB.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples)], at least 2048 samples.
    sample_rate : int, Hz, of both signals (the bins span 0..sample_rate/2).
    reference : np.ndarray, the clean signal, same rate.

    Returns
    -------
    float, dB, >= 0.

    Raises
    ------
    MetricError
        Shorter than one 2048-sample frame, silent, unrelated or length-mismatched pair.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(16000) * 0.1
    >>> lsd(x, 16000, reference=x)
    0.0
    """
    est, ref = prepare_pair(estimate, reference, sample_rate, metric="lsd",
                            min_duration_s=LSD_N_FFT / sample_rate)
    window = np.hanning(LSD_N_FFT)
    values = []
    for e, r in zip(est, ref):
        diff = (_power_db(frame_signal(r.astype(np.float64), LSD_N_FFT, LSD_HOP), window)
                - _power_db(frame_signal(e.astype(np.float64), LSD_N_FFT, LSD_HOP), window))
        values.append(float(np.mean(np.sqrt(np.mean(diff**2, axis=-1)))))
    return per_channel_mean(values)
