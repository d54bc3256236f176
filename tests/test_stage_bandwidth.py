"""Bandwidth estimation and band replication, on real speech band-limited inline."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest
from scipy import signal

from audiomend.dsp import resample
from audiomend.errors import BadAudioError, BadOptionError
from audiomend.stages import STAGES, Stage
from audiomend.stages.bandwidth import Bandwidth, BandwidthEstimate, bandwidth, estimate_bandwidth
from audiomend.stream import run_blocks, split_blocks


def lsd_db(ref: np.ndarray, est: np.ndarray, rate: int) -> float:
    """The bench's log-spectral distance (2048-point frames, -120 dB floor), dB."""
    from audiomend.metrics.spectral import lsd

    return lsd(est, rate, reference=ref)


def si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64).ravel(), est.astype(np.float64).ravel()
    target = ref * (est @ ref) / (ref @ ref)
    return float(10 * np.log10(np.sum(target ** 2) / max(np.sum((est - target) ** 2), 1e-30)))


def lowpass(x: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    sos = signal.butter(10, cutoff_hz, fs=rate, output="sos")
    return signal.sosfilt(sos, x, axis=-1).astype(np.float32)


def via_rate(x: np.ndarray, rate: int, via_hz: int) -> np.ndarray:
    return resample(resample(x, rate, via_hz), via_hz, rate)


def test_estimate_finds_lowpass_and_resampling_edges(speech_16k, speech_48k):
    x16, r16 = speech_16k
    x48, r48 = speech_48k
    cases = [(lowpass(x16, r16, cut), r16, cut) for cut in (3400.0, 4000.0, 5500.0)]
    cases += [(via_rate(x16, r16, 8000), r16, 4000.0), (via_rate(x48, r48, 8000), r48, 4000.0),
              (via_rate(x48, r48, 16000), r48, 8000.0)]
    for audio, rate, cutoff in cases:
        est = estimate_bandwidth(audio, rate)
        assert isinstance(est, BandwidthEstimate)
        # The estimate is where the content stops: a little under a resampler's old Nyquist
        # (soxr's passband ends at ~0.95 of it), and up to ~15 % over a 10th-order low-pass's
        # -3 dB point where the speech spectrum rises into it.
        assert 0.9 * cutoff < est.cutoff_hz < 1.2 * cutoff, (rate, cutoff, est.cutoff_hz)
        assert est.confidence > 0.5


def test_estimate_ignores_a_formant_valley_below_the_edge(speech_48k):
    clean, rate = speech_48k
    # 48 kHz speech through 16 kHz: the edge is near 8 kHz even where the speech spectrum dips
    # by 10 dB around 5 kHz (the first-fall rule read 5.2 kHz on a smoke clip).
    notch = signal.butter(2, [4500.0, 5500.0], btype="bandstop", fs=rate, output="sos")
    dipped = signal.sosfilt(notch, via_rate(clean, rate, 16000), axis=-1).astype(np.float32)
    assert 7200.0 < estimate_bandwidth(dipped, rate).cutoff_hz < 8400.0


def test_estimate_full_band_on_clean_speech(shared_data):
    from audiomend.io import load

    for path in sorted((shared_data / "smoke" / "speech").glob("*_48k_*.flac")):
        audio, rate = load(path)                         # full band at 16 kHz
        est = estimate_bandwidth(resample(audio, rate, 16000), 16000)
        assert est.cutoff_hz == 8000.0 and est.confidence == 0.0, path.name
    for path in sorted((shared_data / "smoke" / "speech").glob("*_16k_*.flac")):
        audio, rate = load(path)   # these recordings roll off from ~6.5 kHz (40 dB down by 7.5 kHz)
        assert estimate_bandwidth(audio, rate).cutoff_hz > 6000.0, path.name
    for path in sorted((shared_data / "smoke" / "speech").glob("*_48k_*.flac")):
        audio, rate = load(path)   # these recordings stop near 20 kHz: wide, if not full, band
        assert estimate_bandwidth(audio, rate).cutoff_hz > 16000.0, path.name
    silence = np.zeros((2, 16000), np.float32)
    assert estimate_bandwidth(silence, 16000) == BandwidthEstimate(8000.0, 0.0)


def test_extension_lowers_lsd_at_16k_and_keeps_pesq(speech_16k):
    pesq = pytest.importorskip("pesq")
    clean, rate = speech_16k
    for cut in (3400.0, 5500.0):
        limited = lowpass(clean, rate, cut)
        cutoff = estimate_bandwidth(limited, rate).cutoff_hz
        wide = bandwidth(limited, rate, cutoff_hz=cutoff)
        # a small LSD gain at a low edge: the fill stays 6 dB lower there, for PESQ's sake
        assert lsd_db(clean, wide, rate) < lsd_db(clean, limited, rate) - 0.03
        before = pesq.pesq(rate, clean[0], limited[0], "wb")
        after = pesq.pesq(rate, clean[0], wide[0], "wb")
        assert after >= before - 0.01, cut


@pytest.mark.parametrize("via_hz", [8000, 16000])
def test_restore_chain_on_band_limited_48k_speech(speech_48k, via_hz):
    """The automatic chain on 48 kHz speech that went through a lower rate: it finds the band
    limit, extends the band (LSD down), and PESQ, SI-SDR do not drop. Loudness is skipped: LSD
    is not level-invariant and the clip sits below the loudness target."""
    pesq = pytest.importorskip("pesq")
    from audiomend.pipeline import RestoreOptions, restore

    clean, rate = speech_48k
    limited = via_rate(clean, rate, via_hz)
    out, out_rate = restore(limited, rate, RestoreOptions(skip=("loudness",)))
    assert out_rate == rate and out.shape == limited.shape
    assert lsd_db(clean, out, rate) < lsd_db(clean, limited, rate) - 1.0
    assert si_sdr_db(clean, out) > si_sdr_db(clean, limited) - 0.1

    def pesq16(x: np.ndarray) -> float:
        return pesq.pesq(16000, resample(clean, rate, 16000)[0], resample(x, rate, 16000)[0], "wb")

    assert pesq16(out) >= pesq16(limited) - 0.01


@pytest.mark.parametrize("via_hz", [16000, 32000])
def test_extension_lowers_lsd_at_48k(speech_48k, via_hz):
    clean, rate = speech_48k
    limited = via_rate(clean, rate, via_hz)
    wide = bandwidth(limited, rate, cutoff_hz=via_hz / 2)
    assert lsd_db(clean, wide, rate) < lsd_db(clean, limited, rate) - 0.05


def test_band_below_cutoff_is_untouched(speech_16k):
    clean, rate = speech_16k
    limited = lowpass(clean, rate, 4000.0)
    added = bandwidth(limited, rate, cutoff_hz=4000.0) - limited
    spec = np.abs(np.fft.rfft(added[0])) ** 2
    freqs = np.fft.rfftfreq(added.shape[1], 1 / rate)
    assert spec[freqs < 3500].sum() < 1e-3 * spec.sum()
    assert spec[freqs > 4500].sum() > 0.9 * spec.sum()


def test_full_band_audio_left_alone(speech_48k):
    clean, rate = speech_48k
    np.testing.assert_array_equal(bandwidth(clean, rate, cutoff_hz=rate / 2), clean)
    np.testing.assert_array_equal(bandwidth(clean, rate, strength=0.0), clean)
    # a cutoff that is wrong for full-band audio only tops up what lacks energy: nearly unchanged
    assert si_sdr_db(clean, bandwidth(clean, rate, cutoff_hz=8000.0)) > 30.0


def test_streamed_equals_whole_stereo(speech_16k, rng):
    clean, rate = speech_16k
    stereo = lowpass(np.concatenate([clean, 0.5 * clean[:, ::-1]]), rate, 4000.0)
    whole = bandwidth(stereo, rate, cutoff_hz=4000.0)
    for _ in range(3):
        sizes = rng.integers(1, 5000, size=5)
        streamed = run_blocks(Bandwidth(cutoff_hz=4000.0).processor(rate, 2),
                              split_blocks(stereo, sizes))
        np.testing.assert_allclose(streamed, whole, atol=1e-5)
    # identical channels stay identical: the image does not move
    same = np.concatenate([stereo[:1], stereo[:1]])
    out = bandwidth(same, rate, cutoff_hz=4000.0)
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_rates_and_edge_inputs(rate, rng):
    noise = lowpass(0.1 * rng.standard_normal((1, rate // 2)), rate, rate / 8)
    out = bandwidth(noise, rate, cutoff_hz=rate / 8)
    assert out.shape == noise.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.std(out - noise) > 0
    for n in (0, 1):
        assert bandwidth(np.zeros((2, n), np.float32), rate, cutoff_hz=rate / 8).shape == (2, n)
    silence = np.zeros((1, rate // 3), np.float32)
    np.testing.assert_array_equal(bandwidth(silence, rate, cutoff_hz=rate / 8), silence)
    assert estimate_bandwidth(np.zeros((1, 1), np.float32), rate).cutoff_hz == rate / 2


def test_stage_contract():
    assert STAGES["bandwidth"] is Bandwidth
    defaults = {p.name: p.default for p in inspect.signature(bandwidth).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert defaults == {f.name: f.default for f in dataclasses.fields(Bandwidth)}
    stage = Bandwidth(cutoff_hz=5500.0, strength=0.5)
    assert Stage.from_dict(json.loads(json.dumps(stage.to_dict()))) == stage


def test_fill_level_scales_the_added_band(speech_16k):
    """Known answer: where the band is empty (deficit 1) the fill's power follows its level, so
    -36 dB adds 6 dB less than -30 dB; the default follows the edge (-36 dB at 3.4 kHz)."""
    clean, rate = speech_16k
    limited = lowpass(clean, rate, 3400.0)
    cutoff = estimate_bandwidth(limited, rate).cutoff_hz

    def added_db(**kw) -> float:
        added = bandwidth(limited, rate, cutoff_hz=cutoff, **kw) - limited
        high = signal.sosfilt(signal.butter(8, 4500.0, "high", fs=rate, output="sos"), added)
        return 10 * np.log10(np.mean(high ** 2))

    assert added_db(fill_gain_db=-30.0) - added_db(fill_gain_db=-36.0) == pytest.approx(6.0, abs=0.3)
    assert added_db() == pytest.approx(added_db(fill_gain_db=-36.0), abs=1e-6)


def test_bad_options():
    with pytest.raises(BadOptionError, match="cutoff_hz"):
        Bandwidth(cutoff_hz=0.0)
    with pytest.raises(BadOptionError, match="fill_gain_db"):
        Bandwidth(cutoff_hz=4000.0, fill_gain_db=6.0)
    with pytest.raises(BadOptionError, match="strength"):
        bandwidth(np.zeros((1, 10), np.float32), 16000, strength=-1.0)
    with pytest.raises(BadAudioError):
        estimate_bandwidth(np.zeros((10, 1, 1), np.float32), 16000)
