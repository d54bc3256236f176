"""audiomend batch: manifests, journal and resume, local and Dask engines, the CLI contract.

Most tests use a small real per-file function (load -> gain -> save through audiomend.io) so the
engine logic is tested on its own and fast; ``test_real_restore_*`` run the real pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiomend.batch import Journal, jobs_from_folder, jobs_from_manifest, plan_batch, run_batch
from audiomend.batch.journal import JOURNAL_NAME, JournalRecord, decide, sha256_file
from audiomend.batch.manifest import check_jobs
from audiomend.cli import main
from audiomend.dsp import resample
from audiomend.errors import BadOptionError
from audiomend.io import load, save

TESTS = Path(__file__).resolve().parent


# -- a small real per-file function (importable by name: workers are spawned) ------------------
@dataclasses.dataclass(frozen=True)
class GainOptions:
    """Stand-in for RestoreOptions: ``strength`` scales a gain of ``gain_db``."""

    gain_db: float = -6.0
    strength: float = 1.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def gain_file(input_path: str, output_path: str, options: GainOptions) -> dict:
    audio, rate = load(input_path)
    gain = np.float32(10 ** (options.gain_db * options.strength / 20))
    save(output_path, audio * gain, rate, like=input_path)
    return {"duration_s": audio.shape[1] / rate}


def slow_gain_file(input_path: str, output_path: str, options: GainOptions) -> dict:
    time.sleep(0.25)
    return gain_file(input_path, output_path, options)


def _build_gain_options(**given) -> GainOptions:
    return GainOptions(strength=given["strength"]) if given.get("strength") is not None \
        else GainOptions()


gain_file.build_options = _build_gain_options
slow_gain_file.build_options = _build_gain_options

GAIN = f"{__name__}:gain_file"


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return env


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def mixed_folder(tmp_path: Path, speech_16k, speech_48k) -> Path:
    """WAV/FLAC/OGG at 16/44.1/48 kHz, mono and stereo, one corrupt and one empty file."""
    x16, _ = speech_16k
    x48, _ = speech_48k
    x16, x48 = x16[:, :16000], x48[:, :48000]
    x44 = resample(x16, 16000, 44100)
    src = tmp_path / "in"
    # one damaged file (white noise at ~15 dB SNR): the others are clean at a sensible level,
    # which restore leaves as they are
    hiss = np.random.default_rng(0).standard_normal(x16.shape).astype(np.float32)
    save(src / "a16_mono.wav", x16 + hiss * 0.18 * float(np.sqrt(np.mean(x16**2))), 16000)
    save(src / "b48_stereo.flac", np.concatenate([x48, 0.5 * x48]), 48000, subtype="PCM_24")
    save(src / "sub" / "c44_mono.ogg", x44, 44100)
    save(src / "sub" / "d44_stereo.wav", np.concatenate([x44, -x44]), 44100)
    (src / "sub" / "corrupt.wav").write_bytes(np.random.default_rng(1).bytes(4000))
    (src / "empty.flac").write_bytes(b"")
    (src / "notes.txt").write_text("not audio")
    return src


GOOD = ["a16_mono.wav", "b48_stereo.flac", "sub/c44_mono.ogg", "sub/d44_stereo.wav"]
BAD = ["empty.flac", "sub/corrupt.wav"]


def _done_counts(out: Path) -> Counter:
    return Counter(r.input for r in Journal.in_folder(out).records() if r.status == "done")


def _check_outputs_like_inputs(src: Path, out: Path, names: list[str]) -> None:
    for name in names:
        i, o = sf.info(str(src / name)), sf.info(str(out / name))
        assert (o.format, o.samplerate, o.channels, o.frames) == \
            (i.format, i.samplerate, i.channels, i.frames), name


# -- manifest ----------------------------------------------------------------------------------
def test_folder_jobs_mirror_tree_and_skip_non_audio(mixed_folder: Path, tmp_path: Path) -> None:
    jobs = jobs_from_folder(mixed_folder, tmp_path / "out", options=None)
    assert sorted(j.key for j in jobs) == sorted(GOOD + BAD)
    flac = jobs_from_folder(mixed_folder, tmp_path / "out", options=None, fmt="flac")
    assert {Path(j.output_path).suffix for j in flac} == {".flac"}


def test_output_equal_to_input_is_refused(mixed_folder: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(BadOptionError, match="output path equals an input path"):
        jobs_from_folder(mixed_folder, mixed_folder, options=None)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"input,output\n{mixed_folder / 'a16_mono.wav'},{mixed_folder / 'a16_mono.wav'}\n")
    with pytest.raises(BadOptionError, match="output path equals an input path"):
        jobs_from_manifest(manifest, tmp_path / "out", options=None)
    # CLI: one line, usage exit code, nothing written
    assert main(["batch", str(mixed_folder), "-o", str(mixed_folder), "--function", GAIN]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output path equals an input path" in err[0]
    assert not (mixed_folder / JOURNAL_NAME).exists()


def test_output_folder_inside_input_folder_is_not_walked(mixed_folder: Path) -> None:
    out = mixed_folder / "restored"
    (out / "x").mkdir(parents=True)
    save(out / "x" / "old.wav", np.zeros((1, 100), np.float32), 16000)
    assert all("restored" not in j.input_path for j in jobs_from_folder(mixed_folder, out, options=None))


def test_two_inputs_one_output_refused(tmp_path: Path) -> None:
    from audiomend.batch import Job

    jobs = [Job("/a/x.wav", "/o/x.flac", None, "x.flac"), Job("/a/x.ogg", "/o/x.flac", None, "x.flac")]
    with pytest.raises(BadOptionError, match="would write this output"):
        check_jobs(jobs)


def _listing_folder(root: Path) -> Path:
    """Names only (nothing here is decoded): audio of every kind, non-audio, hidden, nested."""
    for name in ["a.wav", "b.FLAC", "c.w64", "d.opus", "e.m4a", "f.txt", ".g.wav", "sub/h.ogg",
                 ".hidden/i.wav"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"...")
    return root


@pytest.mark.parametrize("ffmpeg", [True, False])
def test_folder_listings_agree_across_commands(tmp_path: Path, monkeypatch, ffmpeg: bool) -> None:
    """assess FOLDER, batch, bench corpora and the damage simulator list the same audio files:
    one extension list (audiomend.io), .m4a only when ffmpeg can decode it."""
    import audiomend.batch
    from audiomend import io
    from audiomend.bench import corpus
    from audiomend.cli import assess
    from audiomend.degradations import chain

    if not ffmpeg:
        monkeypatch.setattr(io.shutil, "which", lambda name: None)
    folder = _listing_folder(tmp_path / "in")
    top = ["a.wav", "b.FLAC", "c.w64", "d.opus"] + (["e.m4a"] if ffmpeg else [])
    assert [p.name for p in io.audio_files(folder, recursive=False)] == top
    assert [p.name for p in assess.audio_files(folder)] == top
    assert [p.name for p in corpus._audio_files(folder).values()] == top
    nested = sorted([folder / n for n in top] + [folder / "sub" / "h.ogg"])
    assert io.audio_files(folder) == nested
    assert chain._audio_files(folder, "clean") == nested
    jobs = jobs_from_folder(folder, tmp_path / "out", options=None, fmt="flac")
    assert [Path(j.input_path) for j in jobs] == [p.resolve() for p in nested]
    # one constant: no module keeps a list of its own
    assert audiomend.batch.AUDIO_EXTENSIONS is io.AUDIO_EXTENSIONS
    for module in (corpus, assess, chain):
        assert getattr(module, "AUDIO_EXTENSIONS", io.AUDIO_EXTENSIONS) is io.AUDIO_EXTENSIONS


def test_unwritable_mirrored_format_refused_up_front(tmp_path: Path) -> None:
    folder = _listing_folder(tmp_path / "in")
    with pytest.raises(BadOptionError, match=r"d\.opus: cannot write \.opus \(input .*--format"):
        jobs_from_folder(folder, tmp_path / "out", options=None)


def test_manifest_unknown_column_refused(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text("input,strenght\na.wav,0.5\n")
    with pytest.raises(BadOptionError, match="unknown column.*strenght"):
        jobs_from_manifest(m, tmp_path / "out", options=GainOptions())


# -- journal -----------------------------------------------------------------------------------
def test_journal_torn_line_ignored_and_next_append_starts_fresh(tmp_path: Path) -> None:
    j = Journal(tmp_path / JOURNAL_NAME)
    rec = JournalRecord(status="done", key="a", input="/a", output="/o/a", settings_hash="h")
    with j:
        j.append(rec)
    with open(j.path, "ab") as f:
        f.write(b'{"status":"done","key":"b","inp')  # kill -9 mid-write
    assert [r.key for r in j.records()] == ["a"]
    with j:
        j.append(dataclasses.replace(rec, key="c"))
    assert [r.key for r in j.records()] == ["a", "c"]


def test_journal_is_exclusive(tmp_path: Path) -> None:
    from audiomend.batch.journal import JournalBusyError

    with Journal(tmp_path / JOURNAL_NAME), pytest.raises(JournalBusyError, match="another"), \
            Journal(tmp_path / JOURNAL_NAME):
        pass


def test_decide(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.bin", tmp_path / "out.bin"
    inp.write_bytes(b"input")
    out.write_bytes(b"output")
    rec = JournalRecord(status="done", key="k", input=str(inp), output=str(out), settings_hash="h",
                        input_sha256=sha256_file(inp), input_size=5, output_sha256=sha256_file(out))
    kw = {"input_path": str(inp), "output_path": str(out)}
    assert decide(rec, settings_hash="h", **kw) == "skip"
    assert decide(rec, settings_hash="other", **kw) == "conflict"
    assert decide(None, settings_hash="h", **kw) == "run"
    assert decide(dataclasses.replace(rec, status="failed"), settings_hash="h", **kw) == "run"
    out.write_bytes(b"outpu")  # output damaged or replaced
    assert decide(rec, settings_hash="h", **kw) == "run"
    out.write_bytes(b"output")
    inp.write_bytes(b"INPUT")  # same size, new content
    assert decide(rec, settings_hash="h", **kw) == "run"
    out.unlink()
    assert decide(rec, settings_hash="h", **kw) == "run"


# -- engine + CLI on a mixed folder ------------------------------------------------------------
def test_real_restore_mixed_folder_cli(mixed_folder: Path, tmp_path: Path, capsys) -> None:
    """The real pipeline (audiomend.pipeline.restore_file) over a mixed folder."""
    out, report = tmp_path / "out", tmp_path / "report.html"
    code = main(["batch", str(mixed_folder), "-o", str(out), "--workers", "2", "--json",
                 "--report", str(report)])
    captured = capsys.readouterr()
    assert code == 1
    _check_outputs_like_inputs(mixed_folder, out, GOOD)
    # not silence; the damaged files restored, not copied (a16: noise; the 44.1 kHz files are
    # 16 kHz speech, so their band is extended), the clean full-band file left as it was
    for name in GOOD:
        x, y = load(mixed_folder / name)[0], load(out / name)[0]
        assert np.abs(y).max() > 0.01, name
        if not name.endswith(".ogg"):  # lossy: re-encoding changes the samples anyway
            assert np.array_equal(x, y) == (name == "b48_stereo.flac"), name
    for name in BAD:
        assert not (out / name).exists()
    records = {r.key: r for r in Journal.in_folder(out).records()}
    assert {k for k, r in records.items() if r.status == "done"} == set(GOOD)
    assert {k for k, r in records.items() if r.status == "failed"} == set(BAD)
    assert "empty" in records["empty.flac"].error
    assert "cannot decode" in records["sub/corrupt.wav"].error
    assert records["a16_mono.wav"].output_sha256 == sha256_file(out / "a16_mono.wav")
    assert records["a16_mono.wav"].diagnosis["sample_rate"] == 16000
    assert records["a16_mono.wav"].options["strength"] == 1.0
    # the summary lists each failed file once, with its reason
    failed_lines = [ln for ln in captured.err.splitlines() if ln.strip().startswith("failed:")]
    assert len(failed_lines) == 2
    assert sum("corrupt.wav" in ln for ln in failed_lines) == 1
    assert len([json.loads(ln) for ln in captured.out.splitlines()]) == len(GOOD + BAD)
    # no temporary files left behind
    assert not [p for p in out.rglob(".*") if p.name != JOURNAL_NAME]
    # report: failures first, scores before/after of the right files, thumbnails
    page = report.read_text()
    assert page.index("corrupt.wav") < page.index("a16_mono.wav")
    assert "est. SNR dB" in page and page.count("data:image/jpeg;base64,") == 2 * len(GOOD)
    rec = records["sub/d44_stereo.wav"]
    for when, path in (("before", mixed_folder), ("after", out)):
        audio = load(path / "sub" / "d44_stereo.wav")[0]
        rms_db = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2))
        assert rec.scores[when]["rms_dbfs"] == pytest.approx(rms_db, abs=0.05), when
    # rerun: the good files are skipped (not redone); the bad ones are tried again and fail again
    assert main(["batch", str(mixed_folder), "-o", str(out), "--workers", "1", "--quiet"]) == 1
    assert set(_done_counts(out).values()) == {1}
    assert "4 skipped" in capsys.readouterr().err


def test_changed_settings_refused_unless_force(mixed_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    for bad in BAD:
        (mixed_folder / bad).unlink()
    args = ["batch", str(mixed_folder), "-o", str(out), "--workers", "1", "--function", GAIN,
            "--quiet"]
    assert main(args) == 0
    before = sha256_file(out / "a16_mono.wav")
    capsys.readouterr()
    assert main(args + ["--strength", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "4 file(s) were already restored with other settings" in err and "--force" in err
    assert "strength 1.0 -> 0.5" in err
    assert sha256_file(out / "a16_mono.wav") == before  # nothing touched
    assert main(args + ["--strength", "0.5", "--force"]) == 0
    assert sha256_file(out / "a16_mono.wav") != before
    assert set(_done_counts(out).values()) == {2}
    last = Journal.in_folder(out).latest()["a16_mono.wav"]
    assert last.options == {"gain_db": -6.0, "strength": 0.5}


def test_damaged_output_is_redone_valid_one_skipped(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs = jobs_from_folder(mixed_folder, out, options=GainOptions())
    run_batch(jobs, out, fn=gain_file, workers=1)
    (out / "sub" / "d44_stereo.wav").write_bytes(b"RIFF")  # truncated by hand
    (out / "b48_stereo.flac").unlink()
    plan = plan_batch(jobs, out)
    assert sorted(j.key for j in plan.to_run) == sorted(BAD + ["b48_stereo.flac", "sub/d44_stereo.wav"])
    summary = run_batch(jobs, out, fn=gain_file, workers=1)
    assert (summary.done, summary.failed, summary.skipped) == (2, 2, 2)
    _check_outputs_like_inputs(mixed_folder, out, GOOD)


def test_manifest_per_row_options(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = [{"input": "a16_mono.wav", "strength": 0.5},
            {"input": "a16_mono.wav", "output": "a_full.flac", "strength": 1.0},
            {"input": "sub/d44_stereo.wav"}]
    manifest = mixed_folder / "list.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv_manifest = mixed_folder / "list.csv"
    csv_manifest.write_text("input,output,strength\na16_mono.wav,,0.5\na16_mono.wav,a_full.flac,1\n"
                            "sub/d44_stereo.wav,,\n")
    jobs = jobs_from_manifest(manifest, out, options=GainOptions(strength=0.25))
    assert jobs == jobs_from_manifest(csv_manifest, out, options=GainOptions(strength=0.25))
    summary = run_batch(jobs, out, fn=gain_file, workers=2)
    assert summary.done == 3
    latest = Journal.in_folder(out).latest()
    assert latest["a16_mono.wav"].options["strength"] == 0.5
    assert latest["a_full.flac"].options["strength"] == 1.0
    assert latest["sub/d44_stereo.wav"].options["strength"] == 0.25  # the batch's default
    assert len({latest[k].settings_hash for k in latest}) == 3
    x, _ = load(mixed_folder / "a16_mono.wav")
    half, _ = load(out / "a16_mono.wav")
    full, _ = load(out / "a_full.flac")
    assert np.max(np.abs(half - x * 10 ** (-3 / 20))) < 2 / 32768
    assert np.max(np.abs(full - x * 10 ** (-6 / 20))) < 2 / 32768


# -- kill -9 and resume ------------------------------------------------------------------------
def test_sigkill_midway_then_rerun_completes_without_repeating(tmp_path: Path, speech_16k) -> None:
    x, rate = speech_16k
    src, out = tmp_path / "in", tmp_path / "out"
    n_files = 12
    for i in range(n_files):
        save(src / f"f{i:02d}.wav", np.roll(x[:, :8000], 500 * i, axis=1), rate)
    cmd = [sys.executable, "-m", "audiomend", "batch", str(src), "-o", str(out), "--workers", "2",
           "--function", "test_batch:slow_gain_file", "--quiet"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / JOURNAL_NAME
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and b'"status":"done"' in journal.read_bytes():
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _done_counts(out)
    assert 1 <= sum(first.values()) < n_files  # killed mid-way
    for path in out.glob("f*.wav"):  # whatever is in place right after the kill is complete
        assert load(path)[0].shape == (1, 8000), path
    time.sleep(0.3)  # workers die with the parent (PR_SET_PDEATHSIG); let the kernel reap them
    rerun = subprocess.run(cmd, check=False, env=_env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    counts = _done_counts(out)
    assert len(counts) == n_files and set(counts.values()) == {1}  # nothing processed twice
    assert f"{sum(first.values())} skipped" in rerun.stderr
    for i in range(n_files):
        y, r = load(out / f"f{i:02d}.wav")
        assert r == rate and y.shape == (1, 8000)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != JOURNAL_NAME]


# -- Dask --------------------------------------------------------------------------------------
def test_real_restore_dask_local_cluster_matches_local_engine(mixed_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from audiomend.pipeline import RestoreOptions

    for bad in BAD:
        (mixed_folder / bad).unlink()
    outs = {}
    for engine in ("local", "dask"):
        out = tmp_path / engine
        jobs = jobs_from_folder(mixed_folder, out, options=RestoreOptions(strength=0.8))
        summary = run_batch(jobs, out, engine=engine, workers=2)
        assert (summary.done, summary.failed) == (len(GOOD), 0)
        outs[engine] = out
    for name in GOOD:
        a, b = load(outs["local"] / name)[0], load(outs["dask"] / name)[0]
        assert np.array_equal(a, b), name  # bit-exact samples
        if not name.endswith(".ogg"):  # an Ogg stream carries a random serial number
            assert (outs["local"] / name).read_bytes() == (outs["dask"] / name).read_bytes(), name


def env_probe_file(input_path: str, output_path: str, options: GainOptions) -> dict:
    """gain_file that also reports the worker's allocator environment (in ``diagnosis``)."""
    result = gain_file(input_path, output_path, options)
    return {**result, "diagnosis": {"malloc_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_")}}


def test_dask_workers_get_default_malloc_and_environ_is_restored(mixed_folder: Path,
                                                                 tmp_path: Path) -> None:
    """Dask's nanny exports MALLOC_TRIM_THRESHOLD_ (2.6x the CPU per restored file) and leaves
    it in the spawning process, where later local workers inherited it: neither happens."""
    pytest.importorskip("distributed")
    for bad in BAD:
        (mixed_folder / bad).unlink()
    before = dict(os.environ)
    summary = run_batch(jobs_from_folder(mixed_folder, tmp_path / "o", options=GainOptions()),
                        tmp_path / "o", engine="dask", workers=1, fn=env_probe_file)
    assert (summary.done, summary.failed) == (len(GOOD), 0)
    assert all(r.diagnosis == {"malloc_trim": None} for r in summary.records)
    assert dict(os.environ) == before


def test_tune_malloc_stops_page_faults_under_dask_allocator_setting() -> None:
    """On an existing Dask cluster the variable is set in the worker: run_job resets the
    thresholds, and allocating/freeing 512 KiB arrays stops faulting pages in each time."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc mallopt is Linux-only")
    script = (
        "import resource, numpy as np\n"
        "from audiomend.batch.engines import tune_malloc\n"
        "def faults():\n"
        "    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(200):\n"
        "        a = np.ones(65536); del a\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0\n"
        "before = faults(); tuned = tune_malloc(); after = faults()\n"
        "print(before, tuned, after)\n")
    env = dict(_env(), MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    before, tuned, after = int(out[0]), out[1], int(out[2])
    assert tuned == "True"
    assert before > 200 * 100 and after < before / 20, (before, after)


def test_scheduler_needs_dask_engine(mixed_folder: Path, tmp_path: Path, capsys) -> None:
    assert main(["batch", str(mixed_folder), "-o", str(tmp_path / "o"), "--function", GAIN,
                 "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--engine dask" in capsys.readouterr().err
