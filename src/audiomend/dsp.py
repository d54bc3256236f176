"""Small numeric helpers shared by several modules: validation, levels in dB, resampling, framing.

Audio everywhere is ``float32`` with shape ``(channels, samples)``; ``sample_rate`` is in Hz.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from audiomend.errors import BadAudioError, BadOptionError

#: Lowest and highest sample rates we accept, in Hz. Outside this range a file is almost surely
#: corrupt (a header that says 0 Hz or 4 GHz), not an exotic recording.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000

#: A floor that keeps logarithms finite: -200 dB of full scale.
EPS = 1e-10


def check_sample_rate(sample_rate: int, *, name: str = "audio") -> int:
    """Return ``sample_rate`` as int, or raise BadAudioError if it is not a plausible rate in Hz.

    >>> check_sample_rate(16000)
    16000
    """
    if isinstance(sample_rate, bool) or not float(sample_rate).is_integer():
        raise BadAudioError(f"{name}: sample rate must be a whole number of Hz, got {sample_rate!r}")
    rate = int(sample_rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise BadAudioError(
            f"{name}: sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    return rate


def check_audio(audio: np.ndarray, sample_rate: int, *, name: str = "audio") -> NDArray[np.float32]:
    """Validate audio at a public boundary and return it as float32 ``(channels, samples)``.

    Accepts 1-D mono (made ``(1, n)``). Refuses 0 channels, more than 64 channels (almost surely a
    transposed ``(samples, channels)`` array), non-finite values and implausible rates.

    >>> check_audio(np.zeros(4), 16000).shape
    (1, 4)
    """
    check_sample_rate(sample_rate, name=name)
    arr = np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise BadAudioError(f"{name}: audio must have shape (channels, samples), got {arr.shape}")
    if arr.shape[0] == 0:
        raise BadAudioError(f"{name}: audio has 0 channels")
    if arr.shape[0] > 64 and arr.shape[1] <= 64:
        raise BadAudioError(
            f"{name}: shape {arr.shape} looks like (samples, channels); pass audio.T"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise BadAudioError(f"{name}: audio must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        raise BadAudioError(f"{name}: {bad} samples are NaN or infinite")
    return arr


def db_to_amplitude(db: float | np.ndarray) -> float | np.ndarray:
    """Convert decibels to an amplitude ratio. ``db_to_amplitude(-6.0206)`` is about 0.5."""
    return 10.0 ** (np.asarray(db) / 20.0) if np.ndim(db) else 10.0 ** (db / 20.0)


def amplitude_to_db(amplitude: float | np.ndarray) -> float | np.ndarray:
    """Convert an amplitude ratio to decibels, floored at -200 dB."""
    out = 20.0 * np.log10(np.maximum(np.abs(amplitude), EPS))
    return float(out) if np.ndim(out) == 0 else out


def power_to_db(power: float | np.ndarray) -> float | np.ndarray:
    """Convert a power ratio to decibels, floored at -200 dB."""
    out = 10.0 * np.log10(np.maximum(power, EPS**2))
    return float(out) if np.ndim(out) == 0 else out


def rms(audio: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Root mean square; 0 for empty input."""
    if np.size(audio) == 0:
        return 0.0
    return np.sqrt(np.mean(np.square(audio, dtype=np.float64), axis=axis))


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> NDArray[np.float32]:
    """Resample ``(channels, samples)`` audio with soxr (high quality); same length in seconds.

    The output has ``round(samples * target_rate / orig_rate)`` samples, aligned with the input
    (soxr's one-shot API compensates its own delay).

    >>> resample(np.zeros((2, 16000), np.float32), 16000, 48000).shape
    (2, 48000)
    """
    orig_rate, target_rate = int(orig_rate), int(target_rate)
    audio = np.asarray(audio, dtype=np.float32)
    if orig_rate == target_rate:
        return audio
    if orig_rate <= 0 or target_rate <= 0:
        raise BadOptionError(f"cannot resample from {orig_rate} Hz to {target_rate} Hz")
    import soxr

    if audio.shape[-1] == 0:
        n = 0
        return np.zeros((audio.shape[0], n), np.float32)
    out = soxr.resample(audio.T, orig_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def fractional_delay(audio: np.ndarray, delay_samples: float) -> NDArray[np.float32]:
    """Delay ``(channels, samples)`` audio by a possibly fractional number of samples.

    Positive delays shift later (zeros enter at the start), negative shift earlier; the length is
    kept. Integer delays are exact; fractional ones use an FFT phase ramp on a zero-padded copy,
    so there is no wrap-around.

    >>> fractional_delay(np.array([[1.0, 0, 0, 0]], np.float32), 2).tolist()
    [[0.0, 0.0, 1.0, 0.0]]
    """
    audio = np.asarray(audio, dtype=np.float32)
    n = audio.shape[-1]
    if n == 0:
        return audio.copy()
    whole = int(np.round(delay_samples))
    if abs(delay_samples - whole) < 1e-9:
        out = np.zeros_like(audio)
        if whole >= 0:
            out[..., whole:] = audio[..., : max(n - whole, 0)]
        else:
            out[..., : max(n + whole, 0)] = audio[..., -whole:]
        return out
    pad = int(np.ceil(abs(delay_samples))) + 64
    size = 1 << int(np.ceil(np.log2(n + 2 * pad)))
    spec = np.fft.rfft(audio, size, axis=-1)
    freqs = np.fft.rfftfreq(size)
    spec *= np.exp(-2j * np.pi * freqs * delay_samples)
    return np.fft.irfft(spec, size, axis=-1)[..., :n].astype(np.float32)


def frame_signal(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Frame the last axis into ``(..., n_frames, frame_length)`` views, dropping a partial tail."""
    from numpy.lib.stride_tricks import sliding_window_view

    if x.shape[-1] < frame_length:
        return np.zeros(x.shape[:-1] + (0, frame_length), dtype=x.dtype)
    return sliding_window_view(x, frame_length, axis=-1)[..., ::hop_length, :]
