"""The shipped network: ONNX runtime, streaming state, the neural stage, and the training path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from audiomend.model.runtime import DEFAULT_MODEL, load_model, weights_dir
from audiomend.stream import run_blocks, split_blocks

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch not installed (pip install 'audiomend[train]')")


def _si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    alpha = np.dot(estimate, reference) / np.dot(reference, reference)
    error = estimate - alpha * reference
    return float(10 * np.log10(np.sum((alpha * reference) ** 2) / np.sum(error**2)))


def test_shipped_model_has_metadata_and_matching_checksum() -> None:
    meta = json.loads((weights_dir() / f"{DEFAULT_MODEL}.json").read_text())
    model = load_model(DEFAULT_MODEL)
    assert model.info.sha256 == meta["sha256"]
    assert (meta["sample_rate"], meta["frame_length"], meta["hop_length"]) == (16000, 512, 256)
    # a few MB: the shipped network is an ensemble of three members, 1.65 MB each in float16
    assert (weights_dir() / f"{DEFAULT_MODEL}.onnx").stat().st_size < 8 * 2**20


def test_model_state_makes_block_calls_equal_one_call(rng: np.random.Generator) -> None:
    model = load_model()
    magnitude = np.abs(rng.standard_normal((50, model.info.n_bins))).astype(np.float32)
    whole, _ = model.run(magnitude, model.initial_state())
    state, parts = model.initial_state(), []
    for chunk in (magnitude[:1], magnitude[1:17], magnitude[17:]):
        gains, state = model.run(chunk, state)
        parts.append(gains)
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


def test_tampered_weights_are_refused(tmp_path: Path, monkeypatch) -> None:
    from audiomend.errors import BadOptionError
    from audiomend.model import runtime

    for suffix in (".onnx", ".json"):
        data = (weights_dir() / f"{DEFAULT_MODEL}{suffix}").read_bytes()
        (tmp_path / f"bad{suffix}").write_bytes(data + b"x" if suffix == ".onnx" else data)
    monkeypatch.setattr(runtime, "weights_dir", lambda: tmp_path)
    with pytest.raises(BadOptionError, match="sha256"):
        runtime.load_model.__wrapped__("bad")


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_neural_stage_streams_at_any_rate(rate: int, speech_16k) -> None:
    from audiomend.dsp import resample
    from audiomend.stages.neural import Neural

    audio, sr = speech_16k
    x = resample(audio[:, : 2 * sr], sr, rate)
    stage = Neural()
    whole = stage(x, rate)
    streamed = run_blocks(stage.processor(rate, 1), split_blocks(x, [777, 5000, 13]))
    assert whole.shape == x.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_neural_stage_removes_noise_from_real_speech(shared_data: Path, speech_16k) -> None:
    from audiomend.io import load
    from audiomend.stages.neural import neural

    clean, sr = speech_16k
    noise, _ = load(shared_data / "smoke" / "noise" / "smoke_sc_doing_the_dishes.flac", sample_rate=sr)
    noise = np.resize(noise[0], clean.shape[1])
    snr_db = 5.0
    noise *= np.sqrt(np.mean(clean[0] ** 2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    noisy = (clean[0] + noise)[np.newaxis].astype(np.float32)
    enhanced = neural(noisy, sr)
    assert _si_sdr(enhanced[0], clean[0]) > _si_sdr(noisy[0], clean[0]) + 3.0


def test_neural_stage_leaves_clean_speech_alone(speech_48k) -> None:
    from audiomend.stages.neural import neural

    audio, sr = speech_48k
    assert _si_sdr(neural(audio, sr)[0], audio[0]) > 25.0


@needs_torch
def test_smoke_training_export_and_onnx_equals_torch(shared_data: Path, tmp_path: Path) -> None:
    """A few steps on smoke clips: the training path runs, resumes, exports, and ONNX == torch."""
    import onnxruntime as ort

    from audiomend.train.export import export, load_run, round_weights_to_float16, torch_gains
    from audiomend.train.loop import TrainConfig, train

    smoke = shared_data / "smoke"
    config = TrainConfig(speech=[str(smoke / "speech")], noise=[str(smoke / "noise")],
                         rir=[str(smoke / "rir")], steps=2, batch_size=2, validate_every=2,
                         checkpoint_every=1, validation_examples=2, holdout_every=3)
    run = tmp_path / "run"
    train(config, run, progress=lambda m: None)
    config.steps = 3
    train(config, run, resume=True, progress=lambda m: None)
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 3 and (run / "curve.png").is_file()
    # a finished run committed with its weights only resumes with a fresh optimiser
    import torch

    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({"model": state["model"], "step": state["step"]}, run / "checkpoint.pt")
    config.steps, messages = 4, []
    train(config, run, resume=True, progress=messages.append)
    assert any("from weights only" in m for m in messages)
    assert json.loads((run / "log.jsonl").read_text().splitlines()[-1])["step"] == 4

    onnx_path = export(run, tmp_path / "tiny.onnx")
    magnitude = np.abs(np.random.default_rng(0).standard_normal((40, 257))).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    state = np.zeros(json.loads(onnx_path.with_suffix(".json").read_text())["state_shape"], np.float32)
    onnx_gains = session.run(["gains"], {"magnitude": magnitude[None], "state_in": state})[0][0]
    shipped = round_weights_to_float16(load_run(run))   # the weights ship as float16
    np.testing.assert_allclose(onnx_gains, torch_gains(shipped, magnitude), atol=1e-4)


def _quiet_speech_over_floor(speech_16k, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """The smoke clip (-42 LUFS) 30 dB quieter over a white -85 dBFS floor: (noisy, clean, rate)."""
    audio, sr = speech_16k
    quiet = (audio * 10 ** (-30 / 20)).astype(np.float32)
    floor = (10 ** (-85 / 20) * rng.standard_normal(quiet.shape)).astype(np.float32)
    return quiet + floor, quiet, sr


def test_input_gain_is_the_level_the_network_hears(speech_16k, rng: np.random.Generator) -> None:
    from audiomend.stages.neural import neural

    noisy, _, sr = _quiet_speech_over_floor(speech_16k, rng)
    # Hearing the input 20 dB louder is hearing ten times the input; the gains, not the level,
    # reach the output.
    louder = neural(noisy, sr, input_gain_db=20.0)
    scaled = neural(10.0 * noisy, sr) / 10.0
    np.testing.assert_allclose(louder, scaled, atol=1e-6 * float(np.abs(noisy).max()))


def test_level_normalisation_lets_the_network_clean_quiet_speech(speech_16k, rng: np.random.Generator) -> None:
    from audiomend.metrics import compute
    from audiomend.stages.neural import input_gain_for_loudness, neural

    noisy, clean, sr = _quiet_speech_over_floor(speech_16k, rng)
    gain = input_gain_for_loudness(compute("loudness_lufs", noisy, sr))
    assert gain > 30.0
    before = _si_sdr(noisy[0], clean[0])
    # At -72 LUFS the shipped network (trained on -45..-15 dBFS speech) leaves the floor in
    # (+0.0 dB); heard at a level it knows, it removes it (measured +4.8 dB).
    assert _si_sdr(neural(noisy, sr, input_gain_db=gain)[0], clean[0]) > before + 3.0


def test_neural_stage_with_input_gain_streams_exactly(speech_16k) -> None:
    from audiomend.errors import BadOptionError
    from audiomend.stages.neural import Neural

    audio, sr = speech_16k
    stage = Neural(input_gain_db=25.0)
    whole = stage(audio, sr)
    streamed = run_blocks(stage.processor(sr, 1), split_blocks(audio, [4097, 1, 30000]))
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    for bad in (float("nan"), 120.0):
        with pytest.raises(BadOptionError, match="input_gain_db"):
            Neural(input_gain_db=bad)
