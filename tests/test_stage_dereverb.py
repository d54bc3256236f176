"""Dereverb stage: real speech through real rooms, streaming parity, blind RT60 ordering."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from scipy.signal import fftconvolve

from audiomend.dsp import resample
from audiomend.errors import BadOptionError
from audiomend.io import load
from audiomend.stages import STAGES
from audiomend.stages.dereverb import Dereverb, ReverbEstimate, dereverb, estimate_reverb
from audiomend.stream import run_blocks, split_blocks

ROOMS = {"kitchen": "smoke_webaudio_house_kitchen",        # RT60 0.45 s
         "warehouse": "smoke_webaudio_warehouse_omni-7-4"}  # RT60 2.49 s


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = np.asarray(ref, np.float64).ravel(), np.asarray(est, np.float64).ravel()
    scale = np.dot(est, ref) / np.dot(ref, ref)
    target = scale * ref
    return float(10 * np.log10(np.sum(target ** 2) / np.sum((est - target) ** 2)))


@pytest.fixture(scope="module")
def speech_7s(shared_data):
    """The three 16 kHz smoke clips of one speaker back to back (7 s, crosses a WPE seam)."""
    clips = [load(shared_data / "smoke" / "speech" / f"sisec_dev1_male4_src1_16k_{i}.flac")[0][0]
             for i in (1, 2, 3)]
    return np.concatenate(clips).astype(np.float32), 16000


def reverberate(shared_data, speech, rate, room):
    """(reverberant, early target): the RIR from its direct path, and its first 50 ms only."""
    rir, rir_rate = load(shared_data / "smoke" / "rir" / f"{ROOMS[room]}.flac")
    rir = resample(rir, rir_rate, rate)[0]
    peak = int(np.argmax(np.abs(rir)))
    rir = rir[peak:] / abs(rir[peak])
    wet = fftconvolve(speech, rir)[: speech.size]
    early = fftconvolve(speech, rir[: int(0.05 * rate)])[: speech.size]
    return wet.astype(np.float32), early


@pytest.mark.parametrize("room", list(ROOMS))
def test_dereverb_raises_si_sdr_vs_early_target_and_cuts_late_reverb(shared_data, speech_7s, room):
    speech, rate = speech_7s
    wet, early = reverberate(shared_data, speech, rate, room)
    out = dereverb(wet[None], rate)[0]
    assert si_sdr(early, out) > si_sdr(early, wet) + 1.0
    late_in = np.sum((wet - early) ** 2)
    late_out = np.sum((out - early) ** 2)
    assert 10 * np.log10(late_out / late_in) < -1.0


def test_dereverb_leaves_dry_speech_nearly_untouched(speech_7s, speech_48k):
    for speech, rate in (speech_7s, speech_48k):
        speech = np.atleast_2d(speech)
        assert si_sdr(speech, dereverb(speech, rate)) > 20.0


def test_strength_scales_the_removed_part(shared_data, speech_7s):
    speech, rate = speech_7s
    wet, _ = reverberate(shared_data, speech, rate, "kitchen")
    full = dereverb(wet[None], rate)
    half = dereverb(wet[None], rate, strength=0.5)
    np.testing.assert_allclose(half, 0.5 * (wet + full), atol=1e-5)
    np.testing.assert_allclose(dereverb(wet[None], rate, strength=0.0), wet[None], atol=1e-6)


def test_estimate_reverb_orders_rooms(shared_data, speech_7s):
    speech, rate = speech_7s
    short = estimate_reverb(reverberate(shared_data, speech, rate, "kitchen")[0][None], rate)
    long = estimate_reverb(reverberate(shared_data, speech, rate, "warehouse")[0][None], rate)
    dry = estimate_reverb(speech[None], rate)
    assert isinstance(long, ReverbEstimate) and long.drr_db is None
    assert dry.rt60_s < short.rt60_s < long.rt60_s
    assert 0.2 < short.rt60_s < 1.0 and 0.9 < long.rt60_s < 5.0, (short, long)
    assert 0.0 < long.confidence <= 1.0


def test_estimate_reverb_is_cheap_and_handles_silence(speech_7s):
    import time

    speech, rate = speech_7s
    start = time.perf_counter()
    estimate_reverb(speech[None], rate)
    assert (time.perf_counter() - start) / (speech.size / rate) < 0.02
    assert estimate_reverb(np.zeros((2, 100), np.float32), rate).confidence == 0.0


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_streamed_equals_whole_stereo_random_blocks(rate, rng):
    n = int(7.3 * rate) if rate < 48000 else int(6.5 * rate)  # crosses a segment seam
    t = np.arange(n) / rate
    envelope = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    dry = envelope * rng.standard_normal((2, n)).astype(np.float32)
    x = fftconvolve(dry, np.exp(-t[: rate // 3] * 12)[None] * rng.standard_normal((2, rate // 3)),
                    axes=1)[:, :n].astype(np.float32) * 0.05
    stage = Dereverb()
    whole = stage(x, rate)
    streamed = run_blocks(stage.processor(rate, 2), split_blocks(x, rng.integers(1, 40000, 12)))
    assert whole.shape == x.shape and whole.dtype == np.float32
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


@pytest.mark.parametrize("n", [0, 1, 300])
def test_tiny_empty_and_silent_input(n):
    for x in (np.full((2, n), 0.1, np.float32), np.zeros((1, n), np.float32)):
        out = dereverb(x, 16000)
        assert out.shape == x.shape and np.isfinite(out).all()
    assert not np.any(dereverb(np.zeros((2, 20000), np.float32), 16000))


def test_bad_options_raise():
    with pytest.raises(BadOptionError, match="taps"):
        Dereverb(taps=0)
    with pytest.raises(BadOptionError, match="strength"):
        dereverb(np.zeros((1, 10), np.float32), 16000, strength=-0.1)
    with pytest.raises(BadOptionError, match="prediction_delay"):
        Dereverb(prediction_delay=0)


def test_stage_registered_defaults_match_function_and_json_round_trip():
    assert STAGES["dereverb"] is Dereverb
    params = inspect.signature(dereverb).parameters
    for field in ("strength", "taps", "prediction_delay", "iterations"):
        assert params[field].default == getattr(Dereverb(), field)
    stage = Dereverb(strength=0.6, taps=12)
    assert Dereverb.from_dict(json.loads(json.dumps(stage.to_dict()))) == stage
