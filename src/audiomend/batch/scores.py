"""Reference-free scores of one file for batch reports: level, peak, clipping, blind SNR (DNSMOS).

Computed on the worker that restored the file (it has the paths), on at most
:data:`MAX_SCORED_S` seconds from the start so memory stays bounded on hour-long files.

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

import os
from typing import Any

import numpy as np

#: Longest stretch of a file scored, from its start, in seconds.
MAX_SCORED_S = 600.0


def reference_free_scores(path: str | os.PathLike, *, dnsmos: bool = False) -> dict[str, Any]:
    """Level, peak, clipped fraction and estimated SNR of a file (and DNSMOS when asked).

    Parameters
    ----------
    path : audio file.
    dnsmos : add ``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``, ``dnsmos_p808`` (slow).

    Returns
    -------
    dict: ``rms_dbfs``, ``peak_dbfs``, ``clipped_fraction``, ``estimated_snr_db`` (None when the
    metric cannot be computed, e.g. silence), ``scored_s`` (seconds scored).
    """
    from audiomend.errors import AudiomendError
    from audiomend.io import blocks
    from audiomend.metrics import levels

    first = next(iter(blocks(path, block_s=MAX_SCORED_S)))
    rate = _rate(path)
    scores: dict[str, Any] = {"scored_s": round(first.shape[1] / rate, 3)}
    metrics = {"rms_dbfs": levels.rms_dbfs, "peak_dbfs": levels.peak_dbfs,
               "clipped_fraction": levels.clipped_fraction,
               "estimated_snr_db": levels.estimated_snr_db}
    if dnsmos:
        from audiomend.metrics.dnsmos import dnsmos_scores

        metrics["dnsmos"] = dnsmos_scores
    for name, fn in metrics.items():
        try:
            value = fn(first, rate)
        except AudiomendError:
            value = None
        if isinstance(value, dict):
            scores.update({k: round(float(v), 3) for k, v in value.items()})
        else:
            scores[name] = None if value is None else round(float(value), 6 if "fraction" in name else 2)
    return scores


def _rate(path: str | os.PathLike) -> int:
    from audiomend.io import info

    return info(path).sample_rate
