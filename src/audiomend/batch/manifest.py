"""What a batch does: a list of :class:`Job` (input, output, options) from a folder or a manifest.

A folder is walked recursively for audio files and its tree is mirrored under the output folder,
keeping names and formats (or changing every extension to ``fmt``). A manifest is a CSV or JSONL
file with one row per input: ``input`` (required), ``output`` (optional) and optional per-row
options (``strength``, ``stages``, ``skip``, ``target_lufs``, ``sample_rate``, ``denoiser``, ...)
that override the batch's options for that row.

Every job is checked before anything runs: an output equal to an input, two inputs writing the
same output, or an unknown manifest column is refused with one line naming the file.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "in" / "a").mkdir(parents=True)
>>> for name in ["a/x.wav", "y.flac", "notes.txt"]:
...     _ = (d / "in" / name).write_bytes(b"...")
>>> jobs = jobs_from_folder(d / "in", d / "out", options=None)
>>> [pathlib.Path(j.output_path).relative_to(d / "out").as_posix() for j in jobs]
['a/x.wav', 'y.flac']
>>> [pathlib.Path(j.output_path).suffix for j in jobs_from_folder(d / "in", d / "out", options=None, fmt="flac")]
['.flac', '.flac']
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiomend.errors import BadOptionError
from audiomend.io import (
    AUDIO_EXTENSIONS,  # noqa: F401  (re-exported by audiomend.batch)
    WRITABLE_FORMATS,
    audio_extensions,
    has_audio_extension,
    read_jsonl,
)

#: Output formats ``fmt`` may ask for (the extension written).
OUTPUT_FORMATS = ("wav", "flac", "ogg", "mp3", "aiff")

#: Manifest columns that are not options.
PATH_COLUMNS = ("input", "output")


@dataclass(frozen=True)
class Job:
    """One file to restore.

    Attributes
    ----------
    input_path : absolute path of the input file (never modified).
    output_path : absolute path of the output file (written atomically).
    options : the restore options for this file (a frozen dataclass with ``to_dict()`` and
        ``settings_hash()``, normally :class:`audiomend.pipeline.RestoreOptions`), or None.
    key : the journal key: the output path relative to the output folder (POSIX), or absolute
        when the output lies outside it.
    """

    input_path: str
    output_path: str
    options: Any
    key: str


def _key(output: Path, out_dir: Path) -> str:
    try:
        return output.relative_to(out_dir).as_posix()
    except ValueError:
        return output.as_posix()


def _with_format(path: Path, fmt: str | None) -> Path:
    if fmt is None:
        return path
    fmt = fmt.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise BadOptionError(f"--format {fmt}: choose one of {', '.join(OUTPUT_FORMATS)}")
    return path.with_suffix("." + fmt)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def jobs_from_folder(
    in_dir: str | os.PathLike, out_dir: str | os.PathLike, *, options: Any, fmt: str | None = None
) -> list[Job]:
    """Every audio file under ``in_dir`` (recursively, sorted), mirrored under ``out_dir``.

    Hidden files and folders (names starting with ``.``) and anything inside ``out_dir`` (when it
    lies within ``in_dir``) are skipped.

    Parameters
    ----------
    in_dir : folder to walk; files with an extension in :func:`audiomend.io.audio_extensions`
        (:data:`~audiomend.io.AUDIO_EXTENSIONS`, plus ``.m4a`` and the like when ffmpeg is
        installed) are inputs.
    out_dir : output folder; ``in_dir/a/b.wav`` becomes ``out_dir/a/b.wav``.
    options : restore options shared by every job.
    fmt : None keeps each file's format; ``"flac"`` (or another of :data:`OUTPUT_FORMATS`)
        changes every output's extension.

    Returns
    -------
    list of :class:`Job`, sorted by input path.

    Raises
    ------
    BadOptionError
        ``in_dir`` is not a folder, an output equals an input (``out_dir`` is ``in_dir``), or two
        inputs map to the same output (``a.wav`` and ``a.flac`` with ``fmt="flac"``).
    """
    src = Path(in_dir).resolve()
    dst = Path(out_dir).resolve()
    if not src.is_dir():
        raise BadOptionError(f"{in_dir}: not a folder (give a folder or a .csv/.jsonl manifest)")
    jobs = []
    extensions = audio_extensions()
    for root, dirs, files in os.walk(src):
        root_p = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (dst == src or not _inside(root_p / d, dst)))
        for name in sorted(files):
            if name.startswith(".") or not has_audio_extension(name, extensions=extensions):
                continue
            inp = root_p / name
            out = _with_format(dst / inp.relative_to(src), fmt)
            jobs.append(Job(str(inp), str(out), options, _key(out, dst)))
    jobs.sort(key=lambda j: j.input_path)
    check_jobs(jobs)
    return jobs


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "input" not in [c.strip() for c in reader.fieldnames]:
                raise BadOptionError(f"{path}: a manifest needs an 'input' column in its header row")
            return [{(k or "").strip(): (v.strip() if isinstance(v, str) else v)
                     for k, v in row.items()} for row in reader]
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(path)
    raise BadOptionError(f"{path}: a manifest must be .csv or .jsonl")


def split_names(value: Any) -> tuple[str, ...]:
    """Names from a list or a comma- (or semicolon-) separated string, stripped, empties dropped.

    >>> split_names("denoise, loudness;;dehum"), split_names(["declip", " "])
    (('denoise', 'loudness', 'dehum'), ('declip',))
    """
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in str(value).replace(";", ",").split(",") if v.strip())


def apply_overrides(options: Any, row: Mapping[str, Any], *, where: str = "manifest") -> Any:
    """Return ``options`` with the non-empty option columns of a manifest row replaced.

    Values from a CSV are strings; each is converted to the type of the field it replaces
    (float, int, str; a comma-separated list for tuple fields such as ``stages``); ``none`` sets
    an optional field to None.

    Raises
    ------
    BadOptionError
        An unknown column, or a value that does not convert (naming the row and column).

    Examples
    --------
    >>> @dataclass(frozen=True)
    ... class Opts:
    ...     strength: float = 1.0
    ...     stages: tuple[str, ...] | None = None
    >>> apply_overrides(Opts(), {"strength": "0.5", "stages": "denoise,loudness", "output": ""})
    Opts(strength=0.5, stages=('denoise', 'loudness'))
    """
    given = {k: v for k, v in row.items() if k not in PATH_COLUMNS and v not in (None, "")}
    if not given:
        return options
    if options is None or not dataclasses.is_dataclass(options):
        raise BadOptionError(f"{where}: per-row options {sorted(given)} given, but this batch "
                             f"takes no options")
    fields = {f.name: f for f in dataclasses.fields(options)}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise BadOptionError(f"{where}: unknown column(s) {', '.join(unknown)}; "
                             f"known: input, output, {', '.join(fields)}")
    changes = {}
    for name, value in given.items():
        current = getattr(options, name)
        try:
            if isinstance(value, str) and value.lower() in ("none", "null"):
                changes[name] = None
            elif name in ("stages", "skip") or isinstance(current, (tuple, list)):
                changes[name] = split_names(value)
            elif isinstance(current, bool):
                changes[name] = str(value).lower() in ("1", "true", "yes", "on")
            elif isinstance(current, int) or name == "sample_rate":
                changes[name] = int(float(value))
            elif isinstance(current, float) or name in ("strength", "target_lufs", "block_s"):
                changes[name] = float(value)
            else:
                changes[name] = value if not isinstance(value, str) else value.strip()
        except (TypeError, ValueError):
            raise BadOptionError(f"{where}: column {name}={value!r} is not a valid value") from None
    try:
        return dataclasses.replace(options, **changes)
    except (TypeError, ValueError) as e:
        raise BadOptionError(f"{where}: {e}") from None


def jobs_from_manifest(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    options: Any,
    fmt: str | None = None,
) -> list[Job]:
    """Jobs from a CSV or JSONL manifest, in file order.

    Parameters
    ----------
    manifest : ``.csv`` (header row) or ``.jsonl`` (one object a line). Columns: ``input``
        (relative paths are relative to the manifest's folder), optional ``output`` (relative
        paths are relative to ``out_dir``; empty mirrors the input's path relative to the
        manifest's folder, or its name when it lies elsewhere), and optional option columns.
    out_dir : output folder (holds the journal).
    options : the batch's options; a row's option columns override them for that row.
    fmt : as in :func:`jobs_from_folder`; applies to outputs the manifest does not name.

    Raises
    ------
    BadOptionError
        No ``input`` column or value, unknown columns, bad values, an output equal to an input,
        two rows with the same output.
    """
    path = Path(manifest).resolve()
    if not path.is_file():
        raise BadOptionError(f"{manifest}: no such manifest file")
    base = path.parent
    dst = Path(out_dir).resolve()
    jobs = []
    for n, row in enumerate(_read_rows(path), 1):
        where = f"{manifest} row {n}"
        raw_in = row.get("input")
        if raw_in in (None, ""):
            raise BadOptionError(f"{where}: empty 'input'")
        inp = Path(os.path.expanduser(str(raw_in)))
        inp = (inp if inp.is_absolute() else base / inp).resolve()
        raw_out = row.get("output")
        if raw_out not in (None, ""):
            out = Path(os.path.expanduser(str(raw_out)))
            out = (out if out.is_absolute() else dst / out).resolve()
        else:
            rel = inp.relative_to(base) if _inside(inp, base) else Path(inp.name)
            out = _with_format(dst / rel, fmt)
        jobs.append(Job(str(inp), str(out), apply_overrides(options, row, where=where),
                        _key(out, dst)))
    if not jobs:
        raise BadOptionError(f"{manifest}: the manifest lists no files")
    check_jobs(jobs)
    return jobs


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_jobs(jobs: Iterable[Job]) -> None:
    """Refuse, before anything runs, outputs that equal an input, that two jobs share, or whose
    format cannot be written (an ``.m4a`` input mirrored without ``fmt``).

    Raises
    ------
    BadOptionError
        Naming the first offending file.
    """
    jobs = list(jobs)
    inputs = {Path(j.input_path) for j in jobs}
    seen: dict[Path, str] = {}
    for j in jobs:
        out = Path(j.output_path)
        if out in inputs or _same(out, Path(j.input_path)):
            raise BadOptionError(f"{out}: output path equals an input path; inputs are never "
                                 f"overwritten, choose another output folder")
        if out in seen:
            raise BadOptionError(f"{out}: both {seen[out]} and {j.input_path} would write this "
                                 f"output; give distinct outputs")
        seen[out] = j.input_path
        if out.suffix.lower() not in WRITABLE_FORMATS:
            raise BadOptionError(f"{out}: cannot write {out.suffix or 'files without an extension'} "
                                 f"(input {j.input_path}); choose an output format with --format "
                                 f"({', '.join(OUTPUT_FORMATS)})")
