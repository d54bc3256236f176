"""Bench outputs: a markdown table per category, CSV and JSON of every per-file score, a PNG plot.

Summaries are means over files (NaN-free values only) per (category, system) and over the whole
corpus (``overall``). The real-time factor of a group is its total processing time over its total
audio time; the lag column is the mean residual lag in ms with the largest absolute lag beside it.

Examples
--------
>>> from audiomend.bench.run import BenchResult, FileResult
>>> r = BenchResult(["noisy"], ["si_sdr"], "demo", rows=[
...     FileResult("noisy", "noise", "a", 16000, 2.0, scores={"si_sdr": 5.0})])
>>> summarise(r)[("overall", "noisy")]["si_sdr"]
5.0
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audiomend.bench.run import BenchResult

#: Column titles of the metrics in tables and plots.
TITLES = {"pesq_wb": "PESQ-WB", "pesq_nb": "PESQ-NB", "stoi": "STOI", "estoi": "ESTOI",
          "si_sdr": "SI-SDR dB", "snr": "SNR dB", "segsnr": "segSNR dB", "lsd": "LSD dB",
          "dnsmos_sig": "SIG", "dnsmos_bak": "BAK", "dnsmos_ovrl": "OVRL", "dnsmos_p808": "P808"}

#: Metrics drawn in the PNG, when scored.
PLOTTED = ("pesq_wb", "estoi", "si_sdr", "lsd", "dnsmos_ovrl")


def _mean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """sum(numerators) / sum(denominators) over the pairs with a finite numerator; NaN if 0."""
    pairs = [(n, d) for n, d in zip(numerators, denominators) if math.isfinite(n)]
    total = sum(d for _, d in pairs)
    return sum(n for n, _ in pairs) / total if total else float("nan")


def summarise(result: BenchResult) -> dict[tuple[str, str], dict[str, float]]:
    """Means per ``(category, system)`` and ``("overall", system)``.

    Each summary holds the metric means, ``files`` (count), ``failed`` (files with an error),
    ``unscored`` (processed, but a metric could not be computed: NaN, left out of its mean),
    ``rtf`` (total processing s / total audio s), ``cpu_rtf`` (the same with CPU seconds),
    ``peak_mem_mib`` (largest, MiB), ``lag_ms`` (mean) and ``lag_max_ms`` (largest absolute lag).
    """
    groups: dict[tuple[str, str], list] = {}
    for row in result.rows:
        groups.setdefault((row.category, row.system), []).append(row)
        groups.setdefault(("overall", row.system), []).append(row)
    out: dict[tuple[str, str], dict[str, float]] = {}
    for key, rows in groups.items():
        timed = [r for r in rows if math.isfinite(r.process_s)]
        audio_s = [r.duration_s for r in timed]
        lags = [r.lag_ms for r in rows if math.isfinite(r.lag_ms)]
        mems = [r.peak_mem_mib for r in rows if math.isfinite(r.peak_mem_mib)]
        summary = {m: _mean([r.scores.get(m, float("nan")) for r in rows]) for m in result.metrics}
        summary.update(
            files=float(len(rows)),
            failed=float(sum(1 for r in rows if r.error and not math.isfinite(r.process_s))),
            unscored=float(sum(1 for r in rows if math.isfinite(r.process_s) and any(
                not math.isfinite(r.scores.get(m, float("nan"))) for m in result.metrics))),
            rtf=_ratio([r.process_s for r in timed], audio_s),
            cpu_rtf=_ratio([r.cpu_s for r in timed], audio_s),
            peak_mem_mib=max(mems) if mems else float("nan"),
            lag_ms=_mean(lags),
            lag_max_ms=max((abs(v) for v in lags), default=float("nan")),
        )
        out[key] = summary
    return out


def _fmt(value: float, metric: str) -> str:
    if not math.isfinite(value):
        return "-"
    if metric == "lag" and abs(value) < 0.005:
        return "0.00"  # not "-0.00" for sub-sample noise
    if metric in ("estoi", "stoi"):
        return f"{value:.3f}"
    if metric in ("rtf", "cpu_rtf"):
        return f"{value:.4f}"
    if metric in ("si_sdr", "snr", "segsnr", "peak_mem_mib"):
        return f"{value:.1f}"
    return f"{value:.2f}"


def _files_cell(summary: dict[str, float]) -> str:
    notes = [f"{int(summary[k])} {k}" for k in ("failed", "unscored") if summary.get(k)]
    return f"{int(summary['files'])}" + (f" ({', '.join(notes)})" if notes else "")


def markdown(result: BenchResult, *, machine: dict[str, Any] | None = None,
             command: str = "") -> str:
    """The report as markdown: one table per category (rows = systems), then overall."""
    summary = summarise(result)
    systems = [s for s in result.systems if s not in result.skipped]
    categories = result.categories
    if len(categories) > 1:
        categories = categories + ["overall"]
    headers = ([TITLES.get(m, m) for m in result.metrics]
               + ["RTF", "CPU RTF", "peak MiB", "lag ms", "max lag ms", "files"])
    lines = [f"# audiomend bench: {result.corpus}", ""]
    if command:
        lines += ["Regenerate with:", "", "```", command, "```", ""]
    lines += [("Means over files; metrics after compensating each output's residual lag "
               "(reported). RTF = processing s / audio s on one thread after a warm-up, file I/O "
               "excluded; CPU RTF = the same in CPU seconds of the process (robust to other "
               "programs sharing the cores). Peak MiB = max(tracemalloc peak, peak RSS increase) "
               "of processing one file. Higher is better except LSD."), ""]
    for category in categories:
        lines += [f"## {category}", "", "| system | " + " | ".join(headers) + " |",
                  "|---|" + "---|" * len(headers)]
        for system in systems:
            s = summary.get((category, system))
            if s is None:
                continue
            cells = [_fmt(s[m], m) for m in result.metrics]
            cells += [_fmt(s["rtf"], "rtf"), _fmt(s["cpu_rtf"], "cpu_rtf"),
                      _fmt(s["peak_mem_mib"], "peak_mem_mib"), _fmt(s["lag_ms"], "lag"),
                      _fmt(s["lag_max_ms"], "lag"), _files_cell(s)]
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        lines.append("")
    if result.skipped:
        lines += ["## Skipped systems", ""]
        lines += [f"- `{name}`: {reason}" for name, reason in result.skipped.items()]
        lines.append("")
    errors = [r for r in result.rows if r.error]
    if errors:
        lines += ["## Errors", ""]
        lines += [f"- `{r.system}` on {r.category}/{r.file}: {r.error}" for r in errors[:50]]
        if len(errors) > 50:
            lines.append(f"- ... and {len(errors) - 50} more (see the JSON)")
        lines.append("")
    if machine:
        pkgs = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
        lines += ["## Machine", "",
                  (f"{machine.get('cpu')}, nproc {machine.get('nproc')}, "
                   f"{machine.get('ram_gib')} GiB RAM, Python {machine.get('python')}, "
                   f"{machine.get('platform')}; jobs {result.settings.get('jobs')}."), "",
                  f"Packages: {pkgs}.", ""]
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    return value


def to_json(result: BenchResult, *, machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything as one JSON-serialisable dict (NaN written as null)."""
    summary = summarise(result)
    return _json_safe({
        "corpus": result.corpus, "systems": result.systems, "metrics": result.metrics,
        "skipped": result.skipped, "settings": result.settings, "machine": machine or {},
        "summary": [{"category": c, "system": s, **v} for (c, s), v in summary.items()],
        "files": [r.flat() for r in result.rows],
    })


def load_json(path: str | os.PathLike) -> BenchResult:
    """Rebuild a :class:`BenchResult` from :func:`to_json` output (to re-render a report)."""
    from audiomend.bench.run import FileResult

    data = json.loads(Path(path).read_text())
    fixed = {"system", "category", "file", "sample_rate", "duration_s", "process_s", "rtf",
             "cpu_s", "peak_mem_mib", "lag_ms", "error"}
    nan = float("nan")
    rows = []
    for row in data["files"]:
        scores = {m: nan if row.get(m) is None else float(row[m]) for m in data["metrics"]}
        kwargs = {k: (nan if row.get(k) is None else row[k]) for k in fixed if k in row}
        kwargs["error"] = row.get("error") or ""
        rows.append(FileResult(**kwargs, scores=scores))
    return BenchResult(data["systems"], data["metrics"], data["corpus"], rows=rows,
                       skipped=data.get("skipped", {}), settings=data.get("settings", {}))


def write_csv(result: BenchResult, path: str | os.PathLike) -> Path:
    """One row per (system, file) with every score."""
    path = Path(path)
    fields = ["system", "category", "file", "sample_rate", "duration_s", "process_s", "rtf",
              "cpu_s", "peak_mem_mib", "lag_ms", *result.metrics, "error"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in result.rows:
            writer.writerow({k: v for k, v in row.flat().items() if k in fields})
    return path


def plot(result: BenchResult, path: str | os.PathLike) -> Path | None:
    """A PNG with one panel per metric: grouped bars of the mean per category per system.

    Returns None (and writes nothing) when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    summary = summarise(result)
    metrics = [m for m in PLOTTED if m in result.metrics] or list(result.metrics[:4])
    systems = [s for s in result.systems if s not in result.skipped]
    categories = result.categories
    width = 0.8 / max(len(systems), 1)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(8, 1.2 * len(categories) + 3),
                                                       2.6 * len(metrics)), squeeze=False)
    x = np.arange(len(categories))
    for ax, metric in zip(axes[:, 0], metrics):
        for j, system in enumerate(systems):
            values = [summary.get((c, system), {}).get(metric, float("nan")) for c in categories]
            ax.bar(x + (j - (len(systems) - 1) / 2) * width, values, width, label=system)
        if metric in ("si_sdr", "snr", "segsnr"):
            ax.set_ylim(top=min(ax.get_ylim()[1], 50.0))  # an identity on clean input is ~200 dB
        ax.set_ylabel(TITLES.get(metric, metric))
        ax.set_xticks(x, categories)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle(f"audiomend bench: {result.corpus}")
    top = 1 - 0.9 / fig.get_figheight()
    fig.legend(handles, labels, fontsize="small", loc="upper center",
               ncol=min(len(systems), int(fig.get_figwidth() / 1.7)),
               bbox_to_anchor=(0.5, top + 0.35 / fig.get_figheight()))
    fig.tight_layout(rect=(0, 0, 1, top - 0.1 / fig.get_figheight()))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(result: BenchResult, markdown_path: str | os.PathLike, *,
              machine: dict[str, Any] | None = None, command: str = "") -> list[Path]:
    """Write ``X.md`` and, beside it, ``X.csv``, ``X.json`` and ``X.png``; return the paths."""
    md = Path(markdown_path)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(markdown(result, machine=machine, command=command))
    written = [md, write_csv(result, md.with_suffix(".csv"))]
    json_path = md.with_suffix(".json")
    json_path.write_text(json.dumps(to_json(result, machine=machine), indent=1))
    written.append(json_path)
    png = plot(result, md.with_suffix(".png"))
    if png is not None:
        written.append(png)
    return written
