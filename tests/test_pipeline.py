"""plan() as a pure function; restore()/restore_file(): clean input, streaming, stereo, rates, atomicity."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiomend.diagnose import (
    BandwidthFinding,
    ClickFinding,
    ClippingFinding,
    DcFinding,
    Diagnosis,
    HumFinding,
    LevelFinding,
    NoiseFinding,
    ReverbFinding,
)
from audiomend.errors import BadAudioError, BadOptionError
from audiomend.io import load
from audiomend.pipeline import (
    REPAIR_ORDER,
    REVERB_LIMIT_DB,
    RestoreChain,
    RestoreOptions,
    plan,
    restore,
    restore_file,
)
from audiomend.stages import STAGES


def need(*names: str) -> None:
    missing = [n for n in names if n not in STAGES]
    if missing:
        pytest.skip(f"stage(s) {', '.join(missing)} not registered yet")


def diag(rate: int = 16000, lufs: float = -17.0, peak: float = -3.0, **findings) -> Diagnosis:
    return Diagnosis(sample_rate=rate, channels=1, duration_s=10.0, loudness_lufs=lufs,
                     peak_dbfs=peak, **findings)


NOISY = NoiseFinding(8.0, 0.9, True, noise_floor_dbfs=-40.0)
HUM = HumFinding(-15.0, 0.9, True, mains_hz=60.0)
CLIP = ClippingFinding(0.01, 0.9, True, level=0.5)
REVERB = ReverbFinding(0.9, 0.8, True, drr_db=0.0)
BANDLIMIT = BandwidthFinding(4000.0, 0.9, True)
CLICKS = ClickFinding(3.0, 0.9, True)

PLAN_TABLE = [
    ("clean", {}, []),
    ("noise", {"noise": NOISY}, ["denoise"]),
    ("hum", {"hum": HUM}, ["dehum"]),
    ("dc", {"dc": DcFinding(0.02, 1.0, True)}, ["dehum"]),
    # declipped peaks rise above the clipping level: the limiter (0 dB gain) keeps them in range
    ("clip", {"clipping": CLIP}, ["declip", "loudness"]),
    # a sensible level off the -16 LUFS default is the producer's choice ...
    ("clean at -26 LUFS", {"lufs": -26.0}, []),
    # a long room: WPE, then the network (which also removes late reverberation) ...
    ("reverb", {"reverb": REVERB}, ["dereverb", "denoise"]),
    # ... a short one: the network alone
    ("short reverb", {"reverb": ReverbFinding(0.5, 0.8, True)}, ["denoise"]),
    ("bandlimit", {"bandwidth": BANDLIMIT}, ["bandwidth"]),
    ("clicks", {"clicks": CLICKS}, ["declick"]),
    ("quiet", {"lufs": -50.0, "level": LevelFinding(-50.0, 1.0, True)}, ["loudness"]),
    ("combo", {"noise": NOISY, "reverb": REVERB, "clipping": CLIP, "hum": HUM,
               "bandwidth": BANDLIMIT},
     ["dehum", "declip", "dereverb", "denoise", "bandwidth", "loudness"]),
    ("absent findings are ignored", {"noise": NoiseFinding(28.0, 0.9, False),
                                     "reverb": ReverbFinding(0.3, 0.9, False)}, []),
]


@pytest.mark.parametrize(("label", "findings", "expected"), PLAN_TABLE, ids=[r[0] for r in PLAN_TABLE])
def test_plan_table(label, findings, expected):
    need(*expected)
    assert [s.name for s in plan(diag(**findings))] == expected


def test_plan_is_pure_and_serialisable():
    need("denoise", "dereverb")
    d = diag(noise=NOISY, reverb=REVERB)
    a, b = plan(d), plan(d)
    assert a == b
    json.dumps([s.to_dict() for s in a])


def test_plan_overrides():
    need("denoise", "dereverb")
    clean = diag()
    assert [s.name for s in plan(clean, stages=["denoise"])] == ["denoise"]
    # forced stages keep repair order, whatever order they are given in
    assert [s.name for s in plan(clean, stages=["denoise", "dereverb"])] == ["dereverb", "denoise"]
    assert plan(diag(noise=NOISY), skip=["denoise"]) == []
    assert plan(diag(noise=NOISY), strength=0.0) == []
    with pytest.raises(BadOptionError, match="unknown stage 'foo'.*valid stages: dehum"):
        plan(clean, stages=["foo"])
    with pytest.raises(BadOptionError, match="strength"):
        plan(clean, strength=1.5)


def test_plan_strength_follows_severity_and_user_strength():
    need("denoise")
    heavy = plan(diag(noise=NoiseFinding(3.0, 0.9, True)), denoiser="classical")[0]
    mild = plan(diag(noise=NoiseFinding(20.0, 0.9, True)), denoiser="classical")[0]
    unsure = plan(diag(noise=NoiseFinding(3.0, 0.2, True)), denoiser="classical")[0]
    assert heavy.strength > mild.strength > 0
    assert unsure.strength < heavy.strength
    half = plan(diag(noise=NoiseFinding(3.0, 0.9, True)), strength=0.5, denoiser="classical")[0]
    assert half.strength == pytest.approx(0.5 * heavy.strength, abs=1e-3)
    # the network adapts to the SNR itself: it gets the user's strength, not the severity
    assert plan(diag(noise=NoiseFinding(20.0, 0.9, True)))[0].strength == 1.0
    assert plan(diag(noise=NOISY), strength=0.6)[0].strength == pytest.approx(0.6)
    # ... and so do the peer networks
    light = diag(noise=NoiseFinding(20.0, 0.9, True))
    assert plan(light, denoiser="deepfilternet3")[0].strength == 1.0
    assert plan(light, denoiser="classical")[0].strength < 0.5
    assert plan(diag(noise=NOISY), denoiser="classical")[0].backend == "classical"


def test_plan_networks_cut_light_noise_less_deeply():
    need("denoise")

    def limit(snr_db: float, denoiser: str = "neural", **findings) -> float:
        (stage,) = [s for s in plan(diag(noise=NoiseFinding(snr_db, 0.9, True), **findings),
                                    denoiser=denoiser) if s.name == "denoise"]
        return stage.attenuation_limit_db

    # full depth (40 dB) up to 21 dB SNR, 12 dB from 25 dB, linear in between (23 dB: half way)
    assert limit(8.0) == limit(21.0) == 40.0
    assert limit(23.0) == pytest.approx(26.0)
    assert limit(25.0) == limit(40.0) == 12.0
    assert limit(24.0, denoiser="rnnoise") == pytest.approx(19.0)
    # reverberation with noise: full depth whatever the SNR ...
    assert limit(24.0, reverb=REVERB) == 40.0
    # ... reverberation alone: shallower, 12 dB for rooms reading up to 0.8 s, 20 dB from
    # 1.0 s, linear in between (0.9 s: half way); and only for our network (the peers are not
    # planned for reverberation alone)
    def reverb_limit(rt60_s: float) -> float:
        (stage,) = [s for s in plan(diag(reverb=ReverbFinding(rt60_s, 0.9, True)))
                    if s.name == "denoise"]
        return stage.attenuation_limit_db

    assert reverb_limit(0.6) == reverb_limit(0.8) == REVERB_LIMIT_DB[0] == 12.0
    assert reverb_limit(0.9) == pytest.approx(16.0)
    assert reverb_limit(1.0) == reverb_limit(2.5) == REVERB_LIMIT_DB[1] == 20.0
    assert not [s for s in plan(diag(reverb=REVERB), denoiser="rnnoise") if s.name == "denoise"]
    # the classical denoiser's depth already follows the SNR through its strength
    assert limit(24.0, denoiser="classical") == 30.0


def test_plan_fills_a_low_band_edge_less_in_clean_recordings():
    need("bandwidth")

    def fill_db(cutoff_hz: float, snr_db: float) -> float:
        noise = NoiseFinding(snr_db, 0.9, snr_db < 25.0)
        (stage,) = plan(diag(bandwidth=BandwidthFinding(cutoff_hz, 0.9, True), noise=noise),
                        stages=["bandwidth"])
        return stage.fill_gain_db

    # clean (estimated SNR >= 35 dB): 6 dB less fill at edges up to 4 kHz, none from 5 kHz
    assert fill_db(3400.0, 45.0) == fill_db(4000.0, 35.0) == -36.0
    assert fill_db(4500.0, 45.0) == pytest.approx(-33.0)
    assert fill_db(5000.0, 45.0) == fill_db(6500.0, 60.0) == -30.0
    # a noise floor, found or not: the flat level
    assert fill_db(3400.0, 30.0) == fill_db(3400.0, 12.0) == -30.0


def test_plan_parameters_come_from_the_diagnosis():
    need("dehum", "declip", "loudness")
    quiet = LevelFinding(-40.0, 1.0, True)
    stages = {s.name: s for s in plan(diag(lufs=-40.0, peak=-30.0, level=quiet, hum=HUM,
                                           clipping=CLIP))}
    assert stages["dehum"].mains_hz == 60.0
    assert stages["declip"].level == 0.5
    assert stages["loudness"].gain_db == pytest.approx(24.0)
    # with a target named: within 3 LU of it, the level is left alone ...
    assert plan(diag(lufs=-18.0), target_lufs=-16.0) == []
    assert [s.gain_db for s in plan(diag(lufs=-10.0), target_lufs=-16.0)] == [pytest.approx(-6.0)]
    # ... a sensible level off target: gain only up to the peak headroom (no limiting) ...
    assert [s.gain_db for s in plan(diag(lufs=-26.0, peak=-8.0), target_lufs=-16.0)] == \
        [pytest.approx(6.5)]
    # ... and without a target a sensible level is left alone, also after declipping (where a
    # 0 dB limiter only catches the reconstructed peaks)
    assert plan(diag(lufs=-10.0)) == plan(diag(lufs=-26.0, peak=-8.0)) == []
    assert plan(diag(lufs=-23.0, peak=-10.0, clipping=CLIP))[-1].gain_db == 0.0
    # ... a clearly wrong level: the same cap (limiting costs SI-SDR; see MAX_LIMITING_DB)
    assert [s.gain_db for s in plan(diag(lufs=-45.0, peak=-20.0, level=quiet))] == \
        [pytest.approx(18.5)]
    # a strength of 0.5 moves half way
    assert [s.gain_db for s in plan(diag(lufs=-40.0, peak=-30.0, level=quiet), strength=0.5)] == \
        [pytest.approx(12.0)]


def test_plan_upsampling_extends_the_band_to_the_new_nyquist():
    need("bandwidth")
    (stage,) = plan(diag(rate=16000), sample_rate=48000)
    assert stage.name == "bandwidth" and stage.cutoff_hz <= 8000
    assert plan(diag(rate=48000), sample_rate=16000) == []


def test_options_hash_is_stable_and_ignores_block_size():
    a = RestoreOptions(stages=["denoise"], skip=["dereverb"])
    assert a.stages == ("denoise",)
    assert a.settings_hash() == RestoreOptions(stages=("denoise",), skip=("dereverb",),
                                               block_s=1.0).settings_hash()
    assert a.settings_hash() != RestoreOptions(stages=("denoise",)).settings_hash()
    assert len(a.settings_hash()) == 64
    json.dumps(a.to_dict())


# ---------------------------------------------------------------------------------------------
# Running


def si_sdr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    e, r = estimate.astype(np.float64).ravel(), reference.astype(np.float64).ravel()
    alpha = np.dot(e, r) / np.dot(r, r)
    target = alpha * r
    return float(10 * np.log10(np.sum(target**2) / np.sum((e - target) ** 2)))


def clean_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "eval" / "multi" / "clean" / "clean").glob("*.flac"))[:6]
    return files + sorted((shared_data / "smoke" / "speech").glob("*.flac"))


def at_level(x: np.ndarray, level_dbfs: float = -26.0) -> np.ndarray:
    """Scale so 30 ms frames within 30 dB of the loudest have this RMS (as eval/multi/clean)."""
    frame = 480
    n = x.shape[1] // frame
    e = np.mean(x[:, : n * frame].reshape(-1, n, frame) ** 2, axis=(0, 2))
    active = e[10 * np.log10(e + 1e-20) > 10 * np.log10(e.max() + 1e-20) - 30]
    return (x * 10 ** (level_dbfs / 20) / np.sqrt(active.mean())).astype(np.float32)


def test_clean_speech_is_left_almost_untouched(shared_data):
    """On clean speech the chain must do (almost) nothing: SI-SDR out vs in > 30 dB."""
    for path in clean_files(shared_data):
        x, rate = load(path)
        if "smoke" in path.parts:
            x = at_level(x)  # the smoke clips are quieter than a sensible recording
        y, out_rate = restore(x, rate)
        assert out_rate == rate and y.shape == x.shape
        assert si_sdr_db(y, x) > 30.0, path.name


def test_quiet_speech_is_brought_up_with_little_limiting(shared_data):
    need("loudness")
    from audiomend.diagnose import diagnose

    x, rate = load(shared_data / "smoke" / "speech" / "sisec_dev1_male4_src1_16k_1.flac")
    x = at_level(x, -50.0)
    y, _ = restore(x, rate)
    before, after = diagnose(x, rate), diagnose(y, rate)
    assert before.level.present and not after.level.present
    assert after.loudness_lufs > -24.0
    assert after.peak_dbfs < -0.9
    assert si_sdr_db(y, x) > 12.0   # at most 3 dB of peak limiting


def noisy_speech(shared_data: Path, channels: int = 1) -> tuple[np.ndarray, int]:
    x, rate = load(shared_data / "smoke" / "speech" / "sisec_dev1_male4_src1_16k_2.flac")
    n, _ = load(shared_data / "smoke" / "noise" / "smoke_sc_doing_the_dishes.flac")
    n = np.resize(n, x.shape)
    y = 0.3 * (x / np.abs(x).max()) + 0.05 * n / np.abs(n).max()
    return np.repeat(y, channels, axis=0).astype(np.float32), rate


@pytest.mark.parametrize("block_s", [0.137, 0.9])
def test_streamed_file_equals_whole_array(shared_data, tmp_path, block_s):
    x, rate = noisy_speech(shared_data, channels=2)
    x[1] = np.roll(x[1], 100)
    src = tmp_path / "in.wav"
    sf.write(src, x.T, rate, subtype="FLOAT")
    stages = tuple(n for n in ("dehum", "declip", "denoise", "loudness") if n in STAGES)
    options = RestoreOptions(stages=stages, block_s=block_s, subtype="FLOAT")
    result = restore_file(src, tmp_path / "out.wav", options)
    assert [s["name"] for s in result.stages] == list(stages)
    streamed, _ = load(tmp_path / "out.wav")
    whole, _ = restore(x, rate, RestoreOptions(stages=stages))
    assert streamed.shape == whole.shape == x.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_chain_is_block_size_independent_with_resampling(shared_data, rng):
    x, rate = noisy_speech(shared_data)
    stages = [STAGES[n]() for n in ("denoise", "loudness") if n in STAGES]
    whole = RestoreChain(stages, rate, 22050, 1).run(x)
    chain = RestoreChain(stages, rate, 22050, 1)
    parts, start = [], 0
    while start < x.shape[1]:
        size = int(rng.integers(1, 5000))
        parts.append(chain.process(x[:, start:start + size]))
        start += size
    parts.append(chain.flush())
    streamed = np.concatenate(parts, axis=1)
    assert whole.shape[1] == streamed.shape[1] == round(x.shape[1] * 22050 / rate)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def lag_of(a: np.ndarray, b: np.ndarray, max_lag: int = 400) -> int:
    """The lag (samples) by which ``b`` trails ``a``."""
    lags = np.arange(-max_lag, max_lag + 1)
    scores = [np.dot(a[max_lag:-max_lag], np.roll(b, -k)[max_lag:-max_lag]) for k in lags]
    return int(lags[int(np.argmax(scores))])


def test_stereo_stays_aligned(shared_data):
    x, rate = noisy_speech(shared_data, channels=2)
    forced = RestoreOptions(stages=tuple(n for n in ("denoise", "loudness") if n in STAGES))
    y, _ = restore(x, rate, forced)
    np.testing.assert_array_equal(y[0], y[1])  # identical channels in -> identical out
    x[1] = np.roll(x[0], 37)
    y, _ = restore(x, rate, forced)
    assert lag_of(y[0], y[1]) == 37
    assert lag_of(x[0], y[0]) == 0  # and sample-aligned with the input


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000])
def test_rates_round_trip_with_exact_length(speech_16k, tmp_path, rate):
    from audiomend.dsp import resample

    x, r0 = speech_16k
    x = resample(x[:, : r0 * 2], r0, rate)
    src = tmp_path / f"in_{rate}.wav"
    sf.write(src, x.T, rate, subtype="PCM_24")
    result = restore_file(src, tmp_path / "out.flac", RestoreOptions(block_s=0.5))
    info = sf.info(tmp_path / "out.flac")
    assert (info.samplerate, info.frames, info.subtype) == (rate, x.shape[1], "PCM_24")
    y, _ = load(tmp_path / "out.flac")
    assert lag_of(x[0], y[0], max_lag=50) == 0
    assert result.duration_s == pytest.approx(2.0)


def test_upsampling_gives_exact_length(speech_16k, tmp_path):
    x, rate = speech_16k
    src = tmp_path / "in.wav"
    sf.write(src, x.T, rate)
    result = restore_file(src, tmp_path / "out.wav", RestoreOptions(sample_rate=48000, block_s=0.7))
    info = sf.info(tmp_path / "out.wav")
    assert info.samplerate == 48000 == result.sample_rate
    assert info.frames == 3 * x.shape[1]
    y, _ = load(tmp_path / "out.wav", sample_rate=16000)
    assert lag_of(x[0], y[0], max_lag=50) == 0


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_is_atomic_and_input_unchanged(speech_16k, tmp_path):
    x, rate = speech_16k
    src = tmp_path / "in.wav"
    sf.write(src, x.T, rate)
    before = sha(src)
    restore_file(src, tmp_path / "out.wav", RestoreOptions(block_s=0.3))
    assert sha(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]
    with pytest.raises(BadOptionError, match="refusing to overwrite the input"):
        restore_file(src, src)
    with pytest.raises(BadOptionError, match="refusing to overwrite the input"):
        restore_file(src, tmp_path / "." / "in.wav")
    assert sha(src) == before

    # A failure half-way leaves neither a temporary file nor a truncated output.
    old = sha(tmp_path / "out.wav")

    def boom(done: int, total: int) -> None:
        if done > total * 0.7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_file(src, tmp_path / "out.wav", RestoreOptions(block_s=0.3), progress=boom)
    assert sha(tmp_path / "out.wav") == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_bad_inputs_raise_audiomend_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(BadAudioError, match="empty"):
        restore_file(empty, tmp_path / "out.wav")
    with pytest.raises(BadAudioError, match="no such file"):
        restore_file(tmp_path / "missing.wav", tmp_path / "out.wav")
    with pytest.raises(BadAudioError, match="NaN"):
        restore(np.full((1, 100), np.nan, np.float32), 16000)
    assert not (tmp_path / "out.wav").exists()


def test_progress_reports_both_passes(speech_16k, tmp_path):
    x, rate = speech_16k
    src = tmp_path / "in.wav"
    sf.write(src, x.T, rate)
    calls = []
    restore_file(src, tmp_path / "out.wav", RestoreOptions(block_s=0.5),
                 progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (2 * x.shape[1], 2 * x.shape[1])
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


def test_repair_order_is_the_registry_contract():
    assert REPAIR_ORDER == ("dehum", "declick", "declip", "dereverb", "denoise", "bandwidth",
                            "loudness")


def test_denoiser_choice():
    need("denoise")
    assert plan(diag(noise=NOISY), denoiser="classical")[0].backend == "classical"
    assert plan(diag(noise=NOISY))[0].backend == "neural"  # the network is the default
    with pytest.raises(BadOptionError, match="unknown denoiser 'zz'"):
        plan(diag(), denoiser="zz")


def test_bad_options_fail_before_any_work(speech_16k, tmp_path):
    x, rate = speech_16k
    src = tmp_path / "in.wav"
    sf.write(src, x.T, rate)
    with pytest.raises(BadOptionError, match="unknown denoiser"):
        restore_file(src, tmp_path / "out.wav", RestoreOptions(denoiser="zz"))
    with pytest.raises(BadOptionError, match="cannot write"):
        restore_file(src, tmp_path / "out.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_report_of_silence_shows_a_dash_not_escaped_markup(tmp_path):
    """The report's header table: -inf loudness reads as a dash (not '&amp;ndash;'), paths escaped."""
    from audiomend.io import save

    src = save(tmp_path / "a&b.wav", np.zeros((1, 16000), np.float32), 16000)
    report = tmp_path / "r.html"
    restore_file(src, tmp_path / "out.wav", report_path=report)
    text = report.read_text()
    assert "<th>integrated loudness</th><td>&ndash; LUFS</td>" in text
    assert "&amp;ndash;" not in text and "a&amp;b.wav" in text
