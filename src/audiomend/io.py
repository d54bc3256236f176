"""Reading and writing audio files: load, save (atomic), info, blocks (streamed, any length).

Everything returned is float32 with shape ``(channels, samples)``. WAV, FLAC, OGG and MP3 are
decoded by soundfile (libsndfile); any other format is decoded through ``ffmpeg`` when it is
installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from audiomend.dsp import check_audio, check_sample_rate, resample
from audiomend.errors import BadAudioError, BadOptionError

#: Output formats soundfile can write, by file extension.
WRITABLE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3", ".aiff": "AIFF",
                    ".aif": "AIFF", ".w64": "W64"}

#: Subtype used when neither the caller nor an input file says which.
DEFAULT_SUBTYPES = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III",
                    "AIFF": "PCM_16", "W64": "PCM_16"}

#: Extensions (lower case) of the files soundfile (libsndfile >= 1.0.29, bundled with soundfile's
#: wheels) decodes; every folder listing (``assess FOLDER``, ``batch``, ``bench``, corpora)
#: treats them as audio. Ogg Opus (``.opus``) is among them.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".w64")

#: Extensions decoded only through ffmpeg: listings include them when ``ffmpeg`` is on PATH.
FFMPEG_EXTENSIONS = (".m4a", ".aac", ".wma")


def audio_extensions() -> tuple[str, ...]:
    """The extensions folder listings treat as audio here: :data:`AUDIO_EXTENSIONS`, plus
    :data:`FFMPEG_EXTENSIONS` when ``ffmpeg`` is on PATH.

    >>> set(AUDIO_EXTENSIONS) <= set(audio_extensions())
    True
    """
    return AUDIO_EXTENSIONS + FFMPEG_EXTENSIONS if shutil.which("ffmpeg") else AUDIO_EXTENSIONS


def has_audio_extension(path: str | os.PathLike, *,
                        extensions: Collection[str] | None = None) -> bool:
    """True when ``path``'s extension (any case) is in ``extensions`` (default
    :func:`audio_extensions`). Looks at the name only: the file is not opened.

    >>> has_audio_extension("take1.FLAC"), has_audio_extension("notes.txt")
    (True, False)
    """
    exts = audio_extensions() if extensions is None else extensions
    return Path(path).suffix.lower() in exts


def audio_files(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """The audio files in ``folder`` (see :func:`audio_extensions`), sorted.

    Hidden files and folders (names starting with ``.``, such as macOS ``._x.wav``) are
    skipped. A missing folder gives an empty list.

    Parameters
    ----------
    folder : the folder to list.
    recursive : also list its subfolders (``False``: only the files directly inside it).

    Returns
    -------
    list of Path, sorted.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    exts = audio_extensions()
    candidates = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in candidates
                  if has_audio_extension(p, extensions=exts)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts)
                  and p.is_file())


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: rate in Hz, channel count, length in samples, format."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (one object a line; blank lines skipped), in order.

    Used for manifests and corpus recipes. The file must exist (check first where it is
    optional).

    Raises
    ------
    BadOptionError
        A line that is not valid JSON, or not a JSON object, naming the file and line number.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> _ = f.write_text('{"input": "a.wav"}\\n\\n{"input": "b.wav", "strength": 0.5}\\n')
    >>> read_jsonl(f)
    [{'input': 'a.wav'}, {'input': 'b.wav', 'strength': 0.5}]
    """
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadOptionError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise BadOptionError(f"{path}:{n}: each line must be a JSON object")
            rows.append(row)
    return rows


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise BadAudioError(f"{p}: no such file")
    if p.is_dir():
        raise BadAudioError(f"{p}: is a directory, expected an audio file")
    if p.stat().st_size == 0:
        raise BadAudioError(f"{p}: file is empty (0 bytes)")
    return p


def _soundfile_error(p: Path, err: Exception) -> BadAudioError:
    reason = str(err).split(":")[-1].strip().rstrip(".") or type(err).__name__
    if "does not exist" in reason:  # libsndfile's wording for content it cannot recognise
        reason = "format not recognised"
    hint = "ffmpeg could not decode it either" if shutil.which("ffmpeg") else \
        "installing ffmpeg adds more formats"
    return BadAudioError(f"{p}: cannot decode as audio ({reason}); the file is corrupt, truncated "
                         f"or not audio ({hint})")


def _ffmpeg_probe(p: Path) -> tuple[int, int] | None:
    """Rate and channel count through ffprobe, or None when ffmpeg cannot read the file either."""
    if not shutil.which("ffprobe"):
        return None
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=sample_rate,channels", "-of", "csv=p=0", str(p)],
        capture_output=True, text=True, check=False,
    )
    try:
        rate_s, ch_s = proc.stdout.strip().splitlines()[0].split(",")[:2]
        return int(rate_s), int(ch_s)
    except (ValueError, IndexError):
        return None


def _ffmpeg_stream(p: Path, channels: int) -> Iterator[NDArray[np.float32]]:
    """Decode a file with ffmpeg to float32 and yield ``(channels, n)`` chunks."""
    proc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-i", str(p), "-f", "f32le", "-acodec", "pcm_f32le", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    frame_bytes = 4 * channels
    leftover = b""
    try:
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            chunk = leftover + chunk
            usable = len(chunk) - len(chunk) % frame_bytes
            leftover = chunk[usable:]
            data = np.frombuffer(chunk[:usable], dtype="<f4").reshape(-1, channels)
            yield np.ascontiguousarray(data.T)
    finally:
        proc.stdout.close()
        proc.wait()


def info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header: rate, channels, length, format.

    Raises
    ------
    BadAudioError
        The file is missing, a directory, empty, or not decodable audio.
    """
    p = _check_path(path)
    try:
        i = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        probed = _ffmpeg_probe(p) if shutil.which("ffmpeg") else None
        if probed is not None:
            rate, channels = probed
            frames = sum(b.shape[1] for b in _ffmpeg_stream(p, channels))
            return AudioInfo(str(p), check_sample_rate(rate, name=str(p)), channels, frames,
                             p.suffix.lstrip(".").upper(), "FLOAT")
        raise _soundfile_error(p, err) from None
    if i.channels <= 0:
        raise BadAudioError(f"{p}: header says 0 channels")
    check_sample_rate(i.samplerate, name=str(p))
    return AudioInfo(str(p), int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)


def _to_mono(audio: np.ndarray) -> NDArray[np.float32]:
    return audio.mean(axis=0, keepdims=True, dtype=np.float32)


def load(
    path: str | os.PathLike, *, sample_rate: int | None = None, mono: bool = False
) -> tuple[NDArray[np.float32], int]:
    """Load a whole file as float32 ``(channels, samples)``.

    Parameters
    ----------
    path : path to WAV, FLAC, OGG, MP3 (or anything ffmpeg decodes, when it is installed).
    sample_rate : int > 0 or None
        Resample to this rate in Hz (soxr, high quality). None keeps the file's rate.
    mono : bool
        Average the channels into one, giving shape ``(1, samples)``.

    Returns
    -------
    audio : np.ndarray [shape=(channels, samples), dtype=float32]
    sample_rate : int, the rate of ``audio`` in Hz

    Raises
    ------
    BadAudioError
        Missing, empty, corrupt, truncated or non-finite audio; a rate outside 1-768 kHz.
    """
    header = info(path)
    p = Path(path)
    chunks = list(blocks(p, block_s=max(header.duration_s, 1.0) + 1.0))
    if not chunks:
        raise BadAudioError(f"{p}: no samples after decoding; the file is empty or truncated, re-export it")
    audio = np.concatenate(chunks, axis=1) if len(chunks) > 1 else chunks[0]
    if audio.shape[1] == 0:
        raise BadAudioError(f"{p}: no samples after decoding; the file is empty or truncated, re-export it")
    rate = header.sample_rate
    if mono and audio.shape[0] > 1:
        audio = _to_mono(audio)
    if sample_rate is not None:
        target = check_sample_rate(sample_rate, name=f"{p} (requested rate)")
        audio = resample(audio, rate, target)
        rate = target
    return audio, rate


def blocks(
    path: str | os.PathLike, *, block_s: float = 10.0, overlap_s: float = 0.0
) -> Iterator[NDArray[np.float32]]:
    """Read a file of any length in blocks of ``block_s`` seconds, never holding it whole.

    Consecutive blocks share ``overlap_s`` seconds (the end of one is the start of the next),
    like ``soundfile.blocks(..., overlap=...)``. The last block may be shorter.

    Yields
    ------
    block : np.ndarray [shape=(channels, n), dtype=float32]

    Raises
    ------
    BadAudioError
        As :func:`load`, including NaN or infinite samples found in a block (with its time).
    """
    header = info(path)
    p = Path(path)
    block = max(round(block_s * header.sample_rate), 1)
    overlap = round(overlap_s * header.sample_rate)
    if not 0 <= overlap < block:
        raise BadOptionError(f"{p}: overlap_s={overlap_s} must be >= 0 and shorter than block_s={block_s}")
    position = 0
    for chunk in _raw_blocks(p, header, block, overlap):
        if not np.isfinite(chunk).all():
            t = position / header.sample_rate
            raise BadAudioError(f"{p}: NaN or infinite samples in the block starting at {t:.2f} s")
        position += chunk.shape[1] - overlap
        yield chunk


def _raw_blocks(p: Path, header: AudioInfo, block: int, overlap: int) -> Iterator[NDArray[np.float32]]:
    try:
        with sf.SoundFile(str(p)) as f:
            # always_2d gives (frames, channels); we transpose to (channels, frames).
            for chunk in f.blocks(blocksize=block, overlap=overlap, dtype="float32", always_2d=True):
                if chunk.shape[0] <= overlap and overlap:
                    break
                yield np.ascontiguousarray(chunk.T)
        return
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        if not shutil.which("ffmpeg"):
            raise _soundfile_error(p, err) from None
    # ffmpeg fallback: regroup its chunks into the requested blocks.
    buffer = np.zeros((header.channels, 0), np.float32)
    for chunk in _ffmpeg_stream(p, header.channels):
        buffer = np.concatenate([buffer, chunk], axis=1)
        while buffer.shape[1] >= block:
            yield buffer[:, :block].copy()
            buffer = buffer[:, block - overlap:]
    if buffer.shape[1] > overlap or (buffer.shape[1] and overlap == 0):
        yield buffer


def default_permissions() -> int:
    """The mode a newly created file gets under the current umask (``0o666 & ~umask``).

    >>> 0 <= default_permissions() <= 0o666
    True
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file: the same inode, or the same resolved path.

    >>> same_file("x.wav", "./x.wav")
    True
    """
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists() and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _writable_format(path: Path) -> str:
    fmt = WRITABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadOptionError(f"{path}: cannot write {path.suffix or 'files without an extension'}; "
                             f"use one of {', '.join(sorted(WRITABLE_FORMATS))}")
    return fmt


def _output_subtype(path: Path, fmt: str, like: str | os.PathLike | None, subtype: str | None) -> str:
    if subtype is None and like is not None:
        try:
            like_subtype = sf.info(str(like)).subtype
        except (sf.LibsndfileError, RuntimeError, TypeError):
            like_subtype = None
        if like_subtype and sf.check_format(fmt, like_subtype):
            subtype = like_subtype
    subtype = subtype or DEFAULT_SUBTYPES[fmt]
    if not sf.check_format(fmt, subtype):
        raise BadOptionError(f"{path}: format {fmt} cannot hold subtype {subtype}")
    return subtype


def output_format(path: str | os.PathLike, like: str | os.PathLike | None = None,
                  subtype: str | None = None) -> tuple[str, str]:
    """The soundfile ``(format, subtype)`` to write ``path`` with.

    Parameters
    ----------
    path : output path; its extension chooses the format.
    like : the input file this output repairs, or None; its subtype (bit depth) is kept when
        ``subtype`` is None and the format can hold it.
    subtype : soundfile subtype, or None for ``like``'s or else the format's default.

    Returns
    -------
    (format, subtype) : tuple of str.

    Raises
    ------
    BadOptionError
        The extension is not writable, or the format cannot hold the subtype.

    Examples
    --------
    >>> output_format("out.flac")
    ('FLAC', 'PCM_16')
    """
    p = Path(path)
    fmt = _writable_format(p)
    return fmt, _output_subtype(p, fmt, like, subtype)


def save(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    *,
    subtype: str | None = None,
    like: str | os.PathLike | None = None,
) -> Path:
    """Write audio atomically: to a temporary file in the target folder, then rename.

    Parameters
    ----------
    path : output path; the extension chooses the format (.wav .flac .ogg .mp3 .aiff .w64).
    audio : np.ndarray [shape=(channels, samples)], nominally in [-1, 1]; PCM output is clipped.
    sample_rate : int, Hz.
    subtype : soundfile subtype ('PCM_16', 'PCM_24', 'FLOAT', ...). None keeps the bit depth of
        ``like`` when given and the format allows it, else the format's default (16-bit PCM).
    like : the input file this output repairs. Its bit depth is kept, and writing over it is
        refused: inputs are never modified.

    Returns
    -------
    The written path.
    """
    p = Path(path)
    audio = check_audio(audio, sample_rate, name=str(p))
    fmt = _writable_format(p)
    if like is not None and same_file(p, like):
        raise BadOptionError(f"{p}: refusing to overwrite the input file; choose another output path")
    if p.is_dir():
        raise BadOptionError(f"{p}: is a directory; give an output file name")
    subtype = _output_subtype(p, fmt, like, subtype)
    if subtype.startswith(("PCM", "ULAW", "ALAW", "DPCM")) or fmt in {"MP3", "OGG"}:
        audio = np.clip(audio, -1.0, 1.0)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        sf.write(tmp, audio.T, int(sample_rate), subtype=subtype, format=fmt)
        os.chmod(tmp, default_permissions())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
