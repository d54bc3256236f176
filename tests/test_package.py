"""Package-level promises: a light import, a CLI that never shows a traceback for user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

HEAVY = ("torch", "onnxruntime", "dask", "distributed", "pesq", "pystoi", "speechmos", "librosa",
         "matplotlib", "pyroomacoustics", "nara_wpe", "noisereduce", "pyrnnoise")


def test_import_audiomend_is_light() -> None:
    code = ("import sys, audiomend; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "", f"import audiomend loaded heavy modules: {loaded}"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audiomend", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_cli_help_lists_verbs() -> None:
    result = _cli("--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_cli_unknown_verb_is_a_usage_error() -> None:
    assert _cli("no-such-verb").returncode == 2


@pytest.mark.parametrize("verb", ["restore", "assess", "diagnose"])
def test_cli_bad_input_gives_one_line_and_no_traceback(verb: str, tmp_path: Path) -> None:
    import importlib.util

    from audiomend.cli import VERBS

    if importlib.util.find_spec(f"audiomend.cli.{VERBS[verb][0]}") is None:
        pytest.skip(f"verb {verb} not built yet")
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(np.random.default_rng(3).bytes(2000))
    extra = ["-o", str(tmp_path / "out.wav")] if verb == "restore" else []
    # A folder is a valid target of assess (it scores every file in it), not of the others.
    paths = (bad, tmp_path / "missing.wav") + (() if verb == "assess" else (tmp_path,))
    for path in paths:
        result = _cli(verb, str(path), *extra)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and str(path) in lines[0], result.stderr


def test_nan_file_is_refused_by_the_cli(tmp_path: Path) -> None:
    import importlib.util

    from audiomend.cli import VERBS

    if importlib.util.find_spec(f"audiomend.cli.{VERBS['assess'][0]}") is None:
        pytest.skip("verb assess not built yet")
    path = tmp_path / "nan.wav"
    data = np.zeros(16000, np.float32)
    data[100] = np.inf
    sf.write(path, data, 16000, subtype="FLOAT")
    result = _cli("assess", str(path))
    assert result.returncode == 1 and "NaN or infinite" in result.stderr
    assert "Traceback" not in result.stderr
