"""The Stage interface and the registry of restoration stages.

A stage module holds three things (see ``stages/declip.py`` for the pattern):

- a :class:`~audiomend.stream.Processor` subclass that does the work block by block;
- a frozen dataclass ``Stage`` subclass with concrete parameters (JSON-serialisable), registered
  with :func:`register`, whose :meth:`Stage.processor` builds that processor;
- the pure function ``name(audio, sample_rate, *, params)`` that runs the stage on a whole array,
  with keyword defaults equal to the dataclass field defaults (a test checks this).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from audiomend.dsp import check_audio
from audiomend.errors import BadOptionError
from audiomend.stream import Processor

#: Every registered stage class by name, in registration order.
STAGES: dict[str, type[Stage]] = {}

S = TypeVar("S", bound=type)


def register(cls: S) -> S:
    """Class decorator: add a Stage subclass to :data:`STAGES` under its ``name``."""
    name = cls.name  # type: ignore[attr-defined]
    if not name:
        raise ValueError(f"{cls.__name__} has no name")
    if name in STAGES and STAGES[name] is not cls:
        raise ValueError(f"stage {name!r} registered twice")
    STAGES[name] = cls  # type: ignore[assignment]
    return cls


@dataclass(frozen=True)
class Stage:
    """A restoration stage with concrete parameters. Subclasses are frozen dataclasses."""

    name: ClassVar[str] = ""

    def processor(self, sample_rate: int, channels: int) -> Processor:
        """A fresh streaming processor for audio at ``sample_rate`` Hz with ``channels`` channels."""
        raise NotImplementedError

    def output_rate(self, sample_rate: int) -> int:
        """The sample rate this stage outputs for an input at ``sample_rate`` (usually the same)."""
        return sample_rate

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        """Run the stage on a whole array ``(channels, samples)``; same shape back."""
        audio = check_audio(audio, sample_rate)
        return self.processor(sample_rate, audio.shape[0]).run(audio)

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}``, JSON-serialisable."""
        return {"name": self.name, **dataclasses.asdict(self)}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Stage:
        """Rebuild a stage from :meth:`to_dict` output."""
        data = dict(data)
        name = data.pop("name", None)
        if name not in STAGES:
            raise BadOptionError(f"unknown stage {name!r}; known stages: {', '.join(STAGES)}")
        return STAGES[name](**data)
