"""Restore whole archives: a manifest of jobs, a resumable JSONL journal, local or Dask engines.

- :mod:`audiomend.batch.manifest`: walk a folder (mirroring its tree) or read a CSV/JSONL manifest
  into :class:`Job` s; refuse an output equal to an input up front.
- :mod:`audiomend.batch.journal`: one JSON line per finished or failed file, flushed and fsynced;
  decides what a rerun skips, redoes or refuses.
- :mod:`audiomend.batch.engines`: run jobs on local worker processes or on a Dask cluster; the
  parent process is the journal's only writer.
- :mod:`audiomend.batch.runner`: :func:`run_batch` ties the three together.

Importing this package is light (no dask, no pipeline); engines import what they need when run.
"""

from __future__ import annotations

from audiomend.batch.journal import Journal, JournalRecord
from audiomend.batch.manifest import AUDIO_EXTENSIONS, Job, jobs_from_folder, jobs_from_manifest
from audiomend.batch.runner import BatchSummary, plan_batch, run_batch

__all__ = [
    "AUDIO_EXTENSIONS",
    "BatchSummary",
    "Job",
    "Journal",
    "JournalRecord",
    "jobs_from_folder",
    "jobs_from_manifest",
    "plan_batch",
    "run_batch",
]
