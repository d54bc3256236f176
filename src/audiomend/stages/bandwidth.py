"""Bandwidth: find where a band-limited recording's spectrum stops, and fill the missing band.

:func:`estimate_bandwidth` looks for a steep, deep drop in the long-term spectrum of the active
frames (a low-pass, a telephone channel, audio resampled up from a lower rate, a lossy codec's
cut-off) and returns the effective upper band edge, or Nyquist when the band is full.

:class:`Bandwidth` fills the missing band in the manner of spectral band replication (SBR, as in
HE-AAC), with a non-linear excitation: per STFT frame, the top octave below ``cutoff_hz`` is taken
back to the time domain and full-wave rectified, which creates harmonics and intermodulation
products of its partials above the cutoff; that spectrum above the cutoff is whitened (divided by
its own smoothed power) and shaped by an envelope extrapolated from the top octave below the
cutoff (its level and log-spectral slope, with an extra decay towards Nyquist). Fill is only added
where the band lacks energy against that envelope, so full-band audio is left (nearly) as it was;
the band below the cutoff is never changed, and the fill fades in over 250 Hz above it.

References
----------
M. Dietz, L. Liljeryd, K. Kjörling, O. Kunz, "Spectral Band Replication, a novel approach in audio
coding", AES 112th Convention, 2002. P. Jax, P. Vary, "On artificial bandwidth extension of
telephone speech", Signal Processing 83(8), 2003.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from audiomend.dsp import EPS, check_audio, frame_signal
from audiomend.errors import BadOptionError
from audiomend.stages._common import check_strength, passthrough, pow2_samples
from audiomend.stages.base import Stage, register
from audiomend.stream import Processor, SpectralProcessor

#: The drop (dB) between the spectrum just below an edge and everything above it that makes the
#: edge a band limit, and the guard band (fraction of the edge frequency) for the filter's slope.
_MIN_DROP_DB = 20.0
_GUARD = 0.25
#: The edge is the highest frequency where the spectrum is within this many dB of the level
#: just below the drop (dev corpus: 0.95-1.05 of the true 3.4/4/5.5 kHz low-pass; 0.94-0.96 of
#: the old Nyquist of 48 kHz audio passed through 8 or 16 kHz, where soxr's passband ends).
_EDGE_DB = 8.0
#: Edges above this fraction of Nyquist count as full band (anti-alias roll-off of a resampler).
_FULL_BAND = 0.9
#: Frames within this many dB of the loudest frame count as active in the long-term spectrum.
_ACTIVE_DB = 40.0

#: Band replication: extra decay of the extrapolated envelope (dB per octave above the cutoff),
#: overall level (dB) of the fill against the extrapolated envelope, the allowed range of the
#: measured slope (dB per octave) and the fade-in above the cutoff (Hz). Tuned on train/speech;
#: the level on the dev corpus (bandlimit, 16 kHz) and 48 kHz smoke speech through 8/16 kHz
#: (benchmarks/make_dev_bwe48k.py): at -24 dB PESQ-WB fell on 4 of 16 files (by up to 0.19),
#: at -30 dB it rises on 12, is unchanged on 3 (fill above 8 kHz) and falls on 1 (by 0.07);
#: mean +0.11 / +0.15, and LSD still falls (-1.7 / -3.6 dB).
#: The level then follows the band edge in clean recordings: ``_FILL_GAIN_DB`` from
#: ``_FILL_EDGES_HZ[1]`` up and ``_LOW_EDGE_FILL_DB`` lower from ``_FILL_EDGES_HZ[0]`` down
#: (linear in between), where the source octave is the formant region, which overstates the band
#: above it. On 133 training clips per edge (benchmarks/bwe_fill_level.md) the best level
#: against -30 dB was -6 dB at 3.4 and 4 kHz and through 8 kHz (PESQ-WB +0.035 / +0.031 /
#: +0.017; files made worse than the input 34 -> 16, 31 -> 16, 24 -> 10), -3 dB at 4.5 kHz and
#: 0 dB from 5 kHz. Not in recordings with a noise floor (estimated SNR under ``_LOW_FILL_MIN_SNR_DB``):
#: there the lower fill lost on training clips under 30 dB (-0.07 PESQ, 13 of 16 worse) and on
#: every noisy dev file with a low edge (13 files reading 20-35 dB: 12 worse).
_EXTRA_DECAY_DB_PER_OCT = 3.0
_FILL_GAIN_DB = -30.0
_FILL_EDGES_HZ = (4000.0, 5000.0)
_LOW_EDGE_FILL_DB = -6.0
_LOW_FILL_MIN_SNR_DB = 35.0
_SLOPE_RANGE_DB_PER_OCT = (-24.0, 0.0)
_FADE_HZ = 250.0
#: Recursive smoothing of the envelope slope from frame to frame (0 = none).
_SLOPE_SMOOTHING = 0.7


def default_fill_gain_db(cutoff_hz: float, snr_db: float = float("inf")) -> float:
    """The band replication's level (dB) against its extrapolated envelope, for a band edge
    ``cutoff_hz`` (Hz) in a recording whose estimated SNR is ``snr_db`` (dB; default: clean).

    >>> default_fill_gain_db(3400.0), default_fill_gain_db(4500.0), default_fill_gain_db(7600.0)
    (-36.0, -33.0, -30.0)
    >>> default_fill_gain_db(3400.0, snr_db=28.0)   # a noise floor: the flat level
    -30.0
    """
    if not snr_db >= _LOW_FILL_MIN_SNR_DB:      # also NaN, no estimate: the flat level
        return _FILL_GAIN_DB
    return float(np.interp(cutoff_hz, _FILL_EDGES_HZ, (_FILL_GAIN_DB + _LOW_EDGE_FILL_DB, _FILL_GAIN_DB)))


@dataclass(frozen=True)
class BandwidthEstimate:
    """What :func:`estimate_bandwidth` found.

    Attributes
    ----------
    cutoff_hz : float, the effective upper band edge in Hz; ``sample_rate / 2`` when full band.
    confidence : float in [0, 1], how sure the estimator is that the band is limited there.
    """

    cutoff_hz: float
    confidence: float


def estimate_bandwidth(audio: np.ndarray, sample_rate: int) -> BandwidthEstimate:
    """Estimate the effective upper band edge from the long-term spectrum of the active frames.

    Cheap (one STFT with 32 ms frames and a vectorised scan; RTF well below 0.01), meant for
    ~10 s blocks of a diagnosis.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.

    Returns
    -------
    BandwidthEstimate
        ``cutoff_hz`` (Nyquist if the band is full or nothing is audible) and ``confidence``.

    Raises
    ------
    BadAudioError
        If ``audio`` is not valid audio.

    Examples
    --------
    >>> from scipy import signal
    >>> noise = np.random.default_rng(0).standard_normal(16000)
    >>> est = estimate_bandwidth(noise[None].astype(np.float32), 16000)
    >>> est.cutoff_hz, est.confidence
    (8000.0, 0.0)
    >>> low = signal.sosfilt(signal.butter(10, 4000, fs=16000, output="sos"), noise)
    >>> est = estimate_bandwidth(low[None].astype(np.float32), 16000)
    >>> 3600 < est.cutoff_hz < 4400, est.confidence > 0.5
    (True, True)
    """
    audio = check_audio(audio, sample_rate)
    nyquist = sample_rate / 2.0
    full = BandwidthEstimate(float(nyquist), 0.0)
    n_fft = pow2_samples(0.032, sample_rate)
    frames = frame_signal(audio, n_fft, n_fft // 2)            # (channels, frames, n_fft)
    if frames.shape[1] == 0:
        return full
    window = signal.get_window("hann", n_fft).astype(np.float32)
    power = np.mean(np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2, axis=0)  # (frames, bins)
    energy = power.sum(axis=1)
    if energy.max() <= EPS:
        return full
    active = energy >= energy.max() * 10 ** (-_ACTIVE_DB / 10)
    spectrum_db = 10 * np.log10(power[active].mean(axis=0) + EPS ** 2)
    bin_hz = sample_rate / n_fft
    smooth = max(1, round(150.0 / bin_hz))
    spectrum_db = np.convolve(spectrum_db, np.ones(smooth) / smooth, mode="same")
    n_bins = spectrum_db.size
    # For each candidate edge j: mean level in [0.8 j, j) against the maximum above (1+guard) j.
    j = np.arange(n_bins)
    top = int(0.98 * (n_bins - 1))
    csum = np.concatenate([[0.0], np.cumsum(spectrum_db)])
    lo = np.floor(0.8 * j).astype(int)
    below = (csum[j] - csum[lo]) / np.maximum(j - lo, 1)
    max_above = np.maximum.accumulate(spectrum_db[:top + 1][::-1])[::-1]   # max over [i, top]
    start = np.ceil((1 + _GUARD) * j).astype(int)
    valid = (j * bin_hz >= 1000.0) & (j - lo >= 2) & (start <= top)
    drop = np.full(n_bins, -np.inf)
    drop[valid] = below[valid] - max_above[start[valid]]
    hits = np.flatnonzero(drop >= _MIN_DROP_DB)
    if hits.size == 0:
        return full
    j0 = int(hits[0])
    # The edge: the highest frequency at or above 0.8 j0 where the spectrum is still within
    # _EDGE_DB of the level just below j0 (the last place the band still carries signal). The
    # highest such place, not the first fall: a formant valley below the edge is not the edge.
    i = np.arange(int(0.8 * j0), n_bins)
    still = np.flatnonzero(spectrum_db[i] >= below[j0] - _EDGE_DB)
    edge = (i[still[-1]] + 0.5) * bin_hz if still.size else nyquist
    if edge >= _FULL_BAND * nyquist:
        return full
    depth = float(np.max(drop[hits[0]: hits[0] + max(1, start[j0] - j0)]))
    confidence = float(np.clip((depth - _MIN_DROP_DB) / 20.0 + 0.5, 0.0, 1.0))
    confidence *= float(min(1.0, active.sum() * (n_fft // 2) / sample_rate))  # under 1 s: less sure
    return BandwidthEstimate(float(edge), confidence)


class BandReplicationProcessor(SpectralProcessor):
    """Streaming spectral band replication above ``cutoff_hz`` (see the module docstring).

    Frames of ~32 ms (512 samples at 16 kHz, 2048 at 48 kHz), hop a quarter frame. Stereo: one
    envelope from the channels' mean power and the same gains on every channel.
    """

    def __init__(self, channels: int, sample_rate: int, cutoff_hz: float,
                 strength: float = 1.0, fill_gain_db: float | None = None) -> None:
        n_fft = pow2_samples(0.032, sample_rate)
        super().__init__(channels, n_fft, n_fft // 4)
        self.sample_rate = int(sample_rate)
        self.strength = float(strength)
        n_bins = n_fft // 2 + 1
        bin_hz = sample_rate / n_fft
        self.cutoff_bin = int(np.ceil(cutoff_hz / bin_hz))
        # Active only with something to fill and a source octave of at least 2 * n_fft / hop bins.
        ratio = n_fft // self.hop_length
        self.active = self.strength > 0 and self.cutoff_bin < n_bins - 2 and \
            self.cutoff_bin >= 4 * ratio
        if not self.active:
            return
        kc = self.cutoff_bin
        targets = np.arange(kc, n_bins)
        self.fill_gain_db = default_fill_gain_db(cutoff_hz) if fill_gain_db is None else fill_gain_db
        freqs = np.maximum(np.arange(n_bins) * bin_hz, bin_hz)
        fc = kc * bin_hz
        # Envelope fit over the top octave below the cutoff, in 8 bands, in log2 frequency.
        edges = np.linspace(kc // 2, int(0.9 * kc), 9).astype(int)
        edges = np.maximum.accumulate(np.maximum(edges, np.arange(9) + edges[0]))
        self._fit_edges = edges
        centres = np.log2(freqs[(edges[:-1] + edges[1:]) // 2] / fc)
        self._fit_x = centres - centres.mean()
        self._fit_xc = centres.mean()
        self._octaves = np.log2(freqs[targets] / fc)
        fade = np.clip((freqs[targets] - fc) / _FADE_HZ, 0.0, 1.0)
        self._fade = np.sin(0.5 * np.pi * fade) ** 2
        # Powers are smoothed over ~ 300 Hz: the band's existing energy, and the excitation's
        # envelope that whitens it.
        self._smooth = max(1, round(300.0 / bin_hz))
        self._slope_state = np.zeros(1)
        self._slope_started = False

    def process_spectrum(self, spectrum: np.ndarray) -> np.ndarray:
        if not self.active or spectrum.shape[-1] == 0:
            return spectrum
        kc = self.cutoff_bin
        power = np.mean(np.abs(spectrum) ** 2, axis=0)        # (bins, frames), joint channels
        e = self._fit_edges
        csum = np.concatenate([np.zeros((1, power.shape[1])), np.cumsum(power, axis=0)])
        band_db = 10 * np.log10((csum[e[1:]] - csum[e[:-1]]) / (e[1:] - e[:-1])[:, None] + EPS ** 2)
        mean_db = band_db.mean(axis=0)
        slope = (self._fit_x @ (band_db - mean_db)) / (self._fit_x @ self._fit_x)  # dB per octave
        slope = np.clip(slope, *_SLOPE_RANGE_DB_PER_OCT)
        if _SLOPE_SMOOTHING > 0:
            if not self._slope_started:
                self._slope_state = np.array([slope[0] * _SLOPE_SMOOTHING])
                self._slope_started = True
            slope, self._slope_state = signal.lfilter(
                [1 - _SLOPE_SMOOTHING], [1, -_SLOPE_SMOOTHING], slope, zi=self._slope_state)
        level_at_cutoff = mean_db - slope * self._fit_xc
        target_db = (level_at_cutoff[None, :]
                     + (slope[None, :] - _EXTRA_DECAY_DB_PER_OCT) * self._octaves[:, None]
                     + self.fill_gain_db)
        target = 10 ** (target_db / 10)                       # (targets, frames) power
        kernel = np.ones(self._smooth) / self._smooth
        smooth_power = signal.oaconvolve(power, kernel[:, None], mode="same", axes=0)
        # Excitation: the top octave below the cutoff, rectified in the time domain; its part above
        # the cutoff is the patch, whitened by its own smoothed power (channel mean).
        band = np.zeros_like(spectrum)
        band[:, kc // 2: kc] = spectrum[:, kc // 2: kc]
        frames = np.fft.irfft(band, n=self.frame_length, axis=1)
        rect = np.fft.rfft(np.abs(frames), axis=1)
        patch = rect[:, kc:, :]
        patch_power = signal.oaconvolve(np.mean(np.abs(rect) ** 2, axis=0), kernel[:, None],
                                        mode="same", axes=0)[kc:]
        # Fill only the energy the band lacks against the envelope.
        existing = smooth_power[kc:]
        deficit = np.clip(1.0 - existing / np.maximum(target, EPS ** 2), 0.0, 1.0)
        gain = np.sqrt(target * deficit / np.maximum(patch_power, EPS ** 2))
        gain *= self.strength * self._fade[:, None]
        out = spectrum.copy()
        out[:, kc:, :] += patch * gain[None].astype(np.float32)
        return out


@register
@dataclass(frozen=True)
class Bandwidth(Stage):
    """Fill the band above ``cutoff_hz`` by spectral band replication. See :func:`bandwidth`.

    Attributes
    ----------
    cutoff_hz : float > 0, the upper edge of the band present (from :func:`estimate_bandwidth`).
    strength : float in [0, 1], the fill's amplitude scale (0 leaves the input).
    fill_gain_db : float or None, the fill's level against the extrapolated envelope in dB;
        None (default) follows the band edge (:func:`default_fill_gain_db`).
    """

    name: ClassVar[str] = "bandwidth"
    cutoff_hz: float = 4000.0
    strength: float = 1.0
    fill_gain_db: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.cutoff_hz) and self.cutoff_hz > 0):
            raise BadOptionError(f"bandwidth: cutoff_hz must be a positive frequency, got {self.cutoff_hz}")
        check_strength("bandwidth", self.strength)
        if self.fill_gain_db is not None and not -80.0 <= self.fill_gain_db <= 0.0:
            raise BadOptionError(f"bandwidth: fill_gain_db must be in [-80, 0] dB, got {self.fill_gain_db}")

    def processor(self, sample_rate: int, channels: int) -> Processor:
        proc = BandReplicationProcessor(channels, sample_rate, self.cutoff_hz, self.strength,
                                        self.fill_gain_db)
        # Nothing to fill (cutoff at Nyquist, strength 0): pass the input through bit-exact.
        return proc if proc.active else passthrough(channels)


def bandwidth(audio: np.ndarray, sample_rate: int, *, cutoff_hz: float = 4000.0,
              strength: float = 1.0, fill_gain_db: float | None = None) -> NDArray[np.float32]:
    """Extend band-limited audio: fill ``(cutoff_hz, sample_rate / 2)`` by band replication.

    To go from a 16 kHz file to 48 kHz, resample first (the pipeline does); this fills the band
    the resampler left empty. A cutoff at or near Nyquist leaves the audio unchanged.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    cutoff_hz : float > 0, the upper edge of the band present, in Hz (default 4000).
    strength : float in [0, 1], the fill's amplitude scale (default 1).
    fill_gain_db : float in [-80, 0] or None, the fill's level against the extrapolated envelope
        in dB; None (default) follows the band edge, as for a clean recording
        (:func:`default_fill_gain_db`).

    Returns
    -------
    np.ndarray [shape=(channels, samples)], float32; the band below ``cutoff_hz`` is unchanged.

    Raises
    ------
    BadAudioError
        If ``audio`` is not valid audio.
    BadOptionError
        If ``cutoff_hz``, ``strength`` or ``fill_gain_db`` is out of range.

    Examples
    --------
    >>> from scipy import signal
    >>> noise = np.random.default_rng(0).standard_normal(16000)
    >>> low = signal.sosfilt(signal.butter(10, 4000, fs=16000, output="sos"), noise)
    >>> low = (0.1 * low[None]).astype(np.float32)
    >>> wide = bandwidth(low, 16000, cutoff_hz=4000.0)
    >>> def high(x): return float(np.std(signal.sosfilt(signal.butter(8, 5000, "high", fs=16000,
    ...                                                                 output="sos"), x)))
    >>> high(wide) > 1.1 * high(low)
    True
    """
    return Bandwidth(cutoff_hz=cutoff_hz, strength=strength, fill_gain_db=fill_gain_db)(audio, sample_rate)
