"""Where batch jobs run: local worker processes, or a Dask cluster (extra ``dist``).

Both engines call :func:`run_job` on the workers with paths only: a worker reads the input from
the (shared) filesystem, restores it into a hidden temporary file beside the output, fsyncs and
renames it into place, and sends back a small dict (status, checksums, timings, diagnosis). No
audio travels between processes or through a Dask scheduler. The parent process consumes the
results in completion order and is the journal's only writer.

Each worker is single-threaded (``OMP_NUM_THREADS=1`` and friends, threadpoolctl when present):
parallelism comes from running one file per worker, which scales better than threads inside one
file.

Dask workers run with glibc's default allocator settings, like local workers. Dask's nanny
exports ``MALLOC_TRIM_THRESHOLD_=65536`` to the worker processes it spawns (and leaves it in the
spawning process's environment, where later local workers would inherit it): setting a trim
threshold freezes glibc's mmap threshold at 128 KiB, so every array above that (STFT frames,
blocks) is a fresh ``mmap`` whose pages are faulted in again, about 10x the page faults and 2.6x
the CPU time per restored file. Our LocalCluster spawns without it and the batch process's
environment is restored afterwards; on an existing cluster, :func:`run_job` resets the
allocator thresholds in each worker where the variable is set (:func:`tune_malloc`).

Examples
--------
The per-file function has the signature of :func:`audiomend.pipeline.restore_file`:

>>> import tempfile, pathlib, numpy as np
>>> from audiomend.io import load, save
>>> from audiomend.batch.manifest import Job
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = save(d / "in.wav", np.zeros((1, 1600), np.float32), 16000)
>>> def copy_file(input_path, output_path, options):
...     audio, rate = load(input_path)
...     save(output_path, audio, rate, like=input_path)
>>> r = run_job(copy_file, Job(str(d / "in.wav"), str(d / "out" / "in.wav"), None, "in.wav"))
>>> r["status"], r["duration_s"], (d / "out" / "in.wav").exists()
('done', 0.1, True)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from audiomend.batch.journal import sha256_file
from audiomend.batch.manifest import Job
from audiomend.errors import AudiomendError, BadOptionError, MissingDependencyError

#: Environment variables that pin native thread pools to one thread in each worker.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

#: Jobs in flight per worker: enough to keep every worker busy between results.
IN_FLIGHT_PER_WORKER = 2

ENGINES = ("local", "dask")

PerFileFn = Callable[[str, str, Any], Any]

#: Allocator variables Dask's nanny sets by default; dropped for our LocalCluster workers.
MALLOC_ENV_PREFIX = "MALLOC_"

_threads_limited = False
_malloc_tuned = False


def default_function() -> PerFileFn:
    """:func:`audiomend.pipeline.restore_file`, imported when first needed."""
    from audiomend.pipeline import restore_file

    return restore_file


def settings_hash(options: Any) -> str:
    """The options' ``settings_hash()``, or a stable hash of their JSON for other objects.

    >>> settings_hash(None)
    'none'
    """
    if options is None:
        return "none"
    if hasattr(options, "settings_hash"):
        return str(options.settings_hash())
    import hashlib
    import json

    return hashlib.sha256(json.dumps(options_dict(options), sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


def options_dict(options: Any) -> dict[str, Any] | None:
    """The options as a JSON-able dict (``to_dict()`` or ``dataclasses.asdict``)."""
    if options is None:
        return None
    if hasattr(options, "to_dict"):
        return options.to_dict()
    import dataclasses

    return dataclasses.asdict(options)


def limit_threads() -> None:
    """Pin this process's native thread pools to one thread (idempotent)."""
    global _threads_limited
    if _threads_limited:
        return
    os.environ.update(SINGLE_THREAD_ENV)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # the environment variables still cover pools created from now on
        pass
    _threads_limited = True


def tune_malloc() -> bool:
    """Undo a ``MALLOC_TRIM_THRESHOLD_`` found in the environment (Dask's default) in this process.

    With that variable set, glibc's mmap threshold stays at 128 KiB, so arrays of a few hundred
    kB are mapped and unmapped on every allocation. This sets the thresholds glibc's own dynamic
    rule settles at for such arrays: mmap threshold 32 MiB, trim threshold 64 MiB. It acts once
    per process, on Linux with glibc, only when the variable is set.

    Returns
    -------
    True when the thresholds were set (now or earlier in this process).
    """
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    import ctypes

    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc <malloc.h>
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) == 1
        ok = libc.mallopt(m_trim_threshold, 64 << 20) == 1 and ok
    except (OSError, AttributeError):  # not glibc
        return False
    _malloc_tuned = ok
    return ok


@contextlib.contextmanager
def _environ_restored() -> Iterator[None]:
    """Restore ``os.environ`` on exit (Dask's nanny writes its pre-spawn variables into it)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for k in set(os.environ) - set(saved):
            os.environ.pop(k, None)
        for k, v in saved.items():
            if os.environ.get(k) != v:
                os.environ[k] = v


def _init_local_worker(parent_pid: int) -> None:
    import signal

    # Ctrl-C goes to the whole process group: the parent handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    limit_threads()


def _die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this worker when the batch process dies (kill -9), so
    no orphan keeps writing into the output folder while a rerun starts."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


def _one_line(err: BaseException, input_path: str) -> str:
    if isinstance(err, AudiomendError):
        msg = str(err)
    elif isinstance(err, OSError) and err.strerror:
        msg = f"{err.filename or input_path}: {err.strerror}"
    else:
        msg = f"{type(err).__name__}: {err}"
    return " ".join(msg.split()) or type(err).__name__


def _temp_output(output: Path) -> Path:
    return output.with_name(f".{output.name}.{os.getpid()}.partial{output.suffix}")


def _record_head(job: Job) -> dict[str, Any]:
    """The journal fields every result of ``job`` carries, done or failed."""
    return {"key": job.key, "input": job.input_path, "output": job.output_path,
            "settings_hash": settings_hash(job.options), "options": options_dict(job.options)}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_job(fn: PerFileFn, job: Job, want_scores: bool = False, dnsmos: bool = False) -> dict:
    """Restore one file on a worker; never raises for a bad file, returns a small dict.

    The output is written by ``fn`` to a hidden temporary path next to the final one (same
    extension, so the same format), fsynced, then renamed: a kill at any moment leaves either
    no output or a complete one.

    Parameters
    ----------
    fn : ``fn(input_path, output_path, options)``, e.g. :func:`audiomend.pipeline.restore_file`.
        Its return value may carry ``duration_s``, ``processing_s``, ``stages`` and a
        ``diagnosis`` with ``to_dict()`` (a RestoreResult or a dict with those keys).
    job : the file to restore.
    want_scores : also measure reference-free scores of input and output and draw spectrogram
        thumbnails (for reports; the thumbnails are not journaled).
    dnsmos : include DNSMOS in those scores (slow; needs onnxruntime and speechmos).

    Returns
    -------
    dict with the fields of :class:`audiomend.batch.journal.JournalRecord`: ``status`` is
    ``"done"`` or ``"failed"`` (with ``error``, one line).
    """
    limit_threads()
    tune_malloc()
    out = Path(job.output_path)
    tmp = _temp_output(out)
    record = _record_head(job)
    t0 = time.perf_counter()
    try:
        st = os.stat(job.input_path)
        record.update(input_size=st.st_size, input_mtime=st.st_mtime,
                      input_sha256=sha256_file(job.input_path))
        out.parent.mkdir(parents=True, exist_ok=True)
        result = fn(job.input_path, str(tmp), job.options)
        if not tmp.is_file():
            raise RuntimeError(f"{job.input_path}: the per-file function wrote no output")
        _fsync(tmp)
        os.replace(tmp, out)
        processing_s = time.perf_counter() - t0
        get = result.get if isinstance(result, dict) else (lambda k: getattr(result, k, None))
        duration_s = get("duration_s")
        if duration_s is None:
            from audiomend.io import info

            duration_s = info(out).duration_s
        diagnosis = get("diagnosis")
        if diagnosis is not None and hasattr(diagnosis, "to_dict"):
            diagnosis = diagnosis.to_dict()
        stages = get("stages")
        record.update(
            status="done", output_sha256=sha256_file(out), duration_s=float(duration_s),
            processing_s=processing_s, rtf=processing_s / max(float(duration_s), 1e-9),
            stages=[_stage_dict(s) for s in stages] if stages is not None else None,
            diagnosis=diagnosis,
        )
        if want_scores:
            try:
                record.update(_report_material(job.input_path, out, dnsmos=dnsmos))
            except Exception as err:  # noqa: BLE001 - the file is restored; only its scores failed
                record["scores"] = {"error": _one_line(err, job.input_path)}
    except Exception as err:  # noqa: BLE001 - a bad file must not stop the batch: report it
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        record.update(status="failed", error=_one_line(err, job.input_path),
                      processing_s=time.perf_counter() - t0)
    return record


def _report_material(input_path: str, output: Path, *, dnsmos: bool) -> dict[str, Any]:
    """Scores before/after and spectrogram thumbnails (base64 JPEG, a few kB each)."""
    from audiomend.batch.scores import reference_free_scores, spectrogram_thumbnail

    material: dict[str, Any] = {"scores": {"before": reference_free_scores(input_path, dnsmos=dnsmos),
                                           "after": reference_free_scores(output, dnsmos=dnsmos)}}
    try:
        material["thumbnails"] = {"before": spectrogram_thumbnail(input_path),
                                  "after": spectrogram_thumbnail(output)}
    except MissingDependencyError:
        pass
    return material


def _stage_dict(stage: Any) -> Any:
    if isinstance(stage, (dict, str)):
        return stage
    if hasattr(stage, "to_dict"):
        return stage.to_dict()
    return getattr(stage, "name", str(stage))


def _worker_died(job: Job, detail: str) -> dict:
    return {**_record_head(job), "status": "failed",
            "error": f"{job.input_path}: worker process died while restoring it ({detail}); "
                     f"out of memory or a crash in native code"}


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_workers(workers: int | None) -> int:
    """``workers`` or the number of CPU cores; refuses < 1."""
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise BadOptionError(f"--workers {workers}: need at least 1 worker")
    return int(n)


def run_local(fn: PerFileFn, jobs: Iterable[Job], *, workers: int | None = None,
              want_scores: bool = False, dnsmos: bool = False) -> Iterator[dict]:
    """Run jobs on ``workers`` local processes; yield each result dict as it completes.

    Processes are started with ``spawn`` (no inherited threads or locks) and pinned to one thread.
    A worker that dies (out of memory, native crash) fails the files it held after one retry
    each; the pool is restarted for the rest.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    queue = list(jobs)
    queue.reverse()  # pop() from the end keeps the input order
    n = min(check_workers(workers), max(len(queue), 1))
    breaks: dict[str, int] = {}
    ctx = multiprocessing.get_context("spawn")
    while queue:
        with _environ(SINGLE_THREAD_ENV):
            pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx,
                                       initializer=_init_local_worker, initargs=(os.getpid(),))
        pending: dict[Any, Job] = {}
        broken = False
        try:
            while queue or pending:
                while queue and len(pending) < n * IN_FLIGHT_PER_WORKER and not broken:
                    job = queue.pop()
                    pending[pool.submit(run_job, fn, job, want_scores, dnsmos)] = job
                if not pending:
                    break
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = pending.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        broken = True
                        breaks[job.key] = breaks.get(job.key, 0) + 1
                        if breaks[job.key] >= 2:
                            yield _worker_died(job, "twice")
                        else:
                            queue.append(job)
                if broken and not pending:
                    break
        finally:
            _stop_pool(pool)


def _stop_pool(pool: Any) -> None:
    """Shut a process pool down now: cancel queued work and end running workers."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=5)


def run_dask(fn: PerFileFn, jobs: Iterable[Job], *, workers: int | None = None,
             scheduler: str | None = None, want_scores: bool = False,
             dnsmos: bool = False) -> Iterator[dict]:
    """Run jobs on a Dask cluster; yield each result dict as it completes.

    Without ``scheduler``, starts a ``distributed.LocalCluster`` of ``workers`` processes with one
    thread each. With ``scheduler`` (``tcp://host:8786``), uses that cluster: its workers must
    have audiomend installed and see the input and output paths (shared filesystem). Only the
    job (paths and options) goes out and a small dict comes back.
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as e:
        raise MissingDependencyError("the dask engine needs distributed: "
                                     "pip install 'audiomend[dist]'") from e
    queue = list(jobs)
    queue.reverse()
    with contextlib.ExitStack() as stack:
        if scheduler:
            target = ({"scheduler_file": scheduler} if scheduler.endswith(".json")
                      and Path(scheduler).is_file() else {"address": scheduler})
            try:
                client = stack.enter_context(Client(**target, timeout="10s"))
            except (OSError, TimeoutError) as e:
                raise BadOptionError(f"--scheduler {scheduler}: cannot connect ({e})") from None
            # Negative workers would submit nothing and report success: refuse them.
            n = check_workers(workers) if workers else \
                max(len(client.scheduler_info().get("workers", {})), 1)
        else:
            import dask

            n = min(check_workers(workers), max(len(queue), 1))
            # Spawn workers with glibc's default allocator settings (see the module docstring),
            # and keep the nanny's variables out of this process's environment.
            stack.enter_context(_environ_restored())
            pre_spawn = {k: v for k, v in
                         dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                         if not k.startswith(MALLOC_ENV_PREFIX)}
            # No dashboard, so the workers' statistical profiler (a thread sampling every
            # stack each 10 ms: ~5 % of the CPU per file) has no reader: off.
            stack.enter_context(dask.config.set(
                {"distributed.nanny.pre-spawn-environ": {**pre_spawn, **SINGLE_THREAD_ENV},
                 "distributed.worker.profile.enabled": False}))
            cluster = stack.enter_context(LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.CRITICAL, env=dict(SINGLE_THREAD_ENV)))
            client = stack.enter_context(Client(cluster))
        pending: dict[Any, Job] = {}

        def submit(job: Job) -> Any:
            fut = client.submit(run_job, fn, job, want_scores, dnsmos, pure=False,
                                key=f"audiomend-{job.key}-{time.time_ns()}")
            pending[fut] = job
            return fut

        def window() -> int:
            # An existing cluster may grow (dask-jobqueue, autoscaling): follow its size.
            if scheduler and not workers:
                return max(len(client.scheduler_info().get("workers", {})), 1) * IN_FLIGHT_PER_WORKER
            return n * IN_FLIGHT_PER_WORKER

        completed = as_completed([submit(queue.pop()) for _ in range(min(len(queue), window()))])
        for fut in completed:
            job = pending.pop(fut)
            try:
                yield fut.result()
            except Exception as e:  # noqa: BLE001 - KilledWorker, lost connection: this file failed
                yield _worker_died(job, f"{type(e).__name__}: {e}")
            limit = window()
            while queue and len(pending) < limit:
                completed.add(submit(queue.pop()))


def run_engine(engine: str, fn: PerFileFn, jobs: Iterable[Job], *, workers: int | None = None,
               scheduler: str | None = None, want_scores: bool = False,
               dnsmos: bool = False) -> Iterator[dict]:
    """Dispatch to :func:`run_local` or :func:`run_dask` by name."""
    if engine == "local":
        if scheduler:
            raise BadOptionError("--scheduler needs --engine dask")
        return run_local(fn, jobs, workers=workers, want_scores=want_scores, dnsmos=dnsmos)
    if engine == "dask":
        return run_dask(fn, jobs, workers=workers, scheduler=scheduler, want_scores=want_scores,
                        dnsmos=dnsmos)
    raise BadOptionError(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
