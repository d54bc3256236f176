"""Metrics: known answers on real speech and synthetic signals, errors, and a registry contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import ellip, sosfilt

from audiomend.dsp import resample
from audiomend.errors import BadOptionError, MetricError
from audiomend.metrics import METRICS, assess, compute
from audiomend.metrics import dnsmos as dnsmos_module
from audiomend.metrics.dnsmos import dnsmos_scores
from audiomend.metrics.levels import (
    bandwidth_hz,
    clipped_fraction,
    dc_offset,
    estimated_snr_db,
    loudness_lufs,
    peak_dbfs,
    rms_dbfs,
)
from audiomend.metrics.pesq import pesq_nb, pesq_wb
from audiomend.metrics.sdr import segsnr, si_sdr, snr
from audiomend.metrics.spectral import LSD_POWER_FLOOR, lsd
from audiomend.metrics.stoi import estoi, stoi

EXPECTED_NAMES = {
    "pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "segsnr", "lsd", "dnsmos_sig",
    "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "clipped_fraction", "peak_dbfs", "rms_dbfs",
    "loudness_lufs", "dc_offset", "estimated_snr_db", "bandwidth_hz",
}
REFERENCE_FREE = {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "clipped_fraction",
                  "peak_dbfs", "rms_dbfs", "loudness_lufs", "dc_offset", "estimated_snr_db",
                  "bandwidth_hz"}


def with_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + g * noise`` with ``g`` chosen so that the energy ratio is exactly ``snr_db``."""
    noise = noise[..., : x.shape[-1]]
    gain = np.sqrt(np.sum(x.astype(np.float64) ** 2) / np.sum(noise.astype(np.float64) ** 2)
                   / 10 ** (snr_db / 10))
    return (x + gain * noise).astype(np.float32)


@pytest.fixture(scope="module")
def speech(speech_16k):
    return speech_16k[0], speech_16k[1]


@pytest.fixture(scope="module")
def noisy(speech):
    """The 16 kHz speech with white noise at 10 dB SNR (energy ratio)."""
    x, rate = speech
    noise = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    return with_noise(x, noise, 10.0), rate


# --- registry contract -----------------------------------------------------------------------

def test_registry_names_and_flags():
    assert set(METRICS) == EXPECTED_NAMES
    for name, m in METRICS.items():
        assert m.name == name
        assert m.needs_reference == (name not in REFERENCE_FREE)
        assert isinstance(m.higher_is_better, bool) and isinstance(m.unit, str) and m.description
    assert not METRICS["lsd"].higher_is_better and METRICS["pesq_wb"].higher_is_better


@pytest.mark.parametrize("channels", [1, 2])
def test_every_metric_finite_float_on_speech(speech, noisy, channels):
    x, rate = speech
    y, _ = noisy
    if channels == 2:  # a second, different channel: quieter and slightly filtered
        x = np.concatenate([x, 0.5 * np.convolve(x[0], [0.5, 0.5], "same")[None]]).astype(np.float32)
        y = np.concatenate([y, 0.5 * np.convolve(y[0], [0.5, 0.5], "same")[None]]).astype(np.float32)
    scores = assess(y, rate, reference=x)
    assert list(scores) == list(METRICS)
    for name, value in scores.items():
        assert type(value) is float and np.isfinite(value), name
    assert list(assess(y, rate)) == [n for n in METRICS if n in REFERENCE_FREE]


def test_reference_metrics_need_a_reference(speech):
    x, rate = speech
    for name, m in METRICS.items():
        if m.needs_reference:
            with pytest.raises(BadOptionError, match=name):
                compute(name, x, rate)
            with pytest.raises(MetricError, match="reference"):
                m.fn(x, rate)
    with pytest.raises(BadOptionError, match="unknown metric 'nope'"):
        assess(x, rate, metrics=["nope"])


def test_mono_reference_serves_stereo_estimate(speech, noisy):
    x, rate = speech
    y, _ = noisy
    stereo = np.concatenate([y, y])
    assert si_sdr(stereo, rate, reference=x) == pytest.approx(si_sdr(y, rate, reference=x), abs=1e-9)


def test_import_is_light():
    code = ("import sys, audiomend.metrics; "
            "print([m for m in ('pesq', 'pystoi', 'speechmos', 'pyloudnorm', 'onnxruntime', "
            "'librosa') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- PESQ, STOI --------------------------------------------------------------------------------

def test_pesq_of_identical_speech(speech):
    x, rate = speech
    assert pesq_wb(x, rate, reference=x) == pytest.approx(4.64, abs=0.05)
    assert pesq_nb(x, rate, reference=x) == pytest.approx(4.55, abs=0.05)


def test_pesq_ranks_noise_and_resamples_48k(speech, noisy, speech_48k):
    x, rate = speech
    y, _ = noisy
    assert pesq_wb(y, rate, reference=x) < 3.0
    x48, rate48 = speech_48k
    assert pesq_wb(x48, rate48, reference=x48) == pytest.approx(4.64, abs=0.05)


@pytest.mark.parametrize("metric", ["pesq_wb", "pesq_nb"])
@pytest.mark.parametrize("scale", [0.0, 1e-30])
def test_pesq_of_silent_estimate_is_a_metric_error_with_guards_off(speech, metric, scale):
    x, rate = speech
    estimate = (x * np.float32(scale)).astype(np.float32)
    with pytest.raises(MetricError, match=f"{metric}: PESQ cannot score channel 0: the estimate is silent"):
        compute(metric, estimate, rate, reference=x, check_pairing=False)


def test_stoi_identical_is_one_and_noise_lowers_it(speech, noisy):
    x, rate = speech
    y, _ = noisy
    assert stoi(x, rate, reference=x) == pytest.approx(1.0, abs=1e-6)
    assert estoi(x, rate, reference=x) == pytest.approx(1.0, abs=1e-6)
    assert estoi(y, rate, reference=x) < stoi(y, rate, reference=x) < 1.0


def test_stoi_too_little_speech_raises(speech):
    x, rate = speech
    short = x[:, : int(0.2 * rate)]
    with pytest.raises(MetricError, match="active speech"):
        stoi(short, rate, reference=short)


# --- SI-SDR, SNR, segSNR ------------------------------------------------------------------------

def test_si_sdr_of_scaled_copy_is_huge(speech):
    x, rate = speech
    assert si_sdr(0.3 * x, rate, reference=x) > 60


@pytest.mark.parametrize("snr_db", [0.0, 7.5, 20.0])
def test_si_sdr_and_snr_of_known_mixture(speech, rng, snr_db):
    x, rate = speech
    x = x - x.mean()
    noise = rng.standard_normal(x.shape).astype(np.float32)
    y = with_noise(x, noise - noise.mean(), snr_db)
    assert si_sdr(y, rate, reference=x) == pytest.approx(snr_db, abs=0.2)
    assert snr(y, rate, reference=x) == pytest.approx(snr_db, abs=0.01)


def test_snr_counts_gain_error_si_sdr_does_not(speech):
    x, rate = speech
    assert snr(0.5 * x, rate, reference=x) == pytest.approx(20 * np.log10(2), abs=1e-3)


def test_segsnr_known_cases(rng):
    rate = 16000
    x = rng.standard_normal((1, 2 * rate)).astype(np.float32)
    # every frame has the same error-to-signal ratio 0.1 -> 20 dB per frame
    assert segsnr(1.1 * x, rate, reference=x) == pytest.approx(20.0, abs=1e-3)
    # identical -> every frame clipped to the 35 dB ceiling
    assert segsnr(x, rate, reference=x) == pytest.approx(35.0)
    # 0 dB in the first second, 20 dB in the second: segmental mean ~10 dB, global SNR ~3 dB
    noise = rng.standard_normal(x.shape).astype(np.float32)
    noise[:, rate:] *= 0.1
    y = x + noise
    assert segsnr(y, rate, reference=x) == pytest.approx(10.0, abs=0.5)
    assert snr(y, rate, reference=x) == pytest.approx(10 * np.log10(2 / 1.01), abs=0.2)


# --- LSD ------------------------------------------------------------------------------------------

def test_lsd_identical_is_zero(speech):
    x, rate = speech
    assert lsd(x, rate, reference=x) == 0.0


def test_lsd_of_low_passed_copy(rng):
    """Brick-wall low-pass of white noise at rate/4: half the bins lose their whole level.

    Reference power per bin is sigma^2 * sum(w^2) / (sum w)^2 = sigma^2 * 1.5 / 2048 on average
    (-51.4 dB for sigma = 0.1); the estimate's empty bins sit at the -120 dB floor, so each of
    the ~47 % of bins well above the cutoff differs by about 68 dB (with the exponential spread of
    a periodogram, in dB its mean is 2.5 dB lower). LSD >= sqrt(0.47) * (68 - 2.5 - 5) ~ 41 dB.
    """
    rate = 16000
    x = 0.1 * rng.standard_normal((1, 2 * rate))
    spec = np.fft.rfft(x, axis=-1)
    spec[:, int(spec.shape[1] / 2):] = 0
    y = np.fft.irfft(spec, x.shape[1], axis=-1)
    level_db = 10 * np.log10(0.01 * 1.5 / 2048)
    gap_db = level_db - 10 * np.log10(LSD_POWER_FLOOR)
    bound = np.sqrt(0.47) * (gap_db - 2.5 - 5)
    value = lsd(y.astype(np.float32), rate, reference=x.astype(np.float32))
    assert bound > 40 and value > bound
    assert value < np.sqrt(0.55) * (gap_db + 5)


# --- DNSMOS -------------------------------------------------------------------------------------

def test_dnsmos_clean_above_noisy_and_cached(speech, shared_data, monkeypatch):
    from audiomend.io import load

    x, rate = speech
    noise, noise_rate = load(shared_data / "smoke" / "noise" / "smoke_sc_doing_the_dishes.flac")
    noise = resample(noise, noise_rate, rate)
    noise = np.resize(noise, x.shape)
    y = with_noise(x, noise, 5.0)
    clean, dirty = dnsmos_scores(x, rate), dnsmos_scores(y, rate)
    assert clean["dnsmos_bak"] > dirty["dnsmos_bak"] + 0.5
    assert clean["dnsmos_ovrl"] > dirty["dnsmos_ovrl"]

    calls = []
    model = dnsmos_module._model()

    def counting(*args):
        calls.append(1)
        return model(*args)

    monkeypatch.setattr(dnsmos_module, "_MODEL", counting)
    z = (0.9 * y).astype(np.float32)  # new content: not in the cache
    scores = assess(z, rate, metrics=["dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"])
    assert len(calls) == 1 and all(1.0 <= v <= 5.0 for v in scores.values())


def test_dnsmos_refuses_short_and_silent():
    with pytest.raises(MetricError, match="at least 0.5 s"):
        dnsmos_scores(np.full((1, 4000), 0.1, np.float32), 16000)
    with pytest.raises(MetricError, match="silent"):
        dnsmos_scores(np.zeros((1, 32000), np.float32), 16000)


# --- reference-free levels -------------------------------------------------------------------------

def test_clipped_fraction_of_hard_clipped_speech(speech):
    x, rate = speech
    assert clipped_fraction(x, rate) < 1e-3
    threshold = 0.3 * np.abs(x).max()
    clipped = np.clip(x, -threshold, threshold)
    fraction = float(np.mean(np.abs(x) >= threshold))
    assert 0.005 < fraction < 0.2
    assert clipped_fraction(clipped, rate) == pytest.approx(fraction, rel=0.05)


def test_clipped_fraction_asymmetric():
    x = np.sin(2 * np.pi * np.arange(8000) / 80)
    y = np.clip(x, -0.5, 1.0)  # negative half clipped: |sin| >= 0.5 on 27 of 40 samples
    assert clipped_fraction(y, 8000) == pytest.approx(27 / 80)


def test_peak_rms_dc_known_values():
    t = np.arange(48000) / 48000
    sine = 0.5 * np.sin(2 * np.pi * 1000 * t)
    assert peak_dbfs(sine, 48000) == pytest.approx(-6.02, abs=0.01)
    assert rms_dbfs(sine, 48000) == pytest.approx(-6.02 - 3.01, abs=0.01)
    assert dc_offset(sine + 0.05, 48000) == pytest.approx(0.05, abs=1e-6)
    with pytest.raises(MetricError, match="digital silence"):
        peak_dbfs(np.zeros((1, 100)), 48000)


def test_loudness_of_sines():
    """BS.1770: a full-scale 997 Hz sine in one channel is -3.01 LUFS, so -20 dB of it is -23.01."""
    t = np.arange(3 * 48000) / 48000
    sine = np.sin(2 * np.pi * 997 * t)
    assert loudness_lufs(sine, 48000) == pytest.approx(-3.01, abs=0.1)
    assert loudness_lufs(0.1 * sine, 48000) == pytest.approx(-23.01, abs=0.1)
    stereo = np.stack([0.1 * sine, 0.1 * sine])  # two channels add their power: +3.01 dB
    assert loudness_lufs(stereo, 48000) == pytest.approx(-20.0, abs=0.1)
    with pytest.raises(MetricError, match="0.4 s"):
        loudness_lufs(sine[: 4800], 48000)
    with pytest.raises(MetricError, match="-70 LUFS"):
        loudness_lufs(1e-6 * sine, 48000)


def test_estimated_snr_tracks_added_noise(speech, rng):
    x, rate = speech
    noise = rng.standard_normal(x.shape).astype(np.float32)
    low = estimated_snr_db(with_noise(x, noise, 0.0), rate)
    high = estimated_snr_db(with_noise(x, noise, 20.0), rate)
    assert high > low + 10
    gate = np.repeat([0.0, 1.0, 0.0, 1.0], rate // 2)
    bursts = 0.1 * rng.standard_normal(2 * rate) * gate + 0.00316 * rng.standard_normal(2 * rate)
    assert estimated_snr_db(bursts, rate) == pytest.approx(30.0, abs=1.5)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_bandwidth_of_low_passed_noise(rng, rate):
    x = rng.standard_normal((1, 2 * rate))
    spec = np.fft.rfft(x, axis=-1)
    spec[:, np.fft.rfftfreq(x.shape[1], 1 / rate) > 4000] = 0  # brick-wall low-pass
    y = np.fft.irfft(spec, x.shape[1], axis=-1) + 1e-5 * rng.standard_normal(x.shape)
    assert bandwidth_hz(y, rate) == pytest.approx(4000, abs=150)
    assert bandwidth_hz(x, rate) == rate / 2
    # a 10th-order elliptic low-pass: its slope reaches 60 dB below the peak close to the edge
    z = sosfilt(ellip(10, 0.1, 90, 4000, fs=rate, output="sos"), x)
    assert 4000 < bandwidth_hz(z, rate) < 4800


def test_bandwidth_of_speech_through_8k(speech_48k):
    x, rate = speech_48k
    narrow = resample(resample(x, rate, 8000), 8000, rate)
    assert bandwidth_hz(x, rate) > 15000
    assert bandwidth_hz(narrow, rate) == pytest.approx(4000, abs=300)


# --- errors ---------------------------------------------------------------------------------------

def test_unrelated_signals_raise(speech, shared_data, rng):
    from audiomend.io import load

    x, rate = speech
    other, _ = load(shared_data / "smoke" / "speech" / "sisec_dev1_male4_src1_16k_2.flac")
    other = np.resize(other, x.shape)
    with pytest.raises(MetricError, match="unrelated"):
        si_sdr(other, rate, reference=x)
    a = rng.standard_normal((1, rate)).astype(np.float32)
    b = rng.standard_normal((1, rate)).astype(np.float32)
    with pytest.raises(MetricError, match="unrelated"):
        pesq_wb(a, rate, reference=b)


def test_delayed_pair_is_refused_except_by_pesq(speech):
    x, rate = speech
    pad = np.zeros((1, int(0.2 * rate)), np.float32)
    ref, late = np.concatenate([x, pad], axis=1), np.concatenate([pad, x], axis=1)
    with pytest.raises(MetricError, match=r"\+200 ms late"):
        si_sdr(late, rate, reference=ref)
    assert pesq_wb(late, rate, reference=ref) > 4.0


def test_silence_and_length_errors(speech):
    x, rate = speech
    silent = np.zeros_like(x)
    with pytest.raises(MetricError, match="estimate is silent"):
        pesq_wb(silent, rate, reference=x)
    with pytest.raises(MetricError, match="reference is silent"):
        estoi(x, rate, reference=silent)
    with pytest.raises(MetricError, match="more than 1 %"):
        si_sdr(x[:, : int(0.9 * x.shape[1])], rate, reference=x)
    # a few samples of difference are trimmed
    assert si_sdr(x[:, :-5], rate, reference=x) > 60


def test_check_pairing_false_scores_what_the_guards_refuse(speech, shared_data, monkeypatch):
    """check_pairing=False scores an unrelated pair and a near-silent estimate with exactly the
    values the metrics give with their guard floors at 0, and leaves the guards on afterwards."""
    from audiomend.io import load
    from audiomend.metrics import base

    x, rate = speech
    other, _ = load(shared_data / "smoke" / "speech" / "sisec_dev1_male4_src1_16k_2.flac")
    unrelated = np.resize(other, x.shape)
    quiet = (1e-7 * x).astype(np.float32)  # -140 dB: below the -100 dBFS silence floor
    names = ["pesq_wb", "si_sdr", "lsd", "dnsmos_ovrl"]
    for estimate, why in [(unrelated, "unrelated"), (quiet, "estimate is silent")]:
        with pytest.raises(MetricError, match=why):
            assess(estimate, rate, reference=x, metrics=names)
        scored = assess(estimate, rate, reference=x, metrics=names, check_pairing=False)
        assert np.isfinite(list(scored.values())).all()
        with monkeypatch.context() as floors_off:  # the old way: guard floors set to 0
            floors_off.setattr(base, "MIN_CORRELATION", 0.0)
            floors_off.setattr(base, "SILENCE_RMS", 0.0)
            assert assess(estimate, rate, reference=x, metrics=names) == scored
        assert compute("si_sdr", estimate, rate, reference=x,
                       check_pairing=False) == scored["si_sdr"]
        with pytest.raises(MetricError, match=why):  # nothing leaked
            compute("si_sdr", estimate, rate, reference=x)
    assert scored["si_sdr"] > 60  # the quiet copy is the reference scaled: SI-SDR ignores gain


def test_pesq_no_utterance_is_metric_error(rng):
    rate = 16000
    x = np.zeros((1, rate), np.float32)
    x[:, -1000:] = 0.1 * rng.standard_normal(1000)  # 62 ms of noise at the very end
    with pytest.raises(MetricError, match="no speech"):
        pesq_wb(x, rate, reference=x)
