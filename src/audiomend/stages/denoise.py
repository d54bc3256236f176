"""Noise reduction: MMSE log-spectral amplitude gain with speech-presence-based noise tracking.

The classical backend is a short-time spectral attenuator (a :class:`~audiomend.stream.SpectralProcessor`):

- **Frames.** 32 ms frames every 8 ms (75 % overlap, square-root Hann) at any sample rate: 32 ms
  resolves the harmonics of most voices, 8 ms hops follow onsets and keep the decision-directed
  recursion smooth. Latency is one frame minus one hop (24 ms).
- **Noise PSD.** The unbiased MMSE noise estimator with speech presence probability of Gerkmann &
  Hendriks (2012): a posteriori SPP from a fixed "typical" a priori SNR of 15 dB, the noisy
  periodogram weighted by (1 - SPP) where speech is absent, recursive smoothing, and the
  stagnation guard that caps the SPP when it stays near one. It follows non-stationary noise
  within about a second, with no minimum-search window. At the very start the estimate is held
  at or above the running mean of the first frames (about 100 ms), so it is sane from frame one.
- **Gain.** Ephraim & Malah's MMSE log-spectral amplitude (LSA) gain with the decision-directed a
  priori SNR, a lower a priori SNR bound (-15 dB) and a light smoothing of the gain across
  frequency against musical noise. The floor is ``attenuation_limit_db`` below unity;
  ``strength`` raises the final gain to a power (0 = bypass, 1 = full), so the floor becomes
  ``strength * attenuation_limit_db``.
- **Channels.** One gain per bin and frame computed on the channel-mean power and applied to every
  channel: the stereo image does not move.

:func:`estimate_noise` is the cheap whole-block estimate the diagnosis uses (SNR and noise floor).

References
----------
Y. Ephraim, D. Malah, "Speech enhancement using a minimum mean-square error log-spectral
amplitude estimator", IEEE TASSP 33(2), 1985.
T. Gerkmann, R. C. Hendriks, "Unbiased MMSE-based noise power estimation with low complexity and
low tracking delay", IEEE TASLP 20(4), 2012.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy import special

from audiomend.dsp import check_audio, check_sample_rate, frame_signal
from audiomend.errors import BadOptionError
from audiomend.stages._common import check_strength, frame_and_hop
from audiomend.stages.base import Stage, register
from audiomend.stream import Processor, SpectralProcessor

#: Hop between analysis frames in seconds; frames are four hops long (32 ms).
HOP_S = 0.008
#: The backends :class:`Denoise` knows: ``classical`` (this module) and ``neural`` (audiomend's
#: network, :mod:`audiomend.stages.neural`, run with the same strength and attenuation limit),
#: and the peers ``deepfilternet3`` and ``rnnoise`` (:mod:`audiomend.stages.peer_denoise`).
BACKENDS: tuple[str, ...] = ("classical", "neural", "deepfilternet3", "rnnoise")

# Noise tracker (Gerkmann & Hendriks 2012), time constants given for a 16 ms reference hop and
# converted to our hop in the processor.
_XI_H1_DB = 15.0          # typical a priori SNR when speech is present
_ALPHA_NOISE_REF = 0.8    # noise PSD smoothing per 16 ms
_ALPHA_SPP_REF = 0.9      # SPP smoothing for the stagnation guard per 16 ms
_REF_HOP_S = 0.016
_WARMUP_S = 0.1           # noise held >= the running mean of the first frames this long
# Gain (Ephraim & Malah 1985, decision-directed)
_DD_ALPHA = 0.98
_XI_MIN_DB = -15.0        # bounds musical noise; tried -25 dB on train/: worse
_EPS = 1e-12


def _check_params(strength: float, attenuation_limit_db: float, backend: str) -> None:
    if backend not in BACKENDS:
        raise BadOptionError(f"denoise: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    check_strength("denoise", strength)
    if not 0.0 <= float(attenuation_limit_db) <= 100.0:
        raise BadOptionError(
            f"denoise: attenuation_limit_db must be in [0, 100] dB, got {attenuation_limit_db}"
        )


def frame_sizes(sample_rate: int) -> tuple[int, int]:
    """The ``(frame_length, hop_length)`` in samples used at ``sample_rate`` Hz: 32 ms and 8 ms.

    >>> frame_sizes(16000), frame_sizes(48000)
    ((512, 128), (1536, 384))
    """
    return frame_and_hop(sample_rate, HOP_S)


class LsaGain:
    """The classical gain rule as a state machine: power frames in, MMSE-LSA gains out.

    Holds the noise tracker and the decision-directed recursion between calls, so frames can
    arrive in blocks of any size. :class:`DenoiseProcessor` uses it on its own 8 ms grid;
    ``benchmarks/denoise_dev.py`` runs it on the network's grid (any hop: the time constants are
    converted) to measure network + classical hybrids.

    Parameters
    ----------
    n_bins : int, bins per frame.
    hop_s : float, seconds between frames.
    frame_s : float, frame length in seconds (sets the warm-up).
    attenuation_limit_db : float >= 0, the largest attenuation of any bin, in dB.
    """

    def __init__(self, n_bins: int, *, hop_s: float, frame_s: float,
                 attenuation_limit_db: float = 30.0) -> None:
        ratio = hop_s / _REF_HOP_S
        self._gain_floor = float(10.0 ** (-float(attenuation_limit_db) / 20.0))
        self._xi_h1 = 10.0 ** (_XI_H1_DB / 10.0)
        self._alpha_noise = _ALPHA_NOISE_REF ** ratio
        self._alpha_spp = _ALPHA_SPP_REF ** ratio
        self._dd = _DD_ALPHA if abs(hop_s - HOP_S) < 1e-9 else _DD_ALPHA ** (hop_s / HOP_S)
        self._xi_min = 10.0 ** (_XI_MIN_DB / 10.0)
        self._warm_frames = int(np.ceil((_WARMUP_S + frame_s) / hop_s - 1e-9))
        self._noise = np.zeros(n_bins)
        self._warm_sum = np.zeros(n_bins)
        self._spp_smooth = np.zeros(n_bins)
        self._prev_clean = np.zeros(n_bins)
        self._t = 0
        # 3-tap smoothing of the gain across frequency (edges keep their weight)
        self._kernel = np.array([0.25, 0.5, 0.25])
        self._edge = np.convolve(np.ones(n_bins), self._kernel, mode="same")

    def __call__(self, power: np.ndarray) -> NDArray[np.float32]:
        """Gains ``(n_bins, n_frames)`` in [floor, 1] for the power spectra ``(n_bins, n_frames)``."""
        gains = np.empty(power.shape, np.float32)
        xi_h1, alpha_n, alpha_p = self._xi_h1, self._alpha_noise, self._alpha_spp
        spp_slope = xi_h1 / (1.0 + xi_h1)
        floor, dd = self._gain_floor, self._dd
        for t in range(power.shape[1]):
            y = power[:, t] + _EPS
            noise = self._noise
            if self._t < self._warm_frames:
                self._warm_sum += y
                noise = np.maximum(noise, self._warm_sum / (self._t + 1))
            self._t += 1
            # --- noise PSD: unbiased MMSE with speech presence probability ---
            snr_post = y / noise
            spp = 1.0 / (1.0 + (1.0 + xi_h1) * np.exp(-np.minimum(snr_post * spp_slope, 500.0)))
            self._spp_smooth = alpha_p * self._spp_smooth + (1.0 - alpha_p) * spp
            spp = np.where(self._spp_smooth > 0.99, np.minimum(spp, 0.99), spp)
            noise = alpha_n * noise + (1.0 - alpha_n) * ((1.0 - spp) * y + spp * noise)
            self._noise = noise
            # --- LSA gain with the decision-directed a priori SNR ---
            gamma = y / noise
            xi = dd * self._prev_clean / noise + (1.0 - dd) * np.maximum(gamma - 1.0, 0.0)
            xi = np.maximum(xi, self._xi_min)
            ratio = xi / (1.0 + xi)
            gain = ratio * np.exp(0.5 * special.exp1(np.maximum(ratio * gamma, 1e-10)))
            gain = np.minimum(gain, 1.0)
            self._prev_clean = gain * gain * y
            gain = np.convolve(gain, self._kernel, mode="same") / self._edge
            gains[:, t] = np.maximum(gain, floor)
        return gains


class DenoiseProcessor(SpectralProcessor):
    """Streaming MMSE-LSA denoiser with MMSE-SPP noise tracking (see the module docstring).

    Parameters
    ----------
    channels : int > 0
    sample_rate : int, Hz.
    strength : float in [0, 1], exponent applied to the gain; 0 passes the input through.
    attenuation_limit_db : float >= 0, the largest attenuation of any bin, in dB.
    """

    def __init__(self, channels: int, sample_rate: int, *, strength: float = 1.0,
                 attenuation_limit_db: float = 30.0) -> None:
        frame, hop = frame_sizes(sample_rate)
        super().__init__(channels, frame, hop)
        self.strength = float(strength)
        self._gain = LsaGain(frame // 2 + 1, hop_s=hop / sample_rate, frame_s=frame / sample_rate,
                             attenuation_limit_db=attenuation_limit_db)

    def process_spectrum(self, spectrum: np.ndarray) -> np.ndarray:
        if self.strength == 0.0:
            return spectrum
        power = np.mean(spectrum.real ** 2 + spectrum.imag ** 2, axis=0, dtype=np.float64)
        gains = self._gain(power)
        if self.strength != 1.0:
            gains = gains ** np.float32(self.strength)
        return spectrum * gains[np.newaxis]


@register
@dataclass(frozen=True)
class Denoise(Stage):
    """Reduce additive noise (see :func:`denoise`).

    >>> Denoise(strength=0.5).to_dict()
    {'name': 'denoise', 'strength': 0.5, 'attenuation_limit_db': 30.0, 'backend': 'classical', 'input_gain_db': 0.0}
    """

    name: ClassVar[str] = "denoise"
    strength: float = 1.0
    attenuation_limit_db: float = 30.0
    backend: str = "classical"
    input_gain_db: float = 0.0

    def __post_init__(self) -> None:
        _check_params(self.strength, self.attenuation_limit_db, self.backend)
        from audiomend.stages.neural import check_input_gain

        check_input_gain("denoise", self.input_gain_db)

    def processor(self, sample_rate: int, channels: int) -> Processor:
        sample_rate = check_sample_rate(sample_rate)
        if self.backend == "classical":
            return DenoiseProcessor(channels, sample_rate, strength=self.strength,
                                    attenuation_limit_db=self.attenuation_limit_db)
        if self.backend == "neural":
            from audiomend.model.runtime import DEFAULT_MODEL
            from audiomend.stages.neural import NeuralProcessor

            return NeuralProcessor(sample_rate, channels, strength=self.strength,
                                   attenuation_limit_db=self.attenuation_limit_db,
                                   model_name=DEFAULT_MODEL, input_gain_db=self.input_gain_db)
        if self.backend in ("deepfilternet3", "rnnoise"):
            from audiomend.stages.peer_denoise import peer_processor

            return peer_processor(channels, sample_rate, backend=self.backend, strength=self.strength,
                                  attenuation_limit_db=self.attenuation_limit_db)
        raise BadOptionError(f"denoise: unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")


def denoise(audio: np.ndarray, sample_rate: int, *, strength: float = 1.0,
            attenuation_limit_db: float = 30.0, backend: str = "classical",
            input_gain_db: float = 0.0) -> NDArray[np.float32]:
    """Reduce stationary and slowly varying noise in speech.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz (any rate from 1 kHz up; frames are 32 ms, hops 8 ms).
    strength : float in [0, 1], 0 = bypass, 1 = full suppression.
    attenuation_limit_db : float in [0, 100], the most a time-frequency bin is attenuated, in dB.
    backend : str, ``"classical"`` (MMSE-LSA with MMSE-SPP noise tracking) or ``"neural"``
        (audiomend's network, see :mod:`audiomend.stages.neural`).
    input_gain_db : float in [-80, 80], dB, ``neural`` only: the network hears the input this
        much louder (it was trained on speech at -45..-15 dBFS and reacts to the level); the
        output level does not change. The planner sets it from the diagnosed loudness
        (:func:`audiomend.stages.neural.input_gain_for_loudness`). The classical gain does not
        depend on the level and ignores it.

    Returns
    -------
    np.ndarray [shape=(channels, samples)], float32, aligned with the input.

    Raises
    ------
    BadAudioError
        if the audio or rate is unusable.
    BadOptionError
        if a parameter is out of range or the backend is unknown.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = 0.01 * rng.standard_normal((1, 16000)).astype(np.float32)
    >>> out = denoise(noise, 16000)
    >>> out.shape, out.dtype, bool(np.std(out[:, 4000:]) < 0.2 * np.std(noise))
    ((1, 16000), dtype('float32'), True)
    """
    audio = check_audio(audio, sample_rate)
    return Denoise(strength=strength, attenuation_limit_db=attenuation_limit_db,
                   backend=backend, input_gain_db=input_gain_db)(audio, sample_rate)


@dataclass(frozen=True)
class NoiseEstimate:
    """What :func:`estimate_noise` measured on a block.

    Attributes
    ----------
    snr_db : float, signal (speech) power over noise power across the block, in dB.
    noise_floor_dbfs : float, the noise RMS level in dBFS (a full-scale square wave is 0 dBFS,
        a full-scale sine -3 dBFS).
    confidence : float in [0, 1], how much to trust the estimate (low for short, silent or
        uniformly loud blocks).
    """

    snr_db: float
    noise_floor_dbfs: float
    confidence: float


#: Calibration of :func:`estimate_noise`: factor on the time-averaged tracked noise PSD. Without it
#: the tracker reads 1 dB low on white noise and the SNR of train/ speech + noise mixtures at
#: -5..25 dB came out 2 dB high (median); +1 dB fixes the first and halves the second.
_NOISE_BIAS = 10.0 ** 0.1


def estimate_noise(audio: np.ndarray, sample_rate: int) -> NoiseEstimate:
    """Estimate the noise floor and the speech-to-noise ratio of a block (cheap, for diagnosis).

    The block's periodogram (32 ms frames, 16 ms hop) runs through the same speech-presence-based
    noise tracker as the denoiser; the noise power is the time average of the tracked noise PSD
    summed over bins, the speech power the rest of the total power. Noise that fluctuates
    faster than about a second (music, babble bursts) is partly counted as signal.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32; channels are averaged.
    sample_rate : int, Hz.

    Returns
    -------
    NoiseEstimate

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> est = estimate_noise(0.01 * rng.standard_normal((1, 16000)), 16000)
    >>> round(est.noise_floor_dbfs)
    -40
    """
    audio = check_audio(audio, sample_rate)
    x = np.mean(audio, axis=0, dtype=np.float64)
    frame, hop = frame_sizes(sample_rate)
    hop *= 2
    if x.size < frame + 4 * hop:
        ms = float(np.mean(x * x)) if x.size else 0.0
        return NoiseEstimate(snr_db=0.0, noise_floor_dbfs=float(_power_db(ms)), confidence=0.0)
    window = np.hanning(frame + 2)[1:-1]
    frames = frame_signal(x, frame, hop) * window
    # scaled so that summing over bins gives the mean square of the frame (Parseval)
    spec = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    spec[:, 1:-1] *= 2.0
    spec /= frame * np.sum(window ** 2)
    total = float(np.mean(spec.sum(axis=1)))
    noise_psd = _track_noise(spec.T, hop / sample_rate).mean(axis=1) * _NOISE_BIAS
    noise = float(min(noise_psd.sum(), total))
    if total <= 1e-20:
        return NoiseEstimate(snr_db=0.0, noise_floor_dbfs=float(_power_db(total)), confidence=0.0)
    speech = max(total - noise, total * 1e-6)
    snr_db = float(10.0 * np.log10(speech / max(noise, 1e-30)))
    snr_db = float(np.clip(snr_db, -20.0, 80.0))
    # confidence: enough frames, and a clear gap between quiet and loud frames
    energy = spec.sum(axis=1)
    spread_db = 10.0 * np.log10(np.percentile(energy, 90) / max(np.percentile(energy, 10), 1e-30))
    confidence = min(x.size / (3.0 * sample_rate), 1.0) * float(np.clip(spread_db / 10.0, 0.2, 1.0))
    return NoiseEstimate(snr_db=snr_db, noise_floor_dbfs=float(_power_db(noise)),
                         confidence=float(round(confidence, 3)))


def _track_noise(power: np.ndarray, hop_s: float) -> np.ndarray:
    """The MMSE-SPP noise PSD track ``(bins, frames)`` of a periodogram ``(bins, frames)``."""
    xi_h1 = 10.0 ** (_XI_H1_DB / 10.0)
    slope = xi_h1 / (1.0 + xi_h1)
    alpha_n = _ALPHA_NOISE_REF ** (hop_s / _REF_HOP_S)
    alpha_p = _ALPHA_SPP_REF ** (hop_s / _REF_HOP_S)
    n_warm = max(int(np.ceil(_WARMUP_S / hop_s)), 1)
    power = power + _EPS
    noise = np.mean(power[:, :n_warm], axis=1)
    spp_smooth = np.zeros_like(noise)
    out = np.empty_like(power)
    for t in range(power.shape[1]):
        y = power[:, t]
        spp = 1.0 / (1.0 + (1.0 + xi_h1) * np.exp(-np.minimum(y / noise * slope, 500.0)))
        spp_smooth = alpha_p * spp_smooth + (1.0 - alpha_p) * spp
        spp = np.where(spp_smooth > 0.99, np.minimum(spp, 0.99), spp)
        noise = alpha_n * noise + (1.0 - alpha_n) * ((1.0 - spp) * y + spp * noise)
        out[:, t] = noise
    return out


def _power_db(mean_square: float) -> float:
    """Mean square to dBFS, where a full-scale square wave (mean square 1) is 0 dBFS."""
    return float(10.0 * np.log10(max(mean_square, 1e-20)))
