"""The streaming protocol: stateful processors that turn a stream of blocks into aligned output.

Every restoration stage is a :class:`Processor`. A processor is fed ``(channels, n)`` float32 blocks
of any size through :meth:`Processor.process` and returns whatever output is ready; after the
last block, :meth:`Processor.flush` returns the rest. The concatenated output is **aligned with
the input and exactly as long**: a processor that needs look-ahead (an STFT, a segment of context)
trims its own latency. Because frames and segments sit at absolute positions in the stream, the
output does not depend on how the input was cut into blocks: running a processor over the whole
array as one block is the same code path as streaming an hour-long file.

Building blocks:

- :class:`Processor` (abstract): counts samples, trims ``latency_samples``, pads the tail on flush.
- :class:`PointwiseProcessor`: sample-wise functions (gain, clipping), no latency.
- :class:`SosFilterProcessor`: IIR filters as second-order sections, state carried across blocks.
- :class:`OverlapAddProcessor`: frames of ``frame_length`` every ``hop_length`` samples, windowed,
  processed, overlap-added with perfect reconstruction. Subclasses:
  :class:`SpectralProcessor` (per-frame spectra: denoisers, band extension) and
  :class:`SegmentProcessor` (long segments with cross-fades: WPE, declip, declick).
- :class:`ChainProcessor`: processors in series.
- :class:`ResampleProcessor`: a streaming soxr resampler (the only processor that changes length).

Examples
--------
>>> import numpy as np
>>> x = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
>>> class Identity(SpectralProcessor):
...     def process_spectrum(self, spectrum):
...         return spectrum
>>> whole = Identity(channels=2, frame_length=64, hop_length=16).run(x)
>>> p = Identity(channels=2, frame_length=64, hop_length=16)
>>> streamed = np.concatenate([p.process(x[:, :7]), p.process(x[:, 7:500]), p.process(x[:, 500:]),
...                            p.flush()], axis=1)
>>> bool(np.allclose(whole, x, atol=1e-5)), bool(np.array_equal(whole, streamed))
(True, True)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from audiomend.errors import BadAudioError

Block = NDArray[np.float32]


def _as_block(block: np.ndarray, channels: int) -> Block:
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 1:
        block = block[np.newaxis, :]
    if block.ndim != 2 or block.shape[0] != channels:
        raise BadAudioError(f"block of shape {block.shape} fed to a processor for {channels} channel(s)")
    return block


class Processor(ABC):
    """A stateful block processor whose output is aligned with its input.

    Subclasses implement :meth:`_push`, which returns the *raw* output: the input delayed by
    ``latency_samples``. The base class drops those first samples, and :meth:`flush` pushes
    enough trailing zeros to drain the tail, so that the total output equals the total input.

    Parameters
    ----------
    channels : int > 0, the number of channels of every block.
    latency_samples : int >= 0, the delay of the raw output against the input, in samples.
    tail_samples : int >= 0, extra zeros :meth:`flush` pushes beyond the latency (e.g. one hop,
        to complete the last frame).
    """

    def __init__(self, channels: int, latency_samples: int = 0, tail_samples: int = 0) -> None:
        self.channels = int(channels)
        self.latency_samples = int(latency_samples)
        self._tail_samples = int(tail_samples)
        self._to_skip = self.latency_samples
        self._n_in = 0
        self._n_out = 0
        self._flushed = False

    @abstractmethod
    def _push(self, block: Block) -> Block:
        """Consume a block; return the raw output that is ready (input delayed by the latency)."""

    def process(self, block: np.ndarray) -> Block:
        """Feed one block ``(channels, n)``; return the aligned output ready so far ``(channels, m)``."""
        if self._flushed:
            raise RuntimeError("process() called after flush(); processors are single-use")
        block = _as_block(block, self.channels)
        self._n_in += block.shape[1]
        return self._emit(self._push(block))

    def flush(self) -> Block:
        """End the stream: return the remaining output, so that total output == total input."""
        if self._flushed:
            return np.zeros((self.channels, 0), np.float32)
        pad = self.latency_samples + self._tail_samples
        out = self._emit(self._push(np.zeros((self.channels, pad), np.float32))) if pad else \
            np.zeros((self.channels, 0), np.float32)
        self._flushed = True
        if self._n_out != self._n_in:  # a subclass that under-produces is a bug, not user error
            raise RuntimeError(f"{type(self).__name__} produced {self._n_out} of {self._n_in} samples")
        return out

    def _emit(self, raw: Block) -> Block:
        skip = min(self._to_skip, raw.shape[1])
        self._to_skip -= skip
        raw = raw[:, skip: skip + max(self._n_in - self._n_out, 0)]
        self._n_out += raw.shape[1]
        return raw.astype(np.float32, copy=False)

    def run(self, audio: np.ndarray) -> Block:
        """Process a whole array as one block and flush: the offline path (same code as streaming)."""
        audio = _as_block(audio, self.channels)
        return np.concatenate([self.process(audio), self.flush()], axis=1)


def run_blocks(processor: Processor, blocks: Iterable[np.ndarray]) -> Block:
    """Feed an iterable of blocks through ``processor`` and return the concatenated output."""
    parts = [processor.process(b) for b in blocks]
    parts.append(processor.flush())
    return np.concatenate(parts, axis=1)


def split_blocks(audio: np.ndarray, sizes: Sequence[int] | int) -> list[np.ndarray]:
    """Cut ``(channels, n)`` audio into consecutive blocks of the given sizes (cycled), for tests."""
    sizes = [sizes] if isinstance(sizes, int) else list(sizes)
    out, start, i = [], 0, 0
    while start < audio.shape[1]:
        size = max(int(sizes[i % len(sizes)]), 1)
        out.append(audio[:, start:start + size])
        start += size
        i += 1
    return out


class PointwiseProcessor(Processor):
    """Apply a memoryless function ``fn(block) -> block`` (same shape); no latency."""

    def __init__(self, channels: int, fn: Callable[[Block], np.ndarray]) -> None:
        super().__init__(channels)
        self._fn = fn

    def _push(self, block: Block) -> Block:
        return np.asarray(self._fn(block), dtype=np.float32)


class SosFilterProcessor(Processor):
    """A causal IIR filter in second-order sections, its state carried from block to block.

    Parameters
    ----------
    sos : np.ndarray [shape=(n_sections, 6)], as from ``scipy.signal.butter(..., output='sos')``.
    """

    def __init__(self, channels: int, sos: np.ndarray) -> None:
        super().__init__(channels)
        self._sos = np.asarray(sos, dtype=np.float64)
        self._zi = np.zeros((self._sos.shape[0], channels, 2))

    def _push(self, block: Block) -> Block:
        if block.shape[1] == 0:
            return block
        out, self._zi = signal.sosfilt(self._sos, block, axis=-1, zi=self._zi)
        return out.astype(np.float32)


def _reconstruction_window(analysis: np.ndarray, synthesis: np.ndarray, hop: int) -> np.ndarray:
    """Scale ``synthesis`` so that overlap-added ``analysis * synthesis`` sums to exactly 1."""
    product = analysis * synthesis
    period = np.zeros(hop)
    for start in range(0, len(product), hop):
        chunk = product[start:start + hop]
        period[: len(chunk)] += chunk
    if np.any(period <= 1e-8):
        raise ValueError("windows do not overlap-add to a positive constant at this hop")
    return synthesis / np.resize(period, len(synthesis))


class OverlapAddProcessor(Processor):
    """Frames every ``hop_length`` samples, each ``frame_length`` long, processed and overlap-added.

    The stream is padded in front with ``frame_length - hop_length`` zeros, so frame ``t`` covers
    input samples ``[t*hop - (frame-hop), t*hop + hop)`` whatever the block sizes. Latency is
    ``frame_length - hop_length`` samples. With an identity :meth:`process_frames` the output equals
    the input (perfect reconstruction: the synthesis window is normalised against the analysis).

    Parameters
    ----------
    frame_length, hop_length : int > 0 samples, ``hop_length <= frame_length``.
    analysis_window, synthesis_window : np.ndarray [shape=(frame_length,)] or None (rectangular).
    """

    def __init__(self, channels: int, frame_length: int, hop_length: int,
                 analysis_window: np.ndarray | None = None,
                 synthesis_window: np.ndarray | None = None) -> None:
        if not 0 < hop_length <= frame_length:
            raise ValueError(f"need 0 < hop_length ({hop_length}) <= frame_length ({frame_length})")
        latency = frame_length - hop_length
        super().__init__(channels, latency_samples=latency, tail_samples=hop_length)
        self.frame_length = int(frame_length)
        self.hop_length = int(hop_length)
        ones = np.ones(frame_length)
        self._analysis = None if analysis_window is None else np.asarray(analysis_window, np.float64)
        synthesis = ones if synthesis_window is None else np.asarray(synthesis_window, np.float64)
        self._synthesis = _reconstruction_window(
            ones if self._analysis is None else self._analysis, synthesis, hop_length
        ).astype(np.float32)
        if self._analysis is not None:
            self._analysis = self._analysis.astype(np.float32)
        self._in = np.zeros((channels, latency), np.float32)   # samples not yet consumed by a frame
        self._acc = np.zeros((channels, latency), np.float32)  # partial sums of output samples
        self.frames_done = 0

    @abstractmethod
    def process_frames(self, frames: Block) -> np.ndarray:
        """Process windowed frames ``(channels, n_frames, frame_length)``; same shape back."""

    def _push(self, block: Block) -> Block:
        n, h = self.frame_length, self.hop_length
        buf = np.concatenate([self._in, block], axis=1)
        n_frames = (buf.shape[1] - n) // h + 1 if buf.shape[1] >= n else 0
        if n_frames == 0:
            self._in = buf
            return np.zeros((self.channels, 0), np.float32)
        from numpy.lib.stride_tricks import sliding_window_view

        frames = sliding_window_view(buf, n, axis=1)[:, : (n_frames - 1) * h + 1: h, :]
        if self._analysis is not None:
            frames = frames * self._analysis
        frames = np.asarray(self.process_frames(np.ascontiguousarray(frames, np.float32)))
        self.frames_done += n_frames
        frames = frames * self._synthesis
        acc = np.zeros((self.channels, (n_frames - 1) * h + n), np.float32)
        acc[:, : self._acc.shape[1]] += self._acc
        for t in range(n_frames):
            acc[:, t * h: t * h + n] += frames[:, t]
        ready = n_frames * h
        self._acc = acc[:, ready:]
        self._in = buf[:, ready:]
        return acc[:, :ready]


class SpectralProcessor(OverlapAddProcessor):
    """An STFT processor: real FFT of each windowed frame, :meth:`process_spectrum`, inverse FFT.

    Windows are square-root periodic Hann for analysis and synthesis. Subclasses keep per-frame
    state (noise estimates, recursions) between calls; frames arrive in order, exactly once.
    """

    def __init__(self, channels: int, frame_length: int, hop_length: int) -> None:
        window = np.sqrt(signal.get_window("hann", frame_length, fftbins=True))
        super().__init__(channels, frame_length, hop_length, window, window)

    @abstractmethod
    def process_spectrum(self, spectrum: np.ndarray) -> np.ndarray:
        """Process ``(channels, n_bins, n_frames)`` complex spectra; same shape back."""

    def process_frames(self, frames: Block) -> np.ndarray:
        spectrum = np.fft.rfft(frames, axis=-1).transpose(0, 2, 1)
        spectrum = self.process_spectrum(spectrum)
        return np.fft.irfft(spectrum.transpose(0, 2, 1), n=self.frame_length, axis=-1)


class SegmentProcessor(OverlapAddProcessor):
    """Long segments processed as a whole and cross-faded: for block algorithms (WPE, declip).

    Segments are ``segment_length`` samples every ``segment_length - crossfade_length`` samples;
    neighbours are cross-faded with raised-cosine ramps of ``crossfade_length`` samples.
    Each segment reaches :meth:`process_segment` unwindowed, so the algorithm sees real context.
    """

    def __init__(self, channels: int, segment_length: int, crossfade_length: int) -> None:
        if not 0 < crossfade_length <= segment_length // 2:
            raise ValueError("crossfade_length must be in (0, segment_length / 2]")
        ramp = np.sin(0.5 * np.pi * (np.arange(crossfade_length) + 0.5) / crossfade_length) ** 2
        fade = np.ones(segment_length)
        fade[:crossfade_length] = ramp
        fade[-crossfade_length:] = ramp[::-1]
        super().__init__(channels, segment_length, segment_length - crossfade_length, None, fade)

    @abstractmethod
    def process_segment(self, segment: Block) -> np.ndarray:
        """Process one segment ``(channels, segment_length)``; same shape back."""

    def process_frames(self, frames: Block) -> np.ndarray:
        return np.stack([self.process_segment(frames[:, t]) for t in range(frames.shape[1])], axis=1)


class ChainProcessor(Processor):
    """Processors in series; each is aligned, so the chain is aligned too."""

    def __init__(self, channels: int, processors: Sequence[Processor]) -> None:
        # Each member trims its own latency, so the chain itself adds none (latency_samples 0).
        super().__init__(channels)
        self.processors = list(processors)

    def _push(self, block: Block) -> Block:
        for p in self.processors:
            block = p.process(block)
        return block

    def flush(self) -> Block:
        if self._flushed:
            return np.zeros((self.channels, 0), np.float32)
        out = np.zeros((self.channels, 0), np.float32)
        for i, p in enumerate(self.processors):
            out = np.concatenate([out, p.flush()], axis=1)
            for q in self.processors[i + 1:]:
                out = q.process(out)
        self._flushed = True
        return self._emit(out)


class ResampleProcessor:
    """Streaming sample-rate conversion with soxr; output aligned, ``round(n * out/in)`` samples.

    Not a :class:`Processor` subclass: it changes the number of samples.
    """

    def __init__(self, channels: int, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        import soxr

        self.channels = channels
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self.latency_samples = 0
        self._identity = self.in_rate == self.out_rate
        if not self._identity:
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, channels,
                                               dtype="float32", quality=quality)

    def process(self, block: np.ndarray) -> Block:
        block = _as_block(block, self.channels)
        if self._identity:
            return block
        out = self._stream.resample_chunk(np.ascontiguousarray(block.T), last=False)
        return np.ascontiguousarray(out.reshape(-1, self.channels).T)

    def flush(self) -> Block:
        if self._identity:
            return np.zeros((self.channels, 0), np.float32)
        empty = np.zeros((0, self.channels), np.float32)
        out = self._stream.resample_chunk(empty, last=True)
        return np.ascontiguousarray(out.reshape(-1, self.channels).T)

    def run(self, audio: np.ndarray) -> Block:
        return np.concatenate([self.process(audio), self.flush()], axis=1)
