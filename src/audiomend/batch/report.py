"""A self-contained HTML report of a batch: totals, then one row per file, worst first.

Rows come from journal records (this run's and, for skipped files, the last run's). "Worst" is:
failures first, then files by ascending estimated SNR after restoration (files without scores
last). Each row shows the diagnosis and the reference-free scores before and after.

Examples
--------
>>> from audiomend.batch.journal import JournalRecord
>>> r = JournalRecord(status="failed", key="a.wav", input="/in/a.wav", output="/out/a.wav",
...                   settings_hash="x", error="/in/a.wav: file is empty (0 bytes)")
>>> "file is empty" in batch_report_html([r], title="t")
True
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audiomend.batch.journal import JournalRecord

#: Scores shown (key, label, format), in this order, when any record has them.
SCORE_COLUMNS = (
    ("rms_dbfs", "level dBFS", "{:.1f}"),
    ("peak_dbfs", "peak dBFS", "{:.1f}"),
    ("clipped_fraction", "clipped %", "{:.3%}"),
    ("estimated_snr_db", "est. SNR dB", "{:.1f}"),
    ("bandwidth_hz", "bandwidth Hz", "{:.0f}"),
    ("dnsmos_ovrl", "DNSMOS OVRL", "{:.2f}"),
)

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;
vertical-align:top;text-align:left}th{background:#f3f3f3}.failed td{background:#fde8e8}
.thumb{display:inline-block;font-size:11px;color:#777;margin:4px 6px 0 0}
.num{text-align:right;font-variant-numeric:tabular-nums}.diag{font-size:12px;color:#555}
"""


def _fmt(value: Any, pattern: str) -> str:
    if value is None:
        return "–"
    try:
        return pattern.format(value)
    except (TypeError, ValueError):
        return html.escape(str(value))


def _diagnosis_text(diagnosis: dict | None, limit: int = 12) -> str:
    if not diagnosis:
        return ""
    parts = []
    for k, v in diagnosis.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.3g}")
        elif isinstance(v, (int, str, bool)) or v is None:
            parts.append(f"{k}={v}")
        elif isinstance(v, (list, tuple)) and len(v) <= 6:
            parts.append(f"{k}={list(v)}")
    more = " …" if len(parts) > limit else ""
    return html.escape(", ".join(parts[:limit]) + more)


def _worst_first(r: JournalRecord) -> tuple:
    after = ((r.scores or {}).get("after") or {})
    snr = after.get("estimated_snr_db")
    return (r.status != "failed", snr is None, snr if snr is not None else 0.0, r.key)


def batch_report_html(records: Iterable[JournalRecord], *, title: str = "audiomend batch",
                      wall_s: float | None = None,
                      thumbnails: dict[str, dict[str, str]] | None = None) -> str:
    """Render records as one HTML page (no external files or scripts).

    Parameters
    ----------
    records : one per file (the latest of each).
    title : page title.
    wall_s : wall time of the run, seconds, for the throughput line (None omits it).
    thumbnails : key -> {"before": b64 JPEG, "after": b64 JPEG}; shown under the file name.

    Returns
    -------
    str, the HTML document.
    """
    rows = sorted(records, key=_worst_first)
    thumbnails = thumbnails or {}
    done = [r for r in rows if r.status == "done"]
    failed = [r for r in rows if r.status == "failed"]
    audio_h = sum(r.duration_s or 0.0 for r in done) / 3600
    cols = [c for c in SCORE_COLUMNS
            if any(c[0] in ((r.scores or {}).get("after") or {}) for r in rows)]
    out = [(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"),
           (f"<p>{time.strftime('%Y-%m-%d %H:%M')} · {len(rows)} files: {len(done)} restored, "
           f"{len(failed)} failed · {audio_h:.3f} h of audio")]
    if wall_s:
        out.append(f" · {wall_s / 60:.1f} min wall (this run)")
    out.append("</p>")
    if done and cols:
        out.append("<table><tr><th>mean over restored files</th>"
                   + "".join(f"<th>{label}</th>" for _, label, _ in cols) + "</tr>")
        for when in ("before", "after"):
            cells = []
            for key, _, pattern in cols:
                vals = [((r.scores or {}).get(when) or {}).get(key) for r in done]
                vals = [v for v in vals if v is not None]
                cells.append(f"<td class='num'>{_fmt(sum(vals) / len(vals) if vals else None, pattern)}</td>")
            out.append(f"<tr><td>{when}</td>{''.join(cells)}</tr>")
        out.append("</table>")
    head = "".join(f"<th>{label}<br>before → after</th>" for _, label, _ in cols)
    out.append(f"<table><tr><th>file</th><th>status</th><th>duration s</th><th>RTF</th>"
               f"<th>stages / diagnosis</th>{head}</tr>")
    for r in rows:
        if r.status == "failed":
            out.append(f"<tr class='failed'><td>{html.escape(r.input)}</td><td>failed</td>"
                       f"<td colspan='{3 + len(cols)}'>{html.escape(r.error or '')}</td></tr>")
            continue
        before = (r.scores or {}).get("before") or {}
        after = (r.scores or {}).get("after") or {}
        cells = "".join(f"<td class='num'>{_fmt(before.get(k), p)} → {_fmt(after.get(k), p)}</td>"
                        for k, _, p in cols)
        stages = ", ".join(s.get("name", "?") if isinstance(s, dict) else str(s)
                           for s in (r.stages or []))
        thumbs = thumbnails.get(r.key) or {}
        pics = "".join(f"<div class='thumb'>{when}<br><img alt='{when}' src='data:image/jpeg;base64,"
                       f"{thumbs[when]}'></div>" for when in ("before", "after") if thumbs.get(when))
        out.append(f"<tr><td>{html.escape(r.input)}<br>→ {html.escape(r.output)}{pics}</td><td>done</td>"
                   f"<td class='num'>{_fmt(r.duration_s, '{:.1f}')}</td>"
                   f"<td class='num'>{_fmt(r.rtf, '{:.3f}')}</td>"
                   f"<td>{html.escape(stages)}<div class='diag'>{_diagnosis_text(r.diagnosis)}</div></td>"
                   f"{cells}</tr>")
    out.append("</table></body></html>")
    return "".join(out)


def write_batch_report(path: str | os.PathLike, records: Iterable[JournalRecord], **kwargs: Any) -> Path:
    """Write :func:`batch_report_html` to ``path`` atomically; return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(batch_report_html(records, **kwargs), encoding="utf-8")
    os.replace(tmp, p)
    return p
