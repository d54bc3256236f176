"""Bench corpora: pairs of a clean reference and its degraded version, grouped by category.

A corpus folder is either one category::

    DIR/clean/x.flac   DIR/degraded/x.flac   (or DIR/noisy/x.flac)   [DIR/recipes.jsonl]

whose category is the folder's name, or several, one per subfolder::

    DIR/noise/{clean,degraded}/...   DIR/reverb/{clean,degraded}/...

Pairs match by file name without extension. :func:`make_corpus` builds a corpus from clean
speech, noise and RIR folders with the damage simulator, reproducibly from a seed.

Examples
--------
>>> import tempfile, numpy as np, soundfile as sf
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> for sub in ("clean", "noisy"):
...     (root / "set" / sub).mkdir(parents=True)
...     sf.write(root / "set" / sub / "a.wav", np.zeros(1600), 16000)
>>> [(p.category, p.name) for p in discover(root / "set")]
[('set', 'a')]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiomend.errors import BadOptionError
from audiomend.io import audio_files, has_audio_extension, read_jsonl

#: Names accepted for the damaged side of a pair, in order of preference.
DEGRADED_FOLDERS = ("degraded", "noisy")


@dataclass(frozen=True)
class Pair:
    """One bench item: a clean reference and the degraded recording made from it."""

    category: str
    name: str
    clean: Path
    degraded: Path
    recipe: dict[str, Any] | None = field(default=None, compare=False)


def _audio_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in audio_files(folder, recursive=False)}


def _is_pair_folder(folder: Path) -> bool:
    return (folder / "clean").is_dir() and any((folder / d).is_dir() for d in DEGRADED_FOLDERS)


def _read_recipes(path: Path) -> dict[str, dict[str, Any]]:
    recipes: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return recipes
    for entry in read_jsonl(path):
        key = str(entry.get("name") or entry.get("output") or entry.get("file") or "")
        if has_audio_extension(key):  # "x.flac" and "x" name the same pair
            key = Path(key).stem
        if key:
            recipes[key] = entry
    return recipes


def _category_pairs(folder: Path, category: str) -> list[Pair]:
    degraded_dir = next(folder / d for d in DEGRADED_FOLDERS if (folder / d).is_dir())
    clean = _audio_files(folder / "clean")
    degraded = _audio_files(degraded_dir)
    missing = sorted(set(degraded) - set(clean))
    if missing:
        raise BadOptionError(f"{degraded_dir}: {len(missing)} file(s) without a clean reference "
                             f"in {folder / 'clean'}, e.g. {missing[0]!r}")
    recipes = _read_recipes(folder / "recipes.jsonl")
    return [Pair(category, name, clean[name], degraded[name], recipes.get(name))
            for name in sorted(degraded)]


def discover(corpus_dir: str | os.PathLike, *, categories: list[str] | None = None) -> list[Pair]:
    """Find every (clean, degraded) pair in a corpus folder.

    Parameters
    ----------
    corpus_dir : a folder with ``clean/`` + ``degraded/`` (or ``noisy/``), or with category
        subfolders that each hold such a pair of folders (and optionally ``recipes.jsonl``).
    categories : keep only these categories (None keeps all).

    Returns
    -------
    list of :class:`Pair`, sorted by category then name.

    Raises
    ------
    BadOptionError
        The folder is missing, holds no pairs, has degraded files without a reference, or an
        asked-for category does not exist.
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        raise BadOptionError(f"{root}: corpus folder not found")
    if _is_pair_folder(root):
        found = {root.name: root}
    else:
        found = {sub.name: sub for sub in sorted(root.iterdir())
                 if sub.is_dir() and _is_pair_folder(sub)}
    if not found:
        raise BadOptionError(f"{root}: no clean/ + degraded/ (or noisy/) folders, neither here nor "
                             f"in its subfolders")
    if categories:
        unknown = [c for c in categories if c not in found]
        if unknown:
            raise BadOptionError(f"{root}: no category {unknown[0]!r}; categories: "
                                 f"{', '.join(found)}")
        found = {c: found[c] for c in categories}
    pairs = [pair for category, folder in found.items()
             for pair in _category_pairs(folder, category)]
    if not pairs:
        raise BadOptionError(f"{root}: the corpus folders hold no audio files")
    return pairs


def make_corpus(out_dir: str | os.PathLike, *, clean_dir: str | os.PathLike,
                noise_dir: str | os.PathLike | None = None,
                rir_dir: str | os.PathLike | None = None, seed: int = 0,
                sample_rate: int | None = None, count: int | None = None,
                progress: bool = True) -> Path:
    """Build a bench corpus with the damage simulator (``audiomend.degradations.make_corpus``).

    Parameters
    ----------
    out_dir : folder to create; receives ``clean/``, ``degraded/`` and ``recipes.jsonl``.
    clean_dir : folder of clean speech.
    noise_dir, rir_dir : folders of noise recordings and room impulse responses (optional).
    seed : int, the seed every recipe is drawn from; the same seed gives the same corpus.
    sample_rate : int Hz or None (keep each clip's rate).
    count : int or None, number of pairs (None: one per clean file).
    progress : show the simulator's progress bar on stderr.

    Returns
    -------
    The corpus folder, ready for :func:`discover`.
    """
    for name, folder in (("clean_dir", clean_dir), ("noise_dir", noise_dir), ("rir_dir", rir_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise BadOptionError(f"{name}: {folder} is not a folder")
    from audiomend.degradations import make_corpus as simulate

    simulate(clean_dir, out_dir, noise_dir=noise_dir, rir_dir=rir_dir, seed=seed,
             sample_rate=sample_rate, count=count, progress=progress)
    return Path(out_dir)
