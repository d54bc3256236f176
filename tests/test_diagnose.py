"""diagnose(): loudness exactness, block independence, JSON, detection of each damage on real speech.

Damaged speech is made inline (a small simulator below) from ``shared/data/smoke`` for the
tests, and from ``shared/data/train`` for calibration: ``python tests/test_diagnose.py
--calibrate`` prints the estimator values on clean and damaged train clips (how the thresholds
in :data:`audiomend.diagnose.THRESHOLDS` were chosen) and the detection accuracy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from audiomend.diagnose import DAMAGES, Diagnosis, LoudnessMeter, diagnose, diagnose_file
from audiomend.io import load

# ---------------------------------------------------------------------------------------------
# A small damage simulator (ranges of eval/multi, see shared/data/README.md)


def active_level(x: np.ndarray, rate: int) -> float:
    """RMS over the frames within 30 dB of the loudest ones (a rough active speech level)."""
    frame = int(0.03 * rate)
    n = x.shape[-1] // frame
    e = np.mean(x[..., : n * frame].reshape(-1, n, frame) ** 2, axis=(0, 2))
    db = 10 * np.log10(e + 1e-20)
    active = e[db > np.percentile(db, 95) - 30]
    return float(np.sqrt(active.mean()))


def normalise(x: np.ndarray, rate: int, level_dbfs: float = -26.0) -> np.ndarray:
    return (x * 10 ** (level_dbfs / 20) / active_level(x, rate)).astype(np.float32)


def add_noise(x, rate, noise, snr_db, rng):
    start = int(rng.integers(0, max(noise.shape[1] - x.shape[1], 1)))
    n = np.resize(noise[:, start:], x.shape)
    n = n / (np.sqrt(np.mean(n**2)) + 1e-12)
    return (x + n * active_level(x, rate) * 10 ** (-snr_db / 20)).astype(np.float32)


def reverberate(x, rate, rir):
    rir = rir[0] / np.max(np.abs(rir[0]))
    onset = int(np.argmax(np.abs(rir)))
    rir = rir[onset:]
    y = signal.fftconvolve(x, rir[None], axes=-1)[:, : x.shape[1]]
    return (y * active_level(x, rate) / active_level(y, rate)).astype(np.float32)


def clip(x, rate, below_peak_db):
    level = np.abs(x).max() * 10 ** (-below_peak_db / 20)
    return np.clip(x, -level, level).astype(np.float32)


def bandlimit(x, rate, cutoff_hz):
    sos = signal.butter(10, cutoff_hz, fs=rate, output="sos")
    return signal.sosfilt(sos, x, axis=-1).astype(np.float32)


def gain(x, rate, gain_db, rng):
    y = x * 10 ** (gain_db / 20)
    return (y + 10 ** (-85 / 20) * rng.standard_normal(x.shape)).astype(np.float32)


def hum(x, rate, mains_hz, level_db, rng):
    t = np.arange(x.shape[1]) / rate
    drift = 1 + 0.002 * np.sin(2 * np.pi * 0.1 * t)
    h = sum(np.sin(2 * np.pi * k * mains_hz * np.cumsum(drift) / rate + rng.uniform(0, 6.3)) / k
            for k in range(1, 7))
    h = h / np.sqrt(np.mean(h**2)) * active_level(x, rate) * 10 ** (level_db / 20)
    return (x + h[None]).astype(np.float32)


def add_clicks(x, rate, rate_per_s, amplitude, rng):
    """Poisson clicks: 0.5 ms decaying, sign-alternating bursts, peak ``amplitude`` x 0.5..1."""
    y = x.copy()
    n = int(0.0005 * rate) + 1
    burst = np.exp(-np.arange(n) / (n / 3)) * np.where(np.arange(n) % 2, -1.0, 1.0)
    times = np.flatnonzero(rng.random(x.shape[1] - n) < rate_per_s / rate)
    for t in times:
        y[:, t:t + n] += amplitude * rng.uniform(0.5, 1) * rng.choice([-1, 1]) * burst
    return y.astype(np.float32)


def damage(kind: str, x, rate, rng, noises, rirs):
    """One damaged copy of ``x`` (already at -26 dBFS) and the damage parameters."""
    if kind == "noise":
        snr = float(rng.uniform(-2, 15))
        return add_noise(x, rate, noises[int(rng.integers(len(noises)))], snr, rng), f"snr {snr:.0f} dB"
    if kind == "reverb":
        i = int(rng.integers(len(rirs)))
        return reverberate(x, rate, rirs[i][0]), f"rt60 {rirs[i][1]:.2f} s"
    if kind == "clipping":
        db = float(rng.uniform(4, 14))
        return clip(x, rate, db), f"{db:.0f} dB below peak"
    if kind == "bandwidth":
        fc = float(rng.choice([3400.0, 4000.0, 5500.0]))
        return bandlimit(x, rate, fc), f"low-pass {fc:.0f} Hz"
    if kind == "level":
        db = float(rng.uniform(-35, -20))
        return gain(x, rate, db, rng), f"gain {db:.0f} dB"
    if kind == "hum":
        mains, db = float(rng.choice([50.0, 60.0])), float(rng.uniform(-20, -3))
        return hum(x, rate, mains, db, rng), f"{mains:.0f} Hz at {db:.0f} dB"
    if kind == "clicks":
        per_s, amp = float(rng.uniform(1, 10)), float(rng.uniform(0.05, 0.5))
        return add_clicks(x, rate, per_s, amp, rng), f"{per_s:.0f}/s at {amp:.2f}"
    raise ValueError(kind)


SIMULATED = ("noise", "reverb", "clipping", "bandwidth", "level", "hum", "clicks")

# ---------------------------------------------------------------------------------------------
# Tests


def test_loudness_matches_pyloudnorm_and_is_block_independent(speech_48k, rng):
    import pyloudnorm

    x, rate = speech_48k
    x = np.concatenate([x, 0.5 * x[:, ::-1]])[:, : int(2.5 * rate)]   # stereo, 2.5 s
    expected = pyloudnorm.Meter(rate).integrated_loudness(x.T.astype(np.float64))
    meter = LoudnessMeter(rate, 2)
    start = 0
    while start < x.shape[1]:
        size = int(rng.integers(1, 20000))
        meter.add(x[:, start:start + size])
        start += size
    assert meter.integrated_lufs() == pytest.approx(expected, abs=0.01)


def test_known_tone_loudness():
    # A 997 Hz sine at 0 dBFS in one channel reads -3.01 LUFS (BS.1770-4, table 1 footnote).
    t = np.arange(48000 * 5) / 48000
    tone = np.sin(2 * np.pi * 997 * t).astype(np.float32)[None]
    meter = LoudnessMeter(48000, 1)
    meter.add(tone)
    assert meter.integrated_lufs() == pytest.approx(-3.01, abs=0.05)


def test_diagnosis_does_not_depend_on_block_size(speech_16k, tmp_path):
    import soundfile as sf

    x, rate = speech_16k
    x = np.tile(x, (1, 6))  # ~13 s: two analysis windows
    sf.write(tmp_path / "x.wav", x.T, rate, subtype="FLOAT")
    a = diagnose(x, rate)
    b = diagnose_file(tmp_path / "x.wav", block_s=0.77)
    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    assert fa.keys() == fb.keys()
    for key in fa:
        assert fa[key] == (pytest.approx(fb[key], rel=1e-4, abs=1e-6)
                           if isinstance(fa[key], float) else fb[key]), key
    assert a.duration_s == pytest.approx(x.shape[1] / rate)


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def test_diagnosis_json_round_trip(speech_16k):
    d = diagnose(*speech_16k)
    text = json.dumps(d.to_dict())
    back = Diagnosis.from_dict(json.loads(text))
    assert json.dumps(back.to_dict()) == text
    assert set(DAMAGES) <= set(d.to_dict())


def test_levels_are_exact(speech_16k):
    x, rate = speech_16k
    y = (0.5 * x / np.abs(x).max() + 0.01).astype(np.float32)
    d = diagnose(y, rate)
    assert d.peak_dbfs == pytest.approx(20 * np.log10(np.abs(y).max()), abs=1e-4)
    assert d.dc_offset == pytest.approx(float(y.mean()), abs=1e-4)
    assert d.dc.present


def test_silence_and_bad_input():
    from audiomend.errors import BadAudioError

    d = diagnose(np.zeros((1, 16000), np.float32), 16000)
    assert d.damages == [] and d.loudness_lufs == float("-inf")
    json.dumps(d.to_dict())
    with pytest.raises(BadAudioError, match="NaN"):
        diagnose(np.array([[0.0, np.nan]], np.float32), 16000)


@pytest.fixture(scope="module")
def smoke_material(shared_data):
    speech = []
    for p in sorted((shared_data / "smoke" / "speech").glob("*16k*.flac")):
        x, rate = load(p)
        speech.append(normalise(x, rate))
    # ~7 s of speech: the three 16 kHz clips end to end
    x = np.concatenate(speech, axis=1)
    noises = [load(p, sample_rate=16000)[0] for p in sorted((shared_data / "smoke" / "noise").glob("*.flac"))]
    rirs = [(load(p, sample_rate=16000)[0], rt) for p, rt in
            zip(sorted((shared_data / "smoke" / "rir").glob("*.flac")), (0.45, 2.5))]
    return x, 16000, noises, rirs


def test_clean_speech_has_no_damage(smoke_material):
    x, rate, _, _ = smoke_material
    assert diagnose(x, rate).damages == []


@pytest.mark.parametrize("kind", SIMULATED)
def test_each_damage_is_detected(smoke_material, kind):
    x, rate, noises, rirs = smoke_material
    rng = np.random.default_rng(7)
    hits = []
    for _ in range(2):
        y, what = damage(kind, x, rate, rng, noises, rirs)
        d = diagnose(y, rate)
        hits.append((getattr(d, kind).present, what, getattr(d, kind).value))
    assert all(h[0] for h in hits), hits


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise of unit RMS, shape (1, n)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return (x / np.std(x))[None]


def add_pink(x, rate, snr_db, rng):
    return (x + pink_noise(x.shape[1], rng) * active_level(x, rate) * 10 ** (-snr_db / 20)).astype(np.float32)


@pytest.mark.parametrize("snr_db", [0.0, 5.0, 12.0])
def test_noisy_dry_speech_is_not_called_reverberant(smoke_material, snr_db):
    # Noise makes slow "decays" of its own; the blind RT60 alone used to read noisy dry speech
    # as reverberant (dev corpus: 8 of 10 noisy files). Real noises from smoke/ and pink noise.
    x, rate, noises, _ = smoke_material
    rng = np.random.default_rng(3)
    for noisy in [add_noise(x, rate, n, snr_db, rng) for n in noises] + [add_pink(x, rate, snr_db, rng)]:
        d = diagnose(noisy, rate)
        assert d.noise.present, (snr_db, d.noise)
        assert not d.reverb.present, (snr_db, d.reverb, d.noise)


def test_reverberant_noisy_speech_is_still_reverberant(smoke_material):
    # The 2.5 s room under each smoke noise and pink noise at 20 dB SNR. (At 10 dB, 2 of these
    # 4 are missed: the noise then hides the tails, see benchmarks/diagnose_accuracy.md.)
    x, rate, noises, rirs = smoke_material
    rng = np.random.default_rng(5)
    wet = reverberate(x, rate, rirs[1][0])
    for noisy in [add_noise(wet, rate, n, 20.0, rng) for n in noises] + [add_pink(wet, rate, 20.0, rng)]:
        d = diagnose(noisy, rate)
        assert d.reverb.present and d.noise.present, (d.reverb, d.noise)


@pytest.mark.parametrize(("mains_hz", "level_db"), [(50.0, -5.0), (60.0, -12.0), (50.0, -18.0)])
def test_hum_only_speech_is_not_called_noisy(smoke_material, mains_hz, level_db):
    # Steady hum used to lift the noise floor estimate: every hum-only dev file read noisy.
    x, rate, _, _ = smoke_material
    d = diagnose(hum(x, rate, mains_hz, level_db, np.random.default_rng(2)), rate)
    assert d.hum.present and d.hum.mains_hz == mains_hz, d.hum
    assert not d.noise.present, d.noise
    assert not d.reverb.present, d.reverb


@pytest.mark.parametrize(("mains_hz", "level_db", "snr_db"), [(50.0, -18.0, 8.0), (60.0, -10.0, 3.0)])
def test_hum_under_pink_noise_is_found(smoke_material, mains_hz, level_db, snr_db):
    # Loud low-frequency noise used to cost the hum estimator its confidence (the example
    # interview in examples/: hum at -18 dB under pink noise at 8 dB SNR was missed).
    x, rate, _, _ = smoke_material
    rng = np.random.default_rng(4)
    y = hum(add_pink(x, rate, snr_db, rng), rate, mains_hz, level_db, rng)
    d = diagnose(y, rate)
    assert d.hum.present and d.hum.mains_hz == mains_hz, d.hum
    assert abs(d.hum.level_db - level_db) < 4.0, d.hum
    assert d.noise.present, d.noise
    assert not diagnose(add_pink(x, rate, snr_db, rng), rate).hum.present


def test_example_interview_diagnosis(shared_data):
    # examples/interview_damaged.flac: pink noise at 8 dB SNR, 50 Hz hum at -18 dB, clipping
    # at -8 dB (its recipe); no reverberation.
    path = Path(__file__).resolve().parents[1] / "examples" / "interview_damaged.flac"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    d = diagnose_file(path)
    assert set(d.damages) == {"hum", "clipping", "noise"}, d.damages
    assert d.hum.mains_hz == 50.0


# ---------------------------------------------------------------------------------------------
# Calibration on train/ (not a test): python tests/test_diagnose.py --calibrate [N]


def _calibrate(n_clips: int = 16, seed: int = 1) -> None:
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
    rng = np.random.default_rng(seed)
    files = sorted((root / "speech").rglob("*.flac"))
    files = [files[i] for i in rng.choice(len(files), n_clips, replace=False)]
    noise_files = sorted((root / "noise").rglob("*.flac"))
    noises = [load(noise_files[i], sample_rate=16000, mono=True)[0]
              for i in rng.choice(len(noise_files), 12, replace=False)]
    import csv

    with open(root.parent / "rir_index.csv") as f:
        rir_rows = {r["path"]: float(r["rt60_s"]) for r in csv.DictReader(f)
                    if r["path"].startswith("train/")}
    rirs = [(load(root.parent / p, sample_rate=16000, mono=True)[0], rt)
            for p, rt in rir_rows.items() if rt <= 2.6]
    rows = []
    for f in files:
        x, rate = load(f, sample_rate=16000, mono=True)
        x = normalise(x[:, : 10 * rate], rate)
        d = diagnose(x, rate)
        rows.append(("clean", "", d))
        for kind in SIMULATED:
            y, what = damage(kind, x, rate, rng, noises, rirs)
            rows.append((kind, what, diagnose(y, rate)))
    print(f"{'input':<10} {'damage':<22} " + " ".join(f"{k:>14}" for k in SIMULATED))
    for kind, what, d in rows:
        cells = []
        for k in SIMULATED:
            f = getattr(d, k)
            cells.append(f"{f.value:8.3g}/{f.confidence:.2f}{'*' if f.present else ' '}")
        print(f"{kind:<10} {what:<22} " + " ".join(f"{c:>14}" for c in cells))
    print("\ndetection: damage -> detected/total; false positives on clean")
    for k in SIMULATED:
        hit = [getattr(d, k).present for kind, _, d in rows if kind == k]
        fp = [getattr(d, k).present for kind, _, d in rows if kind == "clean"]
        print(f"  {k:<10} {sum(hit)}/{len(hit)}   clean flagged {sum(fp)}/{len(fp)}")
    clean_any = [bool(d.damages) for kind, _, d in rows if kind == "clean"]
    print(f"  clean clips with any damage flagged: {sum(clean_any)}/{len(clean_any)}")


if __name__ == "__main__" and "--calibrate" in sys.argv:
    _calibrate(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 16)
