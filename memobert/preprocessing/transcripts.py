"""Transcript readers and writers: subtitle files (SubRip, WebVTT, ASS/SSA, MicroDVD), a subtitle stream embedded in
the video, and CSV manifests <-> `Utterance` lists.

Subtitles are parsed and written by pysubs2; we decode the bytes ourselves (`read_text_file`: the given encoding, else
a BOM, UTF-8, cp1252, latin-1; NUL bytes mean a binary file) so `Transcript.encoding` tells which one was used. A
small line scan maps pysubs2's events back to their lines (`_scan_blocks`, `_scan_microdvd`, `_scan_ass`) and finds
what pysubs2 would drop or glue onto the cue before. Speakers come from WebVTT `<v Name>` voices, the ASS Name (actor)
field (also in embedded ASS streams) or a manifest's speaker column. MicroDVD counts frames: its frame rate is the
`fps` argument, else the file's own `{1}{1}<fps>` line, else the frame rate of the video it belongs to.

Every reader returns a `Transcript`: the utterances (a list, in file order) plus the items it skipped and why. A bad cue
is skipped with a reason naming the file and line and the fix: a block without a timing line, text before the timing
line, a malformed WebVTT timing line, a cue glued to the WEBVTT header, a malformed ASS Dialogue or MicroDVD line, a
cue that ends before it starts, starts at a negative time, has no text, or is shorter than `min_duration`.
`strict=True` raises a `TranscriptError` for them instead (except for short cues). Problems of the whole file
(missing, binary, not WebVTT or MicroDVD, no frame rate, missing CSV columns, no text subtitle stream) always raise.

Utterance IDs are safe as file names: `<video stem>_<index:04d>` (index = position of the cue in its transcript, so
IDs do not change when the duration filter changes), or a manifest's own `utterance_id` made safe by `safe_id`.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import html
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path

import pysubs2
from pysubs2.formats.microdvd import MICRODVD_LINE
from pysubs2.formats.subrip import SubripFormat
from pysubs2.formats.substation import SubstationFormat
from pysubs2.formats.webvtt import WebVTTFormat

from ..data.schema import safe_id
from .decode import VIDEO_EXTENSIONS, MediaError, is_video_file, probe

__all__ = [
    "Utterance",
    "SkippedItem",
    "Transcript",
    "TranscriptError",
    "NoTranscriptError",
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
    "write_ass",
    "write_subtitles",
    "write_csv_manifest",
    "with_source",
    "MANIFEST_COLUMNS",
    "SUBTITLE_FORMATS",
    "DEFAULT_MIN_DURATION",
]

DEFAULT_MIN_DURATION = 1.0
MANIFEST_COLUMNS = ("video", "start", "end", "text", "speaker", "label", "session")
_REQUIRED_COLUMNS = ("video", "start", "end", "text")
# Subtitle file endings -> pysubs2 format, in the order `find_sidecar_transcript` prefers them.
SUBTITLE_FORMATS = {".srt": "srt", ".vtt": "vtt", ".ass": "ass", ".ssa": "ssa", ".sub": "microdvd"}


class TranscriptError(ValueError):
    """A transcript cannot be read. The message names the file (and line) and says what to fix."""

    def __init__(self, path: str | PathLike, reason: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class NoTranscriptError(TranscriptError):
    """A video has neither a sidecar subtitle file nor an embedded subtitle stream (ASR can make one)."""


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
    session: str = ""  # recording session (a manifest's session column), "" when unknown

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
    format: str  # "srt", "vtt", "ass", "ssa", "microdvd", "embedded", "csv"
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


def make_utterance_id(source: str | PathLike, index: int, *, disambiguate: bool = False) -> str:
    """`<stem of source>_<index:04d>`, safe as a file name; `disambiguate` adds a hash of the full path (for two
    videos with the same name in different folders)."""
    stem = Path(str(source)).stem or "media"
    if disambiguate:
        stem = f"{stem}-{hashlib.sha1(str(source).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return f"{safe_id(stem)}_{index:04d}"


_TS_RE = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?\s*$")


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
    h, mins, s, frac = m.groups()
    return int(h or 0) * 3600 + int(mins) * 60 + int(s) + (int(frac) / 10 ** len(frac) if frac else 0.0)


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
_VOICE_RE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")


def _clean_text(text: str) -> str:
    """Plain one-line text: no ASS override tags, HTML/WebVTT tags, entities or line breaks."""
    text = _TAG_RE.sub("", _ASS_OVERRIDE_RE.sub("", text))
    text = html.unescape(text).replace("\\N", " ").replace("\\n", " ").replace("\\h", " ")
    return re.sub(r"\s+", " ", text).strip()


class _Collector:
    """Builds utterances for one media file and records or raises problems."""

    def __init__(self, transcript_path: str, source: str, strict: bool):
        self.path = transcript_path
        self.source = source
        self.strict = strict
        self.utterances: list[Utterance] = []
        self.skipped: list[SkippedItem] = []
        self.lines: dict[str, int | None] = {}  # utterance id -> its line in the transcript
        self.index = 0

    def problem(self, line: int | None, reason: str, item: str | None = None) -> None:
        if self.strict:
            raise TranscriptError(self.path, reason, line)
        self.skipped.append(SkippedItem(self.path, item or (f"line {line}" if line is not None else "-"), reason, line))

    def add(self, line: int | None, start: float, end: float, text: str, uid: str | None = None, **fields) -> None:
        """A cue at the next index (`fields`: speaker, label, session), or a problem naming what is wrong with it."""
        index = self.index
        self.index += 1
        uid = uid or make_utterance_id(self.source, index)
        self.lines[uid] = line
        if not (end > start):
            self.problem(line, f"cue ends ({end:.3f} s) before it starts ({start:.3f} s); fix its timing", uid)
        elif start < 0:
            self.problem(line, f"cue starts at a negative time ({start:.3f} s); shift it to 0 or later", uid)
        elif not text:
            self.problem(line, "cue has no text; give it text or delete it", uid)
        else:
            self.utterances.append(Utterance(self.source, uid, index, start, end, text, **fields))


def _finish(collector: _Collector, fmt: str, encoding: str | None, min_duration: float | None, path: str) -> Transcript:
    transcript = Transcript(path, fmt, collector.utterances, collector.skipped, encoding)
    if min_duration:
        kept, short = filter_min_duration(transcript.utterances, min_duration)
        transcript.utterances = kept
        # Short cues name their transcript line; a manifest's keep their video (the pipeline files them under it).
        transcript.skipped.extend(
            replace(s, source=s.source if fmt == "csv" else path, line=collector.lines.get(s.item)) for s in short
        )
    return transcript


def _default_source(path: Path) -> str:
    """The video beside a sidecar transcript: same stem with a video extension if one exists, else the stem path."""
    for ext in sorted(VIDEO_EXTENSIONS):
        candidate = path.with_suffix(ext)
        if candidate.is_file():
            return str(candidate)
    return str(path.with_suffix(""))


# -- subtitle files (pysubs2) ----------------------------------------------------------------------------------------
#
# pysubs2 reads SRT/WebVTT by starting a cue at every line holding two timestamps and gluing every other line to the
# cue before, and MicroDVD by skipping the lines it does not match. The scans below test lines exactly as pysubs2
# does, so its events (which come out in file order) are the scan's cues in order; they report the blocks pysubs2
# would drop or glue on, and blank them out of the text pysubs2 gets. ASS/SSA is parsed one Dialogue line at a time,
# as pysubs2 rejects a whole file for one bad time.

_Item = tuple[int, str | pysubs2.SSAEvent | None]  # (line, a problem there | its cue | None: pysubs2 will parse it)
_ASS_FIELDS = "Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text"


def _scan_blocks(lines: list[str], fmt: str) -> tuple[list[_Item], list[str]]:
    """The cues and bad blocks of an SRT or WebVTT text, and the text with only the cues left for pysubs2."""
    stamps = (SubripFormat if fmt == "srt" else WebVTTFormat).TIMESTAMP
    items: list[_Item] = []
    kept = [""] * len(lines)
    for n, block in enumerate(_blocks(lines)):
        rows = [i for i, (_, line) in enumerate(block) if len(stamps.findall(line)) == 2]
        first, problem = (_srt_block if fmt == "srt" else _vtt_block)(n, block, rows)
        if problem:
            items.append(problem)
        for i in range(len(block) if first is None else first, len(block)):
            number, line = block[i]
            kept[number - 1] = line
            if i in rows:
                items.append((number, None))
    return items, kept


_Verdict = tuple[int | None, tuple[int, str] | None]  # (row the cues start at, None: none) and (line, problem)


def _srt_block(n: int, block: list[tuple[int, str]], rows: list[int]) -> _Verdict:
    """Where the cues of an SRT block start and what is wrong with it."""
    number, head = block[0][0], block[0][1].strip()
    if not rows:
        return None, (number, f"expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm' in this block, found {head!r}; "
                              "fix the timing line, or remove the blank line that cut this text from its cue")
    if rows[0] > 1 or (rows[0] == 1 and not head.isdigit()):
        return rows[0], (number, f"unexpected text before the timing line: {head!r} (block skipped up to it); "
                                 "remove it")
    return rows[0], None


def _vtt_block(n: int, block: list[tuple[int, str]], rows: list[int]) -> _Verdict:
    """Where the cue of WebVTT block `n` starts (after its optional id) and what is wrong with it."""
    number, head = block[0][0], block[0][1].strip()
    if n == 0:  # the header (`_read_subtitles` checked that it starts with WEBVTT)
        if any("-->" in line for _, line in block[1:]):
            return None, (number, "a cue must be separated from the WEBVTT header by a blank line; add one")
        return None, None
    if head.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in head:
        return None, None
    arrows = [i for i, (_, line) in enumerate(block) if "-->" in line]
    if not arrows or arrows[0] > 1:
        return None, (number, f"expected '[id] MM:SS.mmm --> MM:SS.mmm' here, found {head!r}; add the timing line")
    number, line = block[arrows[0]]
    if arrows[0] not in rows or any(len(stamp[3]) != 3 for stamp in WebVTTFormat.TIMESTAMP.findall(line)):
        return None, (number, f"malformed timing line {line.strip()!r}; write it as 'HH:MM:SS.mmm --> HH:MM:SS.mmm' "
                              "(hours optional, two-digit minutes and seconds, three-digit milliseconds)")
    return arrows[0], None


def _scan_microdvd(lines: list[str]) -> tuple[list[_Item], list[str], float | None]:
    """The cues and bad lines of a MicroDVD text, the text with only the cues, and the frame rate its first cue line
    declares (`{1}{1}23.976`, as pysubs2 and VLC read it), if any."""
    items: list[_Item] = []
    kept = [""] * len(lines)
    declared = None
    for number, line in enumerate(lines, start=1):
        m = MICRODVD_LINE.match(line)
        if m is None:
            if line.strip():
                items.append((number, f"expected a MicroDVD line '{{start frame}}{{end frame}}text', found "
                                      f"{line.strip()!r}; fix or delete it"))
            continue
        if declared is None and int(m[1]) == int(m[2]) == 1 and not any(kept):
            try:
                declared = float(m[3])
                continue
            except ValueError:
                pass
        kept[number - 1] = line
        items.append((number, None))
    return items, kept, declared


def _ass_event(line: str, fmt: str = "ass") -> pysubs2.SSAEvent:
    """One `Dialogue:` line parsed by pysubs2's ASS/SSA event parser; ValueError says what is wrong with it."""
    fields = line.partition(":")[2].count(",") + 1
    if fields < 10:
        raise ValueError(f"it has {fields} of the 10 comma-separated fields")
    (event,) = pysubs2.SSAFile.from_string(line, format_=fmt).events
    return event


def _scan_ass(lines: list[str], fmt: str) -> list[_Item]:
    """The Dialogue lines of an ASS/SSA text as pysubs2 events, or the problem of each bad one (Comment lines and
    drawings are no cues)."""
    items: list[_Item] = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line.startswith("Dialogue:"):
            continue
        try:
            event = _ass_event(line, fmt)
        except ValueError as e:
            items.append((number, f"malformed Dialogue line: {e}; write it as 'Dialogue: {_ASS_FIELDS}' with times "
                                  "H:MM:SS.cc"))
            continue
        if not event.is_drawing:
            items.append((number, event))
    return items


def _video_fps(video: str) -> float | None:
    """The frame rate of `video` from its header (PyAV), None when it is no readable video."""
    if not (is_video_file(video) and Path(video).is_file()):
        return None
    try:
        return probe(video).fps
    except MediaError:
        return None


def _frame_rate(path: Path, fps: float | None, video: str) -> float:
    """MicroDVD's frame rate: `fps` (given or declared by the file), else the frame rate of `video`."""
    fps = fps or _video_fps(video)
    if not fps or fps <= 0:
        raise TranscriptError(path, "is MicroDVD, which counts frames, and its frame rate is unknown: pass fps= (e.g. "
                                    "23.976), start it with a line '{1}{1}23.976', or put its video beside it")
    return fps


def _read_subtitles(
    path: str | PathLike,
    fmt: str,
    source: str | PathLike | None,
    *,
    min_duration: float | None,
    strict: bool,
    encoding: str | None,
    fps: float | None = None,
) -> Transcript:
    """Read a subtitle file of format `fmt` ("srt", "vtt", "ass", "ssa", "microdvd") through pysubs2."""
    p = Path(path)
    text, used = read_text_file(p, encoding)
    lines = _lines(text)
    collector = _Collector(str(p), str(source) if source is not None else _default_source(p), strict)
    options: dict[str, object] = {}
    if fmt == "vtt":
        first = next((line for line in lines if line.strip()), "")
        if not first.lstrip("\ufeff").startswith("WEBVTT"):
            raise TranscriptError(p, "is not WebVTT: the first line must start with 'WEBVTT'", 1)
        options["keep_unknown_html_tags"] = True  # keeps the <v Speaker> voices
    if fmt in ("ass", "ssa"):
        fmt = SubstationFormat.guess_format(text) or fmt
        items = _scan_ass(lines, fmt)
    else:
        if fmt == "microdvd":
            items, kept, declared = _scan_microdvd(lines)
            if declared is None and not any(kept):
                raise TranscriptError(p, "is not MicroDVD: no line like '{0}{25}text'; convert it to .srt (a "
                                         "SubViewer or VobSub .sub is another format)")
            options["fps"] = _frame_rate(p, fps or declared, collector.source)
        else:
            items, kept = _scan_blocks(lines, fmt)
        events = pysubs2.SSAFile.from_string("\n".join(kept), format_=fmt, **options).events
        if len(events) != sum(what is None for _, what in items):  # pragma: no cover - the scans mirror pysubs2
            raise AssertionError(f"{p}: pysubs2 and the line scan disagree on the number of cues")
        found = iter(events)
        items = [(line, next(found) if what is None else what) for line, what in items]
    for line, what in items:
        if isinstance(what, str):
            collector.problem(line, what)
            continue
        voice = _VOICE_RE.search(what.text) if fmt == "vtt" else None
        text = _clean_text(what.text if fmt in ("srt", "vtt") else what.plaintext)
        speaker = voice.group(1).strip() if voice else what.name.strip()
        collector.add(line, what.start / 1000, what.end / 1000, text, speaker=speaker)
    if not collector.utterances and not collector.skipped:
        raise TranscriptError(p, "has no subtitle cues (empty file?); provide a transcript with timed cues")
    return _finish(collector, fmt, used, min_duration, str(p))


# -- embedded subtitle streams ---------------------------------------------------------------------------------------


def _embedded_event(sub) -> pysubs2.SSAEvent | None:
    """One decoded subtitle (PyAV) as a pysubs2 event, its ASS fields (Name, Text) parsed by pysubs2; None for
    bitmaps. FFmpeg hands text subtitles of any codec over as ASS `ReadOrder,Layer,Style,Name,...,Text`."""
    if getattr(sub, "type", None) in (b"bitmap", "bitmap"):
        return None

    def string(name: str) -> str:
        raw = getattr(sub, name, None) or b""
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    ass = string("ass")
    try:
        if not ass.startswith("Dialogue:"):
            _, layer, rest = ass.split(",", 2)
            ass = f"Dialogue: {layer},0:00:00.00,0:00:00.00,{rest}"  # times come from the packet
        return _ass_event(ass)
    except ValueError:
        text = string("text") or string("dialogue")
        return pysubs2.SSAEvent(text=text.replace("\n", r"\N")) if text else None


def read_embedded_subtitles(
    video: str | PathLike,
    *,
    stream_index: int | None = None,
    min_duration: float | None = DEFAULT_MIN_DURATION,
    strict: bool = False,
) -> Transcript:
    """Cues of a text subtitle stream inside `video` (mov_text, SubRip, ASS, WebVTT...); the ASS Name field gives the
    speaker.

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
            raise NoTranscriptError(
                p,
                "has no embedded subtitle stream; put an .srt, .vtt or .ass with the same name beside it, use a "
                "CSV manifest, or let ASR transcribe it (--transcribe auto with faster-whisper installed)",
            )
        cues: dict[int, list[tuple[float, float | None, str, str]]] = {s.index: [] for s in streams}
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
                events = [e for e in map(_embedded_event, items) if e is not None]
                texts = [t for t in (_clean_text(e.plaintext) for e in events) if t]
                if texts:
                    speaker = next((e.name.strip() for e in events if e.name.strip()), "")
                    cues[packet.stream_index].append((start, end, " ".join(texts), speaker))
        except av.error.FFmpegError as e:
            raise TranscriptError(
                p, f"subtitle stream could not be decoded ({e}); extract it to .srt with a tool"
            ) from e
    finally:
        container.close()
    best = max(sorted(cues), key=lambda i: sum(len(cue[2]) for cue in cues[i]))
    if not cues[best]:
        raise TranscriptError(
            p, "its subtitle streams hold no text cues (bitmap subtitles?); provide an .srt/.vtt or a CSV manifest"
        )
    collector = _Collector(f"{p}#stream{best}", str(p), strict)
    for start, end, text, speaker in cues[best]:
        if end is None:
            collector.index += 1
            collector.problem(None, f"cue at {start:.3f} s has no duration", make_utterance_id(p, collector.index - 1))
            continue
        collector.add(None, start, end, text, speaker=speaker)
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
    """Read a CSV of rows `video,start,end,text[,speaker,label,session,utterance_id]` (header required, any column
    order, extra columns ignored). Relative video paths are taken from `base_dir` (default: the manifest's folder).
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
        optional = {name: row[col[name]].strip() for name in ("speaker", "label", "session") if name in col}
        c.add(line, start, end, _clean_text(row[col["text"]]), uid=uid, **optional)
        if len(c.utterances) > n_before:
            utterances.append(c.utterances[-1])
    for c in [bad, *collectors.values()]:
        skipped.extend(c.skipped)
    skipped.sort(key=lambda s: s.line or 0)
    if not utterances and not skipped:
        raise TranscriptError(p, "has a header but no rows")
    collector = _Collector(str(p), str(p), strict)
    collector.utterances, collector.skipped = utterances, skipped
    collector.lines = {uid: line for c in collectors.values() for uid, line in c.lines.items()}
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
    fps: float | None = None,
) -> Transcript:
    """Read any supported transcript; `format` ("srt", "vtt", "ass", "ssa", "sub"/"microdvd", "csv", "embedded")
    defaults to the file extension (a video extension means its embedded subtitles). `fps`: MicroDVD's frame rate."""
    p = Path(path)
    fmt = (format or p.suffix.lstrip(".")).lower()
    fmt = SUBTITLE_FORMATS.get(f".{fmt}", fmt)
    if fmt in SUBTITLE_FORMATS.values():
        return _read_subtitles(p, fmt, source, min_duration=min_duration, strict=strict, encoding=encoding, fps=fps)
    if fmt == "csv":
        return read_csv_manifest(p, min_duration=min_duration, strict=strict, encoding=encoding)
    if fmt == "embedded" or is_video_file(f"x.{fmt}"):
        return read_embedded_subtitles(p, min_duration=min_duration, strict=strict)
    raise TranscriptError(
        p, f"unknown transcript format {fmt!r}; use .srt, .vtt, .ass, .ssa, .sub, .csv or a video with subtitles"
    )


def _format_reader(fmt: str, doc: str):
    """`read_transcript` with its format fixed (same arguments otherwise)."""
    reader = functools.partial(read_transcript, format=fmt)
    reader.__doc__ = doc
    return reader


read_srt = _format_reader("srt", "Read a SubRip file (`read_transcript` arguments; `source`: the media file it belongs "
                                 "to, default the video with the same stem).")
read_vtt = _format_reader("vtt", "Read a WebVTT file (`read_transcript` arguments); a `<v Name>` voice tag gives the "
                                 "speaker; NOTE/STYLE/REGION blocks are ignored.")


def find_sidecar_transcript(video: str | PathLike) -> Path | None:
    """A subtitle file with the same stem beside `video` (.srt, .vtt, .ass, .ssa, .sub in that order), if there is
    one; a .sub with an .idx beside it is a VobSub bitmap pair and not taken."""
    v = Path(video)
    for ext in SUBTITLE_FORMATS:
        candidate = v.with_suffix(ext)
        if candidate.is_file() and not (ext == ".sub" and v.with_suffix(".idx").is_file()):
            return candidate
    return None


def read_video_transcript(
    video: str | PathLike, *, min_duration: float | None = DEFAULT_MIN_DURATION, strict: bool = False
) -> Transcript:
    """The transcript of `video`: a sidecar subtitle file when there is one, else its embedded subtitle stream."""
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
                    f"shorter than the minimum duration ({u.duration:.2f} s < {min_duration:.2f} s); lower "
                    "min_duration to keep it",
                )
            )
    return kept, skipped


# -- writers ---------------------------------------------------------------------------------------------------------


def _write(utterances: Iterable[Utterance], path: str | PathLike, fmt: str, fps: float | None = None) -> Path:
    """Write utterances as a UTF-8 subtitle file of pysubs2 format `fmt`."""
    subs = pysubs2.SSAFile()
    for u in utterances:
        text = u.text.replace("\n", r"\N")
        if fmt == "vtt" and u.speaker:
            text = f"<v {u.speaker}>{text}"
        name = " ".join(re.sub(r"[,\r\n]", " ", u.speaker).split())  # an ASS field holds no comma
        subs.append(pysubs2.SSAEvent(start=round(u.start * 1000), end=round(u.end * 1000), text=text, name=name))
    p = Path(path)
    if fmt == "microdvd":
        if not fps or fps <= 0:
            raise TranscriptError(p, "MicroDVD counts frames: pass fps= (the video's frame rate) to write it")
        # pysubs2 writes its frame-rate line as {0}{0}; readers (VLC, pysubs2) look for {1}{1}.
        p.write_text(f"{{1}}{{1}}{float(fps)}\n" + subs.to_string(fmt, fps=fps, write_fps_declaration=False), "utf-8")
    else:
        # keep_ssa_tags: SRT/WebVTT text is written as it is (pysubs2 would drop text in braces).
        p.write_text(subs.to_string(fmt, keep_ssa_tags=True), encoding="utf-8")
    return p


def write_srt(utterances: Iterable[Utterance], path: str | PathLike) -> Path:
    """Write utterances as a UTF-8 SubRip file."""
    return _write(utterances, path, "srt")


def write_vtt(utterances: Iterable[Utterance], path: str | PathLike) -> Path:
    """Write utterances as a WebVTT file (speakers as `<v Name>` voices)."""
    return _write(utterances, path, "vtt")


def write_ass(utterances: Iterable[Utterance], path: str | PathLike) -> Path:
    """Write utterances as an ASS file (speakers in the Name field; ASS keeps times to 10 ms)."""
    return _write(utterances, path, "ass")


def write_subtitles(utterances: Iterable[Utterance], path: str | PathLike, *, fps: float | None = None) -> Path:
    """Write utterances as the subtitle format of `path`'s ending (.srt, .vtt, .ass, .ssa; .sub needs `fps`)."""
    fmt = SUBTITLE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise TranscriptError(path, f"unknown subtitle format; name the file {', '.join(SUBTITLE_FORMATS)}")
    return _write(utterances, path, fmt, fps)


def write_csv_manifest(
    utterances: Iterable[Utterance], path: str | PathLike, *, relative_to: str | PathLike | None = None
) -> Path:
    """Write utterances as a CSV manifest (`video,start,end,text,speaker,label[,session]`, the session column only when
    an utterance has one) that `read_csv_manifest` reads; video paths are written relative to `relative_to` (default:
    the manifest's folder) when they are inside it."""
    p = Path(path)
    base = Path(relative_to) if relative_to is not None else p.parent
    utterances = list(utterances)
    columns = MANIFEST_COLUMNS if any(u.session for u in utterances) else MANIFEST_COLUMNS[:-1]
    with p.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for u in utterances:
            video = Path(u.source)
            try:
                video = video.relative_to(base)
            except ValueError:
                pass
            row = [str(video), f"{u.start:.3f}", f"{u.end:.3f}", u.text, u.speaker, u.label, u.session]
            writer.writerow(row[: len(columns)])
    return p


def with_source(transcript: Transcript, source: str | PathLike) -> Transcript:
    """A copy of `transcript` whose utterances point at `source` (ids unchanged)."""
    return replace(transcript, utterances=[replace(u, source=str(source)) for u in transcript.utterances])
