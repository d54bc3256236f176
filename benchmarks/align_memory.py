"""Peak memory and time of ``audiomend align`` on long 48 kHz stereo files.

Builds, in a temporary folder (default ``/tmp/audiomend_align_bench``, never the repository), a
reference and a take of the requested lengths: the three 48 kHz smoke speech clips
(``../shared/data/smoke/speech``) looped, in stereo with different gains per channel, with
independent white noise at 20 dB SNR in each file; the take lags the reference by a known
fractional delay (``--delay-samples``, applied exactly to the periodic loop with an FFT phase
ramp). Files are written block by block (16-bit WAV), so building them needs little memory.

Each measurement runs ``audiomend align REF TAKE -o OUT --json`` in a fresh process and reads
its peak resident memory (``ru_maxrss`` of the child) and wall time; the found delay is checked.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/align_memory.py --minutes 10 60   # table on stdout
    python benchmarks/align_memory.py --minutes 1                         # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "data" / "smoke" / "speech"
RATE = 48000


def speech_loop() -> np.ndarray:
    """The 48 kHz smoke clips concatenated (mono float64), one period of the test signal."""
    import soundfile as sf

    clips = [sf.read(p, dtype="float64", always_2d=True)[0].mean(axis=1)
             for p in sorted(SPEECH.glob("*48k*.flac"))]
    if not clips:
        sys.exit(f"48 kHz smoke speech not found under {SPEECH}")
    return np.concatenate(clips)


def write_long(path: Path, loop: np.ndarray, *, seconds: float, delay_samples: float,
               seed: int) -> None:
    """Write ``seconds`` of the looped speech delayed by ``delay_samples``, stereo, with noise."""
    import soundfile as sf

    period = loop.size
    freqs = np.fft.rfftfreq(period)
    shifted = np.fft.irfft(np.fft.rfft(loop) * np.exp(-2j * np.pi * freqs * delay_samples), period)
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(np.mean(loop ** 2)) * 10 ** (-20 / 20)
    total = int(seconds * RATE)
    block = 10 * RATE
    with sf.SoundFile(path, "w", samplerate=RATE, channels=2, subtype="PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            s = shifted[(np.arange(start, start + n)) % period]
            stereo = np.stack([0.5 * s, -0.3 * s], axis=1)
            stereo += sigma * 0.5 * rng.standard_normal(stereo.shape)
            f.write(stereo.astype(np.float32))


def measure(ref: Path, take: Path, out: Path) -> dict:
    """Run ``audiomend align`` in a child process; its own peak RSS (MB), wall time and result."""
    cmd = [sys.executable, "-m", "audiomend", "align", str(ref), str(take), "-o", str(out), "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode != 0:
            return {"error": stderr.read().strip().splitlines()[-1:], "wall_s": wall}
        return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, **json.loads(stdout.read())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--delay-samples", type=float, default=1234.4)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/audiomend_align_bench"))
    parser.add_argument("--label", default="streamed", help="name of the measured version")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    loop = speech_loop()
    load_before = os.getloadavg()[0]
    rows = []
    for minutes in sorted(args.minutes):
        ref = args.folder / f"ref_{minutes:g}min.wav"
        take = args.folder / f"take_{minutes:g}min.wav"
        if not (ref.exists() and take.exists()):
            write_long(ref, loop, seconds=60 * minutes, delay_samples=0.0, seed=1)
            write_long(take, loop, seconds=60 * minutes, delay_samples=args.delay_samples, seed=2)
        r = measure(ref, take, args.folder / f"aligned_{minutes:g}min.wav")
        r["minutes"] = minutes
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)
        (args.folder / f"aligned_{minutes:g}min.wav").unlink(missing_ok=True)
    lines = [
        f"| {r['minutes']:g} min | {r.get('peak_rss_mb', float('nan')):.0f} | {r['wall_s']:.1f} | "
        f"{r['wall_s'] / (60 * r['minutes']):.4f} | {r.get('delay_samples', r.get('error'))} |"
        for r in rows
    ]
    table = "\n".join([
        (f"Version: {args.label}; {time.strftime('%Y-%m-%d %H:%M')}, {platform.python_version()}, "
         f"{platform.machine()}, {os.cpu_count()} CPU cores, OMP_NUM_THREADS=1; load average "
         f"{load_before:.1f} before. True delay {args.delay_samples} samples."),
        "",
        "| length (48 kHz stereo, 16-bit WAV) | peak RSS MB | wall s | RTF | delay found (samples) |",
        "|---|---|---|---|---|",
        *lines,
    ])
    print(table)  # pasted into benchmarks/align_memory.md


if __name__ == "__main__":
    main()
