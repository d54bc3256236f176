"""Small helpers several restoration stages share: parameter checks, frame sizes, a bypass.

Private to :mod:`audiomend.stages` (the shared interface is :mod:`audiomend.stages.base`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audiomend.errors import BadOptionError
from audiomend.stream import PointwiseProcessor, Processor


def check_strength(stage: str, strength: Any) -> None:
    """Raise BadOptionError unless ``strength`` is a number in [0, 1].

    >>> check_strength("denoise", 0.5)
    >>> check_strength("denoise", 1.5)
    Traceback (most recent call last):
    ...
    audiomend.errors.BadOptionError: denoise: strength must be in [0, 1], got 1.5
    """
    try:
        ok = 0.0 <= float(strength) <= 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise BadOptionError(f"{stage}: strength must be in [0, 1], got {strength}")


def check_whole(stage: str, name: str, value: Any, low: int, high: int, *, unit: str = "") -> None:
    """Raise BadOptionError unless ``value`` is a whole number in ``[low, high]`` (``unit`` is
    appended to the range in the message, e.g. ``" hops"``).

    >>> check_whole("dereverb", "taps", 10, 1, 64)
    >>> check_whole("dereverb", "taps", 2.5, 1, 64)
    Traceback (most recent call last):
    ...
    audiomend.errors.BadOptionError: dereverb: taps must be a whole number in [1, 64], got 2.5
    """
    try:
        whole: int | None = int(value)
    except (TypeError, ValueError, OverflowError):
        whole = None
    if whole is None or whole != value or not low <= whole <= high:
        raise BadOptionError(f"{stage}: {name} must be a whole number in [{low}, {high}]{unit}, "
                             f"got {value}")


def pow2_samples(duration_s: float, sample_rate: int) -> int:
    """The power of two nearest to ``duration_s`` seconds in samples (an FFT or window length).

    >>> pow2_samples(0.032, 16000), pow2_samples(0.032, 48000), pow2_samples(0.064, 16000)
    (512, 2048, 1024)
    """
    return int(2 ** np.round(np.log2(duration_s * sample_rate)))


def frame_and_hop(sample_rate: int, hop_s: float) -> tuple[int, int]:
    """``(frame_length, hop_length)`` in samples of an STFT whose frames are four hops of
    ``hop_s`` seconds (the hop rounded to whole samples, at least one).

    >>> frame_and_hop(16000, 0.008), frame_and_hop(44100, 0.016)
    ((512, 128), (2824, 706))
    """
    hop = max(round(sample_rate * hop_s), 1)
    return 4 * hop, hop


def passthrough(channels: int) -> Processor:
    """A processor that returns its input unchanged (bit-exact, no latency): a stage's bypass."""
    return PointwiseProcessor(channels, lambda block: block)
