"""Dehum stage and hum/DC estimators, on real speech with drifting hum added inline (seeded).

Hum level in the output is measured with the phase-inversion (Hagerman) method: the stage runs
on speech + hum and on speech - hum; half the difference of the outputs is what is left of the
hum, free of whatever the stage did to the speech. Its power at each harmonic is measured by
demodulating with the true (drifting) phase of that harmonic over 1 s windows.
"""

from __future__ import annotations

import numpy as np
import pytest

from audiomend.errors import BadOptionError
from audiomend.stages.dehum import Dehum, dehum, estimate_dc, estimate_hum
from audiomend.stream import run_blocks, split_blocks


def si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64).ravel(), est.astype(np.float64).ravel()
    target = ref * (est @ ref) / (ref @ ref)
    return float(10 * np.log10(np.sum(target ** 2) / max(np.sum((est - target) ** 2), 1e-30)))


def make_hum(n: int, rate: int, mains: float, level_db: float, ref_power: float,
             rng: np.random.Generator, harmonics: int = 6, drift: float = 0.002
             ) -> tuple[np.ndarray, np.ndarray]:
    """Hum with amplitudes 1/k and a fundamental drifting by +-``drift`` (period 10 s).

    Returns the hum ``(n,)`` and its complex harmonics ``(harmonics, n)`` (for measurement).
    """
    t = np.arange(n) / rate
    f = mains * (1 + drift * np.sin(2 * np.pi * t / 10 + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f) / rate
    comps = np.array([np.exp(1j * (k * phase + rng.uniform(0, 2 * np.pi))) / k
                      for k in range(1, harmonics + 1)])
    scale = np.sqrt(ref_power * 10 ** (level_db / 10) / np.mean(comps.real.sum(0) ** 2))
    return (comps.real.sum(0) * scale).astype(np.float32), comps * scale


def harmonic_power(residual: np.ndarray, comps: np.ndarray, rate: int) -> np.ndarray:
    """Power of ``residual`` coherent with each harmonic, in 1 s windows, averaged."""
    w = rate
    n = residual.size // w * w
    unit = comps[:, :n] / np.abs(comps[:, :n])
    amp = 2 * (residual[:n] * np.conj(unit)).reshape(len(comps), -1, w).mean(axis=2)
    return np.mean(np.abs(amp) ** 2, axis=1) / 2


@pytest.fixture(scope="module", params=["16k", "48k"])
def speech(request):
    """The three smoke clips of one rate, with 0.4 s pauses and a -70 dBFS noise floor."""
    from audiomend.io import load

    root = request.getfixturevalue("shared_data") / "smoke" / "speech"
    names = {"16k": "sisec_dev1_male4_src1_16k_{}.flac", "48k": "freesound33711_48k_{}.flac"}
    parts = []
    for i in (1, 2, 3):
        x, rate = load(root / names[request.param].format(i))
        parts += [x, np.zeros((1, int(0.4 * rate)), np.float32)]
    x = np.concatenate(parts, axis=1)
    x += (10 ** (-70 / 20) * np.random.default_rng(3).standard_normal(x.shape)).astype(np.float32)
    return x, rate


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_dehum_removes_drifting_hum_by_20_db(speech, mains):
    x, rate = speech
    rng = np.random.default_rng(int(mains))
    power = float(np.mean(x.astype(np.float64) ** 2))
    hum, comps = make_hum(x.shape[1], rate, mains, -10.0, power, rng)
    plus = dehum(x + hum, rate, mains_hz=mains)
    minus = dehum(x - hum, rate, mains_hz=mains)
    left = (plus[0].astype(np.float64) - minus[0]) / 2
    before = np.mean(np.abs(comps) ** 2, axis=1) / 2
    after = harmonic_power(left, comps, rate)
    total_db = 10 * np.log10(before.sum() / after.sum())
    assert total_db >= 20.0, f"hum lowered by {total_db:.1f} dB"
    assert np.all(10 * np.log10(before / after) >= 15.0), 10 * np.log10(before / after)
    assert si_sdr_db(x, plus) > si_sdr_db(x, x + hum) + 4.0


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_clean_speech_passes_almost_untouched(speech, mains):
    x, rate = speech
    assert si_sdr_db(x, dehum(x, rate, mains_hz=mains)) > 30.0


@pytest.mark.parametrize("mains", [50.0, 60.0])
@pytest.mark.parametrize("level_db", [-20.0, -10.0, -3.0])
def test_estimate_hum_finds_mains_and_level(speech, mains, level_db):
    x, rate = speech
    rng = np.random.default_rng(7)
    hum, _ = make_hum(x.shape[1], rate, mains, level_db, float(np.mean(x.astype(float) ** 2)),
                      rng)
    damaged = x + hum
    truth = 10 * np.log10(np.mean(hum.astype(float) ** 2) / np.mean(damaged.astype(float) ** 2))
    est = estimate_hum(damaged, rate)
    assert est.mains_hz == mains
    assert abs(est.level_db - truth) < 3.0, (est, truth)
    assert est.confidence > 0.3


def test_estimate_hum_on_clean_speech_and_silence(speech):
    x, rate = speech
    est = estimate_hum(x, rate)
    assert est.level_db < -30.0 or est.confidence < 0.3
    assert estimate_hum(np.zeros((1, rate), np.float32), rate) == (0.0, -120.0, 0.0)
    assert estimate_hum(np.zeros((2, 0), np.float32), rate).mains_hz == 0.0


def test_dc_is_removed_and_estimated(speech):
    x, rate = speech
    offset = np.float32(0.05)
    assert estimate_dc(x + offset) == pytest.approx(0.05, abs=1e-3)
    y = dehum(x + offset, rate, n_harmonics=0)
    assert abs(float(y[:, rate:].mean())) < 1e-3
    assert si_sdr_db(x[:, rate:], y[:, rate:]) > 30.0


def test_stereo_shares_frequency_and_keeps_each_channel(speech):
    x, rate = speech
    rng = np.random.default_rng(11)
    power = float(np.mean(x.astype(np.float64) ** 2))
    hum, _ = make_hum(x.shape[1], rate, 50.0, -6.0, power, rng)
    stereo = np.concatenate([x + hum, 0.5 * x - 0.3 * hum], axis=0)
    y = dehum(stereo, rate)
    assert si_sdr_db(x, y[0]) > si_sdr_db(x, stereo[0]) + 4.0
    assert si_sdr_db(0.5 * x, y[1]) > si_sdr_db(0.5 * x, stereo[1]) + 4.0


def test_strength_zero_is_bypass_and_options_are_checked(speech):
    x, rate = speech
    np.testing.assert_array_equal(dehum(x, rate, strength=0.0), x)
    for bad in ({"mains_hz": 0.0}, {"n_harmonics": -1}, {"n_harmonics": 2.5}, {"strength": 2.0}):
        with pytest.raises(BadOptionError, match="dehum"):
            Dehum(**bad)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_streamed_equals_whole_any_rate_and_blocks(rate):
    rng = np.random.default_rng(rate)
    t = np.arange(int(2.3 * rate)) / rate
    noise = 0.05 * rng.standard_normal((2, t.size))
    x = (noise + 0.2 * np.sin(2 * np.pi * 60.2 * t)
         + 0.05 * np.sin(2 * np.pi * 180.6 * t + 1)).astype(np.float32)
    stage = Dehum(mains_hz=60.0)
    whole = stage(x, rate)
    sizes = rng.integers(1, rate // 2, size=9).tolist()
    np.testing.assert_allclose(run_blocks(stage.processor(rate, 2), split_blocks(x, sizes)),
                               whole, atol=1e-5)
    assert np.std(whole - noise) < 0.1 * np.std(x - noise)  # hum down by more than 20 dB
    for n in (0, 1):
        assert stage(np.zeros((2, n), np.float32), rate).shape == (2, n)
    np.testing.assert_array_equal(stage(np.zeros((1, rate), np.float32), rate), 0.0)
