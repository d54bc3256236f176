"""The exceptions a user can cause. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class AudiomendError(Exception):
    """Base of every error audiomend raises on purpose; the message names the file and the fix."""


class BadAudioError(AudiomendError, ValueError):
    """An input file or array is not usable audio (missing, empty, corrupt, NaN, bad shape or rate)."""


class BadOptionError(AudiomendError, ValueError):
    """An option or parameter is out of range or inconsistent with the input."""


class MissingDependencyError(AudiomendError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""


#: The pip command for the optional peer systems (noisereduce, RNNoise, DeepFilterNet3).
PEERS_HINT = "pip install 'audiomend[peers]'"


class MetricError(AudiomendError, ValueError):
    """A metric cannot be computed for these inputs (e.g. reference and estimate differ)."""
