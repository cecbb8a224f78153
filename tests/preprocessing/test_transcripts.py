"""Transcript readers and writers: SRT, WebVTT, ASS/SSA, MicroDVD, embedded subtitle streams, CSV manifests; encodings,
malformed cues (every reason, with file and line), round trips, ids, sessions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from memobert.preprocessing.transcripts import (
    TranscriptError,
    Utterance,
    filter_min_duration,
    find_sidecar_transcript,
    make_utterance_id,
    parse_timestamp,
    read_csv_manifest,
    read_embedded_subtitles,
    read_srt,
    read_transcript,
    read_video_transcript,
    read_vtt,
    safe_id,
    write_ass,
    write_csv_manifest,
    write_srt,
    write_subtitles,
    write_vtt,
)
from tests.support.media import write_test_media

SRT = """1
00:00:01,000 --> 00:00:03,500
Hello <i>there</i>,
general {\\an8}Kenobi.

2
00:00:04,000 --> 00:00:04,600
Too short.

3
00:00:05,250 --> 00:00:07,000 X1:10 X2:20
Third &amp; last.
"""


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_srt_basic(tmp_path):
    p = _write(tmp_path / "clip.srt", SRT)
    t = read_srt(p)
    assert t.format == "srt" and t.encoding == "utf-8"
    assert [(u.start, u.end, u.text) for u in t] == [
        (1.0, 3.5, "Hello there, general Kenobi."),
        (5.25, 7.0, "Third & last."),
    ]
    assert [u.utterance_id for u in t] == ["clip_0000", "clip_0002"]  # ids keep the cue position
    assert [u.index for u in t] == [0, 2]
    assert t.utterances[0].source == str(tmp_path / "clip")  # no video beside it: the stem
    (short,) = t.skipped
    assert short.item == "clip_0001" and "shorter than the minimum duration (0.60 s < 1.00 s)" in short.reason
    assert len(read_srt(p, min_duration=None)) == 3
    assert len(read_srt(p, min_duration=0.5)) == 3


def test_srt_source_defaults_to_the_video_beside_it(tmp_path):
    _write(tmp_path / "movie.srt", SRT)
    (tmp_path / "movie.mkv").write_bytes(b"")
    assert read_srt(tmp_path / "movie.srt")[0].source == str(tmp_path / "movie.mkv")
    assert read_srt(tmp_path / "movie.srt", source="/data/x.mp4")[0].source == "/data/x.mp4"


def test_srt_windows_line_endings_bom_and_no_index(tmp_path):
    text = (
        "\ufeff00:00:01.000 --> 00:00:02.500\r\nNo index line\r\n\r\n7\r\n0:00:03,0 --> 0:00:04,5\r\nshort stamps\r\n"
    )
    t = read_srt(_write(tmp_path / "a.srt", text))
    assert t.encoding == "utf-8-sig"
    assert [(u.start, u.end, u.text) for u in t] == [(1.0, 2.5, "No index line"), (3.0, 4.5, "short stamps")]


def test_srt_missing_blank_line_between_cues(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,500\nfirst\n2\n00:00:03,000 --> 00:00:04,500\nsecond\n"
    t = read_srt(_write(tmp_path / "a.srt", text))
    assert [u.text for u in t] == ["first", "second"]


def test_srt_malformed_blocks_are_skipped_with_line_numbers(tmp_path):
    text = (
        "1\n00:00:01,000 --> 00:00:02,500\nok one\n\n"
        "2\n00:00:0x,000 -> 00:00:04,000\nbroken timing\n\n"
        "3\n00:00:09,000 --> 00:00:08,000\nbackwards\n\n"
        "4\n00:00:10,000 --> 00:00:12,000\n<i></i>\n\n"
        "5\n00:00:13,000 --> 00:00:15,000\nok two\n"
    )
    p = _write(tmp_path / "bad.srt", text)
    t = read_srt(p)
    assert [u.text for u in t] == ["ok one", "ok two"]
    reasons = {s.item: s.reason for s in t.skipped}
    assert "timing line" in reasons["line 5"]
    assert any("before it starts" in r for r in reasons.values())
    assert any("no text" in r for r in reasons.values())
    assert all(s.source == str(p) for s in t.skipped)
    with pytest.raises(TranscriptError) as err:
        read_srt(p, strict=True)
    assert str(err.value).startswith(f"{p}:5: ") and err.value.line == 5


def test_non_utf8_transcripts(tmp_path):
    cp = read_srt(
        _write(tmp_path / "cp.srt", "1\n00:00:01,000 --> 00:00:03,000\n\u201cCaf\u00e9\u201d \u2013 ok\n", "cp1252")
    )
    assert cp.encoding == "cp1252" and cp[0].text == "\u201cCaf\u00e9\u201d \u2013 ok"
    # 0x81 is undefined in cp1252: latin-1 takes it.
    (tmp_path / "l1.srt").write_bytes(b"1\n00:00:01,000 --> 00:00:03,000\nna\xefve \x81 text\n")
    l1 = read_srt(tmp_path / "l1.srt")
    assert l1.encoding == "latin-1" and l1[0].text.startswith("na\u00efve")
    u16 = read_srt(_write(tmp_path / "u16.srt", "\ufeff1\n00:00:01,000 --> 00:00:03,000\n\u65e5\u672c\n", "utf-16-le"))
    assert u16.encoding == "utf-16" and u16[0].text == "\u65e5\u672c"
    forced = read_srt(tmp_path / "l1.srt", encoding="latin-1")
    assert forced.encoding == "latin-1"
    with pytest.raises(TranscriptError, match="cannot be decoded as ascii"):
        read_srt(tmp_path / "l1.srt", encoding="ascii")


def test_file_level_errors(tmp_path):
    with pytest.raises(TranscriptError, match="not found"):
        read_srt(tmp_path / "missing.srt")
    (tmp_path / "bin.srt").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(TranscriptError, match="binary"):
        read_srt(tmp_path / "bin.srt")
    with pytest.raises(TranscriptError, match="no subtitle cues"):
        read_srt(_write(tmp_path / "empty.srt", "\n\n"))
    with pytest.raises(TranscriptError, match="unknown transcript format"):
        read_transcript(_write(tmp_path / "a.txt", "x"))


VTT = """WEBVTT - a header
Kind: captions

NOTE this is a comment
spanning lines

STYLE
::cue { color: red }

intro
00:01.000 --> 00:03.000 align:start position:10%
<v Alice>Hi <b>Bob</b></v>

00:00:04.000 --> 00:00:06.500
<v.loud Bob Smith>Hello Alice &lt;3

3
00:07.000 --> 00:07.500
tiny
"""


def test_vtt(tmp_path):
    t = read_vtt(_write(tmp_path / "talk.vtt", VTT), "talk.mp4")
    assert [(u.start, u.end, u.text, u.speaker) for u in t] == [
        (1.0, 3.0, "Hi Bob", "Alice"),
        (4.0, 6.5, "Hello Alice <3", "Bob Smith"),
    ]
    assert [u.utterance_id for u in t] == ["talk_0000", "talk_0001"]
    assert len(t.skipped) == 1 and "shorter" in t.skipped[0].reason
    assert read_transcript(tmp_path / "talk.vtt").format == "vtt"


def test_vtt_errors(tmp_path):
    with pytest.raises(TranscriptError, match="first line must start with 'WEBVTT'"):
        read_vtt(_write(tmp_path / "a.vtt", "00:01.000 --> 00:03.000\nhi\n"))
    bad = _write(tmp_path / "b.vtt", "WEBVTT\n\n00:01.000 --> 00:xx.000\nbroken\n\n00:04.000 --> 00:06.000\nfine\n")
    t = read_vtt(bad)
    assert [u.text for u in t] == ["fine"] and "malformed timing" in t.skipped[0].reason
    with pytest.raises(TranscriptError, match=r"b\.vtt:3: malformed timing"):
        read_vtt(bad, strict=True)


def test_writers_round_trip(tmp_path):
    us = [
        Utterance("v.mp4", "v_0000", 0, 1.0, 2.5, "one", "A", "happy"),
        Utterance("v.mp4", "v_0001", 1, 3.25, 5.0, "two, with comma", "B", "sad"),
    ]
    srt = read_srt(write_srt(us, tmp_path / "v.srt"), "v.mp4")
    assert [(u.start, u.end, u.text) for u in srt] == [(u.start, u.end, u.text) for u in us]
    vtt = read_vtt(write_vtt(us, tmp_path / "v.vtt"), "v.mp4")
    assert [(u.start, u.end, u.text, u.speaker) for u in vtt] == [(u.start, u.end, u.text, u.speaker) for u in us]
    csv_path = write_csv_manifest([replace(u, source=str(tmp_path / "v.mp4")) for u in us], tmp_path / "m.csv")
    back = read_csv_manifest(csv_path)
    assert [(u.start, u.end, u.text, u.speaker, u.label) for u in back] == [
        (u.start, u.end, u.text, u.speaker, u.label) for u in us
    ]
    assert "v.mp4," in csv_path.read_text()  # written relative to the manifest's folder


def test_csv_manifest(tmp_path):
    text = (
        "Text,VIDEO,start,end,label,speaker,notes\n"
        '"Hi, there",a.mp4,1.0,2.5,happy,S1,x\n'
        "bye,sub/b.mp4,00:00:03.000,00:00:05.000,sad,S2,y\n"
        "again,a.mp4,6,8,,,\n"
        "short,a.mp4,9,9.5,,,\n"
        "bad time,a.mp4,ten,12,,,\n"
        ",,,,,,\n"
        "no video,,1,3,,,\n"
    )
    p = _write(tmp_path / "m.csv", text)
    t = read_csv_manifest(p)
    assert [(Path(u.source).name, u.start, u.end, u.text, u.label, u.speaker, u.utterance_id) for u in t] == [
        ("a.mp4", 1.0, 2.5, "Hi, there", "happy", "S1", "a_0000"),
        ("b.mp4", 3.0, 5.0, "bye", "sad", "S2", "b_0000"),
        ("a.mp4", 6.0, 8.0, "again", "", "", "a_0001"),
    ]
    assert t.utterances[1].source == str(tmp_path / "sub" / "b.mp4")
    by_line = {s.line: s.reason for s in t.skipped}
    assert "shorter" in [s.reason for s in t.skipped if s.item == "a_0002"][0]
    assert "bad start/end" in by_line[6] and "no video" in by_line[8]
    assert list(t.by_source()) == [str(tmp_path / "a.mp4"), str(tmp_path / "sub" / "b.mp4")]
    other_base = read_csv_manifest(p, base_dir="/media")
    assert other_base[0].source == str(Path("/media/a.mp4"))
    with pytest.raises(TranscriptError, match=r"m\.csv:6: bad start/end"):
        read_csv_manifest(p, strict=True)


def test_csv_manifest_errors_and_ids(tmp_path):
    with pytest.raises(TranscriptError, match="missing column\\(s\\) end, text"):
        read_csv_manifest(_write(tmp_path / "a.csv", "video,start\nx.mp4,1\n"))
    with pytest.raises(TranscriptError, match="is empty"):
        read_csv_manifest(_write(tmp_path / "e.csv", ""))
    with pytest.raises(TranscriptError, match="no rows"):
        read_csv_manifest(_write(tmp_path / "h.csv", "video,start,end,text\n"))
    text = (
        "video,start,end,text,utterance_id\n"
        "x/clip.mp4,0,2,a,../../etc/passwd\n"
        "y/clip.mp4,0,2,b,\n"
        "x/clip.mp4,3,5,c,\n"
        "x/clip.mp4,6,8,d,../../etc/passwd\n"
    )
    t = read_csv_manifest(_write(tmp_path / "ids.csv", text))
    ids = [u.utterance_id for u in t]
    assert len(ids) == 3 and len(set(ids)) == 3
    for uid in ids:
        assert "/" not in uid and "\\" not in uid and ".." not in uid and not uid.startswith(".")
    # Two videos named clip.mp4 in different folders get different ids.
    assert ids[1].startswith("clip-") and ids[2].startswith("clip-") and ids[1][:13] != ids[2][:13]
    assert "duplicate utterance_id" in t.skipped[0].reason and t.skipped[0].line == 5


def test_safe_id():
    for raw in ["../../x", "a/b", "a\\b", "..", ".hidden", "", "con", "x" * 300, "caf\u00e9 clip:1", "a..b"]:
        s = safe_id(raw)
        assert s and "/" not in s and "\\" not in s and ".." not in s and not s.startswith(".")
        assert len(s) <= 100
        assert all(c.isalnum() or c in "._-" for c in s)
    assert safe_id("clip_0001") == "clip_0001"  # safe ids stay as they are
    assert safe_id("a/b") != safe_id("a_b")  # changed ids keep their identity
    assert make_utterance_id("/data/My Movie (1).mkv", 3).endswith("_0003")
    assert "/" not in make_utterance_id("/data/My Movie (1).mkv", 3)


def test_parse_timestamp_and_filter():
    assert parse_timestamp("12.5") == 12.5
    assert parse_timestamp("00:01:02,250") == 62.25
    assert parse_timestamp("01:02.5") == 62.5
    assert parse_timestamp("1:00:00") == 3600.0
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp("12s")
    us = [Utterance("v", f"v_{i}", i, 0.0, d, "x") for i, d in enumerate([0.5, 1.0, 3.0])]
    kept, skipped = filter_min_duration(us, 1.0)
    assert [u.index for u in kept] == [1, 2] and skipped[0].item == "v_0"


def test_embedded_subtitles_mp4_and_mkv(tmp_path):
    cues = [(0.5, 1.7, "Hello there, friend"), (2.0, 3.5, "Second line\nwith newline"), (3.6, 3.9, "short")]
    mp4 = write_test_media(tmp_path / "s.mp4", seconds=4.0, subtitles=cues)
    t = read_embedded_subtitles(mp4)
    assert t.format == "embedded" and t.path.endswith("#stream2")
    assert [(round(u.start, 3), round(u.end, 3), u.text) for u in t] == [
        (0.5, 1.7, "Hello there, friend"),
        (2.0, 3.5, "Second line with newline"),
    ]
    assert t.skipped[0].reason.startswith("shorter") and t[0].source == str(mp4)
    assert read_transcript(mp4).format == "embedded"
    # Matroska with two subtitle streams: the longest (most text) wins unless a stream is named.
    long_cues = [(0.2, 1.4, "a much longer line of dialogue"), (1.5, 3.0, "and another long line here")]
    mkv = write_test_media(tmp_path / "s.mkv", seconds=4.0, subtitles=cues[:1], subtitle_tracks=[long_cues])
    assert [u.text for u in read_embedded_subtitles(mkv)] == [c[2] for c in long_cues]
    first = read_embedded_subtitles(mkv, stream_index=2)
    assert [u.text for u in first] == ["Hello there, friend"]
    with pytest.raises(TranscriptError, match="no subtitle stream with index 9"):
        read_embedded_subtitles(mkv, stream_index=9)


def test_embedded_subtitles_errors_and_sidecar_preference(tmp_path):
    plain = write_test_media(tmp_path / "plain.mp4", seconds=1.0)
    with pytest.raises(TranscriptError, match="no embedded subtitle stream; put an .srt"):
        read_embedded_subtitles(plain)
    with pytest.raises(TranscriptError, match="no embedded subtitle stream"):
        read_video_transcript(plain)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(TranscriptError, match="cannot be opened as media"):
        read_embedded_subtitles(tmp_path / "junk.mp4")
    _write(tmp_path / "plain.srt", "1\n00:00:00,000 --> 00:00:01,000\nfrom the sidecar\n")
    t = read_video_transcript(plain)
    assert t.format == "srt" and t[0].text == "from the sidecar" and t[0].source == str(plain)


# -- malformed cues: every reason, per format, with the file and line ------------------------------------------------

ASS_HEAD = (
    "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, "
    "MarginV, Encoding\nStyle: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,2,"
    "2,10,10,10,1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)  # 9 lines: events start at line 10

MALFORMED = {
    "bad.srt": (
        "1\n00:00:01,000 --> 00:00:03,000\nok\n\n"  # 1-4
        "2\n00:00:0x,000 --> 00:00:05,000\nbroken\n\n"  # 5-8
        "stray text\n00:00:06,000 --> 00:00:08,000\nafter stray\n\n"  # 9-12
        "4\n00:00:10,000 --> 00:00:09,000\nbackwards\n\n"  # 13-16
        "5\n00:00:11,000 --> 00:00:13,000\n<i> </i>\n\n"  # 17-20
        "6\n00:00:14,000 --> 00:00:14,500\nshort\n",  # 21-23
        [("ok", ""), ("after stray", "")],
        [
            (5, "line 5", "expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm' in this block, found '2'; fix"),
            (9, "line 9", "unexpected text before the timing line: 'stray text' (block skipped up to it); remove"),
            (14, "bad_0002", "cue ends (9.000 s) before it starts (10.000 s); fix its timing"),
            (18, "bad_0003", "cue has no text; give it text or delete it"),
            (22, "bad_0004", "shorter than the minimum duration (0.50 s < 1.00 s); lower min_duration"),
        ],
    ),
    "bad.vtt": (
        "WEBVTT\n00:00.000 --> 00:01.000\nglued\n\n"  # 1-4
        "a\nb\n00:02.000 --> 00:04.000\n\n"  # 5-8
        "00:05.000 --> 00:0x.000\nbad\n\n"  # 9-11
        "id\n00:07.000 --> 00:06.000\n<v Al>back\n\n"  # 12-15
        "00:08.000 --> 00:10.000\n<b></b>\n\n"  # 16-18
        "00:11.000 --> 00:11.200\ntiny\n\n"  # 19-21
        "00:12.000 --> 00:14.000\n<v Ann>fine\n",  # 22-23
        [("fine", "Ann")],
        [
            (1, "line 1", "a cue must be separated from the WEBVTT header by a blank line; add one"),
            (5, "line 5", "expected '[id] MM:SS.mmm --> MM:SS.mmm' here, found 'a'"),
            (9, "line 9", "malformed timing line '00:05.000 --> 00:0x.000'; write it as 'HH:MM:SS.mmm --> HH:MM"),
            (13, "bad_0000", "cue ends (6.000 s) before it starts (7.000 s)"),
            (16, "bad_0001", "cue has no text"),
            (19, "bad_0002", "shorter than the minimum duration (0.20 s < 1.00 s)"),
        ],
    ),
    "bad.ass": (
        ASS_HEAD
        + "Dialogue: 0,0:00:01.00,0:00:03.00,Default,Ann,0,0,0,,{\\i1}Good{\\i0}\\Nmorning\n"  # 10
        "Dialogue: 0,0:00:0x.00,0:00:05.00,Default,,0,0,0,,bad time\n"  # 11
        "Dialogue: 0,0:00:06.00\n"  # 12
        "Dialogue: 0,0:00:08.00,0:00:07.00,Default,,0,0,0,,backwards\n"  # 13
        "Dialogue: 0,0:00:09.00,0:00:11.00,Default,,0,0,0,,{\\b1}{\\b0}\n"  # 14
        "Dialogue: 0,-0:00:01.00,0:00:00.50,Default,,0,0,0,,negative\n"  # 15
        "Comment: 0,0:00:12.00,0:00:14.00,Default,,0,0,0,,not a cue\n"  # 16
        "Dialogue: 0,0:00:15.00,0:00:15.50,Default,,0,0,0,,short\n"  # 17
        "Dialogue: 0,0:00:16.00,0:00:18.00,Default,Bob,0,0,0,,bye\n",  # 18
        [("Good morning", "Ann"), ("bye", "Bob")],
        [
            (11, "line 11", "malformed Dialogue line: Failed to parse timestamp: '0:00:0x.00'; write it as 'Dialogue: "
                            "Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text' with times"),
            (12, "line 12", "malformed Dialogue line: it has 2 of the 10 comma-separated fields"),
            (13, "bad_0001", "cue ends (7.000 s) before it starts (8.000 s)"),
            (14, "bad_0002", "cue has no text"),
            (15, "bad_0003", "cue starts at a negative time (-1.000 s); shift it to 0 or later"),
            (17, "bad_0004", "shorter than the minimum duration (0.50 s < 1.00 s)"),
        ],
    ),
    "bad.sub": (
        "{1}{1}25\n{25}{75}Hello|there\nnot a cue line\n{150}{100}back\n{200}{250}{y:i}\n{300}{310}short\n"
        "{400}{450}{y:i}bye\n",
        [("Hello there", ""), ("bye", "")],
        [
            (3, "line 3", "expected a MicroDVD line '{start frame}{end frame}text', found 'not a cue line'; fix"),
            (4, "bad_0001", "cue ends (4.000 s) before it starts (6.000 s)"),
            (5, "bad_0002", "cue has no text"),
            (6, "bad_0003", "shorter than the minimum duration (0.40 s < 1.00 s)"),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_cues_are_skipped_with_file_line_and_reason(tmp_path, name):
    text, good, bad = MALFORMED[name]
    p = _write(tmp_path / name, text)
    t = read_transcript(p)
    assert [(u.text, u.speaker) for u in t] == good
    assert [(s.line, s.item) for s in t.skipped] == [(line, item) for line, item, _ in bad]
    for s, (_, _, reason) in zip(t.skipped, bad):
        assert s.source == str(p) and s.reason.startswith(reason), (s, reason)
    with pytest.raises(TranscriptError) as err:
        read_transcript(p, strict=True)
    first_line, _, first_reason = bad[0]
    assert str(err.value).startswith(f"{p}:{first_line}: {first_reason}") and err.value.line == first_line


def test_vtt_timing_needs_three_digit_milliseconds(tmp_path):
    p = _write(tmp_path / "frac.vtt", "WEBVTT\n\n00:01.50 --> 00:03.00\ntwo digits\n\n00:04.000 --> 00:06.000\nok\n")
    t = read_vtt(p)
    assert [u.text for u in t] == ["ok"]
    assert (t.skipped[0].line, t.skipped[0].item) == (3, "line 3") and "three-digit milliseconds" in t.skipped[0].reason


def test_csv_cue_reasons_name_the_manifest_line(tmp_path):
    text = "video,start,end,text\na.mp4,-1,2,neg\na.mp4,5,4,back\na.mp4,6,8,<i></i>\na.mp4,9,9.5,short\na.mp4,10,12,ok"
    p = _write(tmp_path / "m.csv", text)
    t = read_csv_manifest(p)
    assert [u.text for u in t] == ["ok"]
    assert [(s.line, s.item) for s in t.skipped] == [(2, "a_0000"), (3, "a_0001"), (4, "a_0002"), (5, "a_0003")]
    reasons = [s.reason for s in t.skipped]
    assert "negative time" in reasons[0] and "before it starts" in reasons[1] and "no text" in reasons[2]
    assert "shorter than the minimum duration" in reasons[3]
    assert [s.source for s in t.skipped] == [str(p)] * 3 + [str(tmp_path / "a.mp4")]  # short rows keep their video


# -- ASS/SSA and MicroDVD ---------------------------------------------------------------------------------------------


def test_ass_speakers_tags_and_encoding(tmp_path):
    text = ASS_HEAD + (
        "Dialogue: 0,0:00:01.00,0:00:03.50,Default,Ann,0,0,0,,{\\an8}{\\i1}Caf\u00e9{\\i0}\\Nau lait, s'il vous "
        "pla\u00eet\n"
        "Dialogue: 0,0:00:04.00,0:00:06.00,Default,,0,0,0,,{a comment}No speaker\\hhere\n"
        "Dialogue: 0,0:00:06.00,0:00:08.00,Default,,0,0,0,,{\\p1}m 0 0 l 100 0 100 100 0 100{\\p0}\n"
    )
    t = read_transcript(_write(tmp_path / "ep01.ass", text, "cp1252"))
    assert t.format == "ass" and t.encoding == "cp1252"
    assert [(u.start, u.end, u.text, u.speaker, u.utterance_id) for u in t] == [
        (1.0, 3.5, "Caf\u00e9 au lait, s'il vous pla\u00eet", "Ann", "ep01_0000"),
        (4.0, 6.0, "No speaker here", "", "ep01_0001"),
    ]  # the drawing is no cue
    ssa = (
        "[Script Info]\nScriptType: v4.00\n\n[V4 Styles]\n[Events]\n"
        "Format: Marked, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: Marked=0,0:00:01.00,0:00:02.50,Default,Bo,0000,0000,0000,,Old style\n"
    )
    old = read_transcript(_write(tmp_path / "ep02.ssa", ssa))
    assert old.format == "ssa" and [(u.start, u.end, u.text, u.speaker) for u in old] == [(1.0, 2.5, "Old style", "Bo")]
    with pytest.raises(TranscriptError, match="no subtitle cues"):
        read_transcript(_write(tmp_path / "empty.ass", ASS_HEAD))


def test_microdvd_frame_rate_sources(tmp_path):
    cues = "{25}{75}Hello\n{100}{150}World\n"
    video = write_test_media(tmp_path / "film.mp4", seconds=1.0, fps=25.0, audio=False)
    sidecar = _write(tmp_path / "film.sub", cues)
    t = read_transcript(sidecar)  # the frame rate of the video beside it
    assert t.format == "microdvd" and t[0].source == str(video)
    assert [(u.start, u.end, u.text) for u in t] == [(1.0, 3.0, "Hello"), (4.0, 6.0, "World")]
    assert [(u.start, u.end) for u in read_transcript(sidecar, fps=50)] == [(0.5, 1.5), (2.0, 3.0)]  # fps wins
    lone = _write(tmp_path / "lone.sub", "{1}{1}10\n" + cues)  # the file's own frame-rate line
    assert [(u.start, u.end) for u in read_transcript(lone)] == [(2.5, 7.5), (10.0, 15.0)]
    with pytest.raises(TranscriptError, match=r"nofps\.sub: is MicroDVD, which counts frames, .* pass fps="):
        read_transcript(_write(tmp_path / "nofps.sub", cues))
    assert read_transcript(tmp_path / "nofps.sub", fps=25)[0].end == 3.0
    with pytest.raises(TranscriptError, match="is not MicroDVD"):
        read_transcript(_write(tmp_path / "viewer.sub", "[INFORMATION]\n00:00:01.00,00:00:02.00\nhi\n"), fps=25)


def test_sidecar_search_covers_every_subtitle_format(tmp_path):
    video = write_test_media(tmp_path / "ep.mp4", seconds=1.0, audio=False)
    assert find_sidecar_transcript(video) is None
    (tmp_path / "ep.sub").write_bytes(b"\x00VobSub bitmaps")
    (tmp_path / "ep.idx").write_text("# VobSub index file")
    assert find_sidecar_transcript(video) is None  # a VobSub pair holds bitmaps
    found = []
    for ext, cue in [
        (".ssa", "[V4 Styles]\nDialogue: Marked=0,0:00:00.00,0:00:01.00,Default,Sam,0,0,0,,ssa cue\n"),
        (".ass", ASS_HEAD + "Dialogue: 0,0:00:00.00,0:00:01.00,Default,Sam,0,0,0,,ass cue\n"),
        (".vtt", "WEBVTT\n\n00:00.000 --> 00:01.000\nvtt cue\n"),
        (".srt", "1\n00:00:00,000 --> 00:00:01,000\nsrt cue\n"),
    ]:
        _write(tmp_path / f"ep{ext}", cue)
        assert find_sidecar_transcript(video) == tmp_path / f"ep{ext}"
        t = read_video_transcript(video)
        found.append((t.format, t[0].text, t[0].speaker, t[0].source))
    assert found == [
        ("ssa", "ssa cue", "Sam", str(video)),
        ("ass", "ass cue", "Sam", str(video)),
        ("vtt", "vtt cue", "", str(video)),
        ("srt", "srt cue", "", str(video)),
    ]
    (tmp_path / "other.mp4").write_bytes(b"")
    _write(tmp_path / "other.sub", "{0}{25}frames\n")
    (tmp_path / "other.idx").unlink(missing_ok=True)
    assert find_sidecar_transcript(tmp_path / "other.mp4") == tmp_path / "other.sub"


def test_shared_video_extensions(tmp_path):
    import memobert.preprocessing.transcripts as transcripts

    assert not hasattr(transcripts, "_VIDEO_EXTENSIONS")
    _write(tmp_path / "show.srt", SRT)
    (tmp_path / "show.m2ts").write_bytes(b"")  # in decode.VIDEO_EXTENSIONS
    assert read_srt(tmp_path / "show.srt")[0].source == str(tmp_path / "show.m2ts")
    with pytest.raises(TranscriptError, match="cannot be opened as media"):
        read_transcript(tmp_path / "show.m2ts")  # a video ending means its embedded subtitles


# -- writers ---------------------------------------------------------------------------------------------------------

ROUND_TRIP = [
    Utterance("v.mp4", "v_0000", 0, 1.0, 2.5, "one {braces} & <3", "Ann", "happy"),
    Utterance("v.mp4", "v_0001", 1, 3.257, 5.001, "two, with comma", "Smith, John", "sad"),
    Utterance("v.mp4", "v_0002", 2, 3661.12, 3663.4, "an hour in", "", ""),
]


@pytest.mark.parametrize("ext", [".srt", ".vtt", ".ass", ".ssa"])
def test_subtitle_round_trips(tmp_path, ext):
    path = write_subtitles(ROUND_TRIP, tmp_path / f"v{ext}")
    back = read_transcript(path, "v.mp4", min_duration=None)
    assert not back.skipped and [u.utterance_id for u in back] == ["v_0000", "v_0001", "v_0002"]
    if ext in (".srt", ".vtt"):  # milliseconds
        assert [(u.start, u.end) for u in back] == [(u.start, u.end) for u in ROUND_TRIP]
    else:  # ASS/SSA keep centiseconds
        assert [(u.start, u.end) for u in back] == [(1.0, 2.5), (3.26, 5.0), (3661.12, 3663.4)]
    texts = ["one {braces} & <3" if ext in (".srt", ".vtt") else "one & <3", "two, with comma", "an hour in"]
    assert [u.text for u in back] == texts  # ASS reads braces as override blocks
    speakers = {".srt": ["", "", ""], ".vtt": ["Ann", "Smith, John", ""]}.get(ext, ["Ann", "Smith John", ""])
    assert [u.speaker for u in back] == speakers  # SRT has no speakers; an ASS Name holds no comma


def test_write_ass_and_write_subtitles(tmp_path):
    us = ROUND_TRIP[:2]
    ass = write_ass(us, tmp_path / "named.txt")  # write_ass writes ASS whatever the ending
    assert "Dialogue: 0,0:00:01.00,0:00:02.50,Default,Ann,0,0,0,,one {braces} & <3" in ass.read_text()
    assert read_transcript(ass, format="ass")[1].speaker == "Smith John"
    assert read_transcript(write_vtt(us, tmp_path / "x.vtt"))[0].speaker == "Ann"
    sub = write_subtitles(us, tmp_path / "v.sub", fps=25)
    lines = sub.read_text().splitlines()
    assert lines[0] == "{1}{1}25.0" and lines[2] == "{81}{125}two, with comma"  # its frame rate, then frames
    assert [(u.start, u.end) for u in read_transcript(sub)] == [(1.0, 2.48), (3.24, 5.0)]  # whole frames
    with pytest.raises(TranscriptError, match="MicroDVD counts frames: pass fps="):
        write_subtitles(us, tmp_path / "w.sub")
    with pytest.raises(TranscriptError, match=r"w\.txt: unknown subtitle format; name the file \.srt, \.vtt"):
        write_subtitles(us, tmp_path / "w.txt")


# -- embedded ASS streams and sessions -------------------------------------------------------------------------------


def _mux_subtitle_file(video: Path, subtitles: Path, out: Path) -> Path:
    """`video` with the subtitle file muxed in as one more stream (PyAV, no re-encoding)."""
    import av

    inputs = [av.open(str(video)), av.open(str(subtitles))]
    try:
        with av.open(str(out), "w") as output:
            # Every stream is added before the first packet is muxed (that writes the header).
            streams = [{s.index: output.add_stream_from_template(s) for s in c.streams} for c in inputs]
            for container, mapping in zip(inputs, streams):
                for packet in container.demux():
                    if packet.dts is not None:
                        packet.stream = mapping[packet.stream.index]
                        output.mux(packet)
    finally:
        for container in inputs:
            container.close()
    return out


def test_embedded_ass_stream_gives_speakers(tmp_path):
    ass = _write(
        tmp_path / "cues.ass",
        ASS_HEAD
        + "Dialogue: 0,0:00:00.50,0:00:02.00,Default,Alice,0,0,0,,{\\i1}Hello{\\i0}\\Nthere, friend\n"
        "Dialogue: 0,0:00:02.50,0:00:04.00,Default,Bob,0,0,0,,Second, with comma\n",
    )
    video = write_test_media(tmp_path / "plain.mkv", seconds=4.0, audio=False)
    mkv = _mux_subtitle_file(video, ass, tmp_path / "named.mkv")
    t = read_embedded_subtitles(mkv)
    assert [(u.start, u.end, u.text, u.speaker) for u in t] == [
        (0.5, 2.0, "Hello there, friend", "Alice"),
        (2.5, 4.0, "Second, with comma", "Bob"),
    ]


def test_embedded_bitmap_and_plain_text_subtitles():
    from types import SimpleNamespace

    from memobert.preprocessing.transcripts import _embedded_event

    assert _embedded_event(SimpleNamespace(type=b"bitmap")) is None  # PGS/DVD bitmaps cannot be read
    plain = _embedded_event(SimpleNamespace(type=b"text", ass=b"", text=b"plain\ntext"))
    assert plain.plaintext == "plain\ntext" and plain.name == ""
    named = _embedded_event(SimpleNamespace(type=b"ass", ass=b"3,0,Default,Zoe,0,0,0,,Hi{\\b1}!{\\b0}"))
    assert (named.name, named.plaintext) == ("Zoe", "Hi!")


def test_utterance_session_and_manifest_session_column(tmp_path):
    u = Utterance("v.mp4", "v_0000", 0, 1.0, 2.0, "hi", "A", "happy")  # positional, as the callers build it
    assert u.session == "" and replace(u, session="s1").session == "s1"
    plain = write_csv_manifest([replace(u, source=str(tmp_path / "v.mp4"))], tmp_path / "plain.csv")
    assert plain.read_text().splitlines()[0] == "video,start,end,text,speaker,label"  # no sessions: no column
    us = [replace(u, source=str(tmp_path / "v.mp4"), session="Ses01"), replace(u, source=str(tmp_path / "w.mp4"))]
    path = write_csv_manifest(us, tmp_path / "m.csv")
    assert path.read_text().splitlines()[:2] == [
        "video,start,end,text,speaker,label,session",
        "v.mp4,1.000,2.000,hi,A,happy,Ses01",
    ]
    assert [u.session for u in read_csv_manifest(path)] == ["Ses01", ""]
    other = _write(tmp_path / "o.csv", "Session,video,start,end,text\n  2 ,a.mp4,0,3,x\n")
    assert read_csv_manifest(other)[0].session == "2"
    assert read_csv_manifest(plain)[0].session == ""
