"""Denoise stage: real speech + real noise, streaming parity, estimator accuracy."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from audiomend.dsp import resample
from audiomend.errors import BadOptionError
from audiomend.io import load
from audiomend.stages import STAGES
from audiomend.stages.denoise import Denoise, NoiseEstimate, denoise, estimate_noise
from audiomend.stream import run_blocks, split_blocks


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = np.asarray(ref, np.float64).ravel(), np.asarray(est, np.float64).ravel()
    scale = np.dot(est, ref) / np.dot(ref, ref)
    target = scale * ref
    return float(10 * np.log10(np.sum(target ** 2) / np.sum((est - target) ** 2)))


def noise_like(shared_data: Path, name: str, n: int, sample_rate: int,
               rng: np.random.Generator) -> np.ndarray:
    noise, rate = load(shared_data / "smoke" / "noise" / f"{name}.flac")
    noise = resample(noise, rate, sample_rate)[0]
    noise = np.tile(noise, int(np.ceil((n + 1) / noise.size)) + 1)
    start = int(rng.integers(0, noise.size - n))
    return noise[start: start + n]


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise scaled to ``snr_db`` against the whole clip's speech power; returns (mixture, noise)."""
    scale = np.sqrt(np.mean(speech ** 2) / np.mean(noise ** 2)) * 10 ** (-snr_db / 20)
    noise = (noise * scale).astype(np.float32)
    return (speech + noise).astype(np.float32), noise


@pytest.fixture(scope="module")
def noisy_5db(shared_data, speech_16k):
    speech, rate = speech_16k
    rng = np.random.default_rng(5)
    noise = noise_like(shared_data, "smoke_emgse_engine", speech.shape[1], rate, rng)
    noisy, noise = mix(speech[0], noise, 5.0)
    return speech[0], noisy, noise, rate


def test_denoise_improves_si_sdr_and_pesq_at_5db(noisy_5db):
    pesq = pytest.importorskip("pesq").pesq
    speech, noisy, _, rate = noisy_5db
    out = denoise(noisy[None], rate)[0]
    assert si_sdr(speech, out) > si_sdr(speech, noisy) + 3.0
    assert pesq(rate, speech, out, "wb") > pesq(rate, speech, noisy, "wb") + 0.1


def test_denoise_lowers_noise_floor_in_pauses_by_10db(noisy_5db):
    speech, noisy, _, rate = noisy_5db
    out = denoise(noisy[None], rate)[0]
    frame = rate // 50
    n = speech.size // frame * frame
    level = 10 * np.log10(np.mean(speech[:n].reshape(-1, frame) ** 2, axis=1) + 1e-12)
    pauses = level < level.max() - 40
    pauses[: 200 * rate // 1000 // frame] = False  # skip the first 200 ms (noise tracker warm-up)
    assert pauses.sum() >= 5, "the clip needs speech pauses for this test"

    def pause_db(x):
        return 10 * np.log10(np.mean(x[:n].reshape(-1, frame)[pauses] ** 2))

    assert pause_db(noisy) - pause_db(out) >= 10.0


def test_denoise_leaves_clean_speech_nearly_untouched(speech_16k, speech_48k):
    for speech, rate in (speech_16k, speech_48k):
        out = denoise(speech, rate)
        assert si_sdr(speech, out) > 20.0


@pytest.mark.parametrize("name, tolerance_db", [
    ("smoke_emgse_engine", 5.0), ("smoke_sc_doing_the_dishes", 5.0),
    # impulsive (sips and clinks): bursts are partly counted as signal, as documented
    ("smoke_esc50_drinking_sipping", 7.0)])
def test_estimate_noise_snr_close_to_truth_on_real_noise(shared_data, speech_16k, name, tolerance_db):
    speech, rate = speech_16k
    rng = np.random.default_rng(11)
    noise = noise_like(shared_data, name, speech.shape[1], rate, rng)
    for snr_db in (5.0, 15.0):
        noisy, scaled = mix(speech[0], noise, snr_db)
        est = estimate_noise(noisy[None], rate)
        assert isinstance(est, NoiseEstimate)
        assert abs(est.snr_db - snr_db) < tolerance_db, (name, snr_db, est)
        true_floor = 10 * np.log10(np.mean(scaled ** 2))
        assert abs(est.noise_floor_dbfs - true_floor) < tolerance_db, (name, snr_db, est)
        assert 0.0 < est.confidence <= 1.0


def test_estimate_noise_on_silence_and_short_input():
    est = estimate_noise(np.zeros((1, 16000), np.float32), 16000)
    assert est.confidence == 0.0 and np.isfinite(est.snr_db)
    assert estimate_noise(np.zeros((2, 10), np.float32), 16000).confidence == 0.0


def test_estimate_noise_is_cheap(speech_16k):
    import time

    speech, rate = speech_16k
    x = np.tile(speech, (1, 5))
    start = time.perf_counter()
    estimate_noise(x, rate)
    assert (time.perf_counter() - start) / (x.shape[1] / rate) < 0.02


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_streamed_equals_whole_for_random_blocks(rate, rng):
    n = rate // 2 + 37
    x = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
    x[:, n // 3: n // 2] += 0.3 * np.sin(2 * np.pi * 220 * np.arange(n // 2 - n // 3) / rate)
    stage = Denoise()
    whole = stage(x, rate)
    sizes = rng.integers(1, 3000, size=20)
    streamed = run_blocks(stage.processor(rate, 2), split_blocks(x, sizes))
    assert whole.shape == x.shape and whole.dtype == np.float32
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_stereo_uses_shared_gains(speech_16k, rng):
    speech, rate = speech_16k
    noisy = speech[0] + 0.01 * rng.standard_normal(speech.shape[1]).astype(np.float32)
    stereo = np.stack([noisy, 0.5 * noisy]).astype(np.float32)
    out = denoise(stereo, rate)
    np.testing.assert_allclose(out[1], 0.5 * out[0], atol=1e-6)


@pytest.mark.parametrize("n", [0, 1, 100])
def test_tiny_and_empty_input(n):
    x = np.full((2, n), 0.1, np.float32)
    out = denoise(x, 16000)
    assert out.shape == (2, n) and np.isfinite(out).all()


def test_silence_stays_silent():
    out = denoise(np.zeros((2, 8000), np.float32), 8000)
    assert out.shape == (2, 8000) and not np.any(out)


def test_strength_zero_is_bypass(noisy_5db):
    _, noisy, _, rate = noisy_5db
    np.testing.assert_allclose(denoise(noisy[None], rate, strength=0.0)[0], noisy, atol=1e-5)


def test_strength_and_limit_order_the_attenuation(noisy_5db):
    _, noisy, _, rate = noisy_5db
    energy = [np.mean(denoise(noisy[None], rate, **kw) ** 2) for kw in (
        {"strength": 0.3}, {"strength": 1.0, "attenuation_limit_db": 6.0}, {"strength": 1.0})]
    # more strength removes more; a 6 dB limit removes at most 6 dB
    assert energy[0] > energy[2]
    assert energy[1] >= np.mean(noisy ** 2) * 10 ** (-6.2 / 10)


def test_unknown_backend_and_bad_options_raise():
    with pytest.raises(BadOptionError, match="backend 'dfn'.*classical"):
        Denoise(backend="dfn")
    with pytest.raises(BadOptionError, match="strength"):
        denoise(np.zeros((1, 10), np.float32), 16000, strength=2.0)
    with pytest.raises(BadOptionError, match="attenuation_limit_db"):
        Denoise(attenuation_limit_db=-1.0)


def test_stage_registered_defaults_match_function_and_json_round_trip():
    assert STAGES["denoise"] is Denoise
    params = inspect.signature(denoise).parameters
    for field in ("strength", "attenuation_limit_db", "backend"):
        assert params[field].default == getattr(Denoise(), field)
    stage = Denoise(strength=0.7, attenuation_limit_db=20.0)
    assert Denoise.from_dict(json.loads(json.dumps(stage.to_dict()))) == stage


def test_neural_backend_passes_the_input_gain_and_bad_gains_raise(speech_16k):
    from audiomend.stages.neural import neural

    audio, sr = speech_16k
    np.testing.assert_array_equal(denoise(audio, sr, backend="neural", input_gain_db=30.0),
                                  neural(audio, sr, attenuation_limit_db=30.0, input_gain_db=30.0))
    assert inspect.signature(denoise).parameters["input_gain_db"].default == Denoise().input_gain_db
    with pytest.raises(BadOptionError, match="denoise: input_gain_db"):
        Denoise(input_gain_db=float("inf"))


def _quiet(floor_dbfs: float):
    from audiomend.diagnose import Diagnosis, LevelFinding, NoiseFinding

    # speech 30 dB too quiet: loud enough over its floor not to count as noisy (SNR 30 dB)
    return Diagnosis(sample_rate=16000, channels=1, duration_s=10.0, loudness_lufs=-56.0,
                     peak_dbfs=-36.0, level=LevelFinding(-56.0, 1.0, True),
                     noise=NoiseFinding(30.0, 1.0, False, noise_floor_dbfs=floor_dbfs))


def test_planner_denoises_a_quiet_recording_whose_floor_the_level_correction_raises():
    from audiomend.pipeline import plan
    from audiomend.stages.neural import input_gain_for_loudness

    stages = {s.name: s for s in plan(_quiet(-80.0))}
    assert set(stages) == {"denoise", "loudness"}
    assert stages["loudness"].gain_db > 30.0          # the floor ends near -45 dBFS
    assert stages["denoise"].backend == "neural"
    assert stages["denoise"].input_gain_db == input_gain_for_loudness(-56.0) == 30.0
    # no floor worth the name (digital silence between words): level only
    assert [s.name for s in plan(_quiet(-110.0))] == ["loudness"]
    # the classical backend does not depend on the level: no input gain
    assert plan(_quiet(-80.0), denoiser="classical")[0].input_gain_db == 0.0
