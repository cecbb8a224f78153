"""Transcript readers: SRT, WebVTT, a subtitle stream embedded in the video, and CSV manifests -> `Utterance` lists.

Every reader returns a `Transcript`: the utterances (a list, in file order) plus the items it skipped and why.
Problems of a single cue (bad timing line, end before start, empty text, too short) skip that cue with a reason naming
the file and line; `strict=True` raises a `TranscriptError` for them instead. Problems of the whole file (missing,
binary, not WebVTT, missing CSV columns, no text subtitle stream) always raise a `TranscriptError`.

Text files are decoded as UTF-8 (with or without BOM), UTF-16/32 with a BOM, else cp1252, else latin-1 (which never
fails); `Transcript.encoding` tells which one was used.

Utterance IDs are safe as file names: `<video stem>_<index:04d>` (index = position of the cue in its transcript, so
IDs do not change when the duration filter changes), or a manifest's own `utterance_id` made safe by `safe_id`.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path

__all__ = [
    "Utterance",
    "SkippedItem",
    "Transcript",
    "TranscriptError",
    "safe_id",
    "make_utterance_id",
    "parse_timestamp",
    "read_text_file",
    "read_srt",
    "read_vtt",
    "read_embedded_subtitles",
    "read_csv_manifest",
    "read_transcript",
    "read_video_transcript",
    "find_sidecar_transcript",
    "filter_min_duration",
    "write_srt",
    "write_vtt",
    "write_csv_manifest",
    "with_source",
    "MANIFEST_COLUMNS",
    "DEFAULT_MIN_DURATION",
]

DEFAULT_MIN_DURATION = 1.0
MANIFEST_COLUMNS = ("video", "start", "end", "text", "speaker", "label")
_REQUIRED_COLUMNS = ("video", "start", "end", "text")
_SIDECAR_EXTENSIONS = (".srt", ".vtt")
_VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}


class TranscriptError(ValueError):
    """A transcript cannot be read. The message names the file (and line) and says what to fix."""

    def __init__(self, path: str | PathLike, reason: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Utterance:
    """One transcript cue: a time window of a media file with its text."""

    source: str  # the media file the window belongs to
    utterance_id: str  # safe as a file name
    index: int  # position of the cue in its transcript (per media file)
    start: float  # seconds
    end: float  # seconds
    text: str
    speaker: str = ""
    label: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SkippedItem:
    """Something a reader or filter left out, and why."""

    source: str  # the transcript (or media) file
    item: str  # the utterance id, or "line N"
    reason: str
    line: int | None = None  # line in the transcript file, when known


@dataclass
class Transcript:
    """The utterances read from one transcript (iterable and indexable like a list) and the items skipped."""

    path: str
    format: str  # "srt", "vtt", "embedded", "csv"
    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    encoding: str | None = None

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i):
        return self.utterances[i]

    def by_source(self) -> dict[str, list[Utterance]]:
        """Utterances grouped by media file, in order of first appearance."""
        groups: dict[str, list[Utterance]] = {}
        for u in self.utterances:
            groups.setdefault(u.source, []).append(u)
        return groups


# -- ids and times ---------------------------------------------------------------------------------------------------


def safe_id(text: str, max_length: int = 100) -> str:
    """`text` made safe as a file name: only [A-Za-z0-9._-], no '..', no leading dot; a short hash keeps it unique
    when anything had to change."""
    original = str(text)
    s = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", s)
    s = re.sub(r"\.{2,}", "_", s)
    s = s.strip("._-")
    if s.upper().split(".")[0] in _WINDOWS_RESERVED:
        s = "_" + s
    if not s:
        s = "item"
    if s != original or len(s) > max_length:
        digest = hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        s = f"{s[: max_length - 9]}-{digest}"
    return s


def make_utterance_id(source: str | PathLike, index: int, *, disambiguate: bool = False) -> str:
    """`<stem of source>_<index:04d>`, safe as a file name; `disambiguate` adds a hash of the full path (for two
    videos with the same name in different folders)."""
    stem = Path(str(source)).stem or "media"
    if disambiguate:
        stem = f"{stem}-{hashlib.sha1(str(source).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return f"{safe_id(stem)}_{index:04d}"


_TS = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TS_RE = re.compile(rf"^\s*{_TS}\s*$")
_TIMING_RE = re.compile(rf"^\s*{_TS}\s*-->\s*{_TS}(?:\s+.*)?\s*$")


def _ts_to_seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    seconds = int(h or 0) * 3600 + int(m) * 60 + int(s)
    if frac:
        seconds += int(frac) / 10 ** len(frac)
    return float(seconds)


def parse_timestamp(value: str | float | int) -> float:
    """Seconds from `12.5`, `"12.5"`, `"00:00:12,500"`, `"00:12.500"` or `"1:02:03.4"`; ValueError otherwise."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _TS_RE.match(text)
    if not m:
        raise ValueError(f"not a timestamp: {value!r} (use seconds like 12.5 or HH:MM:SS.mmm)")
    return _ts_to_seconds(*m.groups())


# -- reading text ----------------------------------------------------------------------------------------------------

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def read_text_file(path: str | PathLike, encoding: str | None = None) -> tuple[str, str]:
    """The text of `path` and the encoding used (given, BOM, UTF-8, cp1252, latin-1 in that order)."""
    p = Path(path)
    if not p.is_file():
        raise TranscriptError(path, "file not found; check the transcript path")
    data = p.read_bytes()
    if encoding is not None:
        try:
            return data.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as e:
            raise TranscriptError(path, f"cannot be decoded as {encoding}: {e}; pass another encoding or none") from e
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError as e:
                raise TranscriptError(path, f"has a {enc} byte-order mark but is not valid {enc}: {e}") from e
    if b"\x00" in data:
        raise TranscriptError(path, "contains NUL bytes: it is a binary file, not a text transcript")
    for enc in ("utf-8", "cp1252", "latin-1"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _blocks(lines: Sequence[str]) -> Iterator[list[tuple[int, str]]]:
    """Runs of non-blank lines with their 1-based line numbers."""
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            block.append((number, line.rstrip()))
        elif block:
            yield block
            block = []
    if block:
        yield block


_TAG_RE = re.compile(r"<[^>]*>")
_ASS_OVERRIDE_RE = re.compile(r"\{\\[^}]*\}")


def _clean_text(lines: Iterable[str]) -> str:
    text = " ".join(line.strip() for line in lines)
    text = _ASS_OVERRIDE_RE.sub("", text)
    text = _TAG_RE.sub("", text)
    text = html.unescape(text).replace("\\N", " ").replace("\\n", " ")
    return re.sub(r"\s+", " ", text).strip()


class _Collector:
    """Builds utterances for one media file and records or raises problems."""

    def __init__(self, transcript_path: str, source: str, strict: bool):
        self.path = transcript_path
        self.source = source
        self.strict = strict
        self.utterances: list[Utterance] = []
        self.skipped: list[SkippedItem] = []
        self.index = 0

    def problem(self, line: int | None, reason: str, item: str | None = None) -> None:
        if self.strict:
            raise TranscriptError(self.path, reason, line)
        self.skipped.append(SkippedItem(self.path, item or (f"line {line}" if line is not None else "-"), reason, line))

    def add(
        self, line: int | None, start: float, end: float, text: str, speaker: str = "", label: str = "", uid=None
    ) -> None:
        index = self.index
        self.index += 1
        uid = uid or make_utterance_id(self.source, index)
        if not (end > start):
            self.problem(line, f"cue ends ({end:.3f} s) before it starts ({start:.3f} s); fix its timing", uid)
            return
        if start < 0:
            self.problem(line, f"cue starts at a negative time ({start:.3f} s)", uid)
            return
        if not text:
            self.problem(line, "cue has no text", uid)
            return
        self.utterances.append(Utterance(self.source, uid, index, start, end, text, speaker, label))


def _finish(collector: _Collector, fmt: str, encoding: str | None, min_duration: float | None, path: str) -> Transcript:
    transcript = Transcript(path, fmt, collector.utterances, collector.skipped, encoding)
    if min_duration:
        kept, short = filter_min_duration(transcript.utterances, min_duration)
        transcript.utterances = kept
        transcript.skipped.extend(short)
    return transcript


def _default_source(path: Path) -> str:
    """The video beside a sidecar transcript: same stem with a video extension if one exists, else the stem path."""
    for ext in sorted(_VIDEO_EXTENSIONS):
        candidate = path.with_suffix(ext)
        if candidate.is_file():
            return str(candidate)
    return str(path.with_suffix(""))


# -- SRT -------------------------------------------------------------------------------------------------------------


def read_srt(
    path: str | PathLike,
    source: str | PathLike | None = None,
    *,
    min_duration: float | None = DEFAULT_MIN_DURATION,
    strict: bool = False,
    encoding: str | None = None,
) -> Transcript:
    """Read a SubRip file. `source`: the media file it belongs to (default: the video with the same stem)."""
    p = Path(path)
    text, used = read_text_file(p, encoding)
    collector = _Collector(str(p), str(source) if source is not None else _default_source(p), strict)
    for block in _blocks(_lines(text)):
        _srt_block(block, collector)
    if not collector.utterances and not collector.skipped:
        raise TranscriptError(p, "has no subtitle cues (empty file?); provide a transcript with timed cues")
    return _finish(collector, "srt", used, min_duration, str(p))


def _srt_block(block: list[tuple[int, str]], collector: _Collector) -> None:
    # A block is [index] timing text...; a missing blank line between two cues shows up as a timing line (possibly
    # preceded by an index line) inside the text, so split the block there.
    timing_rows = [i for i, (_, line) in enumerate(block) if _TIMING_RE.match(line)]
    if not timing_rows:
        number, line = block[0]
        collector.problem(
            number, f"expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm' in this block, found {line.strip()!r}"
        )
        return
    first = timing_rows[0]
    if first > 1 or (first == 1 and not block[0][1].strip().isdigit()):
        number, line = block[0]
        collector.problem(number, f"unexpected text before the timing line: {line.strip()!r} (block skipped up to it)")
    for k, row in enumerate(timing_rows):
        stop = timing_rows[k + 1] if k + 1 < len(timing_rows) else len(block)
        if k + 1 < len(timing_rows) and block[stop - 1][1].strip().isdigit():
            stop -= 1  # the index line of the next cue
        number, line = block[row]
        m = _TIMING_RE.match(line)
        groups = m.groups()
        start = _ts_to_seconds(*groups[:4])
        end = _ts_to_seconds(*groups[4:8])
        text = _clean_text(line for _, line in block[row + 1 : stop])
        collector.add(number, start, end, text)


# -- WebVTT ----------------------------------------------------------------------------------------------------------

_VOICE_RE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")


def read_vtt(
    path: str | PathLike,
    source: str | PathLike | None = None,
    *,
    min_duration: float | None = DEFAULT_MIN_DURATION,
    strict: bool = False,
    encoding: str | None = None,
) -> Transcript:
    """Read a WebVTT file; a `<v Name>` voice tag gives the speaker. NOTE/STYLE/REGION blocks are ignored."""
    p = Path(path)
    text, used = read_text_file(p, encoding)
    lines = _lines(text)
    first = next((line for line in lines if line.strip()), "")
    if not first.lstrip("\ufeff").startswith("WEBVTT"):
        raise TranscriptError(p, "is not WebVTT: the first line must start with 'WEBVTT'", 1)
    collector = _Collector(str(p), str(source) if source is not None else _default_source(p), strict)
    for n, block in enumerate(_blocks(lines)):
        head = block[0][1].strip()
        if n == 0 and head.lstrip("\ufeff").startswith("WEBVTT"):
            if any("-->" in line for _, line in block[1:]):
                collector.problem(block[0][0], "a cue must be separated from the WEBVTT header by a blank line")
            continue
        if head.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in head:
            continue
        rows = [i for i, (_, line) in enumerate(block) if "-->" in line]
        if not rows or rows[0] > 1:
            collector.problem(block[0][0], f"expected '[id] MM:SS.mmm --> MM:SS.mmm' here, found {head!r}")
            continue
        number, line = block[rows[0]]
        m = _TIMING_RE.match(line)
        if not m:
            collector.problem(number, f"malformed timing line {line.strip()!r}")
            continue
        groups = m.groups()
        payload = [line for _, line in block[rows[0] + 1 :]]
        voice = _VOICE_RE.search(" ".join(payload))
        collector.add(
            number,
            _ts_to_seconds(*groups[:4]),
            _ts_to_seconds(*groups[4:8]),
            _clean_text(payload),
            speaker=voice.group(1).strip() if voice else "",
        )
    if not collector.utterances and not collector.skipped:
        raise TranscriptError(p, "has no cues; provide a transcript with timed cues")
    return _finish(collector, "vtt", used, min_duration, str(p))


# -- embedded subtitle streams ---------------------------------------------------------------------------------------


def _subtitle_text(sub) -> str | None:
    """Text of one decoded subtitle (PyAV AssSubtitle / TextSubtitle); None for bitmaps."""
    kind = getattr(sub, "type", None)
    if kind in (b"bitmap", "bitmap"):
        return None
    raw = getattr(sub, "dialogue", None)
    if raw is None:
        raw = getattr(sub, "text", None)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return _clean_text(raw.split("\n"))


def read_embedded_subtitles(
    video: str | PathLike,
    *,
    stream_index: int | None = None,
    min_duration: float | None = DEFAULT_MIN_DURATION,
    strict: bool = False,
) -> Transcript:
    """Cues of a text subtitle stream inside `video` (mov_text, SubRip, ASS, WebVTT...).

    By default the longest text stream (most characters) is used, as in the original; `stream_index` (the container's
    stream index, as ffprobe prints it) picks one. Bitmap streams (PGS, DVD) cannot be read and are ignored.
    """
    import av  # noqa: PLC0415 (PyAV is only needed here)

    p = Path(video)
    if not p.is_file():
        raise TranscriptError(p, "video file not found; check the path")
    try:
        container = av.open(str(p))
    except av.error.FFmpegError as e:
        raise TranscriptError(p, f"cannot be opened as media ({e}); the file is corrupt or not a video") from e
    try:
        streams = list(container.streams.subtitles)
        if stream_index is not None:
            streams = [s for s in streams if s.index == stream_index]
            if not streams:
                raise TranscriptError(p, f"has no subtitle stream with index {stream_index}")
        if not streams:
            raise TranscriptError(
                p,
                "has no embedded subtitle stream; put an .srt or .vtt with the same name beside it or use a CSV "
                "manifest",
            )
        cues: dict[int, list[tuple[float, float | None, str]]] = {s.index: [] for s in streams}
        try:
            for packet in container.demux(*streams):
                if packet.size == 0 or packet.pts is None:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float(packet.duration * packet.time_base) if packet.duration else None
                decoded = packet.decode()
                items = []
                for obj in decoded if isinstance(decoded, (list, tuple)) else [decoded]:
                    rects = getattr(obj, "rects", None)
                    items.extend(rects if rects is not None else [obj])
                texts = [t for t in (_subtitle_text(it) for it in items) if t is not None]
                if texts and any(texts):
                    cues[packet.stream_index].append((start, end, " ".join(t for t in texts if t)))
        except av.error.FFmpegError as e:
            raise TranscriptError(
                p, f"subtitle stream could not be decoded ({e}); extract it to .srt with a tool"
            ) from e
    finally:
        container.close()
    best = max(sorted(cues), key=lambda i: sum(len(text) for _, _, text in cues[i]))
    if not cues[best]:
        raise TranscriptError(
            p, "its subtitle streams hold no text cues (bitmap subtitles?); provide an .srt/.vtt or a CSV manifest"
        )
    collector = _Collector(f"{p}#stream{best}", str(p), strict)
    for start, end, text in cues[best]:
        if end is None:
            collector.index += 1
            collector.problem(None, f"cue at {start:.3f} s has no duration", make_utterance_id(p, collector.index - 1))
            continue
        collector.add(None, start, end, text)
    return _finish(collector, "embedded", None, min_duration, f"{p}#stream{best}")


# -- CSV manifests ---------------------------------------------------------------------------------------------------


def read_csv_manifest(
    path: str | PathLike,
    *,
    base_dir: str | PathLike | None = None,
    min_duration: float | None = DEFAULT_MIN_DURATION,
    strict: bool = False,
    encoding: str | None = None,
) -> Transcript:
    """Read a CSV of rows `video,start,end,text[,speaker,label,utterance_id]` (header required, any column order,
    extra columns ignored). Relative video paths are taken from `base_dir` (default: the manifest's folder).
    Times are seconds or HH:MM:SS.mmm. Indices count rows per video."""
    p = Path(path)
    text, used = read_text_file(p, encoding)
    base = Path(base_dir) if base_dir is not None else p.parent
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise TranscriptError(p, f"is empty; it needs a header row with {', '.join(MANIFEST_COLUMNS)}") from None
    columns = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise TranscriptError(
            p, f"missing column(s) {', '.join(missing)}; the header must name video, start, end, text", 1
        )
    col = {name: columns.index(name) for name in columns}
    id_col = col.get("utterance_id", col.get("id"))
    rows = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        rows.append((line, row))
    # Two different videos with the same file name get a path hash in their ids.
    stems: dict[str, set[str]] = {}
    for _, row in rows:
        if len(row) > col["video"] and row[col["video"]].strip():
            video = _resolve(base, row[col["video"]].strip())
            stems.setdefault(Path(video).stem, set()).add(video)
    clash = {stem for stem, videos in stems.items() if len(videos) > 1}

    collectors: dict[str, _Collector] = {}
    utterances: list[Utterance] = []
    skipped: list[SkippedItem] = []
    seen_ids: set[str] = set()
    bad = _Collector(str(p), str(p), strict)
    for line, row in rows:
        if len(row) < len(columns):
            row = row + [""] * (len(columns) - len(row))
        video = row[col["video"]].strip()
        if not video:
            bad.problem(line, "row has no video")
            continue
        source = _resolve(base, video)
        c = collectors.setdefault(source, _Collector(str(p), source, strict))
        try:
            start = parse_timestamp(row[col["start"]])
            end = parse_timestamp(row[col["end"]])
        except ValueError as e:
            c.index += 1
            c.problem(line, f"bad start/end: {e}")
            continue
        index = c.index
        if id_col is not None and row[id_col].strip():
            uid = safe_id(row[id_col].strip())
        else:
            uid = make_utterance_id(source, index, disambiguate=Path(source).stem in clash)
        if uid in seen_ids:
            c.index += 1
            c.problem(line, f"duplicate utterance_id {uid!r}; ids must be unique in a manifest", uid)
            continue
        seen_ids.add(uid)
        n_before = len(c.utterances)
        c.add(
            line,
            start,
            end,
            _clean_text([row[col["text"]]]),
            speaker=row[col["speaker"]].strip() if "speaker" in col else "",
            label=row[col["label"]].strip() if "label" in col else "",
            uid=uid,
        )
        if len(c.utterances) > n_before:
            utterances.append(c.utterances[-1])
    for c in [bad, *collectors.values()]:
        skipped.extend(c.skipped)
    skipped.sort(key=lambda s: s.line or 0)
    if not utterances and not skipped:
        raise TranscriptError(p, "has a header but no rows")
    collector = _Collector(str(p), str(p), strict)
    collector.utterances, collector.skipped = utterances, skipped
    return _finish(collector, "csv", used, min_duration, str(p))


def _resolve(base: Path, video: str) -> str:
    v = Path(video)
    return str(v if v.is_absolute() else base / v)


# -- dispatch --------------------------------------------------------------------------------------------------------


def read_transcript(
    path: str | PathLike,
    source: str | PathLike | None = None,
    *,
    format: str | None = None,
    min_duration: float | None = DEFAULT_MIN_DURATION,
    strict: bool = False,
    encoding: str | None = None,
) -> Transcript:
    """Read any supported transcript; `format` ("srt", "vtt", "csv", "embedded") defaults to the file extension
    (a video extension means its embedded subtitles)."""
    p = Path(path)
    fmt = (format or p.suffix.lstrip(".")).lower()
    if fmt in ("srt", "vtt"):
        reader = read_srt if fmt == "srt" else read_vtt
        return reader(p, source, min_duration=min_duration, strict=strict, encoding=encoding)
    if fmt == "csv":
        return read_csv_manifest(p, min_duration=min_duration, strict=strict, encoding=encoding)
    if fmt == "embedded" or f".{fmt}" in _VIDEO_EXTENSIONS:
        return read_embedded_subtitles(p, min_duration=min_duration, strict=strict)
    raise TranscriptError(p, f"unknown transcript format {fmt!r}; use .srt, .vtt, .csv or a video with subtitles")


def find_sidecar_transcript(video: str | PathLike) -> Path | None:
    """An .srt or .vtt file with the same stem beside `video`, if there is one."""
    v = Path(video)
    for ext in _SIDECAR_EXTENSIONS:
        candidate = v.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def read_video_transcript(
    video: str | PathLike, *, min_duration: float | None = DEFAULT_MIN_DURATION, strict: bool = False
) -> Transcript:
    """The transcript of `video`: a sidecar .srt/.vtt when there is one, else its embedded subtitle stream."""
    sidecar = find_sidecar_transcript(video)
    if sidecar is not None:
        return read_transcript(sidecar, str(video), min_duration=min_duration, strict=strict)
    return read_embedded_subtitles(video, min_duration=min_duration, strict=strict)


def filter_min_duration(
    utterances: Iterable[Utterance], min_duration: float = DEFAULT_MIN_DURATION
) -> tuple[list[Utterance], list[SkippedItem]]:
    """Split utterances into those lasting at least `min_duration` seconds and skip records for the others."""
    kept: list[Utterance] = []
    skipped: list[SkippedItem] = []
    for u in utterances:
        if u.duration + 1e-9 >= min_duration:
            kept.append(u)
        else:
            skipped.append(
                SkippedItem(
                    u.source,
                    u.utterance_id,
                    f"shorter than the minimum duration ({u.duration:.2f} s < {min_duration:.2f} s)",
                )
            )
    return kept, skipped


# -- writers ---------------------------------------------------------------------------------------------------------


def _format_ts(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_srt(utterances: Iterable[Utterance], path: str | PathLike) -> Path:
    """Write utterances as a UTF-8 SubRip file."""
    blocks = [
        f"{n}\n{_format_ts(u.start, ',')} --> {_format_ts(u.end, ',')}\n{u.text}\n"
        for n, u in enumerate(utterances, start=1)
    ]
    p = Path(path)
    p.write_text("\n".join(blocks), encoding="utf-8")
    return p


def write_vtt(utterances: Iterable[Utterance], path: str | PathLike) -> Path:
    """Write utterances as a WebVTT file (speakers as `<v Name>` tags)."""
    out = ["WEBVTT", ""]
    for u in utterances:
        voice = f"<v {u.speaker}>" if u.speaker else ""
        out += [u.utterance_id, f"{_format_ts(u.start, '.')} --> {_format_ts(u.end, '.')}", voice + u.text, ""]
    p = Path(path)
    p.write_text("\n".join(out), encoding="utf-8")
    return p


def write_csv_manifest(
    utterances: Iterable[Utterance], path: str | PathLike, *, relative_to: str | PathLike | None = None
) -> Path:
    """Write utterances as a CSV manifest (`video,start,end,text,speaker,label`) that `read_csv_manifest` reads;
    video paths are written relative to `relative_to` (default: the manifest's folder) when they are inside it."""
    p = Path(path)
    base = Path(relative_to) if relative_to is not None else p.parent
    with p.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS)
        for u in utterances:
            video = Path(u.source)
            try:
                video = video.relative_to(base)
            except ValueError:
                pass
            writer.writerow([str(video), f"{u.start:.3f}", f"{u.end:.3f}", u.text, u.speaker, u.label])
    return p


def with_source(transcript: Transcript, source: str | PathLike) -> Transcript:
    """A copy of `transcript` whose utterances point at `source` (ids unchanged)."""
    return replace(transcript, utterances=[replace(u, source=str(source)) for u in transcript.utterances])
