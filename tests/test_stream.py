"""The streaming protocol: aligned output, equal length, independent of block sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from audiomend.stream import (
    ChainProcessor,
    PointwiseProcessor,
    ResampleProcessor,
    SegmentProcessor,
    SosFilterProcessor,
    SpectralProcessor,
    run_blocks,
    split_blocks,
)


class HalfGainSpectral(SpectralProcessor):
    def process_spectrum(self, spectrum: np.ndarray) -> np.ndarray:
        return 0.5 * spectrum


class ReverseSegment(SegmentProcessor):
    """A segment operation whose result depends on where segments start: catches misplacement."""

    def process_segment(self, segment: np.ndarray) -> np.ndarray:
        return segment - segment.mean(axis=1, keepdims=True)


def _chain(channels: int) -> ChainProcessor:
    sos = signal.butter(4, 0.2, output="sos")
    return ChainProcessor(channels, [
        HalfGainSpectral(channels, frame_length=256, hop_length=64),
        ReverseSegment(channels, segment_length=700, crossfade_length=100),
        SosFilterProcessor(channels, sos),
        PointwiseProcessor(channels, np.tanh),
    ])


@pytest.mark.parametrize("frame,hop", [(64, 16), (512, 256), (400, 160), (400, 100)])
def test_spectral_identity_reconstructs_the_input(frame: int, hop: int, rng) -> None:
    x = rng.standard_normal((2, 3001)).astype(np.float32)
    y = HalfGainSpectral(2, frame, hop).run(x)
    np.testing.assert_allclose(y, 0.5 * x, atol=1e-5)


def test_segment_identity_reconstructs_the_input(rng) -> None:
    class Identity(SegmentProcessor):
        def process_segment(self, segment):
            return segment

    x = rng.standard_normal((1, 10_000)).astype(np.float32)
    np.testing.assert_allclose(Identity(1, 1000, 250).run(x), x, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=8), st.integers(0, 5000))
def test_chain_output_does_not_depend_on_block_sizes(sizes: list[int], length: int) -> None:
    x = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    whole = _chain(2).run(x)
    streamed = run_blocks(_chain(2), split_blocks(x, sizes))
    assert whole.shape == x.shape == streamed.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


@pytest.mark.parametrize("length", [0, 1, 2, 63, 64, 65])
def test_tiny_inputs_keep_their_length(length: int) -> None:
    x = np.ones((1, length), np.float32)
    assert _chain(1).run(x).shape == (1, length)


def test_processors_are_single_use() -> None:
    p = HalfGainSpectral(1, 64, 16)
    p.run(np.zeros((1, 10), np.float32))
    with pytest.raises(RuntimeError):
        p.process(np.zeros((1, 10), np.float32))


def test_wrong_channel_count_is_refused() -> None:
    from audiomend.errors import BadAudioError

    with pytest.raises(BadAudioError, match="2 channel"):
        HalfGainSpectral(2, 64, 16).process(np.zeros((1, 10), np.float32))


def test_spectral_latency_is_frame_minus_hop() -> None:
    p = HalfGainSpectral(1, 512, 128)
    assert p.latency_samples == 384
    impulse = np.zeros((1, 2000), np.float32)
    impulse[0, 700] = 1.0
    assert int(np.argmax(np.abs(p.run(impulse)))) == 700  # aligned despite the latency


@pytest.mark.parametrize("in_rate,out_rate", [(16000, 48000), (44100, 16000), (48000, 48000)])
def test_resample_stream_equals_one_shot(in_rate: int, out_rate: int, rng) -> None:
    from audiomend.dsp import resample

    x = rng.standard_normal((2, in_rate // 3)).astype(np.float32)
    streamed = run_blocks(ResampleProcessor(2, in_rate, out_rate), split_blocks(x, [1000, 37]))
    one_shot = resample(x, in_rate, out_rate)
    assert streamed.shape == one_shot.shape
    np.testing.assert_allclose(streamed, one_shot, atol=1e-4)
