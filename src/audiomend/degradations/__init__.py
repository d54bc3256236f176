"""The damage simulator: damages one module each, a registry, and chains that sample recipes.

Every damage is a pure function ``name(audio, sample_rate, *, params..., rng=None)`` and a frozen
dataclass in :data:`DEGRADATIONS` that holds concrete parameters (JSON round trip). A
:class:`~audiomend.degradations.chain.Chain` holds parameter ranges and samples a
:class:`~audiomend.degradations.chain.Recipe` (concrete damages + seed);
:func:`~audiomend.degradations.chain.make_corpus` writes clean/degraded pairs with their recipes.

Importing this package loads numpy and scipy only; pyroomacoustics, lameenc and rich are imported
when used.

>>> from audiomend.degradations import DEGRADATIONS
>>> sorted(DEGRADATIONS)[:3]
['bandlimit', 'clicks', 'clip']
"""

from __future__ import annotations

from audiomend.degradations.bandlimit import Bandlimit, bandlimit
from audiomend.degradations.base import DEGRADATIONS, Degradation, active_power, register
from audiomend.degradations.clicks import Clicks, clicks
from audiomend.degradations.clipping import Clip, clip
from audiomend.degradations.codec import Mp3, mp3
from audiomend.degradations.delay import Delay, delay
from audiomend.degradations.dropouts import Dropouts, dropouts
from audiomend.degradations.gain import Gain, gain
from audiomend.degradations.hum import Hum, hum
from audiomend.degradations.noise import AddNoise, add_noise, measure_snr
from audiomend.degradations.reverb import Reverberate, reverberate

__all__ = [
    "DEGRADATIONS",
    "AddNoise",
    "Bandlimit",
    "Clicks",
    "Clip",
    "Degradation",
    "Delay",
    "Dropouts",
    "Gain",
    "Hum",
    "Mp3",
    "Reverberate",
    "active_power",
    "add_noise",
    "bandlimit",
    "clicks",
    "clip",
    "delay",
    "dropouts",
    "gain",
    "hum",
    "measure_snr",
    "mp3",
    "register",
    "reverberate",
]


def __getattr__(name: str):
    # chain.py (Chain, Recipe, make_corpus) is loaded on first use.
    if name in {"Chain", "Recipe", "Step", "make_corpus", "DEFAULT_CHAIN"}:
        from audiomend.degradations import chain

        return getattr(chain, name)
    raise AttributeError(f"module 'audiomend.degradations' has no attribute {name!r}")
