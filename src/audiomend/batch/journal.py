"""The batch journal: one JSON line per finished or failed file, next to the outputs.

``OUT_DIR/.audiomend-journal.jsonl`` is append-only. Each line records a file's status (``done``
or ``failed``), the settings hash of its options, the input's sha256, size and mtime, the output's
sha256, timings and, for failures, the reason. Every line is flushed and fsynced before the next
file is reported, so after ``kill -9`` the journal holds every finished file; a torn last line is
ignored on read (and the next append starts on a fresh line).

Only the parent process of a batch writes the journal, under an exclusive ``flock``, so two batches
cannot write into the same output folder at once.

Examples
--------
>>> import tempfile, pathlib
>>> j = Journal(pathlib.Path(tempfile.mkdtemp()) / JOURNAL_NAME)
>>> with j:
...     j.append(JournalRecord(status="done", key="a.wav", input="/in/a.wav", output="/out/a.wav",
...                            settings_hash="abc"))
>>> with open(j.path, "a") as f:               # a line torn by kill -9
...     _ = f.write('{"status": "do')
>>> [r.key for r in j.records()]
['a.wav']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiomend.errors import AudiomendError

#: File name of the journal inside the output folder.
JOURNAL_NAME = ".audiomend-journal.jsonl"

#: Journal format version, written in every line.
JOURNAL_VERSION = 1


class JournalBusyError(AudiomendError):
    """Another batch process holds the journal of this output folder."""


@dataclass(frozen=True)
class JournalRecord:
    """One journal line: the outcome of one file.

    Attributes
    ----------
    status : ``"done"`` or ``"failed"``.
    key : the job's key (output path relative to the output folder).
    input, output : absolute paths.
    settings_hash : hash of the options the file was (to be) restored with.
    options : those options as a dict (for people reading the journal).
    input_sha256, input_size, input_mtime : the input as it was read (bytes, seconds since epoch).
    output_sha256 : sha256 of the finished output (done only).
    duration_s : audio duration in seconds; processing_s : wall time in the worker, seconds;
    rtf : processing_s / duration_s.
    error : one-line reason (failed only).
    stages : the stages that ran (``{"name": ..., **parameters}``); diagnosis : the diagnosis as a dict;
    scores : reference-free scores ``{"before": {...}, "after": {...}}`` when a report was asked.
    time : when the line was written (seconds since epoch).
    """

    status: str
    key: str
    input: str
    output: str
    settings_hash: str
    options: dict[str, Any] | None = None
    input_sha256: str | None = None
    input_size: int | None = None
    input_mtime: float | None = None
    output_sha256: str | None = None
    duration_s: float | None = None
    processing_s: float | None = None
    rtf: float | None = None
    error: str | None = None
    stages: list[Any] | None = None
    diagnosis: dict[str, Any] | None = None
    scores: dict[str, Any] | None = None
    time: float = field(default_factory=time.time)
    version: int = JOURNAL_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (flat memory).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     sha256_file(f.name)[:16]
    'e3b0c44298fc1c14'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


class Journal:
    """Append-only JSONL journal; use as a context manager to write (takes an exclusive lock).

    Parameters
    ----------
    path : the journal file (normally ``OUT_DIR/.audiomend-journal.jsonl``).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @classmethod
    def in_folder(cls, out_dir: str | os.PathLike) -> Journal:
        return cls(Path(out_dir) / JOURNAL_NAME)

    # -- reading -------------------------------------------------------------------------------
    def records(self) -> Iterator[JournalRecord]:
        """Every complete, valid line in order; torn or foreign lines are skipped."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # torn last line: the write was cut off
                try:
                    data = json.loads(raw)
                    if isinstance(data, dict) and data.get("status") in ("done", "failed"):
                        yield JournalRecord.from_dict(data)
                except (ValueError, TypeError):
                    continue

    def latest(self) -> dict[str, JournalRecord]:
        """The last record of each key."""
        return {r.key: r for r in self.records()}

    # -- writing -------------------------------------------------------------------------------
    def __enter__(self) -> Journal:  # noqa: PYI034
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusyError(f"{self.path}: another audiomend batch is writing this output "
                                   f"folder; wait for it or choose another -o") from None
        size = os.fstat(fd).st_size
        if size:
            # A torn last line (kill -9 mid-write) must not swallow the next record.
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                os.write(fd, b"\n")
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def append(self, record: JournalRecord) -> None:
        """Write one line, flushed and fsynced before returning."""
        if self._fd is None:
            raise RuntimeError("Journal.append() outside 'with journal:'")
        line = json.dumps(record.to_dict(), separators=(",", ":"), default=str) + "\n"
        data = line.encode("utf-8")
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)


# -- resume decisions --------------------------------------------------------------------------
SKIP, RUN, CONFLICT = "skip", "run", "conflict"


def decide(record: JournalRecord | None, *, settings_hash: str, input_path: str,
           output_path: str) -> str:
    """What a rerun does with one file, given its last journal record.

    Returns
    -------
    ``"skip"`` when the record says done with the same settings hash, the input's sha256 is the
    recorded one and the output exists with its recorded sha256; ``"conflict"`` when it says done
    with *different* settings (the caller refuses unless forced); ``"run"`` otherwise (never done,
    failed, input changed, output missing or not the one recorded).
    """
    if record is None or record.status != "done":
        return RUN
    if record.settings_hash != settings_hash:
        return CONFLICT
    out = Path(output_path)
    if not out.is_file() or record.output_sha256 is None or record.input_sha256 is None:
        return RUN
    try:
        inp_stat = os.stat(input_path)
    except OSError:
        return RUN  # the runner reports the missing input
    if record.input_size is not None and inp_stat.st_size != record.input_size:
        return RUN
    if out.stat().st_size == 0 or sha256_file(out) != record.output_sha256:
        return RUN
    if sha256_file(input_path) != record.input_sha256:
        return RUN
    return SKIP
