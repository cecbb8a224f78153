"""Transcript readers: SRT, WebVTT, embedded subtitle streams, CSV manifests; encodings, malformed input, ids."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from memobert.preprocessing.transcripts import (
    TranscriptError,
    Utterance,
    filter_min_duration,
    make_utterance_id,
    parse_timestamp,
    read_csv_manifest,
    read_embedded_subtitles,
    read_srt,
    read_transcript,
    read_video_transcript,
    read_vtt,
    safe_id,
    write_csv_manifest,
    write_srt,
    write_vtt,
)
from tests.fixtures_media import write_test_media

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
