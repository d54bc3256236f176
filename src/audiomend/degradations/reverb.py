"""Reverberation: convolution with a recorded room impulse response or a simulated shoebox room.

Alignment: the output stays sample-aligned with the dry input. The RIR's direct path (the first
peak reaching half the RIR's largest magnitude, refined to the largest magnitude in the 1 ms that
follows) is put at lag 0 and scaled to +1, so the direct sound in the output has the dry signal's
timing, polarity and level; everything before the direct path (pre-delay, filter pre-ringing) is
kept as a non-causal part of the convolution, so nothing is lost. This is how ``eval/multi`` pairs
a reverberant file with its dry target.

Simulated rooms: pyroomacoustics' image-source model of a shoebox whose wall absorption gives
``rt60_s`` by Sabine's formula. Long reverberation needs image orders that cost seconds to
minutes, so the image-source model is run up to :data:`MAX_ISM_ORDER` and, when the room needs
more, its late part is replaced after the mixing time by exponentially decaying Gaussian noise
(from ``rng``) that falls 60 dB in ``rt60_s`` and starts at the image-source energy level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.signal import oaconvolve

from audiomend.degradations.base import Degradation, as_rng, check_range, prepare, register
from audiomend.dsp import check_audio
from audiomend.errors import BadAudioError, BadOptionError, MissingDependencyError

#: Speed of sound, m/s.
SPEED_OF_SOUND = 343.0
#: Highest image-source order simulated; later reflections come from the statistical tail.
MAX_ISM_ORDER = 30
#: Sources and microphones stay this far from the walls, m.
WALL_MARGIN_M = 0.5


def direct_path_index(rir: np.ndarray, sample_rate: int) -> int:
    """Index of the direct path in a 1-D RIR: the first sample reaching half the largest
    magnitude, moved to the largest magnitude within the following millisecond.

    >>> direct_path_index(np.array([0, 0.1, 0.6, 0.2, 0, 0, 0.9, 0]), 1000)
    2
    """
    mag = np.abs(np.asarray(rir, np.float64))
    if mag.size == 0 or mag.max() == 0:
        return 0
    first = int(np.argmax(mag >= 0.5 * mag.max()))
    window = max(round(0.001 * sample_rate), 1)
    return first + int(np.argmax(mag[first:first + window]))


@lru_cache(maxsize=32)
def _load_rir(path: str, sample_rate: int) -> NDArray[np.float32]:
    from audiomend.io import load

    audio, _ = load(path, sample_rate=sample_rate)
    if not np.any(audio[0]):
        raise BadAudioError(f"{path}: room impulse response is silent")
    out = audio[0].copy()
    out.setflags(write=False)
    return out


def load_rir(rir: str | os.PathLike | np.ndarray, sample_rate: int) -> NDArray[np.float32]:
    """A recorded RIR as 1-D float32 at ``sample_rate``: first channel of a file (resampled,
    cached), or of an array already at that rate.

    Raises
    ------
    BadAudioError
        Missing, undecodable, empty or silent RIR.
    """
    if isinstance(rir, (str, os.PathLike)):
        return _load_rir(str(rir), int(sample_rate))
    arr = check_audio(rir, sample_rate, name="rir")
    if arr.shape[-1] == 0 or not np.any(arr[0]):
        raise BadAudioError("rir array is empty or silent")
    return arr[0]


@lru_cache(maxsize=16)
def _image_source_rir(room: tuple[float, float, float], rt60_s: float, source: tuple[float, ...],
                      mic: tuple[float, ...], sample_rate: int) -> tuple[NDArray[np.float64], int]:
    try:
        import pyroomacoustics as pra
    except ImportError as e:
        raise MissingDependencyError(
            "simulated rooms need pyroomacoustics: pip install pyroomacoustics") from e
    try:
        absorption, order = pra.inverse_sabine(rt60_s, list(room))
    except ValueError:
        raise BadOptionError(f"rt60_s={rt60_s} is too short for a {room} m room; use a smaller "
                             f"room or a longer rt60_s") from None
    shoebox = pra.ShoeBox(list(room), fs=sample_rate, materials=pra.Material(absorption),
                          max_order=int(min(order, MAX_ISM_ORDER)))
    shoebox.add_source(list(source))
    shoebox.add_microphone(list(mic))
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], np.float64)
    rir.setflags(write=False)
    return rir, int(order)


def simulate_rir(sample_rate: int, *, rt60_s: float = 0.6, room_m: tuple[float, float, float] =
                 (6.0, 4.0, 3.0), rng: np.random.Generator | None = None) -> NDArray[np.float32]:
    """Impulse response of a shoebox room with random source and microphone positions.

    Parameters
    ----------
    sample_rate : int, Hz.
    rt60_s : float in 0.05..5, reverberation time (60 dB decay) in seconds.
    room_m : (length, width, height) in metres, each 1.5..50.
    rng : draws the positions (at least 0.5 m from walls, 1-3 m apart where the room allows)
        and the late-tail noise.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32], not yet aligned or normalised.
    """
    gen = as_rng(rng)
    room = tuple(check_range(v, "room_m", 1.5, 50.0) for v in room_m)
    if len(room) != 3:
        raise BadOptionError(f"room_m must be (length, width, height) in m, got {room_m!r}")
    rt60_s = check_range(rt60_s, "rt60_s", 0.05, 5.0)
    low = np.full(3, WALL_MARGIN_M)
    high = np.asarray(room) - WALL_MARGIN_M
    mic = gen.uniform(low, high)
    distance = gen.uniform(1.0, 3.0)
    direction = gen.standard_normal(3)
    direction[2] *= 0.2  # mostly horizontal
    direction /= np.linalg.norm(direction)
    source = np.clip(mic + distance * direction, low, high)
    rir, order = _image_source_rir(room, rt60_s, tuple(np.round(source, 4)), tuple(np.round(mic, 4)),
                                   int(sample_rate))
    rir = rir.copy()
    if order > MAX_ISM_ORDER:
        # The image-source part is complete up to about MAX_ISM_ORDER * min(room) / c; switch to
        # a statistical tail at half that time after the direct path.
        start = direct_path_index(rir, sample_rate)
        t_mix = 0.5 * MAX_ISM_ORDER * min(room) / SPEED_OF_SOUND
        mix = start + int(t_mix * sample_rate)
        length = start + int((t_mix + 1.2 * rt60_s) * sample_rate)
        win = max(int(0.02 * sample_rate), 1)
        if mix < rir.size:
            level = np.sqrt(np.mean(rir[max(mix - win, 0):mix] ** 2))
            t = np.arange(length - mix) / sample_rate
            tail = gen.standard_normal(length - mix) * level * np.exp(-3.0 * np.log(10) * t / rt60_s)
            rir = np.concatenate([rir[:mix], tail])
    return rir.astype(np.float32)


def reverberate(
    audio: np.ndarray,
    sample_rate: int,
    *,
    rir: str | os.PathLike | np.ndarray | None = None,
    rt60_s: float = 0.6,
    room_m: tuple[float, float, float] = (6.0, 4.0, 3.0),
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Convolve each channel with a room impulse response, keeping alignment with the dry input.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32 dry speech.
    sample_rate : int, Hz.
    rir : path, array [shape=(rir_channels, m) or (m,)] at ``sample_rate``, or None
        A recorded RIR (its first channel is used for every audio channel). None simulates a
        shoebox room from ``rt60_s`` and ``room_m`` (see :func:`simulate_rir`).
    rt60_s : float, seconds; only for simulated rooms.
    room_m : (length, width, height) in m; only for simulated rooms.
    rng : np.random.Generator or None (None = ``default_rng(0)``); only for simulated rooms.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]
        The reverberant signal with the direct path at lag 0 and gain +1 (see module docstring);
        the tail beyond the input's length is cut. Not rescaled: it is usually louder than the input.

    Raises
    ------
    BadOptionError
        ``rt60_s`` or ``room_m`` out of range. MissingDependencyError: no pyroomacoustics.
    BadAudioError
        The RIR file or array is missing, undecodable, empty or silent.

    Examples
    --------
    >>> x = np.zeros((1, 8), np.float32); x[0, 2] = 1.0
    >>> (reverberate(x, 8000, rir=np.array([0.0, 0.5, 1.0, 0.25])).round(3) + 0.0).tolist()
    [[0.0, 0.5, 1.0, 0.25, 0.0, 0.0, 0.0, 0.0]]
    """
    x = prepare(audio, sample_rate)
    if rir is None:
        response = simulate_rir(sample_rate, rt60_s=rt60_s, room_m=room_m, rng=rng)
    else:
        response = load_rir(rir, sample_rate)
    response = np.asarray(response, np.float64)
    lag = direct_path_index(response, sample_rate)
    response = response / response[lag]
    n = x.shape[-1]
    if n == 0:
        return x.copy()
    wet = oaconvolve(x.astype(np.float64), response[None, :], axes=-1)
    return wet[:, lag:lag + n].astype(np.float32)


@register
@dataclass(frozen=True)
class Reverberate(Degradation):
    """Parameters of :func:`reverberate`; ``rir`` is a file path (or None for a simulated room)."""

    name = "reverb"
    random = True
    rir: str | None = None
    rt60_s: float = 0.6
    room_m: tuple[float, float, float] = (6.0, 4.0, 3.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.rir, os.PathLike):  # keep the recipe JSON-serialisable
            object.__setattr__(self, "rir", os.fspath(self.rir))
        object.__setattr__(self, "room_m", tuple(self.room_m))

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return reverberate(audio, sample_rate, rir=self.rir, rt60_s=self.rt60_s,
                           room_m=tuple(self.room_m), rng=self.rng())
