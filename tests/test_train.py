"""The training data split, a network of non-default width and an ensemble through training and export."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                reason="torch not installed (pip install 'audiomend[train]')")


def _link(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for f in files:
        os.symlink(f.resolve(), folder / f.name)
    return folder


def test_adding_a_speech_folder_keeps_the_held_out_clips_and_shares_examples(
        shared_data: Path, tmp_path: Path) -> None:
    from audiomend.train.loop import split_speech

    files = sorted((shared_data / "smoke" / "speech").glob("*.flac"))
    first = _link(files[:4], tmp_path / "first")
    second = _link(files[4:], tmp_path / "second")
    _, held_alone, _, _ = split_speech([str(first)], 16000, holdout_every=2)
    train, held_both, weights, summary = split_speech([str(first), str(second)], 16000, holdout_every=2)

    assert len(held_alone) == 2
    for alone, both in zip(held_alone, held_both[:2]):
        np.testing.assert_array_equal(alone, both)
    # 2 + 1 training clips: each folder's clips together are drawn half of the time
    assert len(train) == 3 and summary["speech_clips"] == 6
    np.testing.assert_allclose(weights, [0.25, 0.25, 0.5])


def test_a_narrow_network_trains_and_exports_with_its_own_width(shared_data: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from audiomend.train.export import export, load_run, round_weights_to_float16, torch_gains
    from audiomend.train.loop import TrainConfig, train

    smoke = shared_data / "smoke"
    config = TrainConfig(speech=[str(smoke / "speech")], noise=[str(smoke / "noise")], steps=1,
                         batch_size=2, validate_every=1, validation_examples=2, holdout_every=3,
                         embed=8, hidden=12, layers=1)
    run = tmp_path / "run"
    train(config, run, progress=lambda m: None)
    onnx_path = export(run, tmp_path / "narrow.onnx")
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["state_shape"] == [1, 1, 12] and meta["weights_dtype"] == "float16"
    import onnx

    stored = {t.data_type for t in onnx.load(str(onnx_path)).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in stored

    magnitude = np.abs(np.random.default_rng(1).standard_normal((9, 257))).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    gains = session.run(["gains"], {"magnitude": magnitude[None],
                                    "state_in": np.zeros((1, 1, 12), np.float32)})[0][0]
    shipped = round_weights_to_float16(load_run(run))
    np.testing.assert_allclose(gains, torch_gains(shipped, magnitude), atol=1e-4)


def test_two_runs_export_as_one_streaming_ensemble(shared_data: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from audiomend.errors import BadOptionError
    from audiomend.train.export import (
        export,
        load_run,
        load_runs,
        round_weights_to_float16,
        torch_gains,
    )
    from audiomend.train.loop import TrainConfig, train

    smoke = shared_data / "smoke"
    runs = []
    for seed, hidden in ((0, 12), (1, 12), (2, 10)):
        config = TrainConfig(speech=[str(smoke / "speech")], noise=[str(smoke / "noise")], steps=1,
                             batch_size=2, validate_every=1, validation_examples=2, holdout_every=3,
                             embed=8, hidden=hidden, layers=1, seed=seed)
        runs.append(tmp_path / f"run{seed}")
        train(config, runs[-1], progress=lambda m: None)
    onnx_path = export(runs[:2], tmp_path / "pair.onnx")
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["state_shape"] == [2, 1, 12] and len(meta["training"]["members"]) == 2

    magnitude = np.abs(np.random.default_rng(1).standard_normal((9, 257))).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(frames: np.ndarray, state: np.ndarray) -> list:
        return session.run(["gains", "state_out"], {"magnitude": frames[None], "state_in": state})

    gains, _ = run(magnitude, np.zeros((2, 1, 12), np.float32))
    # known answer: the geometric mean of the members' own gains; and ONNX == torch
    a, b = (torch_gains(round_weights_to_float16(load_run(r)), magnitude) for r in runs[:2])
    np.testing.assert_allclose(gains[0], np.sqrt(a * b), atol=1e-4)
    ensemble = round_weights_to_float16(load_runs(runs[:2]))
    np.testing.assert_allclose(gains[0], torch_gains(ensemble, magnitude), atol=1e-4)
    # streams: two blocks with the state carried equal one call
    first, state = run(magnitude[:4], np.zeros((2, 1, 12), np.float32))
    second, _ = run(magnitude[4:], state)
    np.testing.assert_allclose(np.concatenate([first[0], second[0]]), gains[0], atol=1e-5)
    with pytest.raises(BadOptionError, match="share layers and hidden width"):
        export([runs[0], runs[2]], tmp_path / "mismatched.onnx")


def test_rolloff_mixes_lack_the_top_of_the_band() -> None:
    from audiomend.train.data import Mixer, MixSettings

    # flat-spectrum "speech" (known answer: its share above 7.9 kHz is 0.1 / 8 of the band)
    rng = np.random.default_rng(0)
    speech = [(0.05 * rng.standard_normal(48000)).astype(np.float32) for _ in range(3)]
    noise = [(0.01 * rng.standard_normal(16000)).astype(np.float32)]

    def top_share(p_rolloff: float) -> float:
        mixer = Mixer(speech, noise, [], 16000, MixSettings(p_noise=0.0, p_bandlimit=0.0,
                                                            p_rolloff=p_rolloff))
        _, target = mixer.batch(4, np.random.default_rng(0))
        spec = np.abs(np.fft.rfft(target, axis=1)) ** 2
        freqs = np.fft.rfftfreq(target.shape[1], 1 / 16000)
        return float(spec[:, freqs > 7900].sum() / spec.sum())

    assert top_share(0.0) == pytest.approx(100 / 8000, rel=0.1)
    # a 7.0-7.9 kHz low-pass (10th order) takes most of it away
    assert top_share(1.0) < 0.3 * top_share(0.0)
