"""Restoration systems behind one small interface, so the bench scores them the same way.

A :class:`System` has a ``name``, the ``sample_rate`` it runs at (None: any rate), the
``latency_samples`` (at its own rate) it already compensates, and :meth:`System.process`, which
takes ``(channels, samples)`` float32 audio at the system's rate and returns audio of the same
shape, sample-aligned with the input. :meth:`System.run` is what the bench calls: it resamples to
the system's rate and back (with :func:`audiomend.dsp.resample`) and fixes the length.

Systems are built by name with :func:`make_system`; :data:`SYSTEMS` maps names to factories.
Two families of names are dynamic: ``cmd:NAME`` (an external command given as
``commands={"NAME": "tool {in} {out}"}``) and ``stage:<name>`` (every registered audiomend stage).
Peers (noisereduce, RNNoise, DeepFilterNet3) import their package only when built; a missing one
raises :class:`~audiomend.errors.MissingDependencyError` with the install command, which the
bench reports as skipped.

The ``clean`` system is the oracle upper bound: it is the only system that reads the reference,
which the bench passes to every system as the keyword ``reference`` (``uses_reference`` is True
for it alone, so a real system can never peek by accident).

Examples
--------
>>> import numpy as np
>>> noisy = make_system("noisy")
>>> x = np.zeros((1, 1600), np.float32)
>>> noisy.run(x, 16000).shape
(1, 1600)
>>> sorted(SYSTEMS)[:3]
['audiomend', 'clean', 'deepfilternet3']
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shlex
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from audiomend.dsp import check_audio, resample
from audiomend.errors import PEERS_HINT, AudiomendError, BadOptionError, MissingDependencyError


class System(ABC):
    """A restoration system as the bench sees it.

    Attributes
    ----------
    name : str
        The name the bench reports (``"rnnoise"``, ``"stage:denoise"``, ``"cmd:sox"``).
    sample_rate : int or None
        The rate in Hz the system runs at; None when it runs at any rate.
    latency_samples : int
        The delay, in samples at ``sample_rate``, that the adapter removes from the system's
        output (0 when the system is already aligned). Whatever lag remains is measured by the
        bench and reported, never hidden.
    uses_reference : bool
        True only for the oracle ``clean`` system, which returns the reference.
    """

    name: str = ""
    sample_rate: int | None = None
    latency_samples: int = 0
    uses_reference: bool = False

    @abstractmethod
    def process(self, audio: NDArray[np.float32], sample_rate: int, *,
                reference: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
        """Process ``(channels, samples)`` audio at ``sample_rate`` (the system's own rate when it
        has one); return the same shape, aligned with the input. ``reference`` is the clean
        target at the same rate, given to every system and read only by the oracle."""

    def run(self, audio: np.ndarray, sample_rate: int, *,
            reference: np.ndarray | None = None) -> NDArray[np.float32]:
        """Process audio at any rate: resample to the system's rate and back, keep the length.

        Parameters
        ----------
        audio : np.ndarray [shape=(channels, samples)], float32
        sample_rate : int, Hz
        reference : np.ndarray [shape=(channels, samples)] or None, the clean target at
            ``sample_rate`` (read only by ``clean``).

        Returns
        -------
        np.ndarray [shape=(channels, samples), dtype=float32] at ``sample_rate``.
        """
        audio = check_audio(audio, sample_rate, name=self.name)
        rate = self.sample_rate or sample_rate
        work = resample(audio, sample_rate, rate)
        ref = None if reference is None else resample(np.asarray(reference, np.float32),
                                                      sample_rate, rate)
        out = np.asarray(self.process(work, rate, reference=ref), dtype=np.float32)
        if out.ndim == 1:
            out = out[np.newaxis, :]
        out = resample(out, rate, sample_rate)
        return fit_length(out, audio.shape[1])

    def __repr__(self) -> str:
        return f"<System {self.name} rate={self.sample_rate} latency={self.latency_samples}>"


def fit_length(audio: np.ndarray, n_samples: int) -> NDArray[np.float32]:
    """Trim or zero-pad the last axis to ``n_samples``.

    >>> fit_length(np.ones((1, 3), np.float32), 5).tolist()
    [[1.0, 1.0, 1.0, 0.0, 0.0]]
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[-1] >= n_samples:
        return np.ascontiguousarray(audio[..., :n_samples])
    pad = np.zeros(audio.shape[:-1] + (n_samples - audio.shape[-1],), np.float32)
    return np.concatenate([audio, pad], axis=-1)


#: System name -> factory taking keyword options (``commands`` for ``cmd:``), returning a System.
SYSTEMS: dict[str, Callable[..., System]] = {}


def register_system(name: str) -> Callable[[Callable[..., System]], Callable[..., System]]:
    """Decorator: register a system factory under ``name``."""

    def wrap(factory: Callable[..., System]) -> Callable[..., System]:
        if name in SYSTEMS:
            raise ValueError(f"system {name!r} registered twice")
        SYSTEMS[name] = factory
        return factory

    return wrap


def available_names() -> list[str]:
    """Every name :func:`make_system` accepts now: fixed systems and ``stage:<name>``."""
    from audiomend.stages import STAGES

    return sorted(SYSTEMS) + [f"stage:{s}" for s in STAGES]


def make_system(name: str, *, commands: Mapping[str, str] | None = None) -> System:
    """Build the system called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`SYSTEMS`, ``cmd:NAME`` (NAME a key of ``commands``) or ``stage:<stage>``.
    commands : mapping NAME -> command template with ``{in}`` and ``{out}`` placeholders.

    Raises
    ------
    BadOptionError
        Unknown name, or a ``cmd:`` name without a command.
    MissingDependencyError
        The system's optional package is not installed (the message has the pip command).
    """
    commands = dict(commands or {})
    if name.startswith("cmd:"):
        key = name[4:]
        if key not in commands:
            raise BadOptionError(f"system {name!r}: no command given; pass "
                                 f"--system-cmd {key}='tool {{in}} {{out}}'")
        return CommandSystem(key, commands[key])
    if name.startswith("stage:"):
        return StageSystem(name[6:])
    if name not in SYSTEMS:
        known = ", ".join(sorted(SYSTEMS) + ["stage:<name>", "cmd:<name>"])
        raise BadOptionError(f"unknown system {name!r}; known systems: {known}")
    return SYSTEMS[name]()


# --- the unprocessed input and the oracle ------------------------------------------------------


class Identity(System):
    """The unprocessed input: the score every system must beat."""

    name = "noisy"

    def process(self, audio, sample_rate, *, reference=None):
        return audio


class Oracle(System):
    """The clean reference itself: the metric maxima, the upper bound of any system."""

    name = "clean"
    uses_reference = True

    def process(self, audio, sample_rate, *, reference=None):
        if reference is None:
            raise BadOptionError("system 'clean' needs the reference; it only runs in the bench")
        return fit_length(reference, audio.shape[1])


@register_system("noisy")
def _noisy() -> System:
    return Identity()


@register_system("clean")
def _clean() -> System:
    return Oracle()


# --- noisereduce ------------------------------------------------------------------------------


class NoiseReduce(System):
    """noisereduce's spectral gating (``reduce_noise(y, sr, stationary, n_jobs=1)``)."""

    def __init__(self, *, stationary: bool) -> None:
        try:
            import noisereduce
        except ImportError as err:
            raise MissingDependencyError(f"noisereduce is not installed: {PEERS_HINT}") from err
        self._reduce = noisereduce.reduce_noise
        self.stationary = stationary
        self.name = "noisereduce_stationary" if stationary else "noisereduce"

    def process(self, audio, sample_rate, *, reference=None):
        # noisereduce takes (channels, samples) when given 2-D input.
        out = self._reduce(y=audio, sr=sample_rate, stationary=self.stationary, n_jobs=1)
        return np.asarray(out, np.float32).reshape(audio.shape)


@register_system("noisereduce")
def _noisereduce() -> System:
    return NoiseReduce(stationary=False)


@register_system("noisereduce_stationary")
def _noisereduce_stationary() -> System:
    return NoiseReduce(stationary=True)


# --- peer networks (RNNoise, DeepFilterNet3) ---------------------------------------------------


class PeerDenoiser(System):
    """RNNoise or DeepFilterNet3 on their own (no attenuation limit), through the same streaming
    adapter as ``restore --denoiser`` (:mod:`audiomend.stages.peer_denoise`): 48 kHz frames, one
    state per channel, the peer's own delay (RNNoise 960, DeepFilterNet3 1440 samples) removed.
    """

    sample_rate = 48_000

    def __init__(self, backend: str) -> None:
        from audiomend.stages.peer_denoise import load_peer

        self.name = backend
        self.latency_samples = load_peer(backend).latency_samples  # fails early when missing

    def process(self, audio, sample_rate, *, reference=None):
        from audiomend.stages.peer_denoise import peer_denoise

        return peer_denoise(audio, sample_rate, backend=self.name, strength=1.0,
                            attenuation_limit_db=100.0)


@register_system("rnnoise")
def _rnnoise() -> System:
    return PeerDenoiser("rnnoise")


@register_system("deepfilternet3")
def _deepfilternet3() -> System:
    return PeerDenoiser("deepfilternet3")


# --- external commands ------------------------------------------------------------------------


class CommandSystem(System):
    """Any external command that reads ``{in}`` and writes ``{out}`` (WAV files).

    The input is written as 32-bit float WAV at the corpus rate; the output is read back,
    resampled to the input rate if the command changed it, and trimmed or padded to the input
    length. The timing of such a system includes writing and reading those temporary files.
    """

    def __init__(self, key: str, template: str) -> None:
        if "{in}" not in template or "{out}" not in template:
            raise BadOptionError(f"--system-cmd {key}: the command must contain {{in}} and {{out}}, "
                                 f"got {template!r}")
        self.name = f"cmd:{key}"
        self.template = template

    def process(self, audio, sample_rate, *, reference=None):
        from audiomend.io import load, save

        with tempfile.TemporaryDirectory(prefix="audiomend-bench-") as tmp:
            src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
            save(src, audio, sample_rate, subtype="FLOAT")
            args = [a.replace("{in}", str(src)).replace("{out}", str(dst))
                    for a in shlex.split(self.template)]
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
                raise AudiomendError(f"{self.name}: command exited with {proc.returncode}: {tail[0]}")
            if not dst.exists():
                raise AudiomendError(f"{self.name}: command wrote no file at {{out}}")
            out, rate = load(dst)
        if out.shape[0] != audio.shape[0]:
            out = np.broadcast_to(out.mean(axis=0, keepdims=True), audio.shape)
        return fit_length(resample(out, rate, sample_rate), audio.shape[1])


# --- audiomend itself -------------------------------------------------------------------------


class Pipeline(System):
    """The full automatic audiomend pipeline: ``audiomend.pipeline.restore`` with its defaults."""

    name = "audiomend"

    def __init__(self) -> None:
        from audiomend.pipeline import restore

        self._restore = restore

    def process(self, audio, sample_rate, *, reference=None):
        out, rate = self._restore(audio, sample_rate)
        return fit_length(resample(out, rate, sample_rate), audio.shape[1])


class StageSystem(System):
    """One registered audiomend stage on its own, with its default parameters.

    Settings that only a diagnosis can give (a hum's mains frequency, a clipping level, a band
    edge, a loudness gain) are filled in per file from ``audiomend.pipeline.plan(diagnose(audio),
    stages=[name])`` when the pipeline plans this stage; the stage's own tuning (``strength``)
    keeps its default. The diagnosis is part of the stage's processing time. A stage the pipeline
    does not plan (one outside ``REPAIR_ORDER``, such as ``align``) runs with its defaults only.
    """

    def __init__(self, stage_name: str) -> None:
        from audiomend.stages import STAGES

        if stage_name not in STAGES:
            raise BadOptionError(f"system 'stage:{stage_name}': no such stage; registered stages: "
                                 f"{', '.join(STAGES)}")
        self.name = f"stage:{stage_name}"
        self.stage_name = stage_name
        try:
            self._default = STAGES[stage_name]()
        except TypeError:
            self._default = None
        self._planner = _stage_planner(stage_name)
        if self._default is None and self._planner is None:
            raise BadOptionError(f"system 'stage:{stage_name}': the stage has no default "
                                 f"parameters and audiomend.pipeline cannot plan it")

    def stages_for(self, audio: np.ndarray, sample_rate: int) -> list:
        """The stage(s) this system runs on ``audio``: defaults + settings from the diagnosis."""
        planned = self._planner(audio, sample_rate) if self._planner is not None else []
        if self._default is None:
            return planned
        if not planned:
            return [self._default]
        # Only what the diagnosis decides (mains, clip level, band edge, gain, the network's
        # input level); the stage's own choices (strength, backend, attenuation limit) stay at
        # its defaults, so stage:denoise is the classical one.
        fields = {f.name for f in dataclasses.fields(self._default)}
        settings = {k: v for k, v in planned[0].to_dict().items() if k in fields
                    and k not in ("name", "strength", "backend", "attenuation_limit_db")}
        return [dataclasses.replace(self._default, **settings)]

    def process(self, audio, sample_rate, *, reference=None):
        out = audio
        for stage in self.stages_for(audio, sample_rate):
            out = stage(out, sample_rate)
            rate = stage.output_rate(sample_rate)
            if rate != sample_rate:
                out = resample(out, rate, sample_rate)
        return fit_length(out, audio.shape[1])


def _stage_planner(stage_name: str) -> Callable[[np.ndarray, int], list] | None:
    """Per-file planning of one stage through the pipeline's diagnose + plan, or None when the
    pipeline does not plan this stage (it is not in ``REPAIR_ORDER``; ``neural`` is planned as
    the denoise slot, which gives it the input level the pipeline would)."""
    from audiomend.diagnose import diagnose
    from audiomend.pipeline import REPAIR_ORDER, plan

    # The network alone is planned as the pipeline plans it: as the neural denoise backend.
    slot = "denoise" if stage_name == "neural" else stage_name
    if slot not in REPAIR_ORDER:
        return None

    def planned(audio: np.ndarray, sample_rate: int) -> list:
        diagnosis = diagnose(audio, sample_rate)
        return [s for s in plan(diagnosis, stages=[slot]) if s.name == slot]

    return planned


@register_system("audiomend")
def _audiomend() -> System:
    return Pipeline()


def limit_threads() -> None:
    """Make numerical libraries in this process use one thread (for a fair, comparable RTF).

    Sets ``OMP/MKL/OPENBLAS_NUM_THREADS=1`` (inherited by worker processes), limits already-loaded
    BLAS pools with threadpoolctl when it is installed, and makes every onnxruntime session created
    afterwards in this process use ``intra_op_num_threads=1`` and ``inter_op_num_threads=1``.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    if importlib.util.find_spec("onnxruntime") is None:
        return
    import onnxruntime as ort

    if getattr(ort.InferenceSession, "_audiomend_one_thread", False):
        return
    original = ort.InferenceSession

    class OneThreadSession(original):  # type: ignore[misc, valid-type]
        _audiomend_one_thread = True

        def __init__(self, path_or_bytes, sess_options=None, *args, **kwargs):
            options = sess_options or ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            super().__init__(path_or_bytes, options, *args, **kwargs)

    ort.InferenceSession = OneThreadSession
