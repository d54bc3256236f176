"""Neural denoising and dereverberation with audiomend's own network (ONNX, no torch).

The network predicts a gain per STFT bin on a 16 kHz grid (512-sample frames, 256-sample hop,
bins every 31.25 Hz up to 8 kHz; see docs/model.md). This stage runs it at the file's own rate
without resampling: the STFT frame is scaled with the rate so that it spans the same 32 ms and
its bins fall on (or are interpolated onto) the model's frequency grid. Above 8 kHz, which the
model does not see, each frame's gain is the mean of the model's gains between 6 and 8 kHz.
Channels share one gain (computed on the mean power), so a stereo image does not wobble.
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
    """Streams audio at any rate through the mask network, one ONNX call per block of frames."""

    def __init__(self, sample_rate: int, channels: int, *, strength: float,
                 attenuation_limit_db: float, model_name: str) -> None:
        self.model = load_model(model_name)
        info = self.model.info
        hop = max(round(info.hop_length * sample_rate / info.sample_rate), 1)
        frame = 2 * hop if info.frame_length == 2 * info.hop_length else \
            round(info.frame_length * sample_rate / info.sample_rate)
        super().__init__(channels, frame, hop)
        # to_model: (F_rate, F_model); from_model: (F_model, F_rate)
        self._to_model, self._from_model, self._above, self._upper = _frequency_maps(
            int(sample_rate), frame, info.sample_rate, info.frame_length, info.n_bins)
        # Magnitudes of the same sound scale with the frame length: bring them to the model's.
        self._scale = info.frame_length / frame
        self._floor = float(10.0 ** (-attenuation_limit_db / 20.0))
        self._strength = float(strength)
        self._state = self.model.initial_state()

    def process_spectrum(self, spectrum: np.ndarray) -> np.ndarray:
        if self._strength == 0.0:
            return spectrum
        power = np.mean(np.abs(spectrum) ** 2, axis=0).T                 # (T, F_rate)
        magnitude = np.sqrt(power) * self._scale
        model_magnitude = (magnitude @ self._to_model).astype(np.float32)  # (T, F_model)
        gains, self._state = self.model.run(model_magnitude, self._state)
        rate_gains = gains @ self._from_model                              # (T, F_rate)
        if self._above.any():
            rate_gains[:, self._above] = gains[:, self._upper].mean(axis=1, keepdims=True)
        rate_gains = np.maximum(rate_gains, self._floor) ** self._strength
        return spectrum * rate_gains.T[np.newaxis].astype(np.float32)


@register
@dataclass(frozen=True)
class Neural(Stage):
    """Denoise (and reduce late reverberation) with the shipped network. See :func:`neural`."""

    name = "neural"
    strength: float = 1.0
    attenuation_limit_db: float = 40.0
    model: str = DEFAULT_MODEL

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise BadOptionError(f"neural: strength must be in [0, 1], got {self.strength}")
        if self.attenuation_limit_db < 0:
            raise BadOptionError(f"neural: attenuation_limit_db must be >= 0, got {self.attenuation_limit_db}")

    def processor(self, sample_rate: int, channels: int) -> NeuralProcessor:
        return NeuralProcessor(sample_rate, channels, strength=self.strength,
                               attenuation_limit_db=self.attenuation_limit_db, model_name=self.model)


def neural(audio: np.ndarray, sample_rate: int, *, strength: float = 1.0,
           attenuation_limit_db: float = 40.0, model: str = DEFAULT_MODEL) -> NDArray[np.float32]:
    """Denoise speech with audiomend's network at any sample rate.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz (8-96 kHz; the model's band is 0-8 kHz, see the module docstring).
    strength : float in [0, 1]; 0 leaves the audio untouched, 1 applies the full gains
        (gains are raised to this power).
    attenuation_limit_db : float >= 0; no bin is attenuated by more than this.
    model : name of a shipped model in ``audiomend/model/weights``.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32], aligned with the input.
    """
    return Neural(strength=strength, attenuation_limit_db=attenuation_limit_db, model=model)(audio, sample_rate)
