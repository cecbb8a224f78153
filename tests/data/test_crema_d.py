"""The CREMA-D reader on a release-layout fixture (AudioWAV/, VideoFlash/, VideoDemographics.csv,
processedResults/summaryTable.csv with tied and perceived-differently votes)."""

import pytest

from memobert.data.crema_d import (
    SENTENCES,
    load_crema_d,
    parse_crema_d_name,
    vote_emotion,
)


def test_names_and_sentences():
    info = parse_crema_d_name("1001_DFA_ANG_XX.wav")
    assert (info["actor"], info["text"], info["emotion"], info["level"]) == ("1001", "Don't forget a jacket",
                                                                           "anger", "unspecified")
    assert len(SENTENCES) == 12 and SENTENCES["WSI"] == "We'll stop in a couple of minutes"
    for bad in ("1001_XYZ_ANG_XX", "1001_DFA_JOY_XX", "1001_DFA_ANG_ZZ", "10_DFA_ANG_XX"):
        with pytest.raises(ValueError):
            parse_crema_d_name(bad)


def test_votes_and_ties():
    assert vote_emotion("N", "sadness") == "neutral"
    assert vote_emotion("N:S", "sadness") == "sadness"
    assert vote_emotion("N:S", "sadness", ties="drop") is None
    assert vote_emotion("A:H", "neutral") is None and vote_emotion("", "anger") is None
    with pytest.raises(ValueError, match="letters"):
        vote_emotion("Q", "anger")


def test_intended_labels(crema_d_root):
    corpus = load_crema_d(crema_d_root)
    by_id = {r.utterance_id: r for r in corpus.records}
    assert sorted(by_id) == ["1001_DFA_ANG_XX", "1001_IEO_HAP_LO", "1001_ITH_SAD_XX", "1002_TIE_SAD_MD",
                             "1002_WSI_NEU_HI", "1003_IWL_NEU_XX"]
    assert corpus.dropped == {"disgust": 1, "fear": 1}
    assert any("1001_XYZ_ANG_XX" in note for note in corpus.skipped)
    first = by_id["1001_DFA_ANG_XX"]
    assert (first.label, first.speaker, first.gender, first.age, first.text) == ("anger", "1001", "M", "51",
                                                                                 "Don't forget a jacket")
    assert first.wav.endswith("AudioWAV/1001_DFA_ANG_XX.wav") and first.video.endswith("VideoFlash/1001_DFA_ANG_XX.flv")
    assert first.end == pytest.approx(0.6)
    flv_only = by_id["1003_IWL_NEU_XX"]
    assert flv_only.wav is None and flv_only.end is None and flv_only.video.endswith(".flv")
    assert by_id["1002_TIE_SAD_MD"].gender == "F" and by_id["1002_TIE_SAD_MD"].voice_vote == "N:S"


def test_perceived_labels_differ_from_the_intended_ones(crema_d_root):
    voice = {r.utterance_id: r.label for r in load_crema_d(crema_d_root, label="voice").records}
    assert voice == {"1001_DFA_ANG_XX": "anger", "1001_IEO_HAP_LO": "neutral", "1002_TIE_SAD_MD": "sadness",
                     "1003_MTI_FEA_XX": "sadness", "1003_IWL_NEU_XX": "neutral"}
    corpus = load_crema_d(crema_d_root, label="voice", ties="drop")
    assert "1002_TIE_SAD_MD" not in {r.utterance_id for r in corpus.records}
    assert corpus.dropped == {"disgust": 1, "no_votes": 1, "tie": 2}
    face = {r.utterance_id: r.label for r in load_crema_d(crema_d_root, label="face").records}
    assert face["1001_IEO_HAP_LO"] == "happiness" and "1003_MTI_FEA_XX" not in face


def test_clear_errors(crema_d_root, tmp_path):
    with pytest.raises(ValueError, match="label must be one of"):
        load_crema_d(crema_d_root, label="crowd")
    with pytest.raises(FileNotFoundError, match="AudioWAV"):
        load_crema_d(tmp_path)
    (tmp_path / "AudioWAV").mkdir()
    with pytest.raises(FileNotFoundError, match="needs the crowd's votes"):
        load_crema_d(tmp_path, label="voice")
