"""How often `diagnose` finds each damage, per corpus category: a confusion table.

    python benchmarks/diagnose_accuracy.py                       # the dev corpus, /tmp/dev
    python benchmarks/diagnose_accuracy.py ../shared/data/eval/multi --save /tmp/eval_diag.json
    python benchmarks/diagnose_accuracy.py --make-sim /tmp/diagacc/sim   # then diagnose it

The corpus is laid out as ``audiomend bench`` reads it: ``<corpus>/<category>/degraded/*`` with a
``recipes.jsonl`` per category (see benchmarks/make_dev_corpus.py). Every degraded file is
diagnosed with :func:`audiomend.diagnose.diagnose_file` (the ``audiomend diagnose`` path).

Printed (markdown):

* the confusion table: one row per category, one column per finding (noise, reverb, clipping,
  hum, bandwidth, level, clicks, dc), each cell the fraction of the category's files where the
  finding is present. Cells a category should light up (its own damage) are in bold;
* per finding, the detection rate on files whose recipe contains that damage and the false
  alarm rate on files whose recipe does not (expected damages read from each file's recipe, so
  mixed categories such as ``combo`` count right);
* the diagnosis time per minute of audio.

Which recipe entries count as which damage: dev recipes (``audiomend degrade`` chains) name
their steps (noise, reverb, clip, bandlimit, gain, hum, clicks); ``eval/multi`` recipes carry
parameters (``snr_db`` = noise, ``rir`` = reverb, ``clip_*`` = clipping, ``lowpass_hz`` and
``via_rate_hz`` = bandwidth, ``gain_db`` = level, ``hum_*`` / ``mains_hz`` = hum). A ``gain``
file may also read as noisy: its -85 dBFS floor sits only 25-35 dB under the quiet speech, so
noise there is not counted as a false alarm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FINDINGS = ("noise", "reverb", "clipping", "hum", "bandwidth", "level", "clicks", "dc")
DEFAULT_CATEGORIES = ("clean", "noise", "reverb", "noise_reverb", "clip", "bandlimit", "gain",
                      "hum", "noise_bandlimit")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}

#: Degradation step names of dev recipes -> finding.
_STEP_FINDING = {"noise": "noise", "reverb": "reverb", "clip": "clipping", "bandlimit": "bandwidth",
                 "lowpass": "bandwidth", "gain": "level", "hum": "hum", "clicks": "clicks"}
#: Findings that are tolerated (not a false alarm) next to a given damage.
_TOLERATED = {"level": {"noise"}}


def expected_findings(recipe: dict) -> set[str]:
    """The findings a recipe line (dev or eval/multi format) should produce."""
    if "recipe" in recipe:
        steps = recipe["recipe"].get("degradations", [])
        return {_STEP_FINDING[s["name"]] for s in steps if s["name"] in _STEP_FINDING}
    out = set()
    if "snr_db" in recipe:
        out.add("noise")
    if "rir" in recipe:
        out.add("reverb")
    if any(k.startswith("clip") for k in recipe):
        out.add("clipping")
    if "lowpass_hz" in recipe or "via_rate_hz" in recipe:
        out.add("bandwidth")
    if "gain_db" in recipe:
        out.add("level")
    if "mains_hz" in recipe or any(k.startswith("hum") for k in recipe):
        out.add("hum")
    return out


def make_sim(out_dir: Path) -> None:
    """The "sim" tuning corpus of benchmarks/diagnose_accuracy.md: 12 files per category from
    train/ speech, noises and rooms other than the dev corpus's, covering hum under pink and
    real noise, noise-only of three kinds, clean, reverb and gain."""
    import os
    import tempfile

    from audiomend.degradations.chain import Chain, Step, make_corpus
    from audiomend.train.data import _files

    train = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
    hum = Step("hum", 1.0, {"mains_hz": [50.0, 60.0], "level_db": (-20.0, -3.0)})
    categories = {   # name: (chain, real noises from train/ or generated coloured noise)
        "clean": (Chain(()), True),
        "noise_pink": (Chain((Step("noise", 1.0, {"snr_db": (-2.0, 15.0), "color": "pink"}),)), False),
        "noise_white": (Chain((Step("noise", 1.0, {"snr_db": (-2.0, 15.0)}),)), False),
        "noise": (Chain((Step("noise", 1.0, {"snr_db": (-2.0, 15.0)}),)), True),
        "hum_pink": (Chain((Step("noise", 1.0, {"snr_db": (0.0, 15.0), "color": "pink"}), hum)), False),
        "hum_noise": (Chain((Step("noise", 1.0, {"snr_db": (0.0, 15.0)}), hum)), True),
        "hum": (Chain((hum,)), True),
        "reverb": (Chain((Step("reverb", 1.0, {}),)), True),
        "gain": (Chain((Step("gain", 1.0, {"gain_db": (-35.0, -20.0), "noise_floor_dbfs": -85.0}),)), True),
    }

    def link(files: list[Path], folder: Path) -> Path:
        folder.mkdir(parents=True)
        for f in files:
            os.symlink(f.resolve(), folder / f.name)
        return folder

    with tempfile.TemporaryDirectory() as tmp:
        speech = link(_files([train / "speech"])[7::20], Path(tmp) / "speech")
        noise = link(_files([train / "noise"])[3::10], Path(tmp) / "noise")
        rir = link(_files([train / "rir"])[2::5], Path(tmp) / "rir")
        for i, (name, (chain, real)) in enumerate(categories.items()):
            make_corpus(speech, out_dir / name, noise_dir=noise if real else None, rir_dir=rir,
                        chain=chain, seed=101 + i, sample_rate=16000, count=12, progress=False)
            print(f"{name}: 12 pairs", file=sys.stderr)


def load_recipes(folder: Path) -> dict[str, dict]:
    path = folder / "recipes.jsonl"
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[Path(r["name"]).stem] = r
    return out


def run(corpus: Path, categories: list[str]) -> tuple[list[dict], float, float]:
    """Diagnose every degraded file; per-file rows, total seconds of audio, seconds spent."""
    from audiomend.diagnose import diagnose_file

    rows, audio_s, spent = [], 0.0, 0.0
    for cat in categories:
        folder = corpus / cat
        recipes = load_recipes(folder)
        files = sorted(p for p in (folder / "degraded").iterdir() if p.suffix in AUDIO_SUFFIXES)
        for path in files:
            t0 = time.perf_counter()
            d = diagnose_file(path)
            spent += time.perf_counter() - t0
            audio_s += d.duration_s
            recipe = recipes.get(path.stem, {})
            rows.append({"category": cat, "file": path.name,
                         "expected": sorted(expected_findings(recipe)) if recipe else None,
                         "diagnosis": d.to_dict()})
            print(f"{cat}/{path.name}: {d.damages}", file=sys.stderr)
    return rows, audio_s, spent


def table(rows: list[dict], categories: list[str]) -> str:
    """The markdown confusion table (category x finding, fraction present)."""
    lines = ["| category | n | " + " | ".join(FINDINGS) + " |",
             "|---|---:|" + "---:|" * len(FINDINGS)]
    for cat in categories:
        sel = [r for r in rows if r["category"] == cat]
        if not sel:
            continue
        cells = []
        own = set.union(*(set(r["expected"] or ()) for r in sel))
        for f in FINDINGS:
            frac = sum(r["diagnosis"][f]["present"] for r in sel) / len(sel)
            cell = f"{frac:.1f}" if frac else "."
            cells.append(f"**{cell}**" if f in own else cell)
        lines.append(f"| {cat} | {len(sel)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rates(rows: list[dict]) -> str:
    """Per finding: detected / files with the damage, false alarms / files without it."""
    lines = ["| finding | detected | false alarms |", "|---|---:|---:|"]
    known = [r for r in rows if r["expected"] is not None]
    for f in FINDINGS:
        pos = [r for r in known if f in r["expected"]]
        neg = [r for r in known if f not in r["expected"]
               and not any(f in _TOLERATED.get(e, ()) for e in r["expected"])]
        hit = sum(r["diagnosis"][f]["present"] for r in pos)
        fa = sum(r["diagnosis"][f]["present"] for r in neg)
        det = f"{hit}/{len(pos)}" if pos else "-"
        lines.append(f"| {f} | {det} | {fa}/{len(neg)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default="/tmp/dev", type=Path)
    ap.add_argument("--categories", default=None,
                    help="comma-separated; default: every category folder of the corpus "
                         "(the dev set: " + ",".join(DEFAULT_CATEGORIES) + ")")
    ap.add_argument("--save", type=Path, default=None,
                    help="write the per-file diagnoses as JSON here")
    ap.add_argument("--load", type=Path, default=None,
                    help="print the tables of a --save file instead of diagnosing again")
    ap.add_argument("--make-sim", type=Path, default=None, metavar="DIR",
                    help="build the simulated tuning corpus (see make_sim) in DIR and stop")
    args = ap.parse_args(argv)
    if args.make_sim:
        make_sim(args.make_sim)
        return 0
    if args.load:
        saved = json.loads(args.load.read_text())
        rows, audio_s, spent = saved["rows"], saved["audio_s"], saved["spent_s"]
        categories = saved["categories"]
    else:
        if args.categories:
            categories = args.categories.split(",")
        else:
            present = {p.name for p in args.corpus.iterdir() if (p / "degraded").is_dir()}
            categories = [c for c in DEFAULT_CATEGORIES if c in present]
            categories += sorted(present - set(categories))
        rows, audio_s, spent = run(args.corpus, categories)
        if args.save:
            args.save.write_text(json.dumps({"corpus": str(args.corpus), "categories": categories,
                                             "audio_s": audio_s, "spent_s": spent,
                                             "rows": rows}))
    print(f"Fraction of files where each finding is present ({len(rows)} files; bold: the "
          "category's own damage).\n")
    print(table(rows, categories))
    print("\nPer finding, over files whose recipe has / lacks the damage:\n")
    print(rates(rows))
    print(f"\nDiagnosis time: {spent:.1f} s for {audio_s / 60:.1f} min of audio "
          f"({60 * spent / max(audio_s, 1e-9):.2f} s per minute of audio).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
