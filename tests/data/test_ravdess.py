"""The RAVDESS reader on a release-layout fixture (tests/support/real_releases.py: Actor_XX folders, the seven-field
names, song files, video-only and audio-only recordings)."""

import pytest

from memobert.data.ravdess import load_ravdess, parse_ravdess_name


def test_names_give_the_seven_fields():
    info = parse_ravdess_name("03-01-05-02-01-02-12.wav")
    assert (info["modality"], info["channel"], info["emotion"], info["intensity"], info["statement"],
            info["repetition"], info["actor"], info["gender"], info["speaker"]) == (
        "audio_only", "speech", "anger", "strong", "01", 2, 12, "F", "Actor_12")
    assert info["utterance_id"] == "01-05-02-01-02-12"
    assert parse_ravdess_name("01-01-03-01-02-01-07.mp4")["gender"] == "M"
    for bad in ("03-01-09-01-01-01-01.wav", "03-03-01-01-01-01-01.wav", "01-01-01-01-01-01-01.wav",
                "03-01-01-01-01-01-25.wav", "03-01-01-01-01.wav"):
        with pytest.raises(ValueError):
            parse_ravdess_name(bad)


def test_speech_only_audio_visual_preferred_then_video_only_then_audio(ravdess_root):
    corpus = load_ravdess(ravdess_root)
    by_id = {r.utterance_id: r for r in corpus.records}
    assert sorted(by_id) == ["01-01-01-01-01-01", "01-03-02-02-01-02", "01-04-01-01-02-02", "01-04-01-02-01-03",
                             "01-05-01-01-01-01", "01-05-02-01-02-03"]
    assert corpus.dropped == {"02": 1}  # calm
    assert any("2 song files" in note for note in corpus.skipped)
    assert any("README.txt" in note for note in corpus.skipped)
    angry = by_id["01-05-01-01-01-01"]
    assert angry.video_kind == "audio_visual" and angry.video.endswith("01-01-05-01-01-01-01.mp4")
    assert angry.wav.endswith("03-01-05-01-01-01-01.wav") and angry.end == pytest.approx(0.6)
    assert (angry.label, angry.speaker, angry.gender, angry.text) == ("anger", "Actor_01", "M",
                                                                       "Kids are talking by the door")
    neutral = by_id["01-01-01-01-01-01"]
    assert neutral.video_kind == "video_only" and neutral.wav is not None
    happy = by_id["01-03-02-02-01-02"]
    assert (happy.video, happy.video_kind, happy.intensity, happy.text) == (None, "", "strong",
                                                                            "Dogs are sitting by the door")
    sad_av = by_id["01-04-01-01-02-02"]
    assert sad_av.video_kind == "audio_visual" and sad_av.wav is None and sad_av.end is None
    silent = by_id["01-05-02-01-02-03"]
    assert silent.video_kind == "video_only" and silent.wav is None
    assert any("video only and no wav" in note for note in corpus.skipped)
    assert {r.speaker for r in corpus.records} == {"Actor_01", "Actor_02", "Actor_03"}


def test_calm_as_a_class_and_clear_errors(ravdess_root, tmp_path):
    corpus = load_ravdess(ravdess_root, classes=["calm", "anger"])
    assert corpus.label_counts() == {"calm": 1, "anger": 2}
    with pytest.raises(FileNotFoundError, match="Actor_01..Actor_24"):
        load_ravdess(tmp_path)
    wrong = tmp_path / "Actor_05"
    wrong.mkdir()
    (wrong / "03-01-05-01-01-01-06.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="not the folder's Actor_05"):
        load_ravdess(tmp_path)
