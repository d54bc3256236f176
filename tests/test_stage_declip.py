"""Declip stage and clipping detector, on real speech clipped inline (seeded)."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

from audiomend.errors import BadAudioError, BadOptionError
from audiomend.stages import STAGES, Stage
from audiomend.stages.declip import ClipEstimate, Declip, declip, detect_clipping
from audiomend.stream import run_blocks, split_blocks


def sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2)
                               / np.sum((ref.astype(np.float64) - est) ** 2)))


def si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64).ravel(), est.astype(np.float64).ravel()
    target = ref * (est @ ref) / (ref @ ref)
    return float(10 * np.log10(np.sum(target ** 2) / max(np.sum((est - target) ** 2), 1e-30)))


def clip_below_peak(x: np.ndarray, db_below_peak: float) -> tuple[np.ndarray, np.float32]:
    level = np.float32(np.abs(x).max() * 10 ** (-db_below_peak / 20))
    return np.clip(x, -level, level), level


@pytest.fixture(scope="module")
def speech(speech_16k):
    audio, rate = speech_16k
    return (audio / np.abs(audio).max() * 0.5).astype(np.float32), rate


@pytest.mark.parametrize("db_below_peak", [4.0, 8.0, 14.0])
def test_declip_raises_sdr_on_real_speech(speech, db_below_peak):
    clean, rate = speech
    clipped, level = clip_below_peak(clean, db_below_peak)
    fixed = declip(clipped, rate)
    gain = sdr_db(clean, fixed) - sdr_db(clean, clipped)
    assert gain >= 3.0, f"SDR gain {gain:.2f} dB at {db_below_peak} dB below peak"
    # reconstructed peaks go beyond the old clip level: not clipped back
    assert np.abs(fixed).max() > level * 1.1
    # reliable samples untouched
    reliable = np.abs(clipped) < level
    np.testing.assert_allclose(fixed[reliable], clipped[reliable], atol=1e-6)


@pytest.mark.parametrize("db_below_peak", [4.0, 9.0, 14.0])
@pytest.mark.parametrize("gain", [1.0, 0.3])
def test_detect_clipping_fraction_and_level(speech, db_below_peak, gain):
    clean, rate = speech
    clipped, level = clip_below_peak(clean, db_below_peak)
    true_fraction = np.mean(np.abs(clean) >= level)
    est = detect_clipping(clipped * np.float32(gain), rate)
    assert isinstance(est, ClipEstimate)
    assert est.fraction == pytest.approx(true_fraction, rel=0.2)
    assert est.level == pytest.approx(level * gain, rel=0.01)
    assert est.confidence > 0.8


def test_detect_clipping_at_full_scale_then_turned_down(speech):
    clean, rate = speech
    loud = clean * np.float32(4.0)                       # peaks at 2.0, clipped at 1.0
    clipped = np.clip(loud, -1.0, 1.0) * np.float32(0.3)
    est = detect_clipping(clipped, rate)
    assert est.level == pytest.approx(0.3, rel=0.01)
    assert est.fraction == pytest.approx(np.mean(np.abs(loud) >= 1.0), rel=0.2)
    # and the stage, detecting the level itself, rebuilds it
    assert sdr_db(loud * 0.3, declip(clipped, rate)) > sdr_db(loud * 0.3, clipped) + 3.0


def test_detect_asymmetric_clipping(speech):
    clean, rate = speech
    x = np.clip(clean, -0.3, 0.2)
    est = detect_clipping(x, rate)
    assert est.positive_level == pytest.approx(0.2, rel=0.01)
    assert est.negative_level == pytest.approx(0.3, rel=0.01)
    fixed = declip(x, rate)
    assert sdr_db(clean, fixed) > sdr_db(clean, x) + 3.0


def test_clean_speech_is_not_clipped_and_left_alone(shared_data):
    from audiomend.io import load

    for path in sorted((shared_data / "smoke" / "speech").glob("*.flac")):
        audio, rate = load(path)
        est = detect_clipping(audio, rate)
        assert est.fraction < 1e-4 and est.confidence < 0.5, path.name
        assert si_sdr_db(audio, declip(audio, rate)) > 60.0, path.name


def test_streamed_equals_whole_stereo(speech, rng):
    clean, rate = speech
    stereo = np.concatenate([clean, 0.7 * clean[:, ::-1]], axis=0)
    clipped, _ = clip_below_peak(stereo, 8.0)
    whole = declip(clipped, rate)
    for _ in range(2):
        sizes = rng.integers(1, 12000, size=7)
        streamed = run_blocks(Declip().processor(rate, 2), split_blocks(clipped, sizes))
        np.testing.assert_allclose(streamed, whole, atol=1e-5)
    # each channel is rebuilt as it would be alone: the image does not move
    np.testing.assert_allclose(whole[:1], declip(clipped[:1], rate), atol=1e-5)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_rates_and_edge_inputs(rate, rng):
    t = np.arange(rate // 2) / rate
    tone = (0.5 * np.sin(2 * np.pi * 330 * t) + 0.2 * np.sin(2 * np.pi * 1210 * t)).astype(np.float32)
    clipped = np.clip(tone, -0.4, 0.4)[None]
    fixed = declip(clipped, rate)
    assert fixed.shape == clipped.shape and fixed.dtype == np.float32
    assert sdr_db(tone[None], fixed) > sdr_db(tone[None], clipped) + 3.0
    for n in (0, 1):
        empty = np.zeros((2, n), np.float32)
        assert declip(empty, rate).shape == (2, n)
    silence = np.zeros((1, rate // 3), np.float32)
    np.testing.assert_array_equal(declip(silence, rate), silence)
    assert detect_clipping(silence, rate).confidence == 0.0


def test_explicit_level_and_strength(speech):
    clean, rate = speech
    clipped, level = clip_below_peak(clean, 8.0)
    auto = declip(clipped, rate)
    np.testing.assert_allclose(declip(clipped, rate, level=float(level)), auto, atol=1e-5)
    np.testing.assert_allclose(declip(clipped, rate, strength=0.0), clipped, atol=1e-6)


def test_stage_contract():
    assert STAGES["declip"] is Declip
    defaults = {p.name: p.default for p in inspect.signature(declip).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    fields = {f.name: f.default for f in dataclasses.fields(Declip)}
    assert defaults == fields
    stage = Declip(level=0.25, strength=0.5)
    assert Stage.from_dict(json.loads(json.dumps(stage.to_dict()))) == stage


def test_bad_options():
    with pytest.raises(BadOptionError, match="level"):
        Declip(level=-1.0)
    with pytest.raises(BadOptionError, match="strength"):
        declip(np.zeros((1, 10), np.float32), 16000, strength=2.0)
    with pytest.raises(BadAudioError):
        detect_clipping(np.full((1, 10), np.nan, np.float32), 16000)
