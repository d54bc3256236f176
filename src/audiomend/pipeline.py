"""Planning and running a restoration: :func:`plan` (pure), :func:`restore`, :func:`restore_file`.

``restore_file`` makes two streamed passes over the input and never holds it whole:

1. :func:`audiomend.diagnose.diagnose_file` measures what is wrong;
2. :func:`plan` turns the :class:`~audiomend.diagnose.Diagnosis` into stages with concrete
   parameters, in repair order ``dehum -> declick -> declip -> dereverb -> denoise -> bandwidth
   -> loudness``;
3. the input is streamed through a chain of the stages' processors (a resampler sits before
   ``bandwidth`` when the output rate differs) and written block by block to a temporary file
   in the output folder, renamed over the output only when complete.

Output is sample-aligned with the input and exactly ``round(n * out_rate / in_rate)`` samples
long; it does not depend on the block size.

Examples
--------
>>> from audiomend.diagnose import Diagnosis, NoiseFinding
>>> clean = Diagnosis(sample_rate=16000, channels=1, duration_s=3.0, loudness_lufs=-18.0)
>>> plan(clean)
[]
>>> noisy = Diagnosis(sample_rate=16000, channels=1, duration_s=3.0, loudness_lufs=-18.0,
...                   noise=NoiseFinding(8.0, 0.9, True))
>>> plan(noisy)
[Denoise(strength=1.0, attenuation_limit_db=40.0, backend='neural', input_gain_db=0.0)]
>>> plan(noisy, skip=["denoise"])
[]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, final

import numpy as np
from numpy.typing import NDArray

from audiomend.diagnose import Diagnosis, diagnose, diagnose_file
from audiomend.dsp import check_audio, check_sample_rate
from audiomend.errors import BadOptionError
from audiomend.io import default_permissions, output_format, same_file
from audiomend.stream import ChainProcessor, ResampleProcessor

#: Stage names ``restore`` plans, in repair order.
#: WPE comes before the denoiser: a nonlinear gain breaks the linear prediction WPE relies on
#: (measured on training mixtures and on the dev corpus, benchmarks/make_dev_corpus.py).
REPAIR_ORDER = ("dehum", "declick", "declip", "dereverb", "denoise", "bandwidth", "loudness")

#: With the neural denoiser, which also removes late reverberation, WPE runs only for rooms at
#: least this long (RT60, s); below it WPE added nothing on the dev corpus and costs the most
#: time of any stage.
NEURAL_WPE_MIN_RT60_S = 0.8

#: Loudness correction: leave the level alone when within this many LU of the target.
LOUDNESS_TOLERANCE_LU = 3.0

#: The loudness a clearly wrong level (too quiet, too loud) is taken to when the user names no
#: target, in LUFS (the common podcast/streaming level).
DEFAULT_TARGET_LUFS = -16.0

#: Headroom kept below the true-peak ceiling when capping a gain, in dB (sample peaks
#: underestimate true peaks by up to ~0.5 dB at 4x oversampling).
PEAK_MARGIN_DB = 0.5

#: Peak reduction the limiter may do when the level is clearly wrong (too quiet), in dB.
#: Zero: measured on simulated too-quiet speech, even 1-3 dB of limiting costs several dB of
#: SI-SDR and some PESQ, while ending 1-3 LU under the target costs nothing audible. The
#: limiter stays in the chain as a true-peak safety net.
MAX_LIMITING_DB = 0.0

#: Attenuation limit of the networks (ours and the peers'), in dB, against the estimated SNR:
#: full depth (``NETWORK_LIMIT_DB``) up to ``LIGHT_NOISE_SNR_DB[0]``, then down linearly to
#: ``LIGHT_NOISE_LIMIT_DB`` at ``LIGHT_NOISE_SNR_DB[1]`` and above. Light noise does not need
#: deep cuts, and the network's full-depth gains on it take speech with the noise. Chosen on
#: the dev sets (benchmarks/light_noise_limit.md): the best fixed limit per file was 30-40 dB
#: up to ~21 dB SNR, 18-24 dB near 23 dB and 12-15 dB from ~24 dB; on heavy noise 40 dB beat
#: 30 dB for both networks (ours: dev noise PESQ 1.86 -> 1.89, DNSMOS OVRL 2.73 -> 2.77) and
#: 50 dB added nothing.
NETWORK_LIMIT_DB = 40.0
LIGHT_NOISE_SNR_DB = (21.0, 25.0)
LIGHT_NOISE_LIMIT_DB = 12.0

#: Attenuation limit of our network when it is there for reverberation alone (no noise found),
#: in dB, against the estimated RT60 (s): ``REVERB_LIMIT_DB[0]`` for rooms reading up to
#: ``REVERB_LIMIT_RT60_S[0]``, rising linearly to ``REVERB_LIMIT_DB[1]`` from
#: ``REVERB_LIMIT_RT60_S[1]``. On held-out speech in simulated rooms (benchmarks/reverb_limit.md)
#: 20 dB removed long rooms as well as 40 dB (PESQ +0.02, ESTOI equal on two seeds) and took far
#: less from a room that belongs to the recording (a low-passed reverberant master scored against
#: itself: PESQ 1.7 -> 2.3); in rooms reading under 0.9 s, 12 dB removed the room as well as
#: 20 dB (PESQ -0.005..-0.009, ESTOI -0.001..-0.002 on three seeds) and took less again from a
#: room that belongs (PESQ +0.9), while from 0.9 s even 15 dB lost ESTOI. With noise found too,
#: full depth: the noise needs it.
REVERB_LIMIT_DB = (12.0, 20.0)
REVERB_LIMIT_RT60_S = (0.8, 1.0)

#: ``progress(samples_done, samples_total)``, called as a file is processed.
Progress = Callable[[int, int], None]


def denoisers() -> tuple[str, ...]:
    """What ``--denoiser`` accepts: the Denoise stage's backends.

    >>> denoisers()[:2]
    ('classical', 'neural')
    """
    try:
        from audiomend.stages.denoise import BACKENDS
    except ImportError:
        return ("classical",)
    return tuple(BACKENDS)


def _registry() -> dict[str, type]:
    from audiomend.stages import STAGES

    return STAGES


def check_stage_names(names: Iterable[str], *, option: str = "stages") -> list[str]:
    """Validate stage names against :data:`REPAIR_ORDER`; return them as a list.

    >>> check_stage_names(["denoise", "declip"])
    ['denoise', 'declip']
    """
    names = [str(n).strip() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in REPAIR_ORDER]
    if unknown:
        raise BadOptionError(f"{option}: unknown stage {', '.join(map(repr, unknown))}; "
                             f"valid stages: {', '.join(REPAIR_ORDER)}")
    return names


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return float(min(max(x, lo), hi))


def _ramp(x: float, x0: float, x1: float, y0: float, y1: float) -> float:
    """Linear map of ``x`` from [x0, x1] to [y0, y1], clamped at the ends."""
    if not math.isfinite(x):
        return y1
    t = _clamp((x - x0) / (x1 - x0))
    return y0 + t * (y1 - y0)


def _severity(name: str, d: Diagnosis) -> float:
    """How hard a stage should work, in [0, 1], from the finding's value and confidence.

    The ramps run from the ``present`` threshold (mild damage, gentle repair) to heavy damage
    (full strength), and are scaled by ``0.5 + 0.5 * confidence``, so an unsure finding is
    repaired more gently. Stages whose damage is absent but which were asked for explicitly
    run at full strength.
    """
    if name == "dehum":
        sev = 1.0  # notches on the measured harmonics: exact, no reason to be gentle
        finding = d.hum
    elif name == "declick":
        sev, finding = 1.0, d.clicks
    elif name == "declip":
        sev = _ramp(d.clipping.fraction, 0.0, 0.01, 0.6, 1.0)
        finding = d.clipping
    elif name == "denoise":
        sev = _ramp(d.noise.snr_db, 25.0, 5.0, 0.3, 1.0)
        finding = d.noise
    elif name == "dereverb":
        sev = _ramp(d.reverb.rt60_s, 0.4, 1.2, 0.4, 1.0)
        finding = d.reverb
    elif name == "bandwidth":
        sev, finding = 1.0, d.bandwidth
    else:
        return 1.0
    if not finding.present:
        return sev
    return sev * (0.5 + 0.5 * _clamp(finding.confidence))


def _network_limit_db(d: Diagnosis) -> float:
    """The networks' attenuation limit in dB: shallower for light noise (see
    :data:`LIGHT_NOISE_SNR_DB`) and for reverberation without noise (:data:`REVERB_LIMIT_DB`).
    Full depth for reverberation with noise, and for a floor that a level correction raises:
    the SNR says nothing about those."""
    if d.level.present:
        return NETWORK_LIMIT_DB
    if d.reverb.present:
        if d.noise.present:
            return NETWORK_LIMIT_DB
        return round(_ramp(d.reverb.rt60_s, *REVERB_LIMIT_RT60_S, *REVERB_LIMIT_DB), 1)
    if not d.noise.present:
        return NETWORK_LIMIT_DB
    lo, hi = LIGHT_NOISE_SNR_DB
    return round(_ramp(d.noise.snr_db, lo, hi, NETWORK_LIMIT_DB, LIGHT_NOISE_LIMIT_DB), 1)


def _bandwidth_cutoff_hz(d: Diagnosis, out_rate: int) -> float | None:
    """The band edge to extend from, or None when there is nothing to extend at ``out_rate``."""
    in_nyquist = d.sample_rate / 2.0
    cutoff = d.bandwidth.cutoff_hz if math.isfinite(d.bandwidth.cutoff_hz) else in_nyquist
    if out_rate > d.sample_rate:
        cutoff = min(cutoff, 0.95 * in_nyquist)   # the resampled input stops at its old Nyquist
    if cutoff >= 0.9 * out_rate / 2.0:
        return None
    return float(cutoff)


def _loudness_gain_db(d: Diagnosis, target_lufs: float, true_peak_dbfs: float = -1.0) -> float | None:
    """Gain in dB towards the loudness target, or None when the level should be left alone.

    Policy (the chain must be transparent on sensible recordings):

    - within :data:`LOUDNESS_TOLERANCE_LU` of the target: no change;
    - level sensible (``diagnosis.level`` not present) but off target: the gain is capped so the
      sample peak stays :data:`PEAK_MARGIN_DB` below ``true_peak_dbfs`` (no limiting at all);
    - level clearly wrong (``diagnosis.level`` present, e.g. 30 dB too quiet): the full gain,
      but at most :data:`MAX_LIMITING_DB` (now 0) of peak reduction left for the limiter.

    A resulting correction under 1 dB is not worth a stage and is dropped.
    """
    if not math.isfinite(d.loudness_lufs):
        return None
    gain = target_lufs - d.loudness_lufs
    if abs(gain) <= LOUDNESS_TOLERANCE_LU:
        return None
    if math.isfinite(d.peak_dbfs):
        allowance = MAX_LIMITING_DB if d.level.present else 0.0
        gain = min(gain, true_peak_dbfs - PEAK_MARGIN_DB - d.peak_dbfs + allowance)
    if abs(gain) < 1.0:
        return None
    return float(gain)


#: A recording raised by the loudness stage is also denoised when its noise floor would end up
#: above this level (dBFS). Dev corpus: speech 20-35 dB too quiet over a -85 dBFS floor ends at
#: -46.5..-40.6 dBFS after the correction; the clean recordings at their own level read
#: -57.5..-47.1 dBFS (and are not raised, so are not concerned).
AUDIBLE_FLOOR_DBFS = -55.0


def _floor_raised_audible(d: Diagnosis, target_lufs: float) -> bool:
    """Whether a too-quiet recording's noise floor becomes audible once its level is corrected."""
    gain = _loudness_gain_db(d, target_lufs)
    if not d.level.present or gain is None or gain <= 0:
        return False
    floor = d.noise.noise_floor_dbfs
    return bool(math.isfinite(floor) and floor + gain > AUDIBLE_FLOOR_DBFS)


def plan(
    diagnosis: Diagnosis,
    *,
    stages: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    strength: float = 1.0,
    target_lufs: float | None = None,
    sample_rate: int | None = None,
    denoiser: str = "neural",
) -> list:
    """Choose the repair stages and their parameters from a diagnosis. Pure: no audio.

    Parameters
    ----------
    diagnosis : Diagnosis of the input.
    stages : names of stages to run (forced, even where the damage is not found), in any
        order; None lets the diagnosis decide. Valid names: :data:`REPAIR_ORDER`.
    skip : names of stages never to run.
    strength : float in [0, 1], scales every stage's strength (0 = leave the audio alone).
    target_lufs : float or None, the integrated loudness to aim for. None (the default): the
        level is damage only when the diagnosis finds it clearly wrong (e.g. 30 dB too quiet),
        and then goes to :data:`DEFAULT_TARGET_LUFS`; a level that is roughly right is the
        producer's choice and stays (after declipping, a 0 dB limiter still keeps the
        reconstructed peaks under the ceiling). A number: normalise to it whenever the level is
        more than :data:`LOUDNESS_TOLERANCE_LU` away.
    sample_rate : int or None, the output rate in Hz (None = the input's). When higher than the
        input's, ``bandwidth`` extends the band up to the new Nyquist.
    denoiser : the Denoise backend (``classical``, ``neural``, ...).

    Returns
    -------
    list of Stage, in repair order. Empty for a clean recording at a sensible level.

    Raises
    ------
    BadOptionError
        Unknown stage names, strength outside [0, 1], implausible rates.

    Examples
    --------
    >>> from audiomend.diagnose import Diagnosis
    >>> from audiomend.diagnose import LevelFinding
    >>> quiet = Diagnosis(sample_rate=16000, channels=1, duration_s=3.0, loudness_lufs=-50.0,
    ...                   peak_dbfs=-35.0, level=LevelFinding(-50.0, 1.0, True))
    >>> [s.to_dict() for s in plan(quiet)]
    [{'name': 'loudness', 'gain_db': 33.5, 'true_peak_dbfs': -1.0}]
    >>> [s.to_dict() for s in plan(quiet, target_lufs=-23.0, strength=0.5)]
    [{'name': 'loudness', 'gain_db': 13.5, 'true_peak_dbfs': -1.0}]
    >>> sensible = dataclasses.replace(quiet, loudness_lufs=-26.0, peak_dbfs=-8.0,
    ...                                level=LevelFinding(-26.0, 1.0, False))
    >>> plan(sensible), [s.to_dict() for s in plan(sensible, target_lufs=-16.0)]
    ([], [{'name': 'loudness', 'gain_db': 6.5, 'true_peak_dbfs': -1.0}])
    """
    forced = check_stage_names(stages or [], option="--stages")
    skipped = set(check_stage_names(skip, option="--skip"))
    if not 0.0 <= float(strength) <= 1.0:
        raise BadOptionError(f"--strength must be in [0, 1], got {strength}")
    normalise = target_lufs is not None
    target_lufs = DEFAULT_TARGET_LUFS if target_lufs is None else target_lufs
    if not math.isfinite(float(target_lufs)) or not -70.0 <= float(target_lufs) <= 0.0:
        raise BadOptionError(f"--target-lufs must be in [-70, 0] LUFS, got {target_lufs}")
    if denoiser not in denoisers():
        raise BadOptionError(f"--denoiser: unknown denoiser {denoiser!r}; choose one of "
                             f"{', '.join(denoisers())}")
    out_rate = diagnosis.sample_rate if sample_rate is None else \
        check_sample_rate(sample_rate, name="--sample-rate")
    d = diagnosis
    wanted = {
        "dehum": d.hum.present or d.dc.present,
        "declick": d.clicks.present,
        "declip": d.clipping.present,
        # The network removes noise and late reverberation; the classical denoiser only noise.
        # A recording far too quiet is raised by tens of dB, and its noise floor with it.
        "denoise": d.noise.present or (denoiser == "neural" and d.reverb.present)
        or _floor_raised_audible(d, target_lufs),
        "dereverb": d.reverb.present and (denoiser != "neural"
                                          or d.reverb.rt60_s >= NEURAL_WPE_MIN_RT60_S),
        "bandwidth": d.bandwidth.present or out_rate > d.sample_rate,
        "loudness": d.level.present or d.clipping.present
                    or (normalise and _loudness_gain_db(d, target_lufs) is not None),
    }
    if stages is not None:
        wanted = {name: name in forced for name in REPAIR_ORDER}
    if strength == 0.0:
        return []
    registry = _registry()
    out: list = []
    for name in REPAIR_ORDER:
        if not wanted[name] or name in skipped:
            continue
        if name not in registry:
            if name in forced:
                raise BadOptionError(f"--stages: stage {name!r} is not available in this "
                                     "installation")
            continue  # a partial installation repairs what it can
        stage = _make_stage(registry[name], name, d, strength=float(strength),
                            target_lufs=float(target_lufs), normalise=normalise, out_rate=out_rate,
                            denoiser=denoiser, forced=name in forced)
        if stage is not None:
            out.append(stage)
    return out


def _make_stage(cls: type, name: str, d: Diagnosis, *, strength: float, target_lufs: float,
                normalise: bool, out_rate: int, denoiser: str, forced: bool):
    s = round(_clamp(strength * _severity(name, d)), 3)
    fields = {f.name for f in dataclasses.fields(cls)}

    def build(**kwargs: Any):
        return cls(**{k: v for k, v in kwargs.items() if k in fields})

    if name == "dehum":
        mains = d.hum.mains_hz if d.hum.mains_hz in (50.0, 60.0) else 50.0
        harmonics = 8 if (d.hum.present or forced) else 0
        return build(mains_hz=float(mains), n_harmonics=harmonics, strength=s, remove_dc=True)
    if name == "declick":
        return build(strength=s)
    if name == "declip":
        level = d.clipping.level if d.clipping.present and math.isfinite(d.clipping.level) else None
        return build(level=level, strength=s)
    if name == "denoise":
        # The networks (ours and the peers') adapt their gains to the SNR they hear: scaling
        # them down by the estimated severity only leaves noise in (dev corpus, noise: ours
        # 1.57 -> 1.74 PESQ at full strength, DeepFilterNet3 1.89 -> 2.23).
        # It was trained on speech at -45..-15 dBFS and reacts to the level: let it hear the
        # recording at a level inside that range (its gains still apply to the input as is).
        from audiomend.stages.neural import input_gain_for_loudness

        if denoiser == "classical":
            return build(strength=s, backend=denoiser)
        gain_db = input_gain_for_loudness(d.loudness_lufs) if denoiser == "neural" else 0.0
        return build(strength=strength, backend=denoiser, input_gain_db=round(gain_db, 2),
                     attenuation_limit_db=_network_limit_db(d))
    if name == "dereverb":
        return build(strength=s)
    if name == "bandwidth":
        cutoff = _bandwidth_cutoff_hz(d, out_rate)
        if cutoff is None:
            return None
        from audiomend.stages.bandwidth import default_fill_gain_db

        return build(cutoff_hz=round(cutoff, 1), strength=s,
                     fill_gain_db=default_fill_gain_db(cutoff, d.noise.snr_db))
    if name == "loudness":
        gain = _loudness_gain_db(d, target_lufs) if (normalise or d.level.present) else None
        if gain is None and d.clipping.present and not forced:
            gain = 0.0  # the limiter alone keeps the declipped peaks under the ceiling
        if gain is None and not forced:
            return None
        if gain is None:
            gain = target_lufs - d.loudness_lufs if math.isfinite(d.loudness_lufs) else 0.0
        # strength scales the correction in dB: 0.5 moves half way to the target.
        return build(gain_db=round(gain * strength, 2), true_peak_dbfs=-1.0)
    raise AssertionError(name)  # REPAIR_ORDER is closed


# --------------------------------------------------------------------------------------------
# Options and results


@dataclass(frozen=True)
class RestoreOptions:
    """Everything that decides a restoration's output (hashed by the batch engine).

    Parameters
    ----------
    stages : tuple of stage names to force (None = decided by the diagnosis).
    skip : tuple of stage names never to run.
    strength : float in [0, 1], overall strength.
    target_lufs : float or None, loudness target (None: fix only a clearly wrong level, see
        :func:`plan`).
    sample_rate : int or None, output rate in Hz (None = the input's).
    denoiser : Denoise backend.
    block_s : float > 0, streaming block length in seconds (does not change the output).
    subtype : soundfile subtype of the output (None = the input's where the format allows).

    Examples
    --------
    >>> RestoreOptions().settings_hash() == RestoreOptions(block_s=10.0).settings_hash()
    True
    >>> RestoreOptions(strength=0.5).to_dict()["strength"]
    0.5
    """

    stages: tuple[str, ...] | None = None
    skip: tuple[str, ...] = ()
    strength: float = 1.0
    target_lufs: float | None = None
    sample_rate: int | None = None
    denoiser: str = "neural"
    block_s: float = 10.0
    subtype: str | None = None

    def __post_init__(self) -> None:
        # Accept lists for convenience, store tuples so the dataclass stays hashable.
        if self.stages is not None and not isinstance(self.stages, tuple):
            object.__setattr__(self, "stages", tuple(self.stages))
        if not isinstance(self.skip, tuple):
            object.__setattr__(self, "skip", tuple(self.skip))
        if not self.block_s > 0:
            raise BadOptionError(f"block_s must be > 0 seconds, got {self.block_s}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stages"] = None if self.stages is None else list(self.stages)
        d["skip"] = list(self.skip)
        return d

    def settings_hash(self) -> str:
        """sha256 of the options that change the output (``block_s`` does not), as hex."""
        d = self.to_dict()
        d.pop("block_s")
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def plan(self, diagnosis: Diagnosis) -> list:
        return plan(diagnosis, stages=self.stages, skip=self.skip, strength=self.strength,
                    target_lufs=self.target_lufs, sample_rate=self.sample_rate,
                    denoiser=self.denoiser)


@dataclass
class RestoreResult:
    """What :func:`restore_file` did: the diagnosis, the stages, the timing."""

    input_path: str
    output_path: str
    diagnosis: Diagnosis
    stages: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    processing_s: float = 0.0
    rtf: float = 0.0
    sample_rate: int = 0
    report_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"input_path": self.input_path, "output_path": self.output_path,
                "diagnosis": self.diagnosis.to_dict(), "stages": self.stages,
                "duration_s": self.duration_s, "processing_s": self.processing_s,
                "rtf": self.rtf, "sample_rate": self.sample_rate,
                "report_path": self.report_path}


# --------------------------------------------------------------------------------------------
# The streamed chain


class RestoreChain:
    """The planned stages as one streaming object: input rate in, output rate out, aligned.

    ``stages`` run in order; a resampler from ``in_rate`` to ``out_rate`` is inserted before the
    first ``bandwidth`` or ``loudness`` stage (or at the end). The total output is exactly
    ``round(n_in * out_rate / in_rate)`` samples.
    """

    def __init__(self, stages: Sequence, in_rate: int, out_rate: int, channels: int) -> None:
        self.in_rate, self.out_rate, self.channels = int(in_rate), int(out_rate), int(channels)
        cut = next((i for i, s in enumerate(stages) if s.name in ("bandwidth", "loudness")),
                   len(stages))
        self._before = ChainProcessor(channels, [s.processor(in_rate, channels)
                                                 for s in stages[:cut]])
        self._resample = ResampleProcessor(channels, in_rate, out_rate) \
            if in_rate != out_rate else None
        self._after = ChainProcessor(channels, [s.processor(out_rate, channels)
                                                for s in stages[cut:]])
        self._n_in = 0
        self._n_out = 0

    def _through(self, block: np.ndarray, last: bool) -> NDArray[np.float32]:
        parts = [self._before.process(block)] if block.shape[1] else []
        if last:
            parts.append(self._before.flush())
        y = np.concatenate(parts, axis=1) if parts else np.zeros((self.channels, 0), np.float32)
        if self._resample is not None:
            z = [self._resample.process(y)]
            if last:
                z.append(self._resample.flush())
            y = np.concatenate(z, axis=1)
        out = [self._after.process(y)]
        if last:
            out.append(self._after.flush())
        return np.concatenate(out, axis=1)

    def expected_output(self, n_in: int) -> int:
        return round(n_in * self.out_rate / self.in_rate)

    def process(self, block: np.ndarray) -> NDArray[np.float32]:
        """Feed ``(channels, n)`` at ``in_rate``; return the output ready so far at ``out_rate``."""
        self._n_in += block.shape[1]
        y = self._through(block, last=False)
        # Never emit beyond the final length (only a resampler's transient could).
        y = y[:, : max(self.expected_output(self._n_in) - self._n_out, 0)]
        self._n_out += y.shape[1]
        return y

    def flush(self) -> NDArray[np.float32]:
        """End of stream: the rest of the output, padded or trimmed to the exact length."""
        y = self._through(np.zeros((self.channels, 0), np.float32), last=True)
        want = self.expected_output(self._n_in) - self._n_out
        if y.shape[1] < want:
            y = np.concatenate([y, np.zeros((self.channels, want - y.shape[1]), np.float32)],
                               axis=1)
        y = y[:, :want]
        self._n_out += y.shape[1]
        return y

    def run(self, audio: np.ndarray) -> NDArray[np.float32]:
        return np.concatenate([self.process(audio), self.flush()], axis=1)


def restore(audio: np.ndarray, sample_rate: int,
            options: RestoreOptions = RestoreOptions()) -> tuple[NDArray[np.float32], int]:
    """Diagnose and repair a recording held in memory.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32.
    sample_rate : int, Hz.
    options : RestoreOptions.

    Returns
    -------
    audio : np.ndarray [shape=(channels, round(samples * out_rate / sample_rate)), float32]
    sample_rate : int, the output rate.

    Examples
    --------
    >>> x = np.zeros((1, 1600), np.float32)
    >>> y, rate = restore(x, 16000)
    >>> y.shape, rate
    ((1, 1600), 16000)
    """
    audio = check_audio(audio, sample_rate)
    out_rate = options.sample_rate or sample_rate
    d = diagnose(audio, sample_rate, block_s=options.block_s)
    stages = options.plan(d)
    chain = RestoreChain(stages, sample_rate, out_rate, audio.shape[0])
    return chain.run(audio), int(out_rate)


# --------------------------------------------------------------------------------------------
# Files


@final  # not meant to be subclassed; lets __enter__ name the class on Python 3.10 (no Self)
class AtomicWriter:
    """Write blocks to a temporary file next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int, fmt: str, subtype: str) -> None:
        self.path = Path(path)
        self._clip = subtype.startswith(("PCM", "ULAW", "ALAW", "DPCM")) or fmt in {"MP3", "OGG"}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        import soundfile as sf

        try:
            self._file = sf.SoundFile(str(self.tmp), "w", samplerate=int(sample_rate),
                                      channels=int(channels), subtype=subtype, format=fmt)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        self.frames = 0

    def write(self, block: np.ndarray) -> None:
        if block.shape[1] == 0:
            return
        if self._clip:
            block = np.clip(block, -1.0, 1.0)
        self._file.write(np.ascontiguousarray(block.T))
        self.frames += block.shape[1]

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._file.close()
        finally:
            if exc_type is None:
                os.chmod(self.tmp, default_permissions())
                os.replace(self.tmp, self.path)
            else:
                self.tmp.unlink(missing_ok=True)


def restore_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: RestoreOptions = RestoreOptions(),
    *,
    progress: Progress | None = None,
    report_path: str | os.PathLike | None = None,
) -> RestoreResult:
    """Diagnose and repair a file, streaming it (memory does not grow with its length).

    Parameters
    ----------
    input_path : an audio file audiomend reads.
    output_path : where to write; the extension picks the format. Written atomically (a
        temporary file in the same folder, renamed when complete). Must not be the input.
    options : RestoreOptions.
    progress : callable ``(samples_done, samples_total)`` or None. Both passes count: the total
        is twice the input's length in samples.
    report_path : write an HTML report there (spectrograms and scores on the first 60 s).

    Returns
    -------
    RestoreResult

    Raises
    ------
    BadAudioError
        The input is missing, empty, corrupt or non-finite.
    BadOptionError
        Output equal to the input, unwritable format, bad options.
    """
    from audiomend.io import blocks, info

    t0 = time.perf_counter()
    src, dst = Path(input_path), Path(output_path)
    header = info(src)
    if same_file(src, dst):
        raise BadOptionError(f"{dst}: refusing to overwrite the input file; choose another output path")
    if dst.is_dir():
        raise BadOptionError(f"{dst}: is a directory; give an output file name")
    fmt, subtype = output_format(dst, src, options.subtype)
    options.plan(Diagnosis(sample_rate=header.sample_rate, channels=header.channels,
                           duration_s=0.0))  # validates the options before any work
    in_rate, channels, total = header.sample_rate, header.channels, header.frames
    out_rate = check_sample_rate(options.sample_rate, name="--sample-rate") \
        if options.sample_rate else in_rate

    def first_pass(done: int, _total: int) -> None:
        if progress is not None:
            progress(min(done, total), 2 * total)

    diagnosis = diagnose_file(src, block_s=options.block_s, progress=first_pass)
    stages = options.plan(diagnosis)
    chain = RestoreChain(stages, in_rate, out_rate, channels)
    done = 0
    with AtomicWriter(dst, out_rate, channels, fmt, subtype) as writer:
        for block in blocks(src, block_s=options.block_s):
            writer.write(chain.process(block))
            done += block.shape[1]
            if progress is not None:
                progress(total + min(done, total), 2 * total)
        writer.write(chain.flush())
    processing_s = time.perf_counter() - t0
    duration_s = diagnosis.duration_s
    result = RestoreResult(
        input_path=str(src), output_path=str(dst), diagnosis=diagnosis,
        stages=[s.to_dict() for s in stages], duration_s=duration_s,
        processing_s=processing_s, rtf=processing_s / duration_s if duration_s else 0.0,
        sample_rate=out_rate,
    )
    if report_path is not None:
        from audiomend.report import write_file_report  # report sits above the pipeline

        result.report_path = str(write_file_report(report_path, src, dst, diagnosis,
                                                   result.stages))
    return result
