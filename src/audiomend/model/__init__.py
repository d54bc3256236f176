"""Inference for audiomend's own restoration network, through onnxruntime (no torch at run time).

Weights ship in ``model/weights/`` as ``NAME.onnx`` with a ``NAME.json`` sidecar (sample rate,
frame, hop, version, training summary, sha256). See ``docs/model.md``.
"""

from audiomend.model.runtime import DEFAULT_MODEL, MaskModel, ModelInfo, load_model

__all__ = ["DEFAULT_MODEL", "MaskModel", "ModelInfo", "load_model"]
