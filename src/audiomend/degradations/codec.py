"""Lossy coding: MP3 encode (LAME, through ``lameenc``) and decode (libsndfile), kept aligned.

Each channel is coded as its own mono stream. The codec delay (encoder + decoder, usually 1105
samples, different when LAME resamples internally at low bitrates) is measured once per
(rate, bitrate) by cross-correlating a calibration noise burst through the same path, and removed,
so the output is as long as the input and aligned with it. Rates MP3 cannot carry are resampled
to the nearest MP3 rate and back.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from audiomend.degradations.base import Degradation, check_choice, fit_length, prepare, register
from audiomend.dsp import resample
from audiomend.errors import MissingDependencyError

#: Sample rates MPEG-1/2/2.5 layer III can carry, Hz.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
#: Bitrates LAME accepts for constant-bitrate coding, kbit/s.
MP3_BITRATES = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)


def _code(x: np.ndarray, rate: int, bitrate_kbps: int) -> NDArray[np.float32]:
    """Encode + decode one mono channel (1-D, at an MP3 rate); the raw decoded samples at ``rate``."""
    try:
        import lameenc
    except ImportError as e:
        raise MissingDependencyError("MP3 coding needs lameenc: pip install lameenc") from e
    import soundfile as sf

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(int(bitrate_kbps))
    encoder.set_in_sample_rate(int(rate))
    encoder.set_channels(1)
    encoder.set_quality(2)
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    data = bytes(encoder.encode(pcm)) + bytes(encoder.flush())
    if not data:
        return np.zeros(0, np.float32)
    decoded, decoded_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return resample(decoded.T, decoded_rate, rate)[0]


@lru_cache(maxsize=64)
def codec_delay(rate: int, bitrate_kbps: int) -> int:
    """Delay in samples at ``rate`` of MP3 encode + decode, measured by cross-correlation."""
    gen = np.random.default_rng(1234)
    n = rate // 2
    probe = np.zeros(n)
    probe[n // 4: n // 4 + n // 4] = 0.3 * gen.standard_normal(n // 4)
    probe = signal.sosfiltfilt(signal.butter(4, min(2000.0, 0.2 * rate), fs=rate, output="sos"),
                               probe)
    out = _code(probe.astype(np.float32), rate, bitrate_kbps)
    corr = signal.correlate(out.astype(np.float64), probe, mode="full", method="fft")
    return int(np.argmax(corr)) - (n - 1)


def mp3(
    audio: np.ndarray,
    sample_rate: int,
    *,
    bitrate_kbps: int = 32,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Code each channel as constant-bitrate MP3 and decode it back, aligned and same length.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32; values beyond +-1 are clipped
        (16-bit PCM goes into the encoder).
    sample_rate : int, Hz.
    bitrate_kbps : int, one of :data:`MP3_BITRATES`. Low bitrates make LAME low-pass and, at high
        rates, resample internally (e.g. 48 kHz at 32 kbit/s is coded at 22.05 kHz).
    rng : unused (LAME is deterministic); accepted so every damage has the same signature.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32], aligned with the input.

    Raises
    ------
    BadOptionError
        ``bitrate_kbps`` not an MP3 bitrate. MissingDependencyError: no ``lameenc``.

    Examples
    --------
    >>> t = np.arange(8000) / 16000
    >>> x = (0.5 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)
    >>> y = mp3(x, 16000, bitrate_kbps=64)
    >>> y.shape, bool(np.mean((y - x)[:, 1000:-1000] ** 2) < 1e-2 * np.mean(x ** 2))
    ((1, 8000), True)
    """
    x = prepare(audio, sample_rate)
    check_choice(bitrate_kbps, "bitrate_kbps", MP3_BITRATES)
    n = x.shape[-1]
    if n == 0:
        return x.copy()
    rate = min(MP3_RATES, key=lambda r: (abs(r - sample_rate), -r))
    work = resample(x, sample_rate, rate)
    lag = codec_delay(rate, int(bitrate_kbps))
    coded = np.stack([  # one mono stream per channel, its codec delay removed
        fit_length(_code(channel, rate, int(bitrate_kbps))[max(lag, 0):], work.shape[-1])
        for channel in work])
    return fit_length(resample(coded, rate, sample_rate), n)


@register
@dataclass(frozen=True)
class Mp3(Degradation):
    """Parameters of :func:`mp3`."""

    name = "mp3"
    bitrate_kbps: int = 32

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return mp3(audio, sample_rate, bitrate_kbps=self.bitrate_kbps)
