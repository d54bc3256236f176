"""``audiomend assess``: file, pair, folder and corpus modes, JSON output, errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audiomend.cli import main
from audiomend.dsp import resample
from audiomend.io import save


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["assess", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def noisy_copy(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(x.shape)
    gain = np.sqrt(np.sum(x**2.0) / np.sum(noise**2) / 10 ** (snr_db / 10))
    return (x + gain * noise).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speech_16k) -> Path:
    """corpus/clean/{a,b}.wav and corpus/noisy/{a,b}.wav at 5 and 15 dB SNR (float WAV)."""
    x, rate = speech_16k
    root = tmp_path_factory.mktemp("corpus")
    for name, snr_db, seed in [("a", 5.0, 1), ("b", 15.0, 2)]:
        save(root / "clean" / f"{name}.wav", x, rate, subtype="FLOAT")
        save(root / "noisy" / f"{name}.wav", noisy_copy(x, snr_db, seed), rate, subtype="FLOAT")
    return root


def test_single_file_json_reference_free(capsys, corpus):
    code, out, err = run(capsys, corpus / "noisy" / "a.wav", "--json",
                         "--metrics", "peak_dbfs,rms_dbfs,bandwidth_hz")
    assert code == 0, err
    (row,) = json_lines(out)
    assert row["file"].endswith("a.wav") and row["reference"] is None
    assert row["sample_rate"] == 16000
    assert list(row["metrics"]) == ["peak_dbfs", "rms_dbfs", "bandwidth_hz"]
    assert row["metrics"]["peak_dbfs"] > row["metrics"]["rms_dbfs"]


def test_single_file_table(capsys, corpus):
    code, out, err = run(capsys, corpus / "noisy" / "b.wav", "-r", corpus / "clean" / "b.wav",
                         "-m", "snr,lsd")
    assert code == 0, err
    assert "snr" in out and "lsd" in out and "dB" in out and "lower is better" in out
    assert "15.000" in out  # the SNR is exact by construction


def test_pair_with_reference_at_another_rate(capsys, tmp_path, speech_48k):
    x, rate = speech_48k
    ref = save(tmp_path / "ref48.wav", x, rate, subtype="FLOAT")
    est = save(tmp_path / "est16.wav", resample(x, rate, 16000), 16000, subtype="FLOAT")
    code, out, err = run(capsys, est, "--reference", ref, "--json", "-m", "si_sdr,pesq_wb")
    assert code == 0, err
    assert "resampled to 16000 Hz" in err and "48000 Hz" in err
    (row,) = json_lines(out)
    assert row["reference_resampled_from_hz"] == 48000
    assert row["metrics"]["si_sdr"] > 30 and row["metrics"]["pesq_wb"] > 4.4


def test_corpus_folder_json_means(capsys, corpus):
    code, out, err = run(capsys, corpus, "--json", "-m", "snr,si_sdr")
    assert code == 0, err
    rows = json_lines(out)
    files, summary = rows[:-1], rows[-1]
    assert [Path(r["file"]).name for r in files] == ["a.wav", "b.wav"]
    assert all(Path(r["reference"]).parent.name == "clean" for r in files)
    assert [r["metrics"]["snr"] for r in files] == pytest.approx([5.0, 15.0], abs=0.01)
    assert summary["summary"] == "mean" and summary["files"] == 2 and summary["failed"] == 0
    assert summary["metrics"]["snr"] == pytest.approx(10.0, abs=0.01)


def test_folder_with_reference_folder_parallel_matches_serial(capsys, corpus):
    serial = json_lines(run(capsys, corpus / "noisy", "-r", corpus / "clean", "--json",
                            "-m", "si_sdr,estoi")[1])
    code, out, err = run(capsys, corpus / "noisy", "-r", corpus / "clean", "--json",
                         "-m", "si_sdr,estoi", "--jobs", "2")
    assert code == 0, err
    parallel = json_lines(out)
    assert len(parallel) == len(serial) == 3
    for p, s in zip(parallel[:-1], serial[:-1]):
        assert p["file"] == s["file"]
        assert p["metrics"] == pytest.approx(s["metrics"], rel=1e-9)


def test_folder_table_and_missing_reference(capsys, corpus, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "a.wav").write_bytes((corpus / "clean" / "a.wav").read_bytes())
    code, out, err = run(capsys, corpus / "noisy", "--reference", refs, "-m", "snr")
    assert code == 1
    assert "mean (n=1)" in out and "a.wav" in out
    (line,) = [e for e in err.splitlines() if "error" in e]
    assert "b.wav" in line and "no file named b.wav" in line
    assert "Traceback" not in err


def test_unrelated_pair_is_one_line_error(capsys, corpus, shared_data):
    other = shared_data / "smoke" / "speech" / "sisec_dev1_male4_src1_16k_2.flac"
    code, out, err = run(capsys, other, "-r", corpus / "clean" / "a.wav", "-m", "si_sdr")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiomend: error:")
    assert str(other) in lines[0] and ("unrelated" in lines[0] or "1 %" in lines[0])


def test_usage_errors(capsys, corpus):
    assert run(capsys, corpus / "noisy" / "a.wav", "-m", "pesq_wb,nope")[0] == 2
    code, _, err = run(capsys, corpus / "noisy" / "a.wav", "-m", "pesq_wb")
    assert code == 1 and "pesq_wb needs a clean reference" in err
    assert run(capsys, corpus / "noisy", "-r", corpus / "clean" / "a.wav")[0] == 2
