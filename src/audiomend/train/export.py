"""Export a trained run to ONNX with the recurrent state as explicit input and output.

Writes ``NAME.onnx`` and a ``NAME.json`` sidecar (rate, frame, hop, bins, state shape, version,
training data summary, validation scores, sha256). Loading the shipped model never unpickles:
onnxruntime reads the ONNX graph, the sidecar is JSON.

The weights ship as float16 (half the file; the networks compute in float32): export rounds every
parameter to float16 first, so the ONNX graph and the rounded torch model agree to float32
precision, and stores the weight tensors in float16 with a cast to float32 that onnxruntime
folds when it loads the graph.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiomend import __version__
from audiomend.errors import BadOptionError
from audiomend.train.network import (
    FRAME_LENGTH,
    HOP_LENGTH,
    N_BINS,
    SAMPLE_RATE,
    MaskEnsemble,
    MaskGRU,
)


def load_run(run_dir: str | Path) -> MaskGRU:
    """The model of a run folder's checkpoint (read with ``weights_only=True``)."""
    checkpoint = Path(run_dir) / "checkpoint.pt"
    if not checkpoint.is_file():
        raise BadOptionError(f"{run_dir}: no checkpoint.pt; train first (audiomend train ... --out {run_dir})")
    dims = _read_json(Path(run_dir) / "config.json", {})
    # runs from before the widths were configurable used 96/160/2 and saved no widths
    model = MaskGRU(**{k: dims.get(k, old) for k, old in (("embed", 96), ("hidden", 160), ("layers", 2))})
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    return model.eval()


def load_runs(run_dirs: Sequence[str | Path]) -> MaskGRU | MaskEnsemble:
    """One run's network, or several runs' as a :class:`MaskEnsemble`."""
    models = [load_run(r) for r in run_dirs]
    return models[0] if len(models) == 1 else MaskEnsemble(models).eval()


def round_weights_to_float16(model: torch.nn.Module) -> torch.nn.Module:
    """Round every parameter of ``model`` to the nearest float16 value, in place (as shipped)."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    return model


#: Weight tensors with fewer elements stay float32 (biases of tiny test networks, constants).
_MIN_FLOAT16_ELEMENTS = 256


def _store_weights_as_float16(path: Path) -> None:
    """Rewrite the ONNX file at ``path`` with its float32 weight tensors stored as float16.

    Only tensors whose every value is exactly a float16 value are converted (the rounded
    weights; never a constant such as an epsilon), so the graph computes the same numbers.
    """
    import onnx
    from onnx import numpy_helper

    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    casts = []
    for tensor in graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor)
        half = values.astype(np.float16)
        if values.size < _MIN_FLOAT16_ELEMENTS or not np.array_equal(half.astype(np.float32), values):
            continue
        name = tensor.name
        tensor.CopyFrom(numpy_helper.from_array(half, f"{name}__float16"))
        casts.append(onnx.helper.make_node("Cast", [f"{name}__float16"], [name],
                                           to=onnx.TensorProto.FLOAT, name=f"{name}__cast"))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


def _read_json(path: Path, default: Any) -> Any:
    """``path``'s JSON, or ``default`` when a run folder lacks the file."""
    return json.loads(path.read_text()) if path.is_file() else default


def _training_summary(run_dir: Path) -> dict:
    log = run_dir / "log.jsonl"
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.is_file() else []
    validation = [r for r in rows if "pesq_wb" in r]
    return {"steps": validation[-1]["step"] if validation else None,
            "validation": validation[-1] if validation else None,
            "data": _read_json(run_dir / "data.json", {}),
            "config": _read_json(run_dir / "config.json", None)}


def export(run_dirs: str | Path | Sequence[str | Path], out_path: str | Path) -> Path:
    """Export a run's checkpoint (or several runs' as an ensemble, the geometric mean of their
    gains) to ``out_path`` (.onnx) plus its .json sidecar."""
    run_dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(r) for r in run_dirs]
    out_path = Path(out_path)
    try:
        model = round_weights_to_float16(load_runs(run_dirs))
    except ValueError as exc:
        raise BadOptionError(f"export: {exc}") from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    magnitude = torch.rand(1, 7, N_BINS)
    state = model.initial_state(1)
    torch.onnx.export(
        model, (magnitude, state), str(out_path), input_names=["magnitude", "state_in"],
        output_names=["gains", "state_out"], dynamic_axes={"magnitude": {1: "frames"}, "gains": {1: "frames"}},
        opset_version=17, dynamo=False,
    )
    _store_weights_as_float16(out_path)
    digest = hashlib.sha256(out_path.read_bytes()).hexdigest()
    summaries = [_training_summary(r) for r in run_dirs]
    meta = {
        "name": out_path.stem, "sample_rate": SAMPLE_RATE, "frame_length": FRAME_LENGTH,
        "hop_length": HOP_LENGTH, "n_bins": N_BINS, "window": "sqrt-hann (periodic)",
        "state_shape": list(state.shape), "version": __version__, "sha256": digest,
        "parameters": sum(p.numel() for p in model.parameters()), "weights_dtype": "float16",
        # one run: its summary; an ensemble: the first member's, and every member's in "members"
        "training": summaries[0] if len(summaries) == 1 else {**summaries[0], "members": summaries},
    }
    out_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_path


def torch_gains(model: MaskGRU | MaskEnsemble, magnitude: np.ndarray) -> np.ndarray:
    """Gains of the torch model for ``(frames, bins)`` magnitudes, one call from a zero state."""
    with torch.no_grad():
        gains, _ = model(torch.from_numpy(magnitude[np.newaxis]), model.initial_state(1))
    return gains[0].numpy()
