"""Declick stage and click detector, on real speech with clicks added inline (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from audiomend.errors import BadOptionError
from audiomend.stages.declick import Declick, declick, detect_clicks
from audiomend.stream import run_blocks, split_blocks


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64), est.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum((est - ref) ** 2), 1e-30)))


def si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64).ravel(), est.astype(np.float64).ravel()
    target = ref * (est @ ref) / (ref @ ref)
    return float(10 * np.log10(np.sum(target ** 2) / max(np.sum((est - target) ** 2), 1e-30)))


def add_clicks(x: np.ndarray, rate: int, rate_per_s: float, rng: np.random.Generator,
               max_ms: float = 1.0) -> tuple[np.ndarray, int]:
    """Clicks at Poisson times: 1 sample to ``max_ms`` long, decaying, random sign, with peaks
    0.2-1.0 of the speech peak (vinyl/crackle-like). Returns the damaged copy and the count."""
    n = x.shape[1]
    y = x.copy()
    count = int(rng.poisson(rate_per_s * n / rate))
    margin = int(0.01 * rate)
    positions = np.sort(rng.choice(np.arange(margin, n - margin), count, replace=False))
    peak = float(np.abs(x).max())
    for p in positions:
        length = int(rng.integers(1, max(2, int(max_ms * 1e-3 * rate)) + 1))
        shape = np.exp(-np.arange(length) / max(length / 3, 1)) * (1 + 0.3 * rng.standard_normal(length))
        y[:, p: p + length] += (rng.uniform(0.2, 1.0) * peak * rng.choice([-1, 1]) * shape
                                ).astype(np.float32)
    return y, count


@pytest.fixture(scope="module", params=["16k", "48k"])
def speech(request):
    """The three smoke clips of one rate, back to back (7-9 s of real speech)."""
    from audiomend.io import load

    root = request.getfixturevalue("shared_data") / "smoke" / "speech"
    names = {"16k": "sisec_dev1_male4_src1_16k_{}.flac", "48k": "freesound33711_48k_{}.flac"}
    parts = [load(root / names[request.param].format(i)) for i in (1, 2, 3)]
    return np.concatenate([p[0] for p in parts], axis=1), parts[0][1]


def test_clicks_are_detected_and_removed(speech):
    x, rate = speech
    damaged, count = add_clicks(x, rate, 10.0, np.random.default_rng(1))
    true_rate = count / (x.shape[1] / rate)
    est = detect_clicks(damaged, rate)
    assert abs(est.rate_per_s - true_rate) <= 0.3 * true_rate, (est, true_rate)
    assert est.confidence > 0.5
    fixed = declick(damaged, rate)
    assert snr_db(x, fixed) > snr_db(x, damaged) + 4.0


def test_clean_speech_is_left_alone(speech):
    x, rate = speech
    assert detect_clicks(x, rate).rate_per_s < 0.5
    assert si_sdr_db(x, declick(x, rate)) > 40.0


def test_stereo_shares_the_gaps(speech):
    x, rate = speech
    damaged, _ = add_clicks(x, rate, 10.0, np.random.default_rng(2))
    stereo = np.concatenate([damaged, 0.7 * x], axis=0)  # clicks on the left only
    fixed = declick(stereo, rate)
    assert snr_db(x, fixed[:1]) > snr_db(x, damaged) + 4.0
    assert snr_db(0.7 * x, fixed[1:]) > 30.0  # the clean channel barely moves


def test_strength_blends_and_zero_is_bypass(speech):
    x, rate = speech
    damaged, _ = add_clicks(x, rate, 10.0, np.random.default_rng(3))
    np.testing.assert_array_equal(declick(damaged, rate, strength=0.0), damaged)
    full = declick(damaged, rate)
    half = declick(damaged, rate, strength=0.5)
    np.testing.assert_allclose(half, 0.5 * (damaged + full), atol=1e-6)


def test_long_bursts_are_not_clicks(rng):
    rate = 16000
    t = np.arange(rate) / rate
    x = (0.3 * np.sin(2 * np.pi * 200 * t) + 0.001 * rng.standard_normal(rate)).astype(np.float32)
    x[8000:8160] += 0.5 * rng.standard_normal(160).astype(np.float32)  # 10 ms: a burst
    np.testing.assert_array_equal(declick(x[np.newaxis], rate, max_click_ms=2.0)[0, 8000:8160],
                                  x[8000:8160])


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_streamed_equals_whole_any_rate_and_blocks(rate):
    rng = np.random.default_rng(rate)
    t = np.arange(rate + 7) / rate
    x = (0.2 * np.sin(2 * np.pi * 330 * t) * np.sin(2 * np.pi * 2 * t)
         + 0.01 * rng.standard_normal((2, t.size))).astype(np.float32)
    x[:, rng.integers(0, t.size, 12)] += 0.6
    stage = Declick()
    whole = stage(x, rate)
    sizes = rng.integers(1, 3000, size=13).tolist()
    np.testing.assert_allclose(run_blocks(stage.processor(rate, 2), split_blocks(x, sizes)),
                               whole, atol=1e-5)
    for n in (0, 1, 50):
        assert stage(np.zeros((2, n), np.float32), rate).shape == (2, n)
    np.testing.assert_array_equal(stage(np.zeros((1, rate), np.float32), rate), 0.0)
    assert detect_clicks(np.zeros((1, 0), np.float32), rate) == (0.0, 0.0)
    assert detect_clicks(np.zeros((2, 3), np.float32), rate) == (0.0, 0.0)


def test_bad_options_raise():
    for bad in ({"threshold": 0.0}, {"strength": -0.1}, {"max_click_ms": 0.0},
                {"max_click_ms": 100.0}):
        with pytest.raises(BadOptionError, match="declick"):
            Declick(**bad)
