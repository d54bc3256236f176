"""Additive noise at a target SNR: a recorded noise (file or array) or coloured noise.

SNR definition (``snr_reference``):

- ``"active"`` (default): speech power is measured on the clean channel's active frames only
  (20 ms frames within 40 dB of its loudest frame, see :func:`~audiomend.degradations.base.active_power`),
  so pauses do not lower the speech level; noise power is the mean power of the noise actually
  added, over the whole clip.
- ``"whole"``: both powers are plain means over the whole clip.

The noise is scaled per channel so that :func:`measure_snr` of (clean, added noise) equals the
requested ``snr_db`` (to float32 rounding).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from audiomend.degradations.base import (
    Degradation,
    active_power,
    as_rng,
    check_choice,
    check_range,
    prepare,
    register,
)
from audiomend.dsp import EPS, check_audio
from audiomend.errors import BadAudioError, BadOptionError

#: Spectral slope exponent per colour: power spectral density ~ 1 / f**alpha.
COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}

#: Coloured noise spectra are flat below this frequency (keeps brown noise from exploding at DC).
COLOR_FLOOR_HZ = 20.0

SNR_REFERENCES = ("active", "whole")


@lru_cache(maxsize=32)
def _load_noise(path: str, sample_rate: int) -> NDArray[np.float32]:
    from audiomend.io import load

    audio, _ = load(path, sample_rate=sample_rate)
    if not np.any(audio):
        raise BadAudioError(f"{path}: noise file is silent; it cannot set an SNR")
    audio.setflags(write=False)
    return audio


def load_noise(noise: str | os.PathLike | np.ndarray, sample_rate: int) -> NDArray[np.float32]:
    """Noise as float32 ``(channels, samples)`` at ``sample_rate``: a file (resampled, cached) or an
    array already at that rate.

    Raises
    ------
    BadAudioError
        Missing, undecodable, empty or silent noise.
    """
    if isinstance(noise, (str, os.PathLike)):
        return _load_noise(str(noise), int(sample_rate))
    arr = check_audio(noise, sample_rate, name="noise")
    if arr.shape[-1] == 0 or not np.any(arr):
        raise BadAudioError("noise array is empty or silent; it cannot set an SNR")
    return arr


def colored_noise(channels: int, samples: int, sample_rate: int, *, color: str = "white",
                  rng: np.random.Generator | None = None) -> NDArray[np.float32]:
    """Gaussian noise with a power spectrum ~ 1/f**alpha (white 0, pink 1, brown 2), unit RMS.

    Each channel is an independent draw from ``rng``.

    >>> n = colored_noise(2, 16000, 16000, color="pink", rng=np.random.default_rng(0))
    >>> n.shape, round(float(np.sqrt(np.mean(n[0] ** 2))), 3)
    ((2, 16000), 1.0)
    """
    check_choice(color, "color", COLORS)
    gen = as_rng(rng)
    white = gen.standard_normal((channels, samples))
    if samples == 0:
        return white.astype(np.float32)
    alpha = COLORS[color]
    if alpha:
        spec = np.fft.rfft(white, axis=-1)
        freqs = np.maximum(np.fft.rfftfreq(samples, 1.0 / sample_rate), COLOR_FLOOR_HZ)
        spec *= freqs ** (-alpha / 2.0)
        spec[:, 0] = 0.0
        white = np.fft.irfft(spec, samples, axis=-1)
    white -= white.mean(axis=-1, keepdims=True) if samples > 1 else 0.0
    level = np.sqrt(np.mean(white**2, axis=-1, keepdims=True))
    return (white / np.maximum(level, EPS)).astype(np.float32)


def speech_power(audio: np.ndarray, sample_rate: int, snr_reference: str = "active") -> np.ndarray:
    """Per-channel speech power used as the SNR reference (linear)."""
    check_choice(snr_reference, "snr_reference", SNR_REFERENCES)
    if snr_reference == "active":
        return active_power(audio, sample_rate)
    return np.mean(np.square(audio, dtype=np.float64), axis=-1) if audio.shape[-1] else \
        np.zeros(audio.shape[0])


def measure_snr(clean: np.ndarray, noise: np.ndarray, sample_rate: int, *,
                snr_reference: str = "active") -> NDArray[np.float64]:
    """SNR in dB per channel of ``clean + noise``, as :func:`add_noise` defines it.

    Parameters
    ----------
    clean, noise : np.ndarray [shape=(channels, samples)], the two parts of a mix.
    snr_reference : "active" or "whole" (see the module docstring).

    >>> t = np.arange(16000) / 16000
    >>> s = np.sin(2 * np.pi * 440 * t)[None].astype(np.float32)
    >>> float(np.round(measure_snr(s, 0.1 * s, 16000), 2)[0])
    20.0
    """
    clean = np.atleast_2d(np.asarray(clean, np.float64))
    noise = np.atleast_2d(np.asarray(noise, np.float64))
    ps = speech_power(clean, sample_rate, snr_reference)
    pn = np.mean(noise**2, axis=-1) if noise.shape[-1] else np.zeros(noise.shape[0])
    return 10.0 * np.log10(np.maximum(ps, EPS**2) / np.maximum(pn, EPS**2))


def add_noise(
    audio: np.ndarray,
    sample_rate: int,
    *,
    snr_db: float = 10.0,
    noise: str | os.PathLike | np.ndarray | None = None,
    color: str = "white",
    offset: int | None = None,
    snr_reference: str = "active",
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Add noise at ``snr_db`` to each channel.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32 clean speech.
    sample_rate : int, Hz.
    snr_db : float in -50..100, target SNR in dB (definition: ``snr_reference``).
    noise : path, array [shape=(noise_channels, m)] at ``sample_rate``, or None
        A recorded noise, looped to cover the clip. None: Gaussian noise of ``color``.
    color : "white", "pink" or "brown"; used only when ``noise`` is None.
    offset : int >= 0 or None
        Start sample in the recorded noise (modulo its length). None draws it from ``rng``.
        Channel ``c`` of a stereo clip reads from ``offset + c * m // channels`` when the noise is
        mono, so channels get decorrelated noise from the same recording.
    snr_reference : "active" (speech power over active frames) or "whole" (over the whole clip).
    rng : np.random.Generator or None (None = ``default_rng(0)``).

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]
        ``audio + g * noise``; not rescaled, so it may exceed full scale at low SNR. A silent
        channel is returned unchanged (no speech level to refer the SNR to).

    Raises
    ------
    BadOptionError
        ``snr_db`` out of range, unknown ``color`` or ``snr_reference``, negative ``offset``.
    BadAudioError
        The noise file or array is missing, undecodable, empty or silent.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = (0.1 * rng.standard_normal((1, 8000))).astype(np.float32)
    >>> y = add_noise(x, 8000, snr_db=5.0, color="pink", rng=rng)
    >>> float(np.round(measure_snr(x, y - x, 8000), 1)[0])
    5.0
    """
    x = prepare(audio, sample_rate)
    snr_db = check_range(snr_db, "snr_db", -50.0, 100.0)
    check_choice(snr_reference, "snr_reference", SNR_REFERENCES)
    if offset is not None and (int(offset) != offset or offset < 0):
        raise BadOptionError(f"offset={offset!r} must be a whole number of samples >= 0")
    if noise is None:
        check_choice(color, "color", COLORS)
    gen = as_rng(rng)
    channels, n = x.shape
    if noise is None:
        segment = colored_noise(channels, n, sample_rate, color=color, rng=gen).astype(np.float64)
    else:
        source = load_noise(noise, sample_rate)
        m = source.shape[-1]
        start = int(offset) if offset is not None else int(gen.integers(m))
        chans = np.arange(channels)
        shift = chans * (m // channels) if source.shape[0] == 1 else np.zeros(channels, int)
        index = (start + shift[:, None] + np.arange(n)[None, :]) % m
        segment = np.take_along_axis(source[chans % source.shape[0]], index, axis=-1)
        segment = segment.astype(np.float64)
    if n == 0:
        return x.copy()
    ps = speech_power(x, sample_rate, snr_reference)
    pn = np.mean(segment**2, axis=-1)
    ok = (ps > 0) & (pn > 0)
    gain = np.where(ok, np.sqrt(ps / np.where(ok, pn, 1.0) / 10.0 ** (snr_db / 10.0)), 0.0)
    return (x + gain[:, None] * segment).astype(np.float32)


@register
@dataclass(frozen=True)
class AddNoise(Degradation):
    """Parameters of :func:`add_noise`; ``noise`` is a file path (or None for coloured noise)."""

    name = "noise"
    random = True
    independent_channels = True
    snr_db: float = 10.0
    noise: str | None = None
    color: str = "white"
    offset: int | None = None
    snr_reference: str = "active"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.noise, os.PathLike):  # keep the recipe JSON-serialisable
            object.__setattr__(self, "noise", os.fspath(self.noise))

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return add_noise(audio, sample_rate, snr_db=self.snr_db, noise=self.noise, color=self.color,
                         offset=self.offset, snr_reference=self.snr_reference, rng=self.rng())
