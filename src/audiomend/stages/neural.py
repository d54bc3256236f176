"""Neural denoising and dereverberation with audiomend's own network (ONNX, no torch).

The network predicts a gain per STFT bin on a 16 kHz grid (512-sample frames, 256-sample hop,
bins every 31.25 Hz up to 8 kHz; see docs/model.md). This stage runs it at the file's own rate
without resampling: the STFT frame is scaled with the rate so that it spans the same 32 ms and
its bins fall on (or are interpolated onto) the model's frequency grid. Above 8 kHz, which the
model does not see, each frame's gain is the mean of the model's gains between 6 and 8 kHz.
Channels share one gain (computed on the mean power), so a stereo image does not wobble.

The network's input normalisation is fixed and it was trained on speech at -45..-15 dBFS, so it
reacts to the level: far too quiet speech over a noise floor went through untouched. The stage
therefore lets the network hear the input ``input_gain_db`` louder (a constant per file, so
streaming stays exact); the gains apply to the original spectrum. The planner sets it with
:func:`input_gain_for_loudness` from the diagnosed loudness. Combining the network's gain with
the classical MMSE-LSA gain was measured and not adopted (benchmarks/denoise_dev.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from audiomend.errors import BadOptionError
from audiomend.model.runtime import DEFAULT_MODEL, load_model
from audiomend.stages.base import Stage, register
from audiomend.stream import SpectralProcessor

#: Above the model's band, copy the mean gain of this band (Hz).
UPPER_BAND_HZ = (6000.0, 8000.0)

#: The network was trained on speech at -45..-15 dBFS active level (about the same in LUFS) and
#: its input normalisation is fixed, so it reacts to the level. :func:`input_gain_for_loudness` brings a
#: recording's loudness into this window before the network hears it.
#: The low edge is the level the network's fixed normalisation was centred on (-26 dBFS) and the
#: high edge sits just below the training range's top. On the dev corpus (too-quiet speech with a
#: -85 dBFS floor, PESQ-WB of the first shipped network alone): input heard at -40 LUFS 2.31,
#: -30 2.72, -26 2.89, -23 3.01, -18 3.14 (unprocessed 2.16); clean speech heard 6 dB louder
#: than its -26 LUFS loses 0.04 PESQ (benchmarks/denoise_dev.py). The wider network at -26:
#: 2.99.
INPUT_WINDOW_LUFS = (-26.0, -16.0)


def input_gain_for_loudness(loudness_lufs: float, *, window_lufs: tuple[float, float] = INPUT_WINDOW_LUFS) -> float:
    """The gain in dB that brings ``loudness_lufs`` into ``window_lufs`` (0 inside it or unknown).

    The network hears its input this much louder; its gains are applied to the original
    spectrum, so the output level does not change.

    >>> [input_gain_for_loudness(x) for x in (-56.0, -26.0, -20.0, -10.0, float("-inf"))]
    [30.0, 0.0, 0.0, -6.0, 0.0]
    """
    if not np.isfinite(loudness_lufs):
        return 0.0
    low, high = window_lufs
    return float(np.clip(loudness_lufs, low, high) - loudness_lufs)


def _interpolation_matrix(source_hz: np.ndarray, target_hz: np.ndarray) -> NDArray[np.float32]:
    """Matrix ``(len(source), len(target))`` that linearly interpolates rows sampled at
    ``source_hz`` onto ``target_hz`` (targets beyond the source range get zero weight)."""
    matrix = np.zeros((len(source_hz), len(target_hz)), np.float32)
    inside = target_hz <= source_hz[-1] + 1e-6
    columns = np.flatnonzero(inside)
    k = np.clip(np.searchsorted(source_hz, target_hz[inside]) - 1, 0, len(source_hz) - 2)
    t = np.clip((target_hz[inside] - source_hz[k]) / (source_hz[k + 1] - source_hz[k]), 0.0, 1.0)
    np.add.at(matrix, (k, columns), 1 - t)
    np.add.at(matrix, (k + 1, columns), t)
    return matrix


@lru_cache(maxsize=16)
def _frequency_maps(sample_rate: int, frame: int, model_rate: int, model_frame: int,
                    n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Interpolation matrices rate->model and model->rate, and masks of the rate bins above the
    model's band and of the model bins in :data:`UPPER_BAND_HZ` (cached: built once per rate)."""
    rate_hz = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    model_hz = np.arange(n_bins) * model_rate / model_frame
    upper = (model_hz >= UPPER_BAND_HZ[0]) & (model_hz <= UPPER_BAND_HZ[1])
    return (_interpolation_matrix(rate_hz, model_hz), _interpolation_matrix(model_hz, rate_hz),
            rate_hz > model_hz[-1] + 1e-6, upper)


class NeuralProcessor(SpectralProcessor):
    """Streams audio at any rate through the mask network, one ONNX call per block of frames.

    ``input_gain_db`` scales the magnitudes the network hears (a constant per stream, so the
    output still does not depend on block sizes); its gains apply to the original spectrum.
    """

    def __init__(self, sample_rate: int, channels: int, *, strength: float,
                 attenuation_limit_db: float, model_name: str, input_gain_db: float = 0.0) -> None:
        self.model = load_model(model_name)
        info = self.model.info
        hop = max(round(info.hop_length * sample_rate / info.sample_rate), 1)
        frame = 2 * hop if info.frame_length == 2 * info.hop_length else \
            round(info.frame_length * sample_rate / info.sample_rate)
        super().__init__(channels, frame, hop)
        # to_model: (F_rate, F_model); from_model: (F_model, F_rate)
        self._to_model, self._from_model, self._above, self._upper = _frequency_maps(
            int(sample_rate), frame, info.sample_rate, info.frame_length, info.n_bins)
        # Magnitudes of the same sound scale with the frame length: bring them to the model's,
        # and to the level the network should hear.
        self._scale = info.frame_length / frame * float(10.0 ** (input_gain_db / 20.0))
        self._floor = float(10.0 ** (-attenuation_limit_db / 20.0))
        self._strength = float(strength)
        self._state = self.model.initial_state()

    def gains(self, power: np.ndarray) -> NDArray[np.float32]:
        """The network's gains ``(T, F_rate)`` for the channel-mean power ``(T, F_rate)`` of the
        next frames (advances the recurrent state); before the floor and the strength."""
        magnitude = np.sqrt(power) * self._scale
        model_magnitude = (magnitude @ self._to_model).astype(np.float32)  # (T, F_model)
        gains, self._state = self.model.run(model_magnitude, self._state)
        rate_gains = gains @ self._from_model                              # (T, F_rate)
        if self._above.any():
            rate_gains[:, self._above] = gains[:, self._upper].mean(axis=1, keepdims=True)
        return rate_gains

    def process_spectrum(self, spectrum: np.ndarray) -> np.ndarray:
        if self._strength == 0.0:
            return spectrum
        power = np.mean(np.abs(spectrum) ** 2, axis=0).T                 # (T, F_rate)
        rate_gains = np.maximum(self.gains(power), self._floor) ** self._strength
        return spectrum * rate_gains.T[np.newaxis].astype(np.float32)


@register
@dataclass(frozen=True)
class Neural(Stage):
    """Denoise (and reduce late reverberation) with the shipped network. See :func:`neural`."""

    name = "neural"
    strength: float = 1.0
    attenuation_limit_db: float = 40.0
    model: str = DEFAULT_MODEL
    input_gain_db: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise BadOptionError(f"neural: strength must be in [0, 1], got {self.strength}")
        if self.attenuation_limit_db < 0:
            raise BadOptionError(f"neural: attenuation_limit_db must be >= 0, got {self.attenuation_limit_db}")
        check_input_gain("neural", self.input_gain_db)

    def processor(self, sample_rate: int, channels: int) -> NeuralProcessor:
        return NeuralProcessor(sample_rate, channels, strength=self.strength,
                               attenuation_limit_db=self.attenuation_limit_db, model_name=self.model,
                               input_gain_db=self.input_gain_db)


def check_input_gain(stage: str, input_gain_db: float) -> None:
    """Refuse an input gain that is not a finite number of dB within +-80 (BadOptionError)."""
    if not (np.isfinite(input_gain_db) and abs(float(input_gain_db)) <= 80.0):
        raise BadOptionError(f"{stage}: input_gain_db must be in [-80, 80] dB, got {input_gain_db}")


def neural(audio: np.ndarray, sample_rate: int, *, strength: float = 1.0,
           attenuation_limit_db: float = 40.0, model: str = DEFAULT_MODEL,
           input_gain_db: float = 0.0) -> NDArray[np.float32]:
    """Denoise speech with audiomend's network at any sample rate.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz (8-96 kHz; the model's band is 0-8 kHz, see the module docstring).
    strength : float in [0, 1]; 0 leaves the audio untouched, 1 applies the full gains
        (gains are raised to this power).
    attenuation_limit_db : float >= 0; no bin is attenuated by more than this.
    model : name of a shipped model in ``audiomend/model/weights``.
    input_gain_db : float in [-80, 80], dB; the network hears the input this much louder (its
        gains still apply to the input as it is, so the output level does not change). The
        network was trained on speech at -45..-15 dBFS and reacts to the level: use
        :func:`input_gain_for_loudness` of the recording's loudness (the planner does).

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32], aligned with the input.

    Raises
    ------
    BadOptionError
        A parameter out of range or an unknown model.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = 0.003 * rng.standard_normal((1, 16000)).astype(np.float32)   # a quiet noise floor
    >>> y = neural(x, 16000, input_gain_db=input_gain_for_loudness(-56.0))
    >>> y.shape, bool(np.std(y[:, 4000:]) < 0.5 * np.std(x[:, 4000:]))
    ((1, 16000), True)
    """
    return Neural(strength=strength, attenuation_limit_db=attenuation_limit_db, model=model,
                  input_gain_db=input_gain_db)(audio, sample_rate)
