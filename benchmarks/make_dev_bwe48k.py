"""Build a small 48 kHz *dev* set damaged like eval/multi/bwe48k (through 8 or 16 kHz and back).

The 48 kHz sources are the smoke clips (../shared/data/smoke/speech/*_48k_*.flac); every clip is
passed through both 8 kHz and 16 kHz with soxr (audiomend.degradations.bandlimit, mode
"resample"), at -26 dBFS active level like eval/multi. Note: the freesound33711 clips are also
sources of two eval/multi/bwe48k files (other settings); use this set for tuning only.

    python benchmarks/make_dev_bwe48k.py /tmp/dev48/bwe48k
    audiomend bench --corpus /tmp/dev48/bwe48k --systems noisy,audiomend -o /tmp/bw/dev48.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from audiomend.degradations.chain import Chain, Step, make_corpus

SMOKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "smoke" / "speech"
VIA_RATES_HZ = (8000, 16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    out = args.out_dir
    (out / "clean").mkdir(parents=True, exist_ok=True)
    (out / "degraded").mkdir(parents=True, exist_ok=True)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        speech = Path(tmp) / "speech"
        speech.mkdir()
        for f in sorted(SMOKE.glob("*_48k_*.flac")):
            (speech / f.name).symlink_to(f.resolve())
        for via in VIA_RATES_HZ:
            chain = Chain((Step("bandlimit", 1.0, {"mode": "resample", "resample_hz": via}),))
            part = Path(tmp) / f"via{via}"
            for rec in make_corpus(speech, part, chain=chain, seed=args.seed, progress=False):
                name = rec["name"].replace(".flac", f"_via{via // 1000}k.flac")
                for kind in ("clean", "degraded"):
                    shutil.copyfile(part / kind / rec["name"], out / kind / name)
                records.append({**rec, "name": name, "via_rate_hz": via})
    (out / "recipes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    print(f"{len(records)} pairs in {out}")


if __name__ == "__main__":
    main()
