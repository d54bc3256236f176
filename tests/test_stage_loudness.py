"""Loudness stage: gain to a target plus look-ahead true-peak limiter, on real speech."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from audiomend.errors import BadAudioError, BadOptionError
from audiomend.stages.loudness import Loudness, loudness, loudness_gain_db, measure_loudness_lufs
from audiomend.stream import run_blocks, split_blocks


def true_peak_dbtp(audio: np.ndarray, skip: int = 0) -> float:
    """4x oversampled peak (scipy's polyphase Kaiser filter, independent of the stage's own).

    ``skip`` input samples at each end are left out of the maximum (after upsampling, so a
    tone cut off abruptly does not ring).
    """
    up = resample_poly(audio.astype(np.float64), 4, 1, axis=-1)
    up = up[:, 4 * skip: up.shape[1] - 4 * skip]
    return float(20 * np.log10(max(np.abs(up).max(), 1e-12)))


def scaled_to(x: np.ndarray, rate: int, lufs: float) -> np.ndarray:
    return (x * 10 ** ((lufs - measure_loudness_lufs(x, rate)) / 20)).astype(np.float32)


@pytest.fixture
def speech(shared_data):
    """Three real clips (16 and 48 kHz) with ordinary peak-to-loudness ratios (13-19 dB)."""
    from audiomend.io import load

    return [load(shared_data / "smoke" / "speech" / name) for name in
            ("freesound33711_48k_1.flac", "freesound33711_48k_2.flac",
             "sisec_dev1_male4_src1_16k_2.flac")]


@pytest.mark.parametrize("input_lufs", [-42.0, -30.0, -4.0])  # too quiet ... overloaded
@pytest.mark.parametrize("target_lufs", [-23.0, -16.0])
def test_output_reaches_target_and_respects_true_peak(speech, input_lufs, target_lufs):
    for x, rate in speech:
        x = scaled_to(x, rate, input_lufs)
        if input_lufs > -10:
            assert np.abs(x).max() > 1.0  # really overloaded: peaks beyond full scale
        gain = loudness_gain_db(measure_loudness_lufs(x, rate), target_lufs)
        y = loudness(x, rate, gain_db=gain, true_peak_dbfs=-1.0)
        assert abs(measure_loudness_lufs(y, rate) - target_lufs) < 0.5
        assert true_peak_dbtp(y) <= -1.0


def test_limiter_cost_is_bounded_on_very_peaky_speech(speech_16k):
    """This clip's peaks sit 22.6 dB over its loudness: at -16 LUFS they must lose 7.6 dB.

    The limiter then costs some loudness (the planner sees it: peak and loudness are both in
    the diagnosis); it must stay small and the ceiling must hold.
    """
    x, rate = speech_16k
    gain = loudness_gain_db(measure_loudness_lufs(x, rate), -16.0)
    y = loudness(x, rate, gain_db=gain)
    assert -17.5 < measure_loudness_lufs(y, rate) <= -16.0
    assert true_peak_dbtp(y) <= -1.0


@pytest.mark.parametrize("rate", [8000, 44100])
def test_inter_sample_peaks_are_caught(rate):
    # A sine at rate/4 sampled 45 degrees off its peaks: samples at 0.707 of the true peak.
    n = np.arange(rate)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)[np.newaxis]
    assert np.abs(x).max() < 0.71
    y = loudness(x, rate, gain_db=0.0, true_peak_dbfs=-1.0)
    assert -1.4 < true_peak_dbtp(y, skip=100) <= -1.0  # limited, not crushed


def test_worst_case_noise_at_plus_20_db(rng):
    x = rng.uniform(-1, 1, (2, 48000)).astype(np.float32)
    y = loudness(x, 48000, gain_db=20.0, true_peak_dbfs=-2.0)
    assert true_peak_dbtp(y) <= -2.0


def test_same_gain_on_every_channel(speech_48k):
    x, rate = speech_48k
    stereo = np.concatenate([x, 0.25 * x], axis=0)
    y = loudness(stereo, rate, gain_db=30.0)  # heavy limiting, driven by the left channel
    loud = np.abs(y[0]) > 1e-3
    np.testing.assert_allclose(y[1, loud] / y[0, loud], 0.25, rtol=1e-4)


def test_no_limiting_needed_is_a_pure_gain(speech_16k):
    x, rate = speech_16k
    y = loudness(x, rate, gain_db=6.0)
    np.testing.assert_allclose(y, x * np.float32(10 ** (6 / 20)), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(loudness(x, rate), x)


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 96000])
def test_streamed_equals_whole_any_rate_and_blocks(rng, rate):
    t = np.arange(rate + 13) / rate
    x = (np.sin(2 * np.pi * 220 * t) * (1 + 2 * rng.random((2, t.size)))).astype(np.float32)
    stage = Loudness(gain_db=9.0, true_peak_dbfs=-3.0)
    whole = stage(x, rate)
    sizes = rng.integers(1, 5000, size=11).tolist()
    np.testing.assert_allclose(run_blocks(stage.processor(rate, 2), split_blocks(x, sizes)),
                               whole, atol=1e-5)
    for n in (0, 1):
        assert stage(np.zeros((2, n), np.float32), rate).shape == (2, n)
    np.testing.assert_array_equal(stage(np.zeros((1, 500), np.float32), rate), 0.0)


def test_gain_helper_and_meter():
    assert loudness_gain_db(-30.0) == 14.0
    assert loudness_gain_db(-10.0, target_lufs=-23.0) == -13.0
    assert loudness_gain_db(float("-inf")) == 0.0
    t = np.arange(48000) / 48000
    sine = (0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[np.newaxis]
    # BS.1770: a 1 kHz sine of amplitude A in one channel reads 20 log10(A) - 3.01 + 0.69 LUFS.
    assert measure_loudness_lufs(sine, 48000) == pytest.approx(-23.0 + 0.0, abs=0.2)
    assert measure_loudness_lufs(np.zeros((1, 48000), np.float32), 48000) == float("-inf")
    with pytest.raises(BadAudioError, match="0.4 s"):
        measure_loudness_lufs(sine[:, :1000], 48000)


def test_bad_parameters_raise():
    with pytest.raises(BadOptionError, match="true_peak_dbfs"):
        Loudness(true_peak_dbfs=3.0)
    with pytest.raises(BadOptionError, match="gain_db"):
        Loudness(gain_db=float("inf"))
