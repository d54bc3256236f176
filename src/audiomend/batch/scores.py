"""Per-file material for batch reports: reference-free scores and spectrogram thumbnails (JPEG, a few kB).

Computed on the worker that restored the file (it has the paths), on at most
:data:`MAX_SCORED_S` seconds from the start so memory stays bounded on hour-long files. The
scores are those of :func:`audiomend.report.reference_free_scores` (levels, clipped fraction,
estimated SNR, bandwidth; DNSMOS when asked).

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from audiomend.io import save
>>> x = 0.1 * np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32)
>>> p = save(pathlib.Path(tempfile.mkdtemp()) / "x.wav", x, 16000)
>>> s = reference_free_scores(p)
>>> round(s["rms_dbfs"]), s["clipped_fraction"], s["scored_s"]
(-20, 0.0, 1.0)
"""

from __future__ import annotations

import base64
import io as _io
import math
import os
from typing import Any

import numpy as np

#: Longest stretch of a file scored and drawn, from its start, in seconds.
MAX_SCORED_S = 60.0


def _first_seconds(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    from audiomend.io import blocks, info

    rate = info(path).sample_rate
    return next(iter(blocks(path, block_s=MAX_SCORED_S))), rate


def reference_free_scores(path: str | os.PathLike, *, dnsmos: bool = False) -> dict[str, Any]:
    """Reference-free scores of the first :data:`MAX_SCORED_S` seconds of a file.

    Parameters
    ----------
    path : audio file.
    dnsmos : add DNSMOS (``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``; slow).

    Returns
    -------
    dict: ``rms_dbfs``, ``peak_dbfs``, ``clipped_fraction``, ``estimated_snr_db``, ... (None
    where a score cannot be computed, e.g. on silence), and ``scored_s``.
    """
    from audiomend.report import reference_free_scores as scores_of

    audio, rate = _first_seconds(path)
    out: dict[str, Any] = {k: (round(float(v), 6) if v is not None else None)
                           for k, v in scores_of(audio, rate, dnsmos=dnsmos).items()}
    out["scored_s"] = round(audio.shape[1] / rate, 3)
    return out


def spectrogram_thumbnail(path: str | os.PathLike, *, width_px: int = 240,
                          height_px: int = 72) -> str:
    """A small log-spectrogram JPEG (no axes) of the first :data:`MAX_SCORED_S` s, as base64.

    Raises
    ------
    MissingDependencyError
        matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError as e:
        from audiomend.errors import MissingDependencyError

        raise MissingDependencyError("report thumbnails need matplotlib: pip install matplotlib") from e
    from scipy import signal

    audio, rate = _first_seconds(path)
    mono = audio.mean(axis=0)
    nperseg = int(2 ** round(math.log2(max(rate * 0.032, 64))))
    mono = np.pad(mono, (0, max(nperseg - mono.size, 0)))
    _, _, s = signal.spectrogram(mono, fs=rate, nperseg=nperseg, noverlap=nperseg // 2,
                                 mode="magnitude")
    db = 20 * np.log10(np.maximum(s, 1e-7))
    top = float(db.max())
    dpi = 72
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
              interpolation="nearest")
    ax.set_axis_off()
    buf = _io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=dpi, pil_kwargs={"quality": 70})
    return base64.b64encode(buf.getvalue()).decode("ascii")
