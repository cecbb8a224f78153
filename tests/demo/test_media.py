"""The demo media generator: real mp4 files with both streams, transcripts, labels, partial cues, determinism (on the
session's `demo_media` of `DEMO_SETTINGS`, and on clips of other settings written here)."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace

import av
import numpy as np
import pytest

from memobert.demo.media import _EMOTION_WORDS, DEMO_LABELS, _synth_voice, make_demo_media
from memobert.preprocessing.decode import probe
from memobert.preprocessing.transcripts import read_csv_manifest, read_embedded_subtitles, read_srt
from tests.support.media import DEMO_SETTINGS

SMALL = dict(utterances_per_clip=(3, 3), utterance_duration=(1.2, 1.5), width=160, height=120)  # quick to write


def test_files_streams_and_codecs(demo_media):
    folder, clips = demo_media
    assert len(clips) == DEMO_SETTINGS["num_clips"]
    fewest, most = DEMO_SETTINGS["utterances_per_clip"]
    shortest, longest = DEMO_SETTINGS["utterance_duration"]
    for clip in clips:
        assert clip.video.is_file() and clip.srt.is_file()
        info = probe(clip.video)
        assert info.has_audio and info.has_video
        assert (info.width, info.height) == (clip.width, clip.height)
        assert info.duration == pytest.approx(clip.duration, abs=0.15)
        with av.open(str(clip.video)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert container.streams.audio[0].codec_context.name == "aac"
        # Utterances are ordered, separated by silence, and inside the clip.
        us = clip.utterances
        assert fewest <= len(us) <= most
        for a, b in zip(us, us[1:]):
            assert a.voice_end < b.voice_start and a.end <= b.start
        assert all(0 <= u.start < u.voice_start < u.voice_end < u.end <= clip.duration for u in us)
        assert all(shortest - 0.1 <= u.voice_end - u.voice_start <= longest for u in us)  # the voice fades in and out
    assert (folder / "manifest.csv").is_file() and (folder / "demo_truth.json").is_file()


def test_manifest_and_srt_agree_with_truth(demo_media):
    folder, clips = demo_media
    with (folder / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["video", "start", "end", "text", "speaker", "label"]
    truth = [u for clip in clips for u in clip.utterances]
    assert len(rows) == len(truth)
    manifest = read_csv_manifest(folder / "manifest.csv")
    assert not manifest.skipped
    assert [(u.utterance_id, u.text, u.label, u.speaker) for u in manifest] == [
        (t.utterance_id, t.text, t.label, t.speaker) for t in truth
    ]
    assert all(u.source == t.video for u, t in zip(manifest, truth))
    for clip in clips:
        srt = read_srt(clip.srt)
        assert [(u.start, u.end, u.text) for u in srt] == [(t.start, t.end, t.text) for t in clip.utterances]
        assert all(u.source == str(clip.video) for u in srt)
    assert len(json.loads((folder / "demo_truth.json").read_text())) == len(truth)
    # Labels are the four prompt classes, balanced over the whole set; speakers alternate between two people.
    labels = [t.label for t in truth]
    assert set(labels) <= set(DEMO_LABELS)
    assert max(labels.count(x) for x in DEMO_LABELS) - min(labels.count(x) for x in DEMO_LABELS) <= 1
    assert {t.speaker_side for t in truth} == {"left", "right"}


def test_each_modality_is_only_a_partial_cue(demo_media):
    _, clips = demo_media
    truth = [u for clip in clips for u in clip.utterances]
    for u in truth:
        words = set(u.text.lower().rstrip(".?").split())
        if u.text_cue:
            assert u.text_cue == u.label and words & set(_EMOTION_WORDS[u.label])
        else:
            assert not words & {w for ws in _EMOTION_WORDS.values() for w in ws}
    # With seed 0 each modality is right on some utterances and silent or wrong on others.
    assert 0 < sum(bool(u.text_cue) for u in truth) < len(truth)
    assert 0 < sum(u.audio_cue == u.label for u in truth) < len(truth)
    assert 0 < sum(u.face_cue == u.label for u in truth) < len(truth)


def test_cue_probabilities_are_obeyed(tmp_path):
    clips = make_demo_media(tmp_path, 1, seed=3, text_cue_prob=0.0, audio_cue_prob=1.0, face_cue_prob=0.0, **SMALL)
    for u in clips[0].utterances:
        assert u.text_cue == "" and u.audio_cue == u.label and u.face_cue != u.label


def test_prosody_depends_on_emotion():
    rng = np.random.default_rng(0)
    stats = {}
    for emotion in DEMO_LABELS:
        voice, env = _synth_voice(rng, 3.0, emotion, 150.0, 16000)
        f0s = []  # autocorrelation pitch of 40 ms frames in the middle of syllables
        for a in range(0, len(voice) - 640, 320):
            if env[a : a + 640].min() > 0.5:
                x = voice[a : a + 640] - voice[a : a + 640].mean()
                ac = np.correlate(x, x, "full")[639:]
                lo, hi = 16000 // 500, 16000 // 60
                f0s.append(16000 / (lo + np.argmax(ac[lo:hi])))
        f0 = float(np.median(f0s))
        onsets = np.sum((env[1:] > 0.5) & (env[:-1] <= 0.5))  # syllables
        stats[emotion] = (float(np.sqrt(np.mean(voice**2))), f0, onsets)
    assert stats["anger"][0] > stats["neutral"][0] > stats["sad"][0]  # loudness
    assert stats["happy"][1] > stats["neutral"][1] > stats["sad"][1]  # pitch
    assert stats["anger"][2] > stats["neutral"][2] > stats["sad"][2]  # tempo


def test_speaking_face_moves_and_listener_is_still(demo_media):
    from memobert.preprocessing.decode import decode_frames

    _, clips = demo_media
    clip = clips[0]
    for u in clip.utterances[:2]:
        frames, _ = decode_frames(clip.video, u.voice_start, u.voice_end, gray=True)
        diff = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=0)
        half = clip.width // 2
        left, right = diff[:, :half].mean(), diff[:, half:].mean()
        moving, still = (left, right) if u.speaker_side == "left" else (right, left)
        assert moving > 4 * still


def test_deterministic_for_a_seed(tmp_path):
    a = make_demo_media(tmp_path / "a", 1, seed=7, **SMALL)
    b = make_demo_media(tmp_path / "b", 1, seed=7, **SMALL)
    c = make_demo_media(tmp_path / "c", 1, seed=8, **SMALL)

    def digest(p):
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert digest(a[0].video) == digest(b[0].video)
    assert [replace(u, video="") for u in a[0].utterances] == [replace(u, video="") for u in b[0].utterances]
    assert digest(a[0].video) != digest(c[0].video)


def test_embedded_subtitles_match_the_srt(tmp_path):
    clips = make_demo_media(tmp_path, 1, seed=1, embed_subtitles=True, **SMALL)
    embedded = read_embedded_subtitles(clips[0].video)
    srt = read_srt(clips[0].srt)
    assert [u.text for u in embedded] == [u.text for u in srt]
    for e, s in zip(embedded, srt):
        assert e.start == pytest.approx(s.start, abs=0.002) and e.end == pytest.approx(s.end, abs=0.002)
    assert probe(clips[0].video).num_subtitle_streams == 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_clips"):
        make_demo_media(tmp_path, 0)
    with pytest.raises(ValueError, match="even"):
        make_demo_media(tmp_path, 1, width=321)
