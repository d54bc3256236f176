"""audiomend.io: loading, atomic saving, blocks, and one-line errors for every kind of bad file."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiomend import io
from audiomend.errors import BadAudioError, BadOptionError


def _wav_header(*, channels: int, rate: int, bits: int = 16, n_frames: int = 0) -> bytes:
    """A canonical RIFF/WAVE PCM header, to craft files with absurd fields."""
    block_align = channels * bits // 8
    data_size = n_frames * block_align
    byte_rate = (rate * block_align) % 2**32
    fmt = struct.pack("<HHIIHH", 1, channels, rate, byte_rate, block_align, bits)
    return (b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", data_size))


@pytest.fixture
def stereo_pcm16(tmp_path: Path, rng: np.random.Generator) -> Path:
    audio = (rng.uniform(-0.5, 0.5, size=(3000, 2)) * 32767).astype(np.int16)
    path = tmp_path / "stereo.wav"
    sf.write(path, audio, 22050, subtype="PCM_16")
    return path


def test_load_gives_float32_channels_first(stereo_pcm16: Path) -> None:
    audio, rate = io.load(stereo_pcm16)
    assert audio.dtype == np.float32 and audio.shape == (2, 3000) and rate == 22050
    mono, _ = io.load(stereo_pcm16, mono=True)
    np.testing.assert_allclose(mono[0], audio.mean(axis=0), atol=1e-7)


def test_load_resamples_with_exact_length(stereo_pcm16: Path) -> None:
    audio, rate = io.load(stereo_pcm16, sample_rate=44100)
    assert rate == 44100 and audio.shape == (2, 6000)


def test_pcm16_save_load_round_trip_is_bit_exact(stereo_pcm16: Path, tmp_path: Path) -> None:
    audio, rate = io.load(stereo_pcm16)
    out = io.save(tmp_path / "copy.wav", audio, rate, like=stereo_pcm16)
    assert sf.info(out).subtype == "PCM_16"  # the input's bit depth is kept
    again, _ = io.load(out)
    assert np.array_equal(again, audio)


def test_save_keeps_input_bit_depth_and_refuses_to_overwrite_input(tmp_path: Path) -> None:
    src = tmp_path / "in24.flac"
    sf.write(src, np.zeros((100, 1)), 16000, subtype="PCM_24")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = io.save(tmp_path / "out.flac", np.zeros((1, 100), np.float32), 16000, like=src)
    assert sf.info(out).subtype == "PCM_24"
    with pytest.raises(BadOptionError, match="refusing to overwrite the input"):
        io.save(src, np.zeros((1, 100), np.float32), 16000, like=src)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.wav"
    io.save(target, np.zeros((1, 10), np.float32), 8000)
    with pytest.raises(BadAudioError):
        io.save(target, np.full((1, 10), np.nan, np.float32), 8000)
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.wav"]
    assert io.info(target).frames == 10  # the earlier good file survives the failed write


def test_save_rejects_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(BadOptionError, match=r"\.xyz"):
        io.save(tmp_path / "a.xyz", np.zeros((1, 10), np.float32), 8000)


@pytest.mark.parametrize("block_s,overlap_s", [(0.01, 0.0), (0.05, 0.01), (1.0, 0.0)])
def test_blocks_cover_the_file_exactly(stereo_pcm16: Path, block_s: float, overlap_s: float) -> None:
    whole, rate = io.load(stereo_pcm16)
    overlap = round(overlap_s * rate)
    parts = list(io.blocks(stereo_pcm16, block_s=block_s, overlap_s=overlap_s))
    rebuilt = np.concatenate([parts[0]] + [p[:, overlap:] for p in parts[1:]], axis=1)
    assert np.array_equal(rebuilt, whole)
    assert all(p.shape[1] <= round(block_s * rate) for p in parts)


def test_mp3_and_ogg_decode(tmp_path: Path, speech_16k: tuple[np.ndarray, int]) -> None:
    audio, rate = speech_16k
    for ext in (".mp3", ".ogg"):
        path = io.save(tmp_path / f"s{ext}", audio[:, : rate * 2], rate)
        back, back_rate = io.load(path)
        assert back_rate == rate and back.shape[0] == 1
        assert abs(back.shape[1] - 2 * rate) < 0.05 * rate


def _truncated_wav(tmp_path: Path) -> Path:
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(1000), 16000)
    bad = tmp_path / "truncated.wav"
    bad.write_bytes(good.read_bytes()[:30])
    return bad


BAD_FILES = {
    "missing": (lambda d: d / "nothing.wav", "no such file"),
    "directory": (lambda d: d, "is a directory"),
    "empty": (lambda d: (d / "empty.wav").write_bytes(b"") and None or d / "empty.wav",
              "empty"),
    "truncated header": (_truncated_wav, "cannot decode|not an audio file|no samples"),
    "random bytes": (lambda d: (d / "noise.wav").write_bytes(
        np.random.default_rng(1).bytes(4000)) and d / "noise.wav", "cannot decode|not an audio"),
    "rate 0": (lambda d: (d / "r0.wav").write_bytes(
        _wav_header(channels=1, rate=0, n_frames=4) + b"\0" * 8) and d / "r0.wav",
        "sample rate|cannot decode|not an audio"),
    "absurd rate": (lambda d: (d / "r9.wav").write_bytes(
        _wav_header(channels=1, rate=4_000_000_000, n_frames=4) + b"\0" * 8) and d / "r9.wav",
        "sample rate|cannot decode|not an audio"),
    "0 channels": (lambda d: (d / "c0.wav").write_bytes(
        _wav_header(channels=0, rate=16000, n_frames=0) + b"\0" * 8) and d / "c0.wav",
        "channels|cannot decode|not an audio|no samples"),
    "header only": (lambda d: (d / "h.wav").write_bytes(
        _wav_header(channels=1, rate=16000, n_frames=0)) and d / "h.wav", "no samples"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    make, pattern = BAD_FILES[kind]
    path = make(tmp_path)
    with pytest.raises(BadAudioError, match=pattern) as err:
        io.load(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_nan_samples_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    data = np.zeros(100, np.float32)
    data[50] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")
    with pytest.raises(BadAudioError, match="NaN or infinite"):
        io.load(path)


def test_info_reads_the_header(stereo_pcm16: Path) -> None:
    i = io.info(stereo_pcm16)
    assert (i.sample_rate, i.channels, i.frames, i.subtype) == (22050, 2, 3000, "PCM_16")
    assert i.duration_s == pytest.approx(3000 / 22050)
