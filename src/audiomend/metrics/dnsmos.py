"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808, reference-free, through the ``speechmos`` package.

The models (Microsoft DNS Challenge, shipped as ONNX inside ``speechmos``) run at 16 kHz on
9.01 s windows with a 1 s hop; a shorter clip is repeated end to end until it is 9.01 s long
(what ``speechmos`` does), and the window scores are averaged. Input is resampled to 16 kHz and
clipped to [-1, 1]; multichannel input is scored per channel and averaged.

The four numbers come from one pass of both models; :func:`dnsmos_scores` caches the last
results by a hash of the samples, so asking for all four metrics runs the models once.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict

import numpy as np

from audiomend.dsp import resample
from audiomend.errors import MissingDependencyError
from audiomend.metrics.base import check_estimate, register

#: DNSMOS is defined at this rate.
DNSMOS_RATE = 16000

#: Shorter clips are refused: repeating a fraction of a second to 9 s says little about it.
MIN_DURATION_S = 0.5

_CACHE: OrderedDict[tuple, dict[str, float]] = OrderedDict()
_CACHE_SIZE = 32
_MODEL = None


def _model():
    """The speechmos DNSMOS object with single-threaded ONNX sessions, built once per process."""
    global _MODEL
    if _MODEL is None:
        try:
            import onnxruntime as ort
            from speechmos import dnsmos as sm_dnsmos
        except ImportError as e:
            raise MissingDependencyError(
                "DNSMOS needs speechmos, onnxruntime, librosa and requests: "
                "pip install speechmos onnxruntime librosa requests") from e
        folder = os.path.join(os.path.dirname(os.path.abspath(sm_dnsmos.__file__)), "dnsmos_models")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        model = sm_dnsmos.DNSMOS.__new__(sm_dnsmos.DNSMOS)
        model.primary_model_path = os.path.join(folder, "sig_bak_ovr.onnx")
        model.onnx_sess = ort.InferenceSession(model.primary_model_path, options,
                                               providers=["CPUExecutionProvider"])
        model.p808_onnx_sess = ort.InferenceSession(os.path.join(folder, "model_v8.onnx"), options,
                                                    providers=["CPUExecutionProvider"])
        _MODEL = model
    return _MODEL


def dnsmos_scores(estimate: np.ndarray, sample_rate: int) -> dict[str, float]:
    """All four DNSMOS numbers of one signal in one model pass, cached by content.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples)], at least 0.5 s, not silent.
    sample_rate : int, Hz; resampled to 16 kHz here.

    Returns
    -------
    dict with keys ``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``, ``dnsmos_p808`` (MOS, 1..5),
    each the mean over channels.

    Raises
    ------
    MetricError
        Shorter than 0.5 s or silent.
    MissingDependencyError
        speechmos, onnxruntime or librosa is not installed.
    """
    audio = check_estimate(estimate, sample_rate, metric="dnsmos", min_duration_s=MIN_DURATION_S)
    key = (hashlib.blake2b(np.ascontiguousarray(audio).tobytes(), digest_size=16).hexdigest(),
           audio.shape, int(sample_rate))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return dict(_CACHE[key])
    model = _model()
    audio16 = np.clip(resample(audio, sample_rate, DNSMOS_RATE), -1.0, 1.0)
    per_channel = [model(np.ascontiguousarray(ch, dtype=np.float32), DNSMOS_RATE, False)
                   for ch in audio16]
    scores = {
        "dnsmos_sig": float(np.mean([c["sig_mos"] for c in per_channel])),
        "dnsmos_bak": float(np.mean([c["bak_mos"] for c in per_channel])),
        "dnsmos_ovrl": float(np.mean([c["ovrl_mos"] for c in per_channel])),
        "dnsmos_p808": float(np.mean([c["p808_mos"] for c in per_channel])),
    }
    _CACHE[key] = scores
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return dict(scores)


def _doc(what: str) -> str:
    return f"""DNSMOS {what}, a reference-free MOS estimate (1..5) from the DNS Challenge model.

    Parameters
    ----------
    estimate : np.ndarray [shape=(channels, samples)], at least 0.5 s; resampled to 16 kHz.
    sample_rate : int, Hz.
    reference : ignored (accepted so every metric has the same signature).

    Returns
    -------
    float, MOS; mean over channels. See :func:`dnsmos_scores` (the four numbers share one pass).

    Raises
    ------
    MetricError
        Shorter than 0.5 s or silent.

    References
    ----------
    C. K. A. Reddy, V. Gopal, R. Cutler, "DNSMOS P.835: a non-intrusive perceptual objective
    speech quality metric to evaluate noise suppressors", ICASSP 2022.
    """


@register("dnsmos_sig", needs_reference=False, higher_is_better=True, unit="MOS",
          description="DNSMOS P.835 speech signal quality (SIG)")
def dnsmos_sig(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    return dnsmos_scores(estimate, sample_rate)["dnsmos_sig"]


@register("dnsmos_bak", needs_reference=False, higher_is_better=True, unit="MOS",
          description="DNSMOS P.835 background noise quality (BAK)")
def dnsmos_bak(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    return dnsmos_scores(estimate, sample_rate)["dnsmos_bak"]


@register("dnsmos_ovrl", needs_reference=False, higher_is_better=True, unit="MOS",
          description="DNSMOS P.835 overall quality (OVRL)")
def dnsmos_ovrl(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    return dnsmos_scores(estimate, sample_rate)["dnsmos_ovrl"]


@register("dnsmos_p808", needs_reference=False, higher_is_better=True, unit="MOS",
          description="DNSMOS P.808 overall MOS")
def dnsmos_p808(estimate: np.ndarray, sample_rate: int, *, reference: np.ndarray | None = None) -> float:
    return dnsmos_scores(estimate, sample_rate)["dnsmos_p808"]


dnsmos_sig.__doc__ = _doc("P.835 SIG (speech signal quality)")
dnsmos_bak.__doc__ = _doc("P.835 BAK (background noise quality)")
dnsmos_ovrl.__doc__ = _doc("P.835 OVRL (overall quality)")
dnsmos_p808.__doc__ = _doc("P.808 (overall MOS)")
