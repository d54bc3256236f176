"""Quality metrics: a registry of named metric functions, and :func:`compute` / :func:`assess`.

Every metric is a plain function ``fn(estimate, sample_rate, *, reference=None) -> float`` in one
module per family, registered in :data:`METRICS`:

========================  =========  ==============================================================
family (module)           reference  metrics
========================  =========  ==============================================================
``pesq``                  yes        ``pesq_wb`` (16 kHz), ``pesq_nb`` (8 kHz)
``stoi``                  yes        ``stoi``, ``estoi`` (pystoi, 10 kHz)
``sdr``                   yes        ``si_sdr``, ``snr``, ``segsnr``
``spectral``              yes        ``lsd``
``dnsmos``                no         ``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``, ``dnsmos_p808``
``levels``                no         ``clipped_fraction``, ``peak_dbfs``, ``rms_dbfs``,
                                     ``loudness_lufs``, ``dc_offset``, ``estimated_snr_db``,
                                     ``bandwidth_hz``
========================  =========  ==============================================================

Reference metrics take ``reference`` at the same rate as the estimate (resample first), pair
channels (a mono side serves all), trim up to 1 % of length difference and raise
:class:`~audiomend.errors.MetricError` for unrelated, silent or too-short input. Importing this
package is light: pesq, pystoi, speechmos and pyloudnorm load on first use.

Examples
--------
>>> import numpy as np
>>> from audiomend.metrics import METRICS, assess
>>> x = np.sin(np.arange(16000) / 5.0).astype(np.float32)
>>> round(assess(0.5 * x, 16000, reference=x, metrics=["snr", "si_sdr"])["snr"], 2)
6.02
>>> METRICS["lsd"].higher_is_better
False
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audiomend.errors import BadOptionError, MetricError
from audiomend.metrics import dnsmos, levels, pesq, sdr, spectral, stoi  # noqa: F401  (register)
from audiomend.metrics.base import METRICS, Metric, pairing_checks, register

#: Registry order (tables, ``assess`` with ``metrics=None``): reference metrics first.
_ORDER = ["pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "segsnr", "lsd", "dnsmos_sig",
          "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "clipped_fraction", "peak_dbfs", "rms_dbfs",
          "loudness_lufs", "dc_offset", "estimated_snr_db", "bandwidth_hz"]
_ordered = sorted(METRICS.items(),
                  key=lambda kv: _ORDER.index(kv[0]) if kv[0] in _ORDER else len(_ORDER))
METRICS.clear()
METRICS.update(_ordered)

__all__ = ["METRICS", "Metric", "MetricError", "assess", "compute", "register", "resolve_names"]


def resolve_names(metrics: Sequence[str] | str | None, *, have_reference: bool) -> list[str]:
    """Metric names to compute, validated. ``None`` means every applicable metric.

    A comma-separated string is accepted (``"pesq_wb,estoi"``). Reference metrics are
    applicable only when ``have_reference``; naming one without a reference is an error.

    Raises
    ------
    BadOptionError
        An unknown name, or a reference metric asked for without a reference.
    """
    if metrics is None:
        return [n for n, m in METRICS.items() if have_reference or not m.needs_reference]
    if isinstance(metrics, str):
        metrics = [m for m in (s.strip() for s in metrics.split(",")) if m]
    names = list(dict.fromkeys(metrics))
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise BadOptionError(f"unknown metric {', '.join(map(repr, unknown))}; "
                             f"known metrics: {', '.join(METRICS)}")
    if not names:
        raise BadOptionError("no metric named; give at least one (e.g. pesq_wb,estoi)")
    if not have_reference:
        need = [n for n in names if METRICS[n].needs_reference]
        if need:
            verb = "needs" if len(need) == 1 else "need"
            raise BadOptionError(f"{', '.join(need)} {verb} a clean reference; pass one "
                                 f"(--reference) or choose reference-free metrics")
    return names


def compute(name: str, estimate: np.ndarray, sample_rate: int, *,
            reference: np.ndarray | None = None, check_pairing: bool = True) -> float:
    """Compute one metric by name.

    Parameters
    ----------
    name : a key of :data:`METRICS`.
    estimate : np.ndarray [shape=(channels, samples)], the signal to score.
    sample_rate : int, Hz, of ``estimate`` (and of ``reference``).
    reference : np.ndarray or None, the clean signal at the same rate; required by metrics with
        ``needs_reference``, ignored by the others.
    check_pairing : bool. False skips the guards for files paired by hand: the "unrelated or
        delayed pair" check and the silent estimate/reference refusal
        (:func:`audiomend.metrics.base.pairing_checks`); scores are unchanged. For callers that
        pair by construction and must score a wrecked output (the bench).

    Returns
    -------
    float, in the metric's ``unit``.

    Raises
    ------
    BadOptionError
        Unknown name, or a reference metric without a reference.
    MetricError
        The metric is undefined for this input (silence, too short, unrelated pair, ...).

    Examples
    --------
    >>> compute("peak_dbfs", np.array([[0.5, -0.1]], np.float32), 8000)  # doctest: +ELLIPSIS
    -6.02...
    """
    (name,) = resolve_names([name], have_reference=reference is not None)
    metric = METRICS[name]
    with pairing_checks(check_pairing):
        value = metric.fn(estimate, sample_rate,
                          reference=reference if metric.needs_reference else None)
    return float(value)


def assess(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None,
           metrics: Sequence[str] | None = None, check_pairing: bool = True) -> dict[str, float]:
    """Compute several metrics of one signal (and its reference); the DNSMOS models run once.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples)].
    sample_rate : int, Hz, of both signals.
    reference : np.ndarray or None, the clean signal at the same rate.
    metrics : names, or None for every applicable metric (reference metrics only when a
        reference is given), in registry order.
    check_pairing : bool, as in :func:`compute`.

    Returns
    -------
    dict name -> float, in the order asked.

    Raises
    ------
    BadOptionError, MetricError
        As :func:`compute`; the first failing metric stops the call, its name in the message.

    Examples
    --------
    >>> x = np.sin(np.arange(16000) / 5.0).astype(np.float32)
    >>> sorted(assess(x, 16000, metrics=["peak_dbfs", "dc_offset"]))
    ['dc_offset', 'peak_dbfs']
    """
    names = resolve_names(metrics, have_reference=reference is not None)
    return {name: compute(name, estimate, sample_rate, reference=reference,
                          check_pairing=check_pairing) for name in names}
