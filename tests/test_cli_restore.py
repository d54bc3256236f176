"""``audiomend restore`` and ``audiomend diagnose`` end to end (through cli.main, as the script runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from audiomend.cli import main


@pytest.fixture
def noisy_wav(tmp_path, speech_16k, shared_data):
    from audiomend.io import load

    x, rate = speech_16k
    n, _ = load(shared_data / "smoke" / "noise" / "smoke_emgse_engine.flac")
    y = 0.3 * x / np.abs(x).max() + 0.03 * np.resize(n, x.shape) / np.abs(n).max()
    path = tmp_path / "noisy.wav"
    sf.write(path, y.T, rate, subtype="PCM_16")
    return path


def test_restore_json_and_report(noisy_wav, tmp_path, capsys):
    out, report = tmp_path / "fixed.flac", tmp_path / "report.html"
    code = main(["restore", str(noisy_wav), "-o", str(out), "--report", str(report), "--json",
                 "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)                 # exactly one JSON object on stdout
    assert result["output_path"] == str(out)
    assert result["diagnosis"]["noise"]["present"] is True
    assert "denoise" in [s["name"] for s in result["stages"]]
    assert result["rtf"] > 0 and result["options"]["target_lufs"] is None
    assert captured.err == ""                         # --quiet: nothing on stderr
    assert sf.info(out).frames == sf.info(noisy_wav).frames
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 2
    for word in ("Diagnosis", "Stages applied", "denoise", "estimated_snr_db", "before", "after"):
        assert word in html


def test_restore_summary_on_stderr(noisy_wav, tmp_path, capsys):
    code = main(["restore", str(noisy_wav), "-o", str(tmp_path / "o.wav"), "--skip", "denoise",
                 "--strength", "0.7", "--target-lufs", "-20"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == ""
    assert "found:" in captured.err and "noise" in captured.err and "RTF" in captured.err
    assert "denoise(" not in captured.err


def test_restore_sample_rate_and_stages(noisy_wav, tmp_path, capsys):
    out = tmp_path / "o48.wav"
    code = main(["restore", str(noisy_wav), "-o", str(out), "--sample-rate", "48000",
                 "--stages", "denoise", "--json", "-q"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in result["stages"]] == ["denoise"]
    info = sf.info(out)
    assert info.samplerate == 48000 and info.frames == 3 * sf.info(noisy_wav).frames


def test_unknown_stage_is_a_usage_error(noisy_wav, tmp_path, capsys):
    code = main(["restore", str(noisy_wav), "-o", str(tmp_path / "o.wav"), "--stages", "declip,zap"])
    err = capsys.readouterr().err
    assert code == 2
    assert "zap" in err and "dehum, declick, declip, dereverb, denoise, bandwidth, loudness" in err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("args, message", [
    (["restore", "{missing}", "-o", "{out}"], "no such file"),
    (["restore", "{bad}", "-o", "{out}"], "cannot decode"),
    (["restore", "{wav}", "-o", "{wav}"], "refusing to overwrite the input"),
    (["restore", "{wav}", "-o", "{tmp}/o.xyz"], "cannot write .xyz"),
    (["diagnose", "{missing}"], "no such file"),
])
def test_bad_input_is_one_line_exit_1(noisy_wav, tmp_path, capsys, args, message):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    names = {"missing": tmp_path / "missing.wav", "out": tmp_path / "o.wav", "bad": bad,
             "wav": noisy_wav, "tmp": tmp_path}
    code = main([a.format(**names) for a in args])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_diagnose_table_and_json(noisy_wav, capsys):
    assert main(["diagnose", str(noisy_wav)]) == 0
    out = capsys.readouterr().out
    for name in ("clipping", "hum", "noise", "reverb", "bandwidth", "clicks", "level"):
        assert name in out
    assert main(["diagnose", str(noisy_wav), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["noise"]["present"] is True and d["sample_rate"] == 16000


def test_restore_runs_the_network_without_torch(noisy_wav, tmp_path):
    """A fresh install has no torch: restore must run our network through onnxruntime alone.
    torch is made unimportable in a child process; the network still denoises (the output's
    noise-only start falls by > 10 dB) and the report names the neural backend."""
    import subprocess
    import sys

    out = tmp_path / "fixed.wav"
    code = f"""
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed")
sys.meta_path.insert(0, NoTorch())
from audiomend.cli import main
code = main(["restore", {str(noisy_wav)!r}, "-o", {str(out)!r}, "--json", "--quiet"])
print("torch" in sys.modules, code)
"""
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "False 0"
    report = json.loads(lines[0])
    (denoise,) = [s for s in report["stages"] if s["name"] == "denoise"]
    assert denoise["backend"] == "neural", denoise
    noisy, rate = sf.read(noisy_wav)
    fixed, _ = sf.read(out)
    assert fixed.shape == noisy.shape
    head = slice(0, rate // 10)  # the clip starts with a pause: noise only
    assert 10 * np.log10(np.mean(noisy[head] ** 2) / np.mean(fixed[head] ** 2)) > 10.0
