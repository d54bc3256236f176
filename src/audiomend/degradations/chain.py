"""Chains of damages: parameter ranges -> a sampled, concrete :class:`Recipe` -> damaged audio.

A :class:`Chain` is an ordered tuple of :class:`Step`; each step names a damage in
:data:`~audiomend.degradations.base.DEGRADATIONS`, the probability that it is applied, and a
specification per parameter:

- a tuple ``(low, high)`` of numbers: uniform in that range (integers if both ends are ints);
- a list ``[a, b, ...]``: one of these values;
- anything else: that fixed value.

:meth:`Chain.sample` draws a :class:`Recipe`: the concrete damages in the chain's order, each
random damage with its own seed, plus the seed the recipe was drawn from, so
``chain.sample(recipe.seed) == recipe``. :func:`make_corpus` writes clean/degraded pairs and their
recipes from folders of speech, noise and RIRs.

The default chain (:data:`DEFAULT_CHAIN`) applies damages in the physical order of a recording:
room (reverb), acoustic noise, mains hum, level (gain), converter clipping, clicks, channel
bandwidth, codec, packet loss, delay.

Examples
--------
>>> chain = Chain((Step("noise", 1.0, {"snr_db": (0, 20), "color": ["white", "pink"]}),
...                Step("clip", 0.5, {"threshold_db": (-12.0, -3.0)})))
>>> recipe = chain.sample(7)
>>> Recipe.from_json(recipe.to_json()) == recipe, chain.sample(recipe.seed) == recipe
(True, True)
>>> x = np.random.default_rng(0).standard_normal((1, 1600)).astype(np.float32) * 0.1
>>> recipe.apply(x, 16000).shape
(1, 1600)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from audiomend.degradations.base import DEGRADATIONS, Degradation, active_power
from audiomend.dsp import check_audio
from audiomend.errors import BadOptionError
from audiomend.io import audio_extensions, audio_files

#: Largest seed drawn for damages and recipes (fits a signed 32-bit int).
MAX_SEED = 2**31 - 1


def _draw(spec: Any, gen: np.random.Generator) -> Any:
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise BadOptionError(f"a range must be (low, high), got {spec!r}")
        low, high = spec
        if isinstance(low, (int, np.integer)) and isinstance(high, (int, np.integer)) \
                and not isinstance(low, bool):
            return int(gen.integers(int(low), int(high) + 1))
        return round(float(gen.uniform(float(low), float(high))), 4)
    if isinstance(spec, list):
        if not spec:
            raise BadOptionError("a list of choices is empty")
        value = spec[int(gen.integers(len(spec)))]
        return tuple(value) if isinstance(value, list) else value
    return spec


def _spec_to_json(spec: Any) -> Any:
    if isinstance(spec, tuple):
        return {"range": list(spec)}
    if isinstance(spec, list):
        return {"choice": spec}
    return spec


def _spec_from_json(spec: Any) -> Any:
    if isinstance(spec, dict) and set(spec) == {"range"}:
        return tuple(spec["range"])
    if isinstance(spec, dict) and set(spec) == {"choice"}:
        return [tuple(v) if isinstance(v, list) else v for v in spec["choice"]]
    return tuple(spec) if isinstance(spec, list) else spec


@dataclass(frozen=True)
class Step:
    """One damage of a chain: its registry ``name``, the ``probability`` it is applied, and a
    specification per parameter (range tuple, choice list or fixed value)."""

    name: str
    probability: float = 1.0
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in DEGRADATIONS:
            raise BadOptionError(f"unknown degradation {self.name!r}; known: {', '.join(DEGRADATIONS)}")
        if not 0.0 <= float(self.probability) <= 1.0:
            raise BadOptionError(f"{self.name}: probability={self.probability!r} is outside 0..1")
        fields = {f.name for f in dataclasses.fields(DEGRADATIONS[self.name])} - {"seed"}
        unknown = sorted(set(self.params) - fields)
        if unknown:
            raise BadOptionError(f"{self.name}: no parameter(s) {', '.join(unknown)}; "
                                 f"it takes {', '.join(sorted(fields)) or 'none'}")

    def sample(self, gen: np.random.Generator) -> Degradation:
        """Draw concrete parameters (and a seed when the damage is random)."""
        cls = DEGRADATIONS[self.name]
        values = {key: _draw(spec, gen) for key, spec in self.params.items()}
        if cls.random:
            values["seed"] = int(gen.integers(MAX_SEED))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "probability": self.probability,
                "params": {k: _spec_to_json(v) for k, v in self.params.items()}}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Step:
        return Step(data["name"], float(data.get("probability", 1.0)),
                    {k: _spec_from_json(v) for k, v in dict(data.get("params", {})).items()})


@dataclass(frozen=True)
class Recipe:
    """Concrete damages applied in order, and the seed they were sampled from."""

    degradations: tuple[Degradation, ...] = ()
    seed: int = 0

    def apply(self, audio: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        """Run the damages in order on ``audio`` ``(channels, samples)``; same shape back."""
        out = check_audio(audio, sample_rate)
        for damage in self.degradations:
            out = damage(out, sample_rate)
        return out

    __call__ = apply

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.degradations]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "degradations": [d.to_dict() for d in self.degradations]}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Recipe:
        """Rebuild a recipe from :meth:`to_dict` output. Raises BadOptionError on unknown names."""
        try:
            items = data["degradations"]
            return Recipe(tuple(Degradation.from_dict(d) for d in items), int(data.get("seed", 0)))
        except BadOptionError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadOptionError("a recipe must be {\"seed\": int, \"degradations\": [{\"name\": "
                                 "..., parameters...}, ...]}") from None

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(self.to_dict())

    @staticmethod
    def from_json(text: str) -> Recipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadOptionError(f"recipe is not valid JSON: {e}") from None
        return Recipe.from_dict(data)


@dataclass(frozen=True)
class Chain:
    """Ordered steps with parameter ranges; :meth:`sample` turns it into a :class:`Recipe`."""

    steps: tuple[Step, ...] = ()

    def sample(self, rng: np.random.Generator | int) -> Recipe:
        """Draw a recipe.

        Parameters
        ----------
        rng : np.random.Generator or int
            An int is the recipe seed itself. A generator gives one draw, the recipe seed. The
            recipe is then drawn from ``default_rng(seed)``, so ``sample(recipe.seed)``
            reproduces it.
        """
        if isinstance(rng, np.random.Generator):
            seed = int(rng.integers(MAX_SEED))
        elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            seed = int(rng)
        else:
            raise BadOptionError(f"rng must be a numpy Generator or an int seed, got {rng!r}")
        gen = np.random.default_rng(seed)
        chosen = []
        for step in self.steps:
            if gen.random() < step.probability:
                chosen.append(step.sample(gen))
        return Recipe(tuple(chosen), seed)

    def with_files(self, *, noise: Sequence[str] | None = None,
                   rir: Sequence[str] | None = None) -> Chain:
        """A copy whose ``noise`` / ``reverb`` steps pick from these files (when given and not
        empty) instead of coloured noise / simulated rooms."""
        steps = []
        for step in self.steps:
            params = dict(step.params)
            if step.name == "noise" and noise:
                params["noise"] = [str(p) for p in noise]
                params.pop("color", None)
            if step.name == "reverb" and rir:
                params["rir"] = [str(p) for p in rir]
                params.pop("rt60_s", None)
                params.pop("room_m", None)
            steps.append(Step(step.name, step.probability, params))
        return Chain(tuple(steps))

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps]}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Chain:
        return Chain(tuple(Step.from_dict(s) for s in data.get("steps", [])))


#: A broad mix of damages, roughly like field recordings and training-data corruptions.
DEFAULT_CHAIN = Chain((
    Step("reverb", 0.3, {"rt60_s": (0.2, 1.2), "room_m": [(5.0, 4.0, 3.0), (8.0, 6.0, 3.0),
                                                         (12.0, 9.0, 4.0)]}),
    Step("noise", 0.8, {"snr_db": (0.0, 20.0), "color": ["white", "pink", "brown"]}),
    Step("hum", 0.1, {"mains_hz": [50.0, 60.0], "level_db": (-30.0, -10.0)}),
    Step("gain", 0.15, {"gain_db": (-35.0, -20.0), "noise_floor_dbfs": (-90.0, -75.0)}),
    Step("clip", 0.15, {"threshold_db": (-14.0, -4.0)}),
    Step("clicks", 0.1, {"rate_per_s": (1.0, 20.0), "amplitude": (0.1, 0.8)}),
    Step("bandlimit", 0.2, {"cutoff_hz": [3400.0, 4000.0, 5500.0]}),
    Step("mp3", 0.1, {"bitrate_kbps": [24, 32, 48, 64]}),
    Step("dropouts", 0.05, {"packet_ms": [10.0, 20.0], "loss_rate": (0.01, 0.1)}),
))


def _audio_files(folder: str | os.PathLike, what: str) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise BadOptionError(f"{root}: {what} folder does not exist")
    files = audio_files(root)
    if not files:
        raise BadOptionError(f"{root}: no audio files ({', '.join(audio_extensions())}) in the "
                             f"{what} folder")
    return files


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("degrade"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


def make_corpus(
    clean_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    noise_dir: str | os.PathLike | None = None,
    rir_dir: str | os.PathLike | None = None,
    chain: Chain = DEFAULT_CHAIN,
    seed: int = 0,
    sample_rate: int | None = None,
    count: int | None = None,
    level_dbfs: float | None = -26.0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Write a corpus of clean/degraded pairs and their recipes, deterministic from ``seed``.

    Writes ``out_dir/clean/NAME.flac`` and ``out_dir/degraded/NAME.flac`` (24-bit FLAC, same
    names, same length, sample-aligned) and ``out_dir/recipes.jsonl``, one line per pair:
    ``{"name", "source", "sample_rate", "seed", "recipe"}``. Each clean file is set to an
    active-speech level of ``level_dbfs``; when the degraded (or clean) peak would exceed 0.99,
    both are scaled down by the same factor.

    Parameters
    ----------
    clean_dir : folder of clean speech (searched recursively).
    out_dir : output folder (created).
    noise_dir, rir_dir : folders of recorded noises / RIRs; the chain's noise and reverb steps
        pick from them (:meth:`Chain.with_files`). None: coloured noise, simulated rooms.
    chain : the damage ranges; default :data:`DEFAULT_CHAIN`.
    seed : int, the corpus seed. Item ``i``'s recipe seed is drawn from
        ``SeedSequence(seed, spawn_key=(1,)).spawn(count)[i]`` (so an item keeps its seed when
        ``count`` grows); a subset of the files from ``SeedSequence(seed).spawn(1)[0]``.
    sample_rate : int or None, resample everything to this rate in Hz; None keeps each file's rate.
    count : int > 0 or None, number of pairs; None = one per clean file. Fewer than the files:
        a seeded random subset; more: files are reused (names get ``_1``, ``_2``, ... suffixes)
        with new recipes.
    level_dbfs : float or None, active speech level of the clean files (None keeps levels).
    progress : show a progress bar on stderr.

    Returns
    -------
    The records written to ``recipes.jsonl``, in order.

    Raises
    ------
    BadOptionError
        A folder is missing or has no audio; ``count`` < 1. BadAudioError: an unreadable file.
    """
    from audiomend.io import load, save

    clean_files = _audio_files(clean_dir, "clean speech")
    noise_files = _audio_files(noise_dir, "noise") if noise_dir is not None else None
    rir_files = _audio_files(rir_dir, "RIR") if rir_dir is not None else None
    chain = chain.with_files(noise=noise_files, rir=rir_files)
    n_files = len(clean_files)
    if count is None:
        count = n_files
    if int(count) != count or count < 1:
        raise BadOptionError(f"count={count!r} must be a whole number >= 1")
    count = int(count)
    sequence = np.random.SeedSequence(int(seed))
    if count < n_files:
        pick = np.random.default_rng(sequence.spawn(1)[0]).choice(n_files, count, replace=False)
        order = [int(i) for i in np.sort(pick)]
    else:
        order = [i % n_files for i in range(count)]
    item_seeds = [int(s.generate_state(1)[0] & MAX_SEED) for s in
                  np.random.SeedSequence(int(seed), spawn_key=(1,)).spawn(count)]
    out = Path(out_dir)
    (out / "clean").mkdir(parents=True, exist_ok=True)
    (out / "degraded").mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    with _progress(progress) as bar:
        task = bar.add_task("degrade", total=count)
        for index, item_seed in zip(order, item_seeds):
            source = clean_files[index]
            stem = source.stem
            repeat = seen.get(stem, 0)
            seen[stem] = repeat + 1
            name = f"{stem}.flac" if repeat == 0 else f"{stem}_{repeat}.flac"
            clean, rate = load(source, sample_rate=sample_rate)
            if level_dbfs is not None:
                level = active_power(clean, rate).max()
                if level > 0:
                    clean = (clean * np.sqrt(10.0 ** (level_dbfs / 10.0) / level)).astype(np.float32)
            recipe = chain.sample(item_seed)
            degraded = recipe.apply(clean, rate)
            peak = max(float(np.abs(degraded).max()), float(np.abs(clean).max()))
            if peak > 0.99:
                clean = (clean * (0.99 / peak)).astype(np.float32)
                degraded = (degraded * (0.99 / peak)).astype(np.float32)
            save(out / "clean" / name, clean, rate, subtype="PCM_24")
            save(out / "degraded" / name, degraded, rate, subtype="PCM_24")
            records.append({"name": name, "source": str(source), "sample_rate": rate,
                            "seed": item_seed, "recipe": recipe.to_dict()})
            bar.advance(task)
    tmp = out / ".recipes.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, out / "recipes.jsonl")
    return records
