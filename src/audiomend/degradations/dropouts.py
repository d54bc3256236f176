"""Packet loss: fixed-length packets of every channel zeroed at random, as in VoIP streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audiomend.degradations.base import Degradation, as_rng, check_range, prepare, register


def dropouts(
    audio: np.ndarray,
    sample_rate: int,
    *,
    packet_ms: float = 20.0,
    loss_rate: float = 0.05,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float32]:
    """Zero whole packets of ``packet_ms``, each lost independently with ``loss_rate``.

    Packets start at sample 0; a lost packet is silent in every channel (one packet carries all
    channels). No concealment is applied.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    packet_ms : float in 1..1000, packet duration in ms (rounded to whole samples, at least 1).
    loss_rate : float in 0..1, probability that a packet is lost.
    rng : np.random.Generator or None (None = ``default_rng(0)``).

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]

    Raises
    ------
    BadOptionError
        A parameter out of range.

    Examples
    --------
    >>> y = dropouts(np.ones((1, 1600), np.float32), 16000, packet_ms=10.0, loss_rate=1.0)
    >>> float(np.abs(y).max())
    0.0
    """
    x = prepare(audio, sample_rate)
    packet_ms = check_range(packet_ms, "packet_ms", 1.0, 1000.0)
    loss_rate = check_range(loss_rate, "loss_rate", 0.0, 1.0)
    packet = max(round(packet_ms * sample_rate / 1000.0), 1)
    n = x.shape[-1]
    n_packets = -(-n // packet)
    lost = as_rng(rng).random(n_packets) < loss_rate
    keep = np.repeat(~lost, packet)[:n]
    return (x * keep[None, :]).astype(np.float32)


@register
@dataclass(frozen=True)
class Dropouts(Degradation):
    """Parameters of :func:`dropouts`."""

    name = "dropouts"
    random = True
    packet_ms: float = 20.0
    loss_rate: float = 0.05
    seed: int = 0

    def __call__(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        return dropouts(audio, sample_rate, packet_ms=self.packet_ms, loss_rate=self.loss_rate,
                        rng=self.rng())
