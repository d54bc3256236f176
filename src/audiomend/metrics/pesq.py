"""PESQ (ITU-T P.862): wide-band (P.862.2, at 16 kHz) and narrow-band (P.862.1 MOS-LQO, at 8 kHz).

PESQ aligns the signals itself, so a delayed estimate is accepted. Both resample the pair to
the rate PESQ is defined at (soxr, high quality) and call the ``pesq``
package (the ITU reference C code). Multichannel input is scored per channel and averaged.
"""

from __future__ import annotations

import numpy as np

from audiomend.dsp import resample
from audiomend.errors import MetricError, MissingDependencyError
from audiomend.metrics.base import per_channel_mean, prepare_pair, register

#: PESQ needs about a quarter of a second of signal; shorter input is refused before calling it.
MIN_DURATION_S = 0.25


def _pesq(estimate: np.ndarray, reference: np.ndarray | None, sample_rate: int, *,
          mode: str, metric: str) -> float:
    try:
        import pesq as pesq_lib
    except ImportError as e:
        raise MissingDependencyError(f"{metric} needs the 'pesq' package: pip install pesq") from e
    est, ref = prepare_pair(estimate, reference, sample_rate, metric=metric,
                            min_duration_s=MIN_DURATION_S, tolerate_delay=True)
    rate = 16000 if mode == "wb" else 8000
    est, ref = resample(est, sample_rate, rate), resample(ref, sample_rate, rate)
    scores = []
    for channel, (e, r) in enumerate(zip(est, ref)):
        try:
            scores.append(pesq_lib.pesq(rate, r.astype(np.float64), e.astype(np.float64), mode))
        except pesq_lib.NoUtterancesError:
            raise MetricError(f"{metric}: PESQ found no speech (no utterance) in channel {channel}; "
                              f"the reference or estimate is silent or not speech") from None
        except pesq_lib.BufferTooShortError:
            raise MetricError(f"{metric}: signal too short for PESQ "
                              f"({est.shape[1] / rate:.2f} s at {rate} Hz)") from None
        except pesq_lib.PesqError as err:
            raise MetricError(f"{metric}: PESQ failed ({type(err).__name__}: {err})") from None
        except ValueError as err:  # the C code's level is NaN for an all-zero or ~1e-30 estimate
            if "NaN" in str(err):
                raise MetricError(f"{metric}: PESQ cannot score channel {channel}: the estimate is "
                                  f"silent (all zeros or nearly so)") from None
            raise MetricError(f"{metric}: PESQ failed ({type(err).__name__}: {err})") from None
    return per_channel_mean(scores)


@register("pesq_wb", needs_reference=True, higher_is_better=True, unit="MOS",
          description="wide-band PESQ (ITU-T P.862.2) at 16 kHz, -0.5..4.64")
def pesq_wb(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Wide-band PESQ, MOS-LQO (ITU-T P.862.2), computed at 16 kHz.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples)], the signal to score.
    sample_rate : int, Hz, of both signals; they are resampled to 16 kHz here.
    reference : np.ndarray, the clean signal, same rate (mono serves every channel).

    Returns
    -------
    float, MOS-LQO in about [1.04, 4.64]; identical signals give 4.64. Mean over channels.

    Raises
    ------
    MetricError
        No utterance found (silence, non-speech), shorter than 0.25 s, unrelated or
        length-mismatched pair, an all-zero estimate (even with the silence guard off).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(16000).astype(np.float32) * 0.1
    >>> 4.5 < pesq_wb(x, 16000, reference=x) < 4.7
    True

    References
    ----------
    ITU-T P.862 (2001) and P.862.2 (2007); https://github.com/ludlows/python-pesq
    """
    return _pesq(estimate, reference, sample_rate, mode="wb", metric="pesq_wb")


@register("pesq_nb", needs_reference=True, higher_is_better=True, unit="MOS",
          description="narrow-band PESQ (ITU-T P.862.1 MOS-LQO) at 8 kHz, 1..4.55")
def pesq_nb(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    """Narrow-band PESQ, MOS-LQO (ITU-T P.862 + P.862.1 mapping), computed at 8 kHz.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples)], the signal to score.
    sample_rate : int, Hz, of both signals; they are resampled to 8 kHz here.
    reference : np.ndarray, the clean signal, same rate.

    Returns
    -------
    float, MOS-LQO in about [1.02, 4.55]; identical signals give 4.55. Mean over channels.

    Raises
    ------
    MetricError
        As :func:`pesq_wb`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(8000).astype(np.float32) * 0.1
    >>> 4.4 < pesq_nb(x, 8000, reference=x) < 4.6
    True
    """
    return _pesq(estimate, reference, sample_rate, mode="nb", metric="pesq_nb")
