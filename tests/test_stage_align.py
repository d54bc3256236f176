"""Align stage, GCC-PHAT delay estimate and the ``audiomend align`` verb, on real speech."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from audiomend.cli import main
from audiomend.dsp import fractional_delay, resample
from audiomend.errors import BadAudioError, BadOptionError
from audiomend.stages.align import Align, align, estimate_delay
from audiomend.stream import run_blocks, split_blocks


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64), est.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum((est - ref) ** 2), 1e-30)))


def noisy(x: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    sigma = np.sqrt(np.mean(x.astype(np.float64) ** 2)) * 10 ** (-snr / 20)
    return (x + sigma * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.fixture(params=["16k", "48k"])
def speech(request):
    return request.getfixturevalue(f"speech_{request.param}")


@pytest.mark.parametrize("delay", [0, 1, 37, -250, 2000])
def test_integer_delay_found_exactly_with_noise(speech, rng, delay):
    x, rate = speech
    other = noisy(fractional_delay(x, delay), 10.0, rng)
    est = estimate_delay(x, other, rate)
    assert round(est) == delay and abs(est - delay) < 0.1, est


@pytest.mark.parametrize("delay", [0.25, 0.5, 3.7, -12.35, 101.9])
def test_fractional_delay_within_a_tenth_of_a_sample(speech, rng, delay):
    x, rate = speech
    other = noisy(fractional_delay(x, delay), 10.0, rng)
    est = estimate_delay(x, other, rate)
    assert abs(est - delay) < 0.1, est


def test_delay_found_between_two_independent_noisy_takes(speech, rng):
    x, rate = speech
    ref = noisy(x, 5.0, rng)
    take = noisy(fractional_delay(0.3 * x, 64.6), 5.0, rng)
    assert abs(estimate_delay(ref, take, rate) - 64.6) < 0.1


@pytest.mark.parametrize("delay", [37.0, -12.35, 101.9])
def test_stage_output_is_aligned_to_reference(speech, delay):
    x, rate = speech
    take = fractional_delay(x, delay)
    aligned, est = align(x, take, rate)
    assert aligned.shape == take.shape
    margin = 200
    inner = slice(margin, x.shape[1] - margin)
    assert snr_db(x[:, inner], aligned[:, inner]) > 30.0
    # the Align stage with the estimate is what align() returns
    np.testing.assert_array_equal(Align(delay_samples=est)(take, rate), aligned)


def test_integer_shift_is_exact():
    x = np.arange(1, 11, dtype=np.float32)[np.newaxis]
    np.testing.assert_array_equal(Align(delay_samples=3.0)(x, 8000),
                                  [[4, 5, 6, 7, 8, 9, 10, 0, 0, 0]])
    np.testing.assert_array_equal(Align(delay_samples=-2.0)(x, 8000),
                                  [[0, 0, 1, 2, 3, 4, 5, 6, 7, 8]])


def test_stereo_shares_the_estimate(speech):
    x, rate = speech
    stereo = np.concatenate([x, -0.5 * x], axis=0)
    stereo[1] += 0.01
    late = fractional_delay(stereo, 20.0)
    out, est = align(stereo, late, rate)
    assert est == 20.0
    np.testing.assert_allclose(out[:, :-20], stereo[:, :-20], atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
@pytest.mark.parametrize("delay", [0.0, 5.0, -7.0, 2.6, -13.4])
def test_streamed_equals_whole_any_rate_and_blocks(rng, rate, delay):
    x = rng.standard_normal((2, rate // 2 + 11)).astype(np.float32)
    stage = Align(delay_samples=delay)
    whole = stage(x, rate)
    sizes = rng.integers(1, 4000, size=9).tolist()
    np.testing.assert_allclose(run_blocks(stage.processor(rate, 2), split_blocks(x, sizes)),
                               whole, atol=1e-5)
    for n in (0, 1):
        y = stage(np.zeros((2, n), np.float32), rate)
        assert y.shape == (2, n)


def test_bad_inputs_raise_clear_errors(speech):
    x, rate = speech
    with pytest.raises(BadAudioError, match="silent"):
        estimate_delay(x, np.zeros_like(x), rate)
    with pytest.raises(BadAudioError, match="empty"):
        estimate_delay(x, np.zeros((1, 0), np.float32), rate)
    with pytest.raises(BadOptionError, match="max_delay_s"):
        estimate_delay(x, x, rate, max_delay_s=0.0)
    with pytest.raises(BadOptionError, match="delay_samples"):
        Align(delay_samples=float("nan"))


def test_cli_align_writes_aligned_take(tmp_path, speech, capsys):
    x, rate = speech
    ref, take, out = tmp_path / "ref.wav", tmp_path / "take.wav", tmp_path / "aligned.wav"
    sf.write(ref, x.T, rate, subtype="FLOAT")
    sf.write(take, fractional_delay(x, 42.0).T, rate, subtype="FLOAT")
    assert main(["align", str(ref), str(take), "-o", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["delay_samples"] == 42.0
    assert result["delay_ms"] == pytest.approx(42000.0 / rate, abs=1e-3)
    written, written_rate = sf.read(out, dtype="float32", always_2d=True)
    assert written_rate == rate and written.shape[0] == x.shape[1]
    np.testing.assert_allclose(written.T[:, :-42], x[:, :-42], atol=1e-6)


def test_cli_align_resamples_a_reference_at_another_rate(tmp_path, speech_16k, capsys):
    x, rate = speech_16k
    ref, take, out = tmp_path / "ref.wav", tmp_path / "take.wav", tmp_path / "aligned.wav"
    sf.write(ref, x.T, rate, subtype="FLOAT")
    take_audio = resample(fractional_delay(x, 10.0), rate, 48000)  # 30 samples at 48 kHz
    sf.write(take, take_audio.T, 48000, subtype="FLOAT")
    assert main(["align", str(ref), str(take), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "resampling the reference to 48000 Hz" in captured.err
    assert "+30.000 samples" in captured.out
    info = sf.info(out)
    assert info.samplerate == 48000 and info.frames == take_audio.shape[1]


def test_cli_align_missing_file_is_one_line_error(tmp_path, capsys):
    assert main(["align", str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


# --- long inputs: segmented estimate, files read by seeking, streamed output -----------------

def speech_loop(shared_data, rate: int) -> np.ndarray:
    """The smoke speech clips at ``rate`` concatenated (mono float64): one period of a long signal."""
    tag = "48k" if rate == 48000 else "16k"
    return np.concatenate([sf.read(p, dtype="float64")[0]
                           for p in sorted((shared_data / "smoke" / "speech").glob(f"*{tag}*.flac"))])


def write_looped(path, loop: np.ndarray, rate: int, seconds: float, delay: float, seed: int) -> None:
    """Write ``seconds`` of the looped speech delayed by ``delay`` samples (exact for a periodic
    signal: FFT phase ramp over one period) plus white noise 20 dB down, 16-bit, in blocks."""
    period = loop.size
    ramp = np.exp(-2j * np.pi * np.fft.rfftfreq(period) * delay)
    shifted = np.fft.irfft(np.fft.rfft(loop) * ramp, period)
    noise_rng = np.random.default_rng(seed)
    sigma = 0.1 * np.sqrt(np.mean(loop ** 2))
    total, block = int(seconds * rate), 30 * rate
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for start in range(0, total, block):
            s = shifted[np.arange(start, min(start + block, total)) % period]
            f.write(0.5 * (s + sigma * noise_rng.standard_normal(s.size)))


@pytest.mark.parametrize("delay", [0.0, 37.0, -250.0, 3.7, -12.35, 101.9])
def test_segmented_estimate_on_real_speech(speech, rng, monkeypatch, delay):
    """Windows of 0.5 s force the segmented path on the short clips: the same accuracy."""
    import audiomend.stages.align as align_module

    monkeypatch.setattr(align_module, "WHOLE_MAX_S", 0.0)
    monkeypatch.setattr(align_module, "SEGMENT_S", 0.5)
    x, rate = speech
    other = noisy(fractional_delay(x, delay), 10.0, rng)
    assert abs(estimate_delay(x, other, rate) - delay) < 0.1


@pytest.mark.parametrize("seekable", [True, False])
def test_file_estimate_matches_array_estimate(tmp_path, shared_data, monkeypatch, seekable):
    import audiomend.stages.align as align_module
    from audiomend.io import load
    from audiomend.stages.align import estimate_delay_files

    loop = speech_loop(shared_data, 16000)
    write_looped(tmp_path / "ref.wav", loop, 16000, 40.0, 0.0, seed=1)  # > WHOLE_MAX_S: segmented
    write_looped(tmp_path / "take.wav", loop, 16000, 40.0, -321.3, seed=2)
    if not seekable:  # the streamed fallback (formats that cannot seek) cuts the same windows
        monkeypatch.setattr(align_module, "_seekable", lambda path: False)
    delay, rate = estimate_delay_files(tmp_path / "ref.wav", tmp_path / "take.wav")
    ref, take = load(tmp_path / "ref.wav")[0], load(tmp_path / "take.wav")[0]
    assert rate == 16000 and abs(delay - -321.3) < 0.1
    assert delay == pytest.approx(estimate_delay(ref, take, rate), abs=1e-6)


def test_ten_minute_file_aligned_with_bounded_memory(tmp_path, shared_data, capsys):
    """10 min at 48 kHz (looped real speech, independent noise in each file): the delay is found
    to a tenth of a sample, the estimate allocates a few tens of MB (the file is 55 MB of
    samples as float32; the old whole-file correlation allocated over 1 GB), and the aligned
    take written by streaming matches the clean speech."""
    import tracemalloc

    from audiomend.stages.align import estimate_delay_files

    rate, seconds, delay = 48000, 600.0, 1234.4
    loop = speech_loop(shared_data, rate)
    ref, take, out = tmp_path / "ref.wav", tmp_path / "take.wav", tmp_path / "aligned.wav"
    write_looped(ref, loop, rate, seconds, 0.0, seed=1)
    write_looped(take, loop, rate, seconds, delay, seed=2)
    tracemalloc.start()
    try:
        found, _ = estimate_delay_files(ref, take)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(found - delay) < 0.1
    assert peak < 40e6, f"estimate allocated {peak / 1e6:.0f} MB"
    assert main(["align", str(ref), str(take), "-o", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert abs(result["delay_samples"] - delay) < 0.1
    with sf.SoundFile(out) as f:
        assert f.frames == int(seconds * rate) and f.samplerate == rate
        start = int(400.0 * rate)
        f.seek(start)
        got = f.read(5 * rate, dtype="float64")
    clean = 0.5 * loop[np.arange(start, start + 5 * rate) % loop.size]
    assert snr_db(clean, got) > 17.0  # the 20 dB noise, nothing from a misalignment
