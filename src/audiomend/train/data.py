"""Training examples mixed on the fly with audiomend's own damage simulator.

Speech is chosen and cleaned first (:func:`load_speech`: drop near-silent and noisy clips, set
every clip's active level to -26 dBFS); then each example is a random 2 s crop, optionally
reverberated with a recorded or simulated room (the target keeps the first 50 ms of the room:
direct sound and early reflections), noise at a random SNR, sometimes a low-pass on both input
and target, and a random overall gain.
All randomness comes from one ``np.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiomend.degradations.bandlimit import bandlimit
from audiomend.degradations.noise import add_noise
from audiomend.degradations.reverb import direct_path_index
from audiomend.dsp import db_to_amplitude, rms
from audiomend.errors import BadOptionError
from audiomend.io import load

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


def _files(dirs: list[str | Path]) -> list[Path]:
    files = sorted(p for d in dirs for p in Path(d).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise BadOptionError(f"no audio files found in {', '.join(map(str, dirs))}")
    return files


def _active_rms(x: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """RMS of the loudest half of 20 ms frames, and the ratio (dB) to the quietest 10 %: a cheap
    SNR estimate used to drop noisy clips."""
    frame = sample_rate // 50
    n = len(x) // frame
    if n < 10:
        return 0.0, 0.0
    energies = np.sort(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = float(np.sqrt(np.mean(energies[n // 2:])))
    quiet = float(np.sqrt(np.mean(energies[: max(n // 10, 1)])) + 1e-9)
    return loud, 20 * np.log10(loud / quiet + 1e-9)


def load_speech(dirs: list[str | Path], sample_rate: int, *, min_snr_db: float = 25.0,
                level_dbfs: float = -26.0) -> tuple[list[np.ndarray], dict]:
    """Clean speech clips (1-D float32) at ``sample_rate``, each at ``level_dbfs`` active level.

    Clips that are near-silent, shorter than 1 s, or whose loud/quiet frame ratio is below
    ``min_snr_db`` (audible background noise in the "clean" target) are dropped.
    """
    kept, dropped = [], []
    for path in _files(dirs):
        audio, _ = load(path, sample_rate=sample_rate, mono=True)
        x = audio[0]
        level, snr = _active_rms(x, sample_rate)
        if len(x) < sample_rate or level < 1e-4 or snr < min_snr_db:
            dropped.append(path.name)
            continue
        kept.append((x * (db_to_amplitude(level_dbfs) / level)).astype(np.float32))
    summary = {"speech_clips": len(kept), "speech_dropped": len(dropped),
               "speech_hours": round(sum(len(x) for x in kept) / sample_rate / 3600, 3)}
    return kept, summary


def load_noises(dirs: list[str | Path], sample_rate: int) -> list[np.ndarray]:
    out = []
    for path in _files(dirs):
        audio, _ = load(path, sample_rate=sample_rate, mono=True)
        if rms(audio) > 1e-5 and audio.shape[1] >= sample_rate // 4:
            out.append(audio[0])
    return out


def load_rirs(dirs: list[str | Path], sample_rate: int) -> list[np.ndarray]:
    """RIRs at ``sample_rate``, cut to start at the direct path, scaled to a unit direct path."""
    out = []
    for path in _files(dirs):
        audio, _ = load(path, sample_rate=sample_rate, mono=True)
        rir = audio[0]
        start = direct_path_index(rir, sample_rate)
        rir = rir[start:]
        if len(rir) > 16 and rir[0] != 0:
            out.append((rir / rir[0]).astype(np.float32)[: 3 * sample_rate])
    return out


@dataclass(frozen=True)
class MixSettings:
    """Ranges of the on-the-fly damage. Probabilities are per example."""

    segment_s: float = 2.0
    snr_db: tuple[float, float] = (-5.0, 25.0)
    p_noise: float = 0.9
    p_reverb: float = 0.35
    early_ms: float = 50.0
    level_dbfs: tuple[float, float] = (-45.0, -15.0)
    # Band-limited input (telephone, low-rate sources) with the same low-pass on the target: the
    # network must denoise such speech without treating the missing band as damage to suppress
    # (band extension is another stage's job).
    p_bandlimit: float = 0.15
    bandlimit_hz: tuple[float, float] = (3400.0, 7000.0)
    # 16 kHz material made by resampling (VoiceBank, most converted files) is 9-12 dB down at
    # 7.4-7.9 kHz, where the training speech is nearly flat; without such examples the network
    # over-suppresses it (docs/model.md). Off in the shipped run; `audiomend train --p-rolloff`.
    p_rolloff: float = 0.0
    rolloff_hz: tuple[float, float] = (7000.0, 7900.0)


class Mixer:
    """Draws ``(noisy, target)`` pairs of ``segment_s`` seconds from speech, noise and RIRs."""

    def __init__(self, speech: list[np.ndarray], noises: list[np.ndarray], rirs: list[np.ndarray],
                 sample_rate: int, settings: MixSettings = MixSettings(), *,
                 speech_weights: np.ndarray | None = None) -> None:
        """``speech_weights``: probability of drawing each speech clip (uniform when None)."""
        if not speech or not noises:
            raise BadOptionError("training needs at least one speech clip and one noise")
        self.speech, self.noises, self.rirs = speech, noises, rirs
        self.speech_weights = speech_weights
        self.sample_rate, self.settings = sample_rate, settings
        self.segment = int(settings.segment_s * sample_rate)

    def _crop(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if len(x) <= self.segment:
            return np.pad(x, (0, self.segment - len(x)))
        start = rng.integers(0, len(x) - self.segment)
        return x[start: start + self.segment]

    def _lowpass(self, noisy: np.ndarray, target: np.ndarray, cutoff_hz: float
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The same low-pass on input and target (a missing band is not the network's to fix)."""
        rate = self.sample_rate
        return (bandlimit(noisy[np.newaxis], rate, cutoff_hz=cutoff_hz)[0],
                bandlimit(target[np.newaxis], rate, cutoff_hz=cutoff_hz)[0])

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s = self.settings
        if self.speech_weights is None:
            index = rng.integers(len(self.speech))
        else:
            index = rng.choice(len(self.speech), p=self.speech_weights)
        clean = self._crop(self.speech[index], rng)
        noisy, target = clean.copy(), clean.copy()
        if self.rirs and rng.random() < s.p_reverb:
            rir = self.rirs[rng.integers(len(self.rirs))]
            early = int(s.early_ms * self.sample_rate / 1000)
            from scipy.signal import fftconvolve

            noisy = fftconvolve(clean, rir)[: self.segment].astype(np.float32)
            target = fftconvolve(clean, rir[:early])[: self.segment].astype(np.float32)
        if rng.random() < s.p_noise and np.any(noisy):
            noise = self.noises[rng.integers(len(self.noises))]
            noisy = add_noise(noisy[np.newaxis], self.sample_rate, snr_db=float(rng.uniform(*s.snr_db)),
                              noise=noise[np.newaxis], rng=rng)[0]
        if rng.random() < s.p_bandlimit:
            noisy, target = self._lowpass(noisy, target, float(rng.uniform(*s.bandlimit_hz)))
        # (no draw at all when off, so runs without roll-offs keep their random stream)
        if s.p_rolloff and rng.random() < s.p_rolloff:
            noisy, target = self._lowpass(noisy, target, float(rng.uniform(*s.rolloff_hz)))
        gain = db_to_amplitude(rng.uniform(*s.level_dbfs) + 26.0)
        peak = max(float(np.abs(noisy).max()) * gain, 1e-9)
        if peak > 0.99:  # keep the input unclipped: clipping is the declip stage's job
            gain *= 0.99 / peak
        return (noisy * gain).astype(np.float32), (target * gain).astype(np.float32)

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.example(rng) for _ in range(size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
