"""``audiomend degrade`` end to end: one file with every damage, recipes, corpus mode, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from audiomend.cli import main
from audiomend.degradations.chain import Recipe


@pytest.fixture
def clean_wav(speech_16k, tmp_path):
    from audiomend.io import save

    audio, rate = speech_16k
    return save(tmp_path / "clean.wav", audio[:, : 2 * rate], rate)


def test_degrade_every_damage(clean_wav, shared_data, tmp_path, capsys):
    smoke = shared_data / "smoke"
    out = tmp_path / "damaged.wav"
    recipe_out = tmp_path / "recipe.json"
    code = main([
        "degrade", str(clean_wav), "-o", str(out), "--noise-snr-db", "5",
        "--noise-file", str(smoke / "noise" / "smoke_emgse_engine.flac"), "--reverb-rt60-s", "0.6",
        "--rir-file", str(smoke / "rir" / "smoke_webaudio_house_kitchen.flac"),
        "--clip-threshold-db", "-6", "--lowpass-hz", "4000", "--gain-db", "-25", "--hum-hz", "50",
        "--hum-level-db", "-20", "--clicks-per-s", "5", "--delay-ms", "3.5", "--mp3-kbps", "32",
        "--seed", "7", "--recipe-out", str(recipe_out), "--json",
    ])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip())
    assert report["output"] == str(out) and report["sample_rate"] == 16000
    names = [d["name"] for d in report["recipe"]["degradations"]]
    assert names == ["reverb", "noise", "hum", "gain", "clip", "clicks", "bandlimit", "mp3", "delay"]
    clean, rate = sf.read(clean_wav, always_2d=True)
    damaged, rate2 = sf.read(out, always_2d=True)
    assert rate2 == rate and damaged.shape == clean.shape
    assert np.isfinite(damaged).all() and not np.allclose(damaged, clean, atol=1e-3)
    recipe = Recipe.from_json(recipe_out.read_text())
    assert recipe.to_dict() == report["recipe"] and recipe.seed == 7

    # the saved recipe replays to the same file
    again = tmp_path / "again.wav"
    assert main(["degrade", str(clean_wav), "-o", str(again), "--recipe", str(recipe_out)]) == 0
    np.testing.assert_array_equal(sf.read(again)[0], sf.read(out)[0])


def test_degrade_same_seed_same_file(clean_wav, tmp_path):
    args = ["--noise-snr-db", "10", "--hum-hz", "60", "--clicks-per-s", "3"]
    outs = []
    for name, seed in (("a.flac", "1"), ("b.flac", "1"), ("c.flac", "2")):
        assert main(["degrade", str(clean_wav), "-o", str(tmp_path / name), "--seed", seed, *args]) == 0
        outs.append(sf.read(tmp_path / name)[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_degrade_corpus_mode(shared_data, tmp_path, capsys):
    smoke = shared_data / "smoke"
    out = tmp_path / "corpus"
    code = main(["degrade", "--corpus", str(smoke / "speech"), "--noise-dir", str(smoke / "noise"),
                 "--rir-dir", str(smoke / "rir"), "-o", str(out), "--count", "3", "--seed", "7",
                 "--sample-rate", "16000", "--json"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert (out / "recipes.jsonl").read_text().splitlines() == [json.dumps(r) for r in records]
    for r in records:
        assert (out / "clean" / r["name"]).is_file() and (out / "degraded" / r["name"]).is_file()


@pytest.mark.parametrize("args,message", [
    (["degrade", "/no/such/file.wav", "-o", "x.wav", "--gain-db", "3"], "no such file"),
    (["degrade", "{clean}", "-o", "{tmp}/x.wav", "--mp3-kbps", "33"], "bitrate_kbps=33"),
    (["degrade", "{clean}", "-o", "{tmp}/x.wav", "--noise-snr-db", "5", "--noise-file",
      "/no/noise.flac"], "no such file"),
    (["degrade", "{clean}", "-o", "{tmp}/x.xyz", "--gain-db", "3"], "cannot write"),
    (["degrade", "--corpus", "{tmp}/nothing", "-o", "{tmp}/out"], "does not exist"),
    (["degrade", "{tmp}", "-o", "{tmp}/x.wav", "--gain-db", "3"], "is a directory"),
    (["degrade", "{tmp}/garbage.wav", "-o", "{tmp}/x.wav", "--gain-db", "3"], "cannot decode"),
    (["degrade", "{clean}", "-o", "{tmp}/x.wav", "--recipe", "{tmp}/garbage.wav"], "recipe"),
    (["degrade", "{clean}", "-o", "{tmp}/x.wav", "--recipe", "{tmp}/none.json"], "cannot read"),
])
def test_bad_input_is_one_line_error(clean_wav, tmp_path, capsys, args, message):
    (tmp_path / "garbage.wav").write_bytes(np.random.default_rng(3).bytes(2000))
    args = [a.format(clean=clean_wav, tmp=tmp_path) for a in args]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("audiomend: error:") and message in err and "\n" not in err


@pytest.mark.parametrize("args", [
    ["degrade", "{clean}", "-o", "{tmp}/x.wav"],  # no damage
    ["degrade", "-o", "{tmp}/x.wav", "--gain-db", "3"],  # no input
    ["degrade", "{clean}", "-o", "{tmp}/x.wav", "--noise-file", "{clean}"],  # no SNR
    ["degrade", "{clean}", "-o", "{tmp}/x.wav", "--count", "3", "--gain-db", "1"],
])
def test_usage_errors_exit_2(clean_wav, tmp_path, capsys, args):
    assert main([a.format(clean=clean_wav, tmp=tmp_path) for a in args]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_refuses_to_overwrite_input(clean_wav, capsys):
    assert main(["degrade", str(clean_wav), "-o", str(clean_wav), "--gain-db", "-3"]) == 1
    assert "overwrite the input" in capsys.readouterr().err


def test_degrade_noise_file_hits_the_snr(clean_wav, shared_data, tmp_path):
    from audiomend.degradations import measure_snr
    from audiomend.io import load

    out = tmp_path / "noisy.flac"
    noise = shared_data / "smoke" / "noise" / "smoke_sc_doing_the_dishes.flac"
    assert main(["degrade", str(clean_wav), "-o", str(out), "--noise-snr-db", "5",
                 "--noise-file", str(noise), "--seed", "3"]) == 0
    clean, rate = load(clean_wav)
    noisy, _ = load(out)
    assert abs(measure_snr(clean, noisy.astype(np.float64) - clean, rate)[0] - 5.0) < 0.1
