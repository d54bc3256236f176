"""Chains, recipes and corpora: sampling within ranges, determinism, JSON round trips, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiomend.degradations import DEGRADATIONS
from audiomend.degradations.chain import DEFAULT_CHAIN, Chain, Recipe, Step, make_corpus
from audiomend.errors import BadOptionError


def test_sample_respects_ranges_choices_and_probabilities():
    chain = Chain((
        Step("noise", 1.0, {"snr_db": (0.0, 20.0), "color": ["pink", "brown"]}),
        Step("mp3", 0.0, {"bitrate_kbps": [32]}),
        Step("hum", 0.5, {"harmonics": (2, 4), "mains_hz": 60.0}),
    ))
    gen = np.random.default_rng(0)
    recipes = [chain.sample(gen) for _ in range(200)]
    hums = 0
    for recipe in recipes:
        names = recipe.names
        assert names[0] == "noise" and "mp3" not in names
        noise = recipe.degradations[0]
        assert 0.0 <= noise.snr_db <= 20.0 and noise.color in {"pink", "brown"}
        if "hum" in names:
            hums += 1
            h = recipe.degradations[1]
            assert h.harmonics in {2, 3, 4} and isinstance(h.harmonics, int) and h.mains_hz == 60.0
    assert 70 <= hums <= 130
    assert len({r.degradations[0].seed for r in recipes}) == 200  # each damage has its own seed


def test_recipe_is_reproducible_from_its_seed():
    for seed in range(20):
        recipe = DEFAULT_CHAIN.sample(np.random.default_rng(seed))
        assert DEFAULT_CHAIN.sample(recipe.seed) == recipe
        assert Recipe.from_json(recipe.to_json()) == recipe
        assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_default_chain_covers_damages_and_applies(speech_16k):
    x, rate = speech_16k
    seen = set()
    for seed in range(40):
        recipe = DEFAULT_CHAIN.sample(seed)
        seen.update(recipe.names)
    assert {"noise", "reverb", "clip", "bandlimit", "gain", "hum"} <= seen
    recipe = Recipe(tuple(DEGRADATIONS[n]() for n in ("reverb", "noise", "clip", "mp3")), 0)
    y = recipe.apply(x, rate)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_array_equal(y, Recipe.from_json(recipe.to_json()).apply(x, rate))


def test_chain_json_round_trip():
    data = json.loads(json.dumps(DEFAULT_CHAIN.to_dict()))
    assert Chain.from_dict(data) == DEFAULT_CHAIN


def test_with_files_picks_recorded_noise_and_rirs():
    chain = DEFAULT_CHAIN.with_files(noise=["a.flac", "b.flac"], rir=["r.flac"])
    noises = set()
    for seed in range(30):
        for d in chain.sample(seed).degradations:
            if d.name == "noise":
                noises.add(d.noise)
            if d.name == "reverb":
                assert d.rir == "r.flac"
    assert noises == {"a.flac", "b.flac"}


def test_bad_steps_and_recipes_name_the_problem():
    with pytest.raises(BadOptionError, match="unknown degradation 'echo'"):
        Step("echo")
    with pytest.raises(BadOptionError, match="probability"):
        Step("clip", 1.5)
    with pytest.raises(BadOptionError, match="no parameter.*snr"):
        Step("clip", 1.0, {"snr_db": (0, 1)})
    with pytest.raises(BadOptionError, match="not valid JSON"):
        Recipe.from_json("{")
    with pytest.raises(BadOptionError, match="degradations"):
        Recipe.from_json("[1, 2]")
    with pytest.raises(BadOptionError, match="degradations"):
        Recipe.from_json('{"degradations": [3]}')
    with pytest.raises(BadOptionError, match="unknown degradation"):
        Recipe.from_json('{"degradations": [{"name": "x"}]}')


def test_make_corpus_is_deterministic_and_aligned(shared_data, tmp_path):
    import soundfile as sf

    smoke = shared_data / "smoke"
    kwargs = {"noise_dir": smoke / "noise", "rir_dir": smoke / "rir", "seed": 11,
              "sample_rate": 16000, "count": 4, "progress": False}
    records = make_corpus(smoke / "speech", tmp_path / "a", **kwargs)
    again = make_corpus(smoke / "speech", tmp_path / "b", **kwargs)
    assert records == again
    assert len(records) == 4
    replayed = 0
    lines = (tmp_path / "a" / "recipes.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    for record in records:
        clean, rate = sf.read(tmp_path / "a" / "clean" / record["name"], always_2d=True)
        degraded, rate2 = sf.read(tmp_path / "a" / "degraded" / record["name"], always_2d=True)
        assert rate == rate2 == 16000 and clean.shape == degraded.shape
        assert np.abs(degraded).max() < 1.0
        other, _ = sf.read(tmp_path / "b" / "degraded" / record["name"], always_2d=True)
        np.testing.assert_array_equal(degraded, other)
        recipe = Recipe.from_dict(record["recipe"])
        assert recipe.seed == record["seed"]
        # replaying a recipe of scale-invariant damages on the written clean file reproduces
        # the degraded file (both may have been scaled by the same factor to stay below 0 dBFS)
        if set(recipe.names) <= {"noise", "reverb", "bandlimit", "hum", "dropouts", "delay"}:
            replayed += 1
            replay = recipe.apply(clean.T.astype(np.float32), rate)
            scale = np.dot(replay.ravel(), degraded.T.ravel()) / np.dot(replay.ravel(), replay.ravel())
            assert np.abs(scale * replay - degraded.T).max() < 1e-3
    assert replayed >= 1
    different = make_corpus(smoke / "speech", tmp_path / "c", **{**kwargs, "seed": 12})
    assert [r["recipe"] for r in different] != [r["recipe"] for r in records]


def test_make_corpus_reuses_files_with_suffixes(shared_data, tmp_path):
    speech = tmp_path / "speech"
    speech.mkdir()
    import shutil

    shutil.copy(shared_data / "smoke" / "speech" / "sisec_dev1_male4_src1_16k_1.flac", speech)
    chain = Chain((Step("noise", 1.0, {"snr_db": (5.0, 10.0)}),))
    records = make_corpus(speech, tmp_path / "out", chain=chain, count=3, progress=False)
    names = [r["name"] for r in records]
    assert names == ["sisec_dev1_male4_src1_16k_1.flac", "sisec_dev1_male4_src1_16k_1_1.flac",
                     "sisec_dev1_male4_src1_16k_1_2.flac"]
    assert len({r["seed"] for r in records}) == 3
    assert sorted(p.name for p in (tmp_path / "out" / "degraded").iterdir()) == sorted(names)


def test_make_corpus_errors(tmp_path):
    with pytest.raises(BadOptionError, match="does not exist"):
        make_corpus(tmp_path / "missing", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadOptionError, match="no audio files"):
        make_corpus(tmp_path / "empty", tmp_path / "out", progress=False)
