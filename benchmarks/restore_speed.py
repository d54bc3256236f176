"""Speed and memory of ``audiomend restore`` on one thread (not a test; results in restore_speed.md).

Measures, with ``OMP_NUM_THREADS=1``:

1. the real-time factor (processing time / audio time) of each stage's streaming processor and
   of the diagnosis pass, on a 60 s excerpt of 48 kHz stereo speech in noise;
2. ``restore_file`` end to end (both passes, reading and writing) on a 5-minute and a 60-minute
   48 kHz stereo file generated on the fly in a temporary folder, each in a fresh process, with
   its peak resident memory (``VmHWM``). Memory must not grow with duration.

The test signal: the 48 kHz speech clips of ``shared/data/smoke`` end to end, repeated, with
pauses, plus noise from ``smoke/noise`` at about 10 dB SNR and a little 50 Hz hum, the right
channel a slightly different mix. It is written block by block (never held whole) and deleted.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/restore_speed.py [--long-min 60] [--short-min 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import soundfile as sf

RATE = 48000
SMOKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "smoke"


def test_material() -> tuple[np.ndarray, np.ndarray]:
    """A ~20 s stereo period of speech + noise + hum at 48 kHz (tiled to any length)."""
    from audiomend.io import load

    clips = [load(p, sample_rate=RATE)[0][0] for p in sorted((SMOKE / "speech").glob("*48k*.flac"))]
    pause = np.zeros(int(0.4 * RATE), np.float32)
    speech = np.concatenate([c for clip in clips for c in (clip, pause)])
    speech = np.concatenate([speech, speech[::-1] * 0.8])        # ~18 s, varied
    speech *= 0.1 / np.sqrt(np.mean(speech**2))
    # a stationary noise (engine), so the diagnosis finds it and the denoiser runs
    engine = load(SMOKE / "noise" / "smoke_emgse_engine.flac", sample_rate=RATE)[0][0]
    noise = np.resize(engine, speech.shape)
    noise *= 0.03 / np.sqrt(np.mean(noise**2))
    t = np.arange(speech.shape[0]) / RATE
    hum = 0.003 * np.sin(2 * np.pi * 50 * t)
    left = speech + noise + hum
    right = 0.9 * speech + np.roll(noise, 12345) + hum
    return np.stack([left, right]).astype(np.float32), speech


def write_long(path: Path, minutes: float) -> None:
    period, _ = test_material()
    total = int(minutes * 60 * RATE)
    with sf.SoundFile(str(path), "w", RATE, 2, subtype="PCM_16", format="WAV") as f:
        done = 0
        while done < total:
            n = min(period.shape[1], total - done)
            f.write(period[:, :n].T)
            done += n


def stage_rtfs(seconds: float = 60.0) -> dict[str, float]:
    """RTF of each registered stage's processor (default parameters) and of the diagnosis."""
    from audiomend.diagnose import diagnose
    from audiomend.pipeline import REPAIR_ORDER
    from audiomend.stages import STAGES

    period, _ = test_material()
    audio = np.resize(period, (2, int(seconds * RATE)))
    out = {}
    t0 = time.perf_counter()
    diagnose(audio, RATE)
    out["diagnose"] = (time.perf_counter() - t0) / seconds
    block = 10 * RATE
    rng = np.random.default_rng(0)
    for name in list(REPAIR_ORDER) + ["neural"]:
        if name not in STAGES:
            continue
        stage = STAGES[name]() if name != "loudness" else STAGES[name](gain_db=6.0)
        x = audio
        if name == "declip":      # give the declipper work: clip 6 dB below the peak
            level = 0.5 * float(np.abs(audio).max())
            x = np.clip(audio, -level, level)
        elif name == "declick":   # ... and the declicker 5 clicks a second
            x = audio.copy()
            at = rng.integers(0, audio.shape[1] - 30, int(5 * seconds))
            x[:, at] += 0.3
        proc = stage.processor(RATE, 2)
        t0 = time.perf_counter()
        for start in range(0, x.shape[1], block):
            proc.process(x[:, start:start + block])
        proc.flush()
        out[name] = (time.perf_counter() - t0) / seconds
        print(f"  {name:<10} RTF {out[name]:.4f}", file=sys.stderr, flush=True)
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM (ru_maxrss would include the parent's
    memory at fork time on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """Run one restore_file in this (fresh) process and print time and peak memory as JSON."""
    from audiomend.pipeline import RestoreOptions, restore_file

    stages = tuple(args.stages.split(",")) if args.stages else None
    t0 = time.perf_counter()
    result = restore_file(args.input, args.output, RestoreOptions(stages=stages))
    wall = time.perf_counter() - t0
    rss_mb = peak_rss_mb()
    print(json.dumps({"duration_s": result.duration_s, "wall_s": wall, "rtf": wall / result.duration_s,
                      "peak_rss_mb": rss_mb, "stages": [s["name"] for s in result.stages]}))


def run_child(inp: Path, out: Path, stages: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--input", str(inp), "--output", str(out)]
    if stages:
        cmd += ["--stages", stages]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--stages", default=None)
    parser.add_argument("--short-min", type=float, default=5.0)
    parser.add_argument("--long-min", type=float, default=60.0)
    parser.add_argument("--skip-stage-rtf", action="store_true")
    parser.add_argument("--skip-files", action="store_true")
    parser.add_argument("--full-chain-min", type=float, default=1.0,
                        help="also restore a file this long with every stage forced")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(f"python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}", flush=True)
    if not args.skip_stage_rtf:
        print("per-stage RTF on 60 s of 48 kHz stereo:", flush=True)
        rtfs = stage_rtfs()
        print(json.dumps({"stage_rtf": rtfs}), flush=True)
    from audiomend.pipeline import REPAIR_ORDER

    every = ",".join(REPAIR_ORDER)
    runs = [(args.full_chain_min, "every stage", every)] if args.full_chain_min else []
    if not args.skip_files:
        runs += [(args.short_min, "auto plan", None), (args.long_min, "auto plan", None)]
    with tempfile.TemporaryDirectory(prefix="restore_speed_") as tmp:
        for minutes, label, stages in runs:
            src = Path(tmp) / f"in_{minutes:g}min.wav"
            write_long(src, minutes)
            r = run_child(src, Path(tmp) / "out.wav", stages)
            r.update(minutes=minutes, plan=label)
            print(json.dumps(r), flush=True)
            src.unlink()
            (Path(tmp) / "out.wav").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
