"""STOI and extended STOI (intelligibility), through ``pystoi``.

pystoi resamples to 10 kHz itself, removes frames more than 40 dB below the loudest one, and
needs at least 30 frames (about 0.4 s of active speech at 10 kHz) afterwards; where it would
warn and return ``1e-5`` we raise :class:`~audiomend.errors.MetricError` instead.
"""

from __future__ import annotations

import warnings

import numpy as np

from audiomend.errors import MetricError, MissingDependencyError
from audiomend.metrics.base import per_channel_mean, prepare_pair, register


def _stoi(estimate: np.ndarray, reference: np.ndarray | None, sample_rate: int, *,
          extended: bool, metric: str) -> float:
    try:
        from pystoi import stoi as pystoi_stoi
    except ImportError as e:
        raise MissingDependencyError(f"{metric} needs the 'pystoi' package: pip install pystoi") from e
    est, ref = prepare_pair(estimate, reference, sample_rate, metric=metric)
    scores = []
    for channel, (e, r) in enumerate(zip(est, ref)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = float(pystoi_stoi(r.astype(np.float64), e.astype(np.float64), sample_rate,
                                      extended=extended))
        if any("Not enough STFT frames" in str(w.message) for w in caught):
            raise MetricError(f"{metric}: too little active speech in channel {channel} "
                              f"(STOI needs about 0.4 s above its 40 dB silence gate)")
        if not np.isfinite(value):
            raise MetricError(f"{metric}: STOI is undefined for channel {channel} "
                              f"(constant or silent signal)")
        scores.append(value)
    return per_channel_mean(scores)


@register("stoi", needs_reference=True, higher_is_better=True, unit="",
          description="short-time objective intelligibility (Taal 2011), 0..1")
def stoi(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Short-time objective intelligibility (STOI), 0..1, computed by pystoi at 10 kHz.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples)], the signal to score.
    sample_rate : int, Hz, of both signals.
    reference : np.ndarray, the clean signal, same rate.

    Returns
    -------
    float in [0, 1] (identical signals: 1.0); mean over channels.

    Raises
    ------
    MetricError
        Less than ~0.4 s of active speech, silence, unrelated or length-mismatched pair.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(16000) * np.sin(np.arange(16000) / 800.0) ** 2
    >>> round(stoi(x, 16000, reference=x), 6)
    1.0

    References
    ----------
    C. H. Taal, R. C. Hendriks, R. Heusdens, J. Jensen, "An algorithm for intelligibility
    prediction of time-frequency weighted noisy speech", IEEE TASLP 19(7), 2011.
    """
    return _stoi(estimate, reference, sample_rate, extended=False, metric="stoi")


@register("estoi", needs_reference=True, higher_is_better=True, unit="",
          description="extended STOI (Jensen & Taal 2016), 0..1")
def estoi(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Extended STOI (ESTOI), 0..1, computed by pystoi at 10 kHz.

    Parameters
    ----------
    estimate, reference, sample_rate : as :func:`stoi`.

    Returns
    -------
    float, about [0, 1] (identical signals: 1.0); mean over channels.

    Raises
    ------
    MetricError
        As :func:`stoi`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(16000) * np.sin(np.arange(16000) / 800.0) ** 2
    >>> round(estoi(x, 16000, reference=x), 6)
    1.0

    References
    ----------
    J. Jensen, C. H. Taal, "An algorithm for predicting the intelligibility of speech masked by
    modulated noise maskers", IEEE/ACM TASLP 24(11), 2016.
    """
    return _stoi(estimate, reference, sample_rate, extended=True, metric="estoi")
