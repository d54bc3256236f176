"""audiomend: repair damaged speech recordings.

Importing the package is light: numpy, soundfile and scipy only. Everything heavy (onnxruntime,
pesq, speechmos, dask, torch) is imported inside the function that needs it.

Examples
--------
>>> import audiomend
>>> audiomend.__version__
'0.1.0'
"""

from __future__ import annotations

from audiomend.errors import AudiomendError, BadAudioError, BadOptionError, MissingDependencyError
from audiomend.io import blocks, info, load, save

__version__ = "0.1.0"

__all__ = [
    "AudiomendError",
    "BadAudioError",
    "BadOptionError",
    "MissingDependencyError",
    "__version__",
    "blocks",
    "info",
    "load",
    "restore",
    "save",
]


def __getattr__(name: str):
    # restore() pulls in the pipeline and its stages: load it only when asked for.
    if name == "restore":
        from audiomend.pipeline import restore

        return restore
    raise AttributeError(f"module 'audiomend' has no attribute {name!r}")
