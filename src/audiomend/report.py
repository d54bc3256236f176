"""HTML reports of a restoration: diagnosis, stages applied, before/after scores, spectrograms.

:func:`write_report` writes one self-contained HTML file (spectrograms embedded as base64 PNG,
drawn with matplotlib's Agg backend, imported only here). Scores are reference-free
(:mod:`audiomend.metrics`): levels, clipped fraction, estimated SNR, bandwidth and DNSMOS where
its dependencies are installed. For long files the caller passes an excerpt (the first 60 s,
:data:`REPORT_EXCERPT_S`), so memory stays flat; the report says so.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from audiomend.diagnose import diagnose
>>> x = (0.1 * np.sin(np.arange(16000) / 3.0)).astype(np.float32)[None]
>>> d = diagnose(x, 16000)
>>> path = os.path.join(tempfile.mkdtemp(), "r.html")
>>> _ = write_report(path, diagnosis=d, stages=[], before={"peak_dbfs": -20.0},
...                  after={"peak_dbfs": -20.0}, spectrogram_before=(x, 16000),
...                  spectrogram_after=(x, 16000))
>>> open(path).read().count("data:image/png;base64,")
2
"""

from __future__ import annotations

import base64
import html
import io as _io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audiomend.diagnose import DAMAGES, Diagnosis
from audiomend.errors import MissingDependencyError

#: Reports analyse at most this much of the start of a file, so memory stays flat.
REPORT_EXCERPT_S = 60.0

#: Reference-free scores shown before/after (DNSMOS added when it can run).
SCORES = ("peak_dbfs", "rms_dbfs", "loudness_lufs", "clipped_fraction", "dc_offset",
          "estimated_snr_db", "bandwidth_hz")
DNSMOS_SCORES = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")

_UNITS = {"peak_dbfs": "dBFS", "rms_dbfs": "dBFS", "loudness_lufs": "LUFS", "clipped_fraction": "",
          "dc_offset": "FS", "estimated_snr_db": "dB", "bandwidth_hz": "Hz", "dnsmos_sig": "MOS",
          "dnsmos_bak": "MOS", "dnsmos_ovrl": "MOS"}

_FINDING_UNITS = {"clipping": "clipped fraction", "hum": "dB re signal", "noise": "SNR dB",
                  "reverb": "RT60 s", "bandwidth": "Hz", "clicks": "clicks/s", "level": "LUFS",
                  "dc": "offset (FS)"}


def reference_free_scores(audio: np.ndarray, sample_rate: int, *,
                          dnsmos: bool = True) -> dict[str, float | None]:
    """Reference-free scores of ``audio`` ``(channels, n)``; a score that cannot be computed is None.

    >>> s = reference_free_scores(np.full((1, 8000), 0.5, np.float32), 8000, dnsmos=False)
    >>> round(s["peak_dbfs"], 2)
    -6.02
    """
    from audiomend.errors import AudiomendError
    from audiomend.metrics import METRICS, compute

    names = [n for n in SCORES if n in METRICS]
    if dnsmos:
        names += [n for n in DNSMOS_SCORES if n in METRICS]
    out: dict[str, float | None] = {}
    for name in names:
        try:
            value = compute(name, audio, sample_rate)
            out[name] = value if math.isfinite(value) else None
        except (AudiomendError, ValueError):
            out[name] = None
        if name.startswith("dnsmos") and out[name] is None:
            break  # DNSMOS unavailable or the clip too short: do not retry the other three
    return out


def _spectrogram_png(audio: np.ndarray, sample_rate: int, title: str) -> str:
    """A log-magnitude spectrogram of the channel mean as a base64 PNG string."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError as e:
        raise MissingDependencyError("reports need matplotlib: pip install matplotlib") from e
    from scipy import signal

    mono = np.asarray(audio, np.float32).mean(axis=0) if audio.size else np.zeros(1, np.float32)
    nperseg = int(2 ** round(math.log2(max(sample_rate * 0.032, 64))))
    if mono.shape[0] < nperseg:
        mono = np.pad(mono, (0, nperseg - mono.shape[0]))
    f, t, s = signal.spectrogram(mono, fs=sample_rate, window="hann", nperseg=nperseg,
                                 noverlap=nperseg * 3 // 4, mode="magnitude")
    db = 20.0 * np.log10(np.maximum(s, 1e-7))
    top = float(db.max()) if db.size else 0.0
    fig = Figure(figsize=(9, 3.2), dpi=90)
    ax = fig.add_subplot(111)
    mesh = ax.pcolormesh(t, f / 1000.0, db, shading="auto", cmap="magma", vmin=top - 90, vmax=top)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(title)
    fig.colorbar(mesh, ax=ax, label="dB")
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "&ndash;"
        if value != 0 and abs(value) < 1e-2:
            return f"{value:.2e}"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"
    return html.escape(str(value))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:60em;
color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .8em;border-bottom:1px solid #eee;
text-align:left}th{background:#f6f6f6}.yes{color:#b00;font-weight:600}.note{color:#666}
img{max-width:100%}code{background:#f3f3f3;padding:0 .3em}
"""


def write_report(
    path: str | os.PathLike,
    *,
    diagnosis: Diagnosis,
    stages: Sequence[dict[str, Any]],
    before: dict[str, Any],
    after: dict[str, Any],
    spectrogram_before: tuple[np.ndarray, int],
    spectrogram_after: tuple[np.ndarray, int],
    excerpt_s: float | None = None,
    input_path: str | None = None,
    output_path: str | None = None,
) -> Path:
    """Write a self-contained HTML report of one restoration.

    Parameters
    ----------
    path : where to write the ``.html`` file.
    diagnosis : the input's Diagnosis.
    stages : the stages applied, as ``Stage.to_dict()`` dicts, in order.
    before, after : reference-free scores (name -> value or None) of input and output.
    spectrogram_before, spectrogram_after : ``(audio (channels, n), sample_rate)`` of the
        (excerpts of the) input and output, drawn as spectrograms.
    excerpt_s : when the scores and spectrograms cover only the first ``excerpt_s`` seconds,
        that length (the report says so); None when they cover the whole file.
    input_path, output_path : file names shown in the header.

    Returns
    -------
    Path of the written report.

    Raises
    ------
    MissingDependencyError
        matplotlib is not installed.
    """
    p = Path(path)
    title = f"audiomend report: {Path(input_path).name}" if input_path else "audiomend report"
    head = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>")
    parts = [head]
    d = diagnosis
    meta = [("input", input_path), ("output", output_path), ("sample rate", f"{d.sample_rate} Hz"),
            ("channels", d.channels), ("duration", f"{d.duration_s:.2f} s"),
            ("integrated loudness", f"{_fmt(d.loudness_lufs)} LUFS"),
            ("peak", f"{_fmt(d.peak_dbfs)} dBFS")]
    # Paths are escaped here; the other values are HTML already (_fmt gives "&ndash;" for -inf).
    parts.append("<table>" + "".join(
        f"<tr><th>{k}</th><td>{html.escape(v) if k in ('input', 'output') else v}</td></tr>"
        for k, v in meta if v is not None) + "</table>")

    parts.append("<h2>Diagnosis</h2><table><tr><th>damage</th><th>value</th><th>unit</th>"
                 "<th>confidence</th><th>present</th><th>details</th></tr>")
    for name in DAMAGES:
        f = getattr(d, name).to_dict()
        extra = ", ".join(f"{k}={_fmt(v)}" for k, v in f.items()
                          if k not in ("value", "confidence", "present"))
        cls = " class='yes'" if f["present"] else ""
        parts.append(f"<tr><td>{name}</td><td>{_fmt(f['value'])}</td><td>{_FINDING_UNITS[name]}</td>"
                     f"<td>{_fmt(f['confidence'])}</td><td{cls}>{_fmt(f['present'])}</td>"
                     f"<td>{extra}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Stages applied</h2>")
    if stages:
        parts.append("<table><tr><th>#</th><th>stage</th><th>parameters</th></tr>")
        for i, s in enumerate(stages, 1):
            params = ", ".join(f"<code>{html.escape(k)}={_fmt(v)}</code>"
                               for k, v in s.items() if k != "name")
            parts.append(f"<tr><td>{i}</td><td>{html.escape(str(s.get('name')))}</td>"
                         f"<td>{params}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>None: nothing needed repair, the output equals the input.</p>")

    scope = (f"the first {excerpt_s:g} s of input and output (the file is longer; scoring an "
             "excerpt keeps memory flat)" if excerpt_s else "the whole input and output")
    parts.append(f"<h2>Scores before and after</h2><p class='note'>Reference-free; computed on "
                 f"{scope}.</p><table><tr><th>score</th><th>unit</th><th>before</th>"
                 "<th>after</th></tr>")
    for name in dict.fromkeys(list(before) + list(after)):
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{_UNITS.get(name, '')}</td>"
                     f"<td>{_fmt(before.get(name))}</td><td>{_fmt(after.get(name))}</td></tr>")
    parts.append("</table>")

    parts.append(f"<h2>Spectrograms</h2><p class='note'>Channel mean; {scope}.</p>")
    for label, (audio, rate) in (("before", spectrogram_before), ("after", spectrogram_after)):
        png = _spectrogram_png(audio, rate, f"{label} ({rate} Hz)")
        parts.append(f"<img alt='spectrogram {label}' src='data:image/png;base64,{png}'>")
    parts.append("</body></html>\n")

    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    os.replace(tmp, p)
    return p


def _first_seconds(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of a file (bounded memory)."""
    from audiomend.io import blocks, info

    rate = info(path).sample_rate
    for block in blocks(path, block_s=seconds):
        return block, rate
    return np.zeros((1, 0), np.float32), rate


def write_file_report(report_path: str | os.PathLike, input_path: str | os.PathLike,
                      output_path: str | os.PathLike, diagnosis: Diagnosis,
                      stages: Sequence[dict[str, Any]], *,
                      excerpt_s: float = REPORT_EXCERPT_S) -> Path:
    """Score the first ``excerpt_s`` seconds of input and output files and write the report."""
    before, in_rate = _first_seconds(Path(input_path), excerpt_s)
    after, out_rate = _first_seconds(Path(output_path), excerpt_s)
    return write_report(
        report_path, diagnosis=diagnosis, stages=list(stages),
        before=reference_free_scores(before, in_rate), after=reference_free_scores(after, out_rate),
        spectrogram_before=(before, in_rate), spectrogram_after=(after, out_rate),
        excerpt_s=excerpt_s if diagnosis.duration_s > excerpt_s else None,
        input_path=str(input_path), output_path=str(output_path),
    )
