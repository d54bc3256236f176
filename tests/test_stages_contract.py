"""Contract tests over every registered restoration stage (new stages are covered automatically)."""

from __future__ import annotations

import importlib
import inspect
import json

import numpy as np
import pytest

from audiomend.stages import STAGES, Stage
from audiomend.stream import run_blocks, split_blocks

NAMES = sorted(STAGES)


def _function_of(cls: type[Stage]):
    module = importlib.import_module(cls.__module__)
    return getattr(module, cls.name, None)


@pytest.fixture(scope="module")
def speech(request) -> tuple[np.ndarray, int]:
    return request.getfixturevalue("speech_16k")


@pytest.mark.parametrize("name", NAMES)
def test_stage_defaults_equal_function_defaults(name: str) -> None:
    cls = STAGES[name]
    fn = _function_of(cls)
    assert fn is not None, f"stages.{name} has no function named {name!r}"
    keyword_defaults = {p.name: p.default for p in inspect.signature(fn).parameters.values()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY}
    stage = cls()
    for field, value in stage.to_dict().items():
        if field != "name" and field in keyword_defaults:
            assert keyword_defaults[field] == value, f"{name}.{field}"


@pytest.mark.parametrize("name", NAMES)
def test_stage_round_trips_through_json(name: str) -> None:
    stage = STAGES[name]()
    assert Stage.from_dict(json.loads(json.dumps(stage.to_dict()))) == stage


@pytest.mark.parametrize("name", NAMES)
def test_stage_keeps_shape_dtype_and_is_finite(name: str, speech) -> None:
    audio, rate = speech
    x = audio[:, : 3 * rate]
    stereo = np.concatenate([x, 0.5 * x], axis=0)
    y = STAGES[name]()(stereo, rate)
    assert y.dtype == np.float32 and y.shape == stereo.shape and np.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("length", [0, 1, 100])
def test_stage_handles_silence_and_tiny_inputs(name: str, length: int) -> None:
    y = STAGES[name]()(np.zeros((2, length), np.float32), 16000)
    assert y.shape == (2, length) and np.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_stage_streamed_equals_whole(name: str, speech) -> None:
    audio, rate = speech
    x = audio[:, : 4 * rate]
    stage = STAGES[name]()
    whole = stage(x, rate)
    sizes = np.random.default_rng(7).integers(1, 9000, size=20).tolist()
    streamed = run_blocks(stage.processor(rate, 1), split_blocks(x, sizes))
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_register_refuses_a_stage_without_a_name() -> None:
    from dataclasses import dataclass

    from audiomend.stages.base import register

    @dataclass(frozen=True)
    class Nameless(Stage):
        pass

    before = dict(STAGES)
    with pytest.raises(ValueError, match="Nameless has no name"):
        register(Nameless)
    assert STAGES == before
