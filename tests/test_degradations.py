"""Damage simulator: contract tests over the whole registry, then known answers per damage."""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys

import numpy as np
import pytest

from audiomend.degradations import (
    DEGRADATIONS,
    Degradation,
    active_power,
    add_noise,
    bandlimit,
    clicks,
    clip,
    delay,
    dropouts,
    gain,
    hum,
    measure_snr,
    mp3,
    reverberate,
)
from audiomend.degradations.reverb import simulate_rir
from audiomend.errors import BadAudioError, BadOptionError

NAMES = sorted(DEGRADATIONS)


@pytest.fixture(scope="module")
def stereo(speech_16k) -> tuple[np.ndarray, int]:
    """1.5 s of real speech as two different channels."""
    audio, rate = speech_16k
    x = audio[0, : int(1.5 * rate)]
    return np.stack([x, 0.5 * x[::-1]]).astype(np.float32), rate


def _function_of(cls: type[Degradation]):
    """The pure function a Degradation class calls: same module, its keywords are the fields."""
    fields = {f.name for f in dataclasses.fields(cls)} - {"seed"}
    module = sys.modules[cls.__module__]
    for obj in vars(module).values():
        if inspect.isfunction(obj) and obj.__module__ == module.__name__:
            params = inspect.signature(obj).parameters
            names = list(params)
            if names[:2] == ["audio", "sample_rate"] and "rng" in params \
                    and set(names[2:]) - {"rng"} == fields:
                return obj
    raise AssertionError(f"no pure function found for {cls.__name__}")


# ----------------------------------------------------------------------------- contract


def test_registry_holds_every_damage():
    assert set(NAMES) >= {"noise", "reverb", "clip", "bandlimit", "gain", "delay", "hum", "clicks",
                          "dropouts", "mp3"}


@pytest.mark.parametrize("name", NAMES)
def test_field_defaults_equal_function_defaults(name):
    cls = DEGRADATIONS[name]
    fn = _function_of(cls)
    params = inspect.signature(fn).parameters
    assert params["rng"].default is None
    for f in dataclasses.fields(cls):
        if f.name == "seed":
            assert cls.random and f.default == 0
            continue
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[f.name].default == f.default, f.name
    assert cls.random == any(f.name == "seed" for f in dataclasses.fields(cls))


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_finite(name, stereo):
    x, rate = stereo
    y = DEGRADATIONS[name]()(x, rate)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.isfinite(y).all()
    assert not np.array_equal(y, x), "the default parameters must damage speech"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 0), (2, 0), (1, 1), (2, 1), (2, 1600)])
def test_silence_one_sample_empty(name, shape):
    x = np.zeros(shape, np.float32)
    y = DEGRADATIONS[name]()(x, 16000)
    assert y.shape == shape and y.dtype == np.float32 and np.isfinite(y).all()
    one = DEGRADATIONS[name]()(np.full((1, 1), 0.5, np.float32), 16000)
    assert one.shape == (1, 1) and np.isfinite(one).all()


@pytest.mark.parametrize("name", NAMES)
def test_stereo_is_per_channel(name, stereo):
    x, rate = stereo
    damage = DEGRADATIONS[name]()
    y = damage(x, rate)
    if damage.independent_channels:
        # decorrelated draws from the same seed: identical channels get different damage
        same = np.stack([x[0], x[0]])
        z = damage(same, rate) - same
        assert not np.allclose(z[0], z[1])
        return
    for c in range(2):
        np.testing.assert_allclose(y[c], damage(x[c:c + 1], rate)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_seed_determinism(name, stereo):
    x, rate = stereo
    cls = DEGRADATIONS[name]
    np.testing.assert_array_equal(cls()(x, rate), cls()(x, rate))
    if cls.random:
        assert not np.array_equal(cls(seed=1)(x, rate), cls(seed=2)(x, rate))


@pytest.mark.parametrize("name", NAMES)
def test_json_round_trip(name):
    damage = DEGRADATIONS[name]()
    data = json.loads(json.dumps(damage.to_dict()))
    assert data["name"] == name
    assert Degradation.from_dict(data) == damage


def test_paths_are_stored_as_strings(shared_data):
    from audiomend.degradations import AddNoise, Reverberate

    noise = AddNoise(noise=shared_data / "smoke" / "noise" / "smoke_emgse_engine.flac")
    rir = Reverberate(rir=shared_data / "smoke" / "rir" / "smoke_webaudio_house_kitchen.flac")
    for damage in (noise, rir):
        assert Degradation.from_dict(json.loads(json.dumps(damage.to_dict()))) == damage


def test_from_dict_errors_name_the_problem():
    with pytest.raises(BadOptionError, match="unknown degradation 'nope'"):
        Degradation.from_dict({"name": "nope"})
    with pytest.raises(BadOptionError, match="no parameter.*cutoff"):
        Degradation.from_dict({"name": "clip", "cutoff": 3})


def test_bad_parameters_raise_named_errors(stereo):
    x, rate = stereo
    with pytest.raises(BadOptionError, match="snr_db"):
        add_noise(x, rate, snr_db=float("nan"))
    with pytest.raises(BadOptionError, match="color"):
        add_noise(x, rate, color="purple")
    with pytest.raises(BadOptionError, match="threshold_db"):
        clip(x, rate, threshold_db=3.0)
    with pytest.raises(BadOptionError, match="bitrate_kbps"):
        mp3(x, rate, bitrate_kbps=33)
    with pytest.raises(BadOptionError, match="telephone"):
        bandlimit(x, 6000, mode="telephone")
    with pytest.raises(BadAudioError, match="no such file"):
        add_noise(x, rate, noise="/nonexistent/noise.flac")
    with pytest.raises(BadAudioError, match="silent"):
        add_noise(x, rate, noise=np.zeros((1, 100), np.float32))


# ----------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 7.5, 20.0])
def test_snr_on_real_speech_and_noise(shared_data, speech_16k, snr_db):
    speech, rate = speech_16k
    noise_file = shared_data / "smoke" / "noise" / "smoke_emgse_engine.flac"
    y = add_noise(speech, rate, snr_db=snr_db, noise=noise_file, rng=np.random.default_rng(3))
    added = y.astype(np.float64) - speech
    assert abs(measure_snr(speech, added, rate)[0] - snr_db) < 0.1
    # whole-signal definition, measured independently
    y = add_noise(speech, rate, snr_db=snr_db, noise=noise_file, snr_reference="whole",
                  rng=np.random.default_rng(3))
    added = y.astype(np.float64) - speech
    measured = 10 * np.log10(np.sum(speech.astype(np.float64) ** 2) / np.sum(added**2))
    assert abs(measured - snr_db) < 0.1


def test_active_snr_ignores_pauses(speech_16k):
    """Active-speech SNR: padding the clip with silence does not change the noise level relative
    to the speech, whereas a whole-signal SNR would lower it."""
    speech, rate = speech_16k
    padded = np.concatenate([speech, np.zeros_like(speech)], axis=1)
    assert active_power(padded, rate)[0] == pytest.approx(active_power(speech, rate)[0], rel=1e-6)


def test_stereo_noise_snr_per_channel_and_decorrelated(shared_data, stereo):
    x, rate = stereo
    noise_file = shared_data / "smoke" / "noise" / "smoke_sc_doing_the_dishes.flac"
    y = add_noise(x, rate, snr_db=3.0, noise=noise_file, offset=1000)
    added = y.astype(np.float64) - x
    np.testing.assert_allclose(measure_snr(x, added, rate), [3.0, 3.0], atol=0.1)
    assert abs(np.corrcoef(added)[0, 1]) < 0.5


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_colored_noise_snr_and_slope(stereo, color):
    x, rate = stereo
    y = add_noise(x, rate, snr_db=10.0, color=color, rng=np.random.default_rng(5))
    added = (y.astype(np.float64) - x)[0]
    assert abs(measure_snr(x[:1], added[None], rate)[0] - 10.0) < 0.1
    spec = np.abs(np.fft.rfft(added)) ** 2
    freqs = np.fft.rfftfreq(added.size, 1 / rate)
    low = spec[(freqs > 200) & (freqs < 400)].mean()
    high = spec[(freqs > 3200) & (freqs < 6400)].mean()
    expected = {"white": 0.0, "pink": 10 * np.log10(16), "brown": 20 * np.log10(16)}[color]
    assert abs(10 * np.log10(low / high) - expected) < 1.5


def test_noise_file_offset_is_deterministic(shared_data, speech_16k):
    from audiomend.io import load

    speech, rate = speech_16k
    noise_file = shared_data / "smoke" / "noise" / "smoke_emgse_engine.flac"
    noise, _ = load(noise_file, sample_rate=rate)
    y = add_noise(speech, rate, snr_db=0.0, noise=noise_file, offset=noise.shape[1] - 10)
    added = y.astype(np.float64) - speech
    expected = np.concatenate([noise[0, -10:], noise[0, : speech.shape[1] - 10]])
    ratio = added[0] / np.where(expected == 0, np.nan, expected)
    ratio = ratio[np.isfinite(ratio) & (np.abs(expected) > 1e-3)]
    assert np.allclose(ratio, ratio[0], rtol=1e-3)  # the same noise, looped, one gain


@pytest.mark.parametrize("kw", [{"threshold_db": -6.0}, {"threshold": 0.05}])
def test_hard_clip_is_exact(speech_16k, kw):
    x, rate = speech_16k
    y = clip(x, rate, **kw)
    t = kw.get("threshold", np.abs(x).max() * 10 ** (kw.get("threshold_db", 0) / 20))
    above = np.abs(x) > np.float32(t)
    assert above.any() and not above.all()
    np.testing.assert_array_equal(y[~above], x[~above])
    np.testing.assert_allclose(y[above], np.sign(x[above]) * t, rtol=1e-6)


def test_soft_clip_bounded_and_monotone(speech_16k):
    x, rate = speech_16k
    y = clip(x, rate, threshold=0.05, soft=True)
    assert np.abs(y).max() <= 0.05 + 1e-7
    order = np.argsort(x[0])
    assert np.all(np.diff(y[0][order]) >= -1e-7)


def _tone(freq_hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq_hz * t))[None].astype(np.float32)


def _gain_db(y: np.ndarray, x: np.ndarray, rate: int) -> float:
    mid = slice(rate // 4, -rate // 4)
    return 10 * np.log10(np.mean(y[:, mid] ** 2.0) / np.mean(x[:, mid] ** 2.0) + 1e-30)


@pytest.mark.parametrize("rate,cutoff", [(16000, 4000.0), (48000, 8000.0), (16000, 3400.0)])
def test_lowpass_keep_or_kill(rate, cutoff):
    keep, kill = _tone(0.7 * cutoff, rate), _tone(1.5 * cutoff, rate)
    assert abs(_gain_db(bandlimit(keep, rate, cutoff_hz=cutoff), keep, rate)) < 0.5
    assert _gain_db(bandlimit(kill, rate, cutoff_hz=cutoff), kill, rate) < -30


def test_lowpass_keeps_alignment(speech_16k):
    x, rate = speech_16k
    y = bandlimit(x, rate, cutoff_hz=4000.0)
    corr = np.correlate(y[0], x[0], "full")
    assert int(np.argmax(corr)) - (x.shape[1] - 1) == 0


def test_resample_and_telephone_modes():
    rate = 16000
    keep, kill = _tone(2000.0, rate), _tone(5000.0, rate)
    assert abs(_gain_db(bandlimit(keep, rate, mode="resample", resample_hz=8000), keep, rate)) < 0.5
    assert _gain_db(bandlimit(kill, rate, mode="resample", resample_hz=8000), kill, rate) < -30
    low = _tone(80.0, rate)
    assert _gain_db(bandlimit(low, rate, mode="telephone"), low, rate) < -30
    assert abs(_gain_db(bandlimit(keep, rate, mode="telephone"), keep, rate)) < 0.5


def test_integer_delay_is_exact(speech_16k):
    x, rate = speech_16k
    y = delay(x, rate, delay_ms=3.5625)  # 57 samples at 16 kHz
    np.testing.assert_array_equal(y[:, 57:], x[:, :-57])
    assert not y[:, :57].any()


def test_fractional_delay_matches_theory():
    rate, d = 16000, 2.5
    t = np.arange(rate) / rate
    freqs = [310.0, 1230.0, 4700.0]
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs)[None].astype(np.float32) / 3
    y = delay(x, rate, delay_ms=d * 1000 / rate)
    expected = sum(np.sin(2 * np.pi * f * (t - d / rate)) for f in freqs) / 3
    mid = slice(2000, -2000)
    assert np.max(np.abs(y[0, mid] - expected[mid])) < 1e-3


def test_hum_energy_at_harmonics(speech_16k):
    x, rate = speech_16k
    level_db = -20.0
    y = hum(x, rate, mains_hz=50.0, harmonics=6, level_db=level_db, rng=np.random.default_rng(2))
    n = x.shape[1]
    freqs = np.fft.rfftfreq(n, 1 / rate)
    near = np.zeros(freqs.size, bool)
    for k in range(1, 7):
        near |= np.abs(freqs - 50.0 * k) <= 2.0
    px = np.abs(np.fft.rfft(x[0].astype(np.float64))) ** 2
    py = np.abs(np.fft.rfft(y[0].astype(np.float64))) ** 2
    added = 2 * (py[near] - px[near]).sum() / n**2  # Parseval: power of the added tones
    measured = 10 * np.log10(added / active_power(x, rate)[0])
    assert abs(measured - level_db) < 1.0
    h = np.abs(np.fft.rfft((y - x)[0].astype(np.float64))) ** 2
    assert h[near].sum() > 0.98 * h.sum()


def test_hum_60hz_stays_below_nyquist():
    y = hum(np.random.default_rng(0).standard_normal((1, 8000)).astype(np.float32), 1000,
            mains_hz=60.0, harmonics=20)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("rate,kbps", [(16000, 32), (48000, 32), (44100, 128), (22050, 64)])
def test_mp3_stays_aligned(speech_16k, rate, kbps):
    from audiomend.dsp import resample

    x, base = speech_16k
    x = resample(x[:, : 2 * base], base, rate)
    y = mp3(x, rate, bitrate_kbps=kbps)
    assert y.shape == x.shape
    corr = np.correlate(y[0], x[0], "full")
    assert int(np.argmax(corr)) - (x.shape[1] - 1) == 0
    assert _gain_db(y, x, rate) == pytest.approx(0.0, abs=1.0)


def test_reverb_direct_path_is_aligned(shared_data, speech_16k):
    x, rate = speech_16k
    rir = shared_data / "smoke" / "rir" / "smoke_webaudio_house_kitchen.flac"
    impulse = np.zeros((1, 20000), np.float32)
    impulse[0, 1000] = 1.0
    y = reverberate(impulse, rate, rir=rir)
    assert y[0, 1000] == pytest.approx(1.0, abs=1e-5)
    assert np.abs(y[0, :990]).max() < 0.2  # only the pre-ringing before the direct path
    # speech: the output is the dry speech convolved with that aligned response
    wet = reverberate(x, rate, rir=rir)
    expected = np.convolve(x[0].astype(np.float64), y[0, 900:].astype(np.float64))[100:100 + x.shape[1]]
    np.testing.assert_allclose(wet[0], expected, atol=2e-4)
    # a reflection stronger than the direct path does not move the alignment
    synthetic = np.zeros(400)
    synthetic[30], synthetic[150] = 0.6, -0.95
    y = reverberate(impulse, rate, rir=synthetic)
    assert y[0, 1000] == pytest.approx(1.0) and y[0, 1120] == pytest.approx(-0.95 / 0.6)


def test_simulated_room_rt60():
    rate = 16000
    for rt60 in (0.4, 1.0):
        rir = simulate_rir(rate, rt60_s=rt60, room_m=(8.0, 6.0, 3.0),
                           rng=np.random.default_rng(1)).astype(np.float64)
        edc = np.cumsum(rir[::-1] ** 2)[::-1]
        edc_db = 10 * np.log10(edc / edc[0])
        t5, t25 = np.argmax(edc_db <= -5), np.argmax(edc_db <= -25)
        t60 = 3.0 * (t25 - t5) / rate
        assert t60 == pytest.approx(rt60, rel=0.2)
    impulse = np.zeros((1, 8000), np.float32)
    impulse[0, 100] = 1.0
    y = reverberate(impulse, rate, rt60_s=0.5)
    assert int(np.argmax(np.abs(y[0]))) == 100 and y[0, 100] == pytest.approx(1.0, abs=1e-5)


def test_gain_quiet_and_overload(speech_16k):
    x, rate = speech_16k
    quiet = gain(x, rate, gain_db=-30.0, noise_floor_dbfs=None)
    np.testing.assert_allclose(quiet, x * 10 ** (-30 / 20), rtol=1e-5, atol=1e-9)
    floor = gain(np.zeros((1, rate), np.float32), rate, gain_db=-30.0, noise_floor_dbfs=-85.0)
    assert 20 * np.log10(np.sqrt(np.mean(floor.astype(np.float64) ** 2))) == pytest.approx(-85, abs=0.2)
    loud = gain(x, rate, gain_db=30.0)
    assert np.abs(loud).max() == 1.0
    assert (np.abs(loud) == 1.0).sum() == (np.abs(x * 10 ** 1.5) >= 1.0).sum()


def test_dropouts_lose_whole_packets():
    rate = 16000
    x = np.ones((2, 20 * rate), np.float32)
    y = dropouts(x, rate, packet_ms=20.0, loss_rate=0.1, rng=np.random.default_rng(4))
    packets = y[0].reshape(-1, 320)
    lost = ~packets.any(axis=1)
    assert np.all(packets[~lost] == 1.0)
    assert lost.mean() == pytest.approx(0.1, abs=0.03)
    np.testing.assert_array_equal(y[0], y[1])


def test_clicks_rate_and_amplitude():
    rate = 16000
    y = clicks(np.zeros((1, 10 * rate), np.float32), rate, rate_per_s=8.0, amplitude=0.4,
               rng=np.random.default_rng(6))
    peaks = np.flatnonzero(np.abs(y[0]) > 0.1)
    starts = peaks[np.concatenate([[True], np.diff(peaks) > 16])]
    assert 50 <= starts.size <= 110  # Poisson(80)
    assert np.abs(y).max() <= 0.8 + 1e-6  # two overlapping clicks at most add up


def test_degradations_do_not_modify_input(stereo):
    x, rate = stereo
    before = x.copy()
    for name in NAMES:
        DEGRADATIONS[name]()(x, rate)
    np.testing.assert_array_equal(x, before)


def test_package_import_is_light():
    import subprocess

    code = ("import sys, audiomend.degradations; "
            "print(any(m in sys.modules for m in ('pyroomacoustics', 'lameenc', 'rich', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
