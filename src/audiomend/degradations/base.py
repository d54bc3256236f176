"""The Degradation interface, the registry of damages, and helpers the damage modules share.

A damage module holds two things (see ``degradations/clipping.py`` for the pattern):

- the pure function ``name(audio, sample_rate, *, params..., rng=None)`` that does the work on a
  whole ``(channels, samples)`` float32 array and returns an array of the same shape;
- a frozen dataclass :class:`Degradation` subclass registered with :func:`register`, whose fields
  are the function's keyword parameters with the same defaults (plus ``seed`` where the damage is
  random), and whose ``__call__`` calls that function.

Every damage keeps the number of channels and the length (a delay too: it shifts within the same
length), handles silence, one-sample and empty inputs, and treats each channel with the same
parameters.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from audiomend.dsp import check_audio
from audiomend.errors import BadOptionError

#: Every registered damage class by name, in registration order.
DEGRADATIONS: dict[str, type[Degradation]] = {}

D = TypeVar("D", bound=type)

#: Frame length (s) and threshold (dB below the loudest frame) of the active-speech detector used
#: for levels relative to speech (noise SNR, hum level).
ACTIVE_FRAME_S = 0.02
ACTIVE_RANGE_DB = 40.0


def register(cls: D) -> D:
    """Class decorator: add a Degradation subclass to :data:`DEGRADATIONS` under its ``name``."""
    name = cls.name  # type: ignore[attr-defined]
    if not name:
        raise ValueError(f"{cls.__name__} has no name")
    if name in DEGRADATIONS and DEGRADATIONS[name] is not cls:
        raise ValueError(f"degradation {name!r} registered twice")
    DEGRADATIONS[name] = cls  # type: ignore[assignment]
    return cls


@dataclass(frozen=True)
class Degradation:
    """A damage with concrete parameters. Subclasses are frozen, JSON-serialisable dataclasses.

    Class attributes
    ----------------
    name : key in :data:`DEGRADATIONS`.
    random : the damage draws random numbers (from ``seed``).
    independent_channels : channels get different random draws (e.g. decorrelated noise), so a
        stereo result differs from running each channel alone with the same seed.
    """

    name: ClassVar[str] = ""
    random: ClassVar[bool] = False
    independent_channels: ClassVar[bool] = False

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        """Damage ``audio`` ``(channels, samples)`` at ``sample_rate`` Hz; same shape back."""
        raise NotImplementedError

    def rng(self) -> np.random.Generator:
        """A fresh generator from this damage's ``seed`` (0 for damages without one)."""
        return np.random.default_rng(getattr(self, "seed", 0))

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}``, JSON-serialisable (tuples become lists)."""
        return json.loads(json.dumps({"name": self.name, **dataclasses.asdict(self)}))

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Degradation:
        """Rebuild a damage from :meth:`to_dict` output.

        Raises
        ------
        BadOptionError
            Unknown damage name or parameter.
        """
        data = dict(data)
        name = data.pop("name", None)
        if name not in DEGRADATIONS:
            raise BadOptionError(f"unknown degradation {name!r}; known: {', '.join(DEGRADATIONS)}")
        cls = DEGRADATIONS[name]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise BadOptionError(f"degradation {name!r} has no parameter(s) {', '.join(unknown)}; "
                                 f"it takes {', '.join(fields) or 'none'}")
        for key, value in data.items():  # JSON turns tuples into lists; fields hold tuples
            if isinstance(value, list):
                data[key] = tuple(value)
        return cls(**data)


def prepare(audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
    """Validate at a damage's public boundary: float32 ``(channels, samples)``, a copy-safe view."""
    return check_audio(audio, sample_rate)


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``None`` -> ``default_rng(0)`` (deterministic), an int -> ``default_rng(int)``."""
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise BadOptionError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def active_power(audio: np.ndarray, sample_rate: int) -> NDArray[np.float64]:
    """Mean power per channel over its active frames (speech level), 0 for silent channels.

    Frames of :data:`ACTIVE_FRAME_S` seconds whose power is within :data:`ACTIVE_RANGE_DB` dB of
    the channel's loudest frame are active; the last partial frame counts as a frame. This is a
    simple stand-in for ITU-T P.56 active speech level: pauses do not dilute the level.

    Returns
    -------
    power : np.ndarray [shape=(channels,), dtype=float64], linear (not dB).

    >>> x = np.zeros((1, 16000), np.float32); x[0, :8000] = 0.5
    >>> float(active_power(x, 16000)[0])
    0.25
    """
    audio = np.asarray(audio)
    n = audio.shape[-1]
    if n == 0:
        return np.zeros(audio.shape[0])
    frame = max(round(ACTIVE_FRAME_S * sample_rate), 1)
    n_frames = -(-n // frame)
    padded = np.zeros((audio.shape[0], n_frames * frame), np.float64)
    padded[:, :n] = audio
    energy = np.square(padded).reshape(audio.shape[0], n_frames, frame).sum(axis=-1)
    counts = np.full(n_frames, frame, np.float64)
    counts[-1] = n - (n_frames - 1) * frame
    power = energy / counts
    loudest = power.max(axis=-1, keepdims=True)
    active = (power >= loudest * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)) & (loudest > 0)
    total = (energy * active).sum(axis=-1)
    samples = (counts * active).sum(axis=-1)
    return np.where(samples > 0, total / np.maximum(samples, 1), 0.0)


def check_range(value: float, name: str, low: float | None = None, high: float | None = None,
                *, inclusive: bool = True) -> float:
    """Raise BadOptionError unless ``low <= value <= high`` (finite); return it as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BadOptionError(f"{name} must be a number, got {value!r}") from None
    ok = np.isfinite(v)
    if low is not None:
        ok = ok and (v >= low if inclusive else v > low)
    if high is not None:
        ok = ok and (v <= high if inclusive else v < high)
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise BadOptionError(f"{name}={value!r} is outside {lo}..{hi}")
    return v


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> None:
    """Raise BadOptionError unless ``value`` is one of ``choices`` (the message lists them).

    >>> check_choice("pink", "color", ("white", "pink"))
    >>> check_choice("blue", "color", ("white", "pink"))
    Traceback (most recent call last):
    ...
    audiomend.errors.BadOptionError: color='blue'; choose one of white, pink
    """
    if value not in choices:
        raise BadOptionError(f"{name}={value!r}; choose one of {', '.join(map(str, choices))}")


def fit_length(audio: np.ndarray, samples: int) -> NDArray[np.float32]:
    """``audio`` cut, or zero-padded at the end, to ``samples`` along its last axis, as float32.

    For a damage that runs through a resampler or a codec and must come back as long as its
    input.

    >>> fit_length(np.ones((1, 3), np.float32), 5).tolist(), fit_length(np.ones(4), 2).tolist()
    ([[1.0, 1.0, 1.0, 0.0, 0.0]], [1.0, 1.0])
    """
    out = np.zeros(audio.shape[:-1] + (samples,), np.float32)
    kept = min(samples, audio.shape[-1])
    out[..., :kept] = audio[..., :kept]
    return out
