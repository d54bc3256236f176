"""Load a shipped ONNX mask network and run it frame block by frame block with explicit state.

The network maps the magnitude spectrum of frames on its own 16 kHz grid (``n_bins`` bins from
0 Hz to 8 kHz) to a real gain per bin. Its recurrent state is an explicit input and output, so a
stream of frames cut into any blocks gives the same gains as one long call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from audiomend.errors import BadOptionError, MissingDependencyError

#: The model ``restore`` uses by default.
DEFAULT_MODEL = "maskgru16k"


@dataclass(frozen=True)
class ModelInfo:
    """The sidecar metadata of a shipped model."""

    name: str
    sample_rate: int
    frame_length: int
    hop_length: int
    n_bins: int
    state_shape: tuple[int, ...]
    version: str
    sha256: str
    training: dict


def weights_dir() -> Path:
    return Path(str(resources.files("audiomend.model") / "weights"))


def available_models() -> list[str]:
    return sorted(p.stem for p in weights_dir().glob("*.onnx"))


class MaskModel:
    """A loaded model: ``gains, state = model.run(magnitude, state)``.

    Parameters of :meth:`run`
    -------------------------
    magnitude : np.ndarray [shape=(n_frames, n_bins), float32], linear STFT magnitudes on the
        model's grid (frame and hop of ``info``, sqrt-Hann window, 16 kHz scale).
    state : np.ndarray [shape=info.state_shape] from :meth:`initial_state` or the previous call.
    """

    def __init__(self, info: ModelInfo, session) -> None:
        self.info = info
        self._session = session

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.info.state_shape, np.float32)

    def run(self, magnitude: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if magnitude.shape[0] == 0:
            return np.zeros((0, self.info.n_bins), np.float32), state
        gains, new_state = self._session.run(
            ["gains", "state_out"],
            {"magnitude": magnitude[np.newaxis].astype(np.float32), "state_in": state},
        )
        return gains[0], new_state


@lru_cache(maxsize=4)
def load_model(name: str = DEFAULT_MODEL) -> MaskModel:
    """Load a shipped model by name (cached per process); checks the sha256 of the weights.

    Raises
    ------
    BadOptionError
        No shipped model has this name, or the weights do not match their recorded checksum.
    MissingDependencyError
        onnxruntime is not installed.
    """
    onnx_path = weights_dir() / f"{name}.onnx"
    meta_path = weights_dir() / f"{name}.json"
    if not onnx_path.is_file() or not meta_path.is_file():
        raise BadOptionError(f"no shipped model named {name!r}; available: {available_models()}")
    meta = json.loads(meta_path.read_text())
    data = onnx_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise BadOptionError(f"{onnx_path}: sha256 {digest[:12]}... does not match its metadata; "
                             "reinstall audiomend")
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingDependencyError("the neural model needs onnxruntime: pip install onnxruntime") from e
    options = ort.SessionOptions()
    # One thread: restore and batch parallelise over files, not inside one model call.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    info = ModelInfo(
        name=name, sample_rate=int(meta["sample_rate"]), frame_length=int(meta["frame_length"]),
        hop_length=int(meta["hop_length"]), n_bins=int(meta["n_bins"]),
        state_shape=tuple(meta["state_shape"]), version=str(meta["version"]), sha256=digest,
        training=meta.get("training", {}),
    )
    return MaskModel(info, session)
