"""Reference-free measurements of one signal: clipping, levels, loudness, DC, noise, bandwidth.

Conventions for multichannel input are stated per function (peak and RMS are over all
channels; the others are per channel, then averaged). ``reference`` is accepted and ignored so
every metric has the same signature.
"""

from __future__ import annotations

import numpy as np

from audiomend.dsp import frame_signal
from audiomend.errors import MetricError, MissingDependencyError
from audiomend.metrics.base import check_estimate, per_channel_mean, register

#: Two samples count as "at the peak" when within this fraction of it (float rounding only).
CLIP_RELATIVE_TOLERANCE = 1e-5

#: estimated_snr_db: frame length and hop, in seconds; percentiles of frame power taken as the
#: speech level and the noise floor; frames below -100 dBFS (digital silence) are ignored; cap.
SNR_FRAME_S = 0.020
SNR_HOP_S = 0.010
SNR_SPEECH_PERCENTILE = 95.0
SNR_NOISE_PERCENTILE = 10.0
SNR_MAX_DB = 100.0

#: bandwidth_hz: Welch segment, smoothing width, and the two thresholds (see the docstring).
BANDWIDTH_N_FFT = 2048
BANDWIDTH_SMOOTH_HZ = 50.0
BANDWIDTH_ABOVE_FLOOR_DB = 10.0
BANDWIDTH_BELOW_PEAK_DB = 60.0
BANDWIDTH_FLOOR_FROM_HZ = 200.0


def _runs_at(mask: np.ndarray) -> int:
    """Number of True samples of a 1-D mask that lie in runs of at least 2."""
    if mask.size < 2:
        return 0
    m = mask.astype(np.int8)
    pair = (m[1:] & m[:-1]).astype(bool)
    in_run = np.zeros(mask.size, bool)
    in_run[1:] |= pair
    in_run[:-1] |= pair
    return int(in_run.sum())


@register("clipped_fraction", needs_reference=False, higher_is_better=False, unit="",
          description="fraction of samples in flat runs (>= 2) at the positive or negative peak")
def clipped_fraction(estimate: np.ndarray, sample_rate: int, *,
                     reference: np.ndarray | None = None) -> float:
    """Fraction of samples that sit in flat runs at the signal's extreme values (hard clipping).

    Per channel, and separately for each polarity: the samples within 1e-5 (relative) of the
    channel's maximum (if it is > 0), or of its minimum (if < 0), that belong to runs of at least
    two consecutive such samples. A single extreme sample is a peak, not clipping. The count over
    all channels is divided by the total number of samples, so asymmetric clipping (different
    positive and negative levels) counts too. Silence gives 0.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples)].
    sample_rate : int, Hz (unused by the computation).
    reference : ignored.

    Returns
    -------
    float in [0, 1].

    Examples
    --------
    >>> x = np.sin(2 * np.pi * np.arange(8000) / 80)
    >>> clipped_fraction(np.clip(x, -0.5, 0.5), 8000)  # |sin| >= 0.5 at 54 of 80 samples a period
    0.675
    >>> clipped_fraction(x, 8000)
    0.0
    """
    audio = check_estimate(estimate, sample_rate, metric="clipped_fraction", allow_silence=True)
    count = 0
    for ch in audio:
        top, bottom = float(ch.max()), float(ch.min())
        if top > 0:
            count += _runs_at(ch >= top - CLIP_RELATIVE_TOLERANCE * top)
        if bottom < 0:
            count += _runs_at(ch <= bottom - CLIP_RELATIVE_TOLERANCE * bottom)
    return count / audio.size


@register("peak_dbfs", needs_reference=False, higher_is_better=False, unit="dBFS",
          description="sample peak over all channels, dB re full scale")
def peak_dbfs(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Sample peak in dBFS: ``20 log10(max |x|)`` over all channels (1.0 = 0 dBFS).

    Not oversampled (a sample peak, not ITU true peak).

    Raises
    ------
    MetricError
        Digital silence (the peak would be -inf dBFS).

    Examples
    --------
    >>> round(peak_dbfs(np.array([[0.5, -0.25]]), 8000), 2)
    -6.02
    """
    audio = check_estimate(estimate, sample_rate, metric="peak_dbfs", allow_silence=True)
    peak = float(np.max(np.abs(audio)))
    if peak == 0:
        raise MetricError("peak_dbfs: estimate is digital silence (every sample is 0)")
    return float(20 * np.log10(peak))


@register("rms_dbfs", needs_reference=False, higher_is_better=False, unit="dBFS",
          description="RMS level over all channels and samples, dB re full scale")
def rms_dbfs(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """RMS level in dBFS: ``10 log10(mean x^2)`` over all channels and samples.

    A full-scale square wave is 0 dBFS, a full-scale sine -3.01 dBFS (no +3 dB sine convention).

    Raises
    ------
    MetricError
        Digital silence.

    Examples
    --------
    >>> round(rms_dbfs(np.sin(2 * np.pi * np.arange(8000) / 80), 8000), 2)
    -3.01
    """
    audio = check_estimate(estimate, sample_rate, metric="rms_dbfs", allow_silence=True)
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    if power == 0:
        raise MetricError("rms_dbfs: estimate is digital silence (every sample is 0)")
    return float(10 * np.log10(power))


@register("loudness_lufs", needs_reference=False, higher_is_better=False, unit="LUFS",
          description="integrated loudness, ITU-R BS.1770-4 (pyloudnorm)")
def loudness_lufs(estimate: np.ndarray, sample_rate: int, *,
                  reference: np.ndarray | None = None) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4 gating, K-weighting), through pyloudnorm.

    Channels are weighted as BS.1770 (L, R, C at 1.0, surrounds at 1.41), up to 5 channels.
    A full-scale 997 Hz sine in one channel measures -3.01 LUFS per BS.1770 (pyloudnorm's
    filter design reads -3.05).

    Raises
    ------
    MetricError
        Shorter than one 400 ms gating block; more than 5 channels; or every block below the
        -70 LUFS absolute gate (silence), where BS.1770 defines no loudness.

    Examples
    --------
    >>> t = np.arange(48000) / 48000
    >>> abs(loudness_lufs(0.1 * np.sin(2 * np.pi * 997 * t), 48000) - (-23.01)) < 0.1
    True
    """
    try:
        import pyloudnorm
    except ImportError as e:
        raise MissingDependencyError("loudness_lufs needs pyloudnorm: pip install pyloudnorm") from e
    audio = check_estimate(estimate, sample_rate, metric="loudness_lufs", min_duration_s=0.4,
                           allow_silence=True)
    if audio.shape[0] > 5:
        raise MetricError(f"loudness_lufs: BS.1770 weights at most 5 channels, got {audio.shape[0]}")
    meter = pyloudnorm.Meter(int(sample_rate))
    try:
        value = float(meter.integrated_loudness(audio.T.astype(np.float64)))
    except ValueError as err:
        raise MetricError(f"loudness_lufs: {err}") from None
    if not np.isfinite(value):
        raise MetricError("loudness_lufs: every 400 ms block is below the -70 LUFS absolute gate "
                          "(silence); integrated loudness is undefined")
    return value


@register("dc_offset", needs_reference=False, higher_is_better=False, unit="FS",
          description="mean sample value (DC offset), mean over channels, full-scale units")
def dc_offset(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """DC offset: the mean sample value, averaged over channels, in full-scale units (signed).

    Examples
    --------
    >>> dc_offset(np.array([[0.25, 0.75]]), 8000)
    0.5
    """
    audio = check_estimate(estimate, sample_rate, metric="dc_offset", allow_silence=True)
    return float(np.mean(audio, dtype=np.float64)) + 0.0  # no -0.0


@register("estimated_snr_db", needs_reference=False, higher_is_better=True, unit="dB",
          description="blind SNR: loud-frame power (95th pct) vs noise floor (10th pct)")
def estimated_snr_db(estimate: np.ndarray, sample_rate: int, *,
                     reference: np.ndarray | None = None) -> float:
    """Blind SNR estimate in dB from the distribution of frame powers.

    Per channel: 20 ms frames with a 10 ms hop; frames below -100 dBFS (digital silence) are
    dropped; the 95th percentile of frame power ``P_s`` is taken as speech plus noise and the 10th
    percentile ``P_n`` as the noise floor (speech is rarely active in more than 90 % of frames),
    and ``SNR = 10 log10(max(P_s / P_n - 1, 1e-10))``, capped at 100 dB. Averaged over channels.
    Stationary noise is measured well; a recording without pauses (or with noise that only
    plays during speech) reads too low.

    Raises
    ------
    MetricError
        Silent, or fewer than 10 non-silent frames (about 0.1 s of signal).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> gate = np.repeat([0.0, 1.0], 8000)  # 0.5 s of pause, 0.5 s of "speech"
    >>> x = 0.1 * rng.standard_normal(16000) * gate + 0.001 * rng.standard_normal(16000)
    >>> abs(estimated_snr_db(x, 16000) - 40) < 1.5  # percentiles bias it up by about 1 dB
    True
    """
    audio = check_estimate(estimate, sample_rate, metric="estimated_snr_db")
    frame = max(round(SNR_FRAME_S * sample_rate), 1)
    hop = max(round(SNR_HOP_S * sample_rate), 1)
    values = []
    for ch in audio:
        power = np.mean(np.square(frame_signal(ch.astype(np.float64), frame, hop)), axis=-1)
        power = power[power > 1e-10]
        if power.size < 10:
            raise MetricError(f"estimated_snr_db: only {power.size} non-silent 20 ms frames; "
                              f"need at least 10")
        p_s = np.percentile(power, SNR_SPEECH_PERCENTILE)
        p_n = np.percentile(power, SNR_NOISE_PERCENTILE)
        values.append(min(10 * np.log10(max(p_s / p_n - 1.0, 1e-10)), SNR_MAX_DB))
    return per_channel_mean(values)


@register("bandwidth_hz", needs_reference=False, higher_is_better=True, unit="Hz",
          description="effective bandwidth: highest frequency clearly above the spectral floor")
def bandwidth_hz(estimate: np.ndarray, sample_rate: int, *,
                 reference: np.ndarray | None = None) -> float:
    """Effective bandwidth in Hz: the highest frequency with real content in the long-term spectrum.

    The long-term spectrum is Welch's average (2048-sample Hann segments at the signal's rate,
    50 % overlap) over all channels, in dB, smoothed by a 50 Hz moving average. Its floor
    ``F`` is its minimum above 200 Hz and its peak ``M`` its maximum. The bandwidth is the
    highest frequency whose smoothed level exceeds both ``F + 10 dB`` and ``M - 60 dB``; when the
    level never drops below that threshold up to the Nyquist frequency, the result is
    ``sample_rate / 2``. Broadband noise fills the band and gives the Nyquist frequency. A steep
    low-pass at ``f_c`` (brick-wall, elliptic, MP3 encoder) reads about ``f_c``; a gentle one reads
    where its slope has taken the content 60 dB below the spectral peak (an order-``N``
    Butterworth on a flat spectrum: about ``f_c * 10**(60 / (20 * N))``, 1.5 ``f_c`` for N = 16).
    Speech rolls off by itself (its top octave is often 40-60 dB below its peak), so clean 16 kHz
    speech may read somewhat below 8 kHz.

    Raises
    ------
    MetricError
        Silent, or shorter than 2048 samples.

    Examples
    --------
    >>> from scipy.signal import ellip, sosfilt
    >>> x = np.random.default_rng(0).standard_normal(32000)
    >>> y = sosfilt(ellip(10, 0.1, 90, 3000, fs=16000, output="sos"), x)
    >>> 2900 < bandwidth_hz(y, 16000) < 3400
    True
    >>> bandwidth_hz(x, 16000)
    8000.0
    """
    from scipy.signal import welch

    audio = check_estimate(estimate, sample_rate, metric="bandwidth_hz",
                           min_duration_s=BANDWIDTH_N_FFT / sample_rate)
    freqs, psd = welch(audio.astype(np.float64), fs=sample_rate, window="hann",
                       nperseg=BANDWIDTH_N_FFT, noverlap=BANDWIDTH_N_FFT // 2, axis=-1)
    level = 10 * np.log10(np.mean(psd, axis=0) + 1e-30)
    width = max(round(BANDWIDTH_SMOOTH_HZ / (freqs[1] - freqs[0])), 1)
    kernel = np.ones(width) / width
    padded = np.pad(level, (width // 2, width - 1 - width // 2), mode="edge")
    smooth = np.convolve(padded, kernel, mode="valid")
    floor = float(np.min(smooth[freqs >= BANDWIDTH_FLOOR_FROM_HZ]))
    threshold = max(floor + BANDWIDTH_ABOVE_FLOOR_DB, float(np.max(smooth)) - BANDWIDTH_BELOW_PEAK_DB)
    above = np.flatnonzero(smooth > threshold)
    if above.size == 0 or above[-1] == smooth.size - 1:
        return float(sample_rate) / 2
    return float(freqs[above[-1]])
