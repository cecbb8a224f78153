"""The EmoDB reader on a release-layout fixture (wav/SSTTTEV.wav, unknown letters) and its leave-one-speaker-out
folds."""

import pytest

from memobert.data.emodb import SENTENCES, load_emodb, parse_emodb_name
from memobert.data.folds import make_folds


def test_names():
    info = parse_emodb_name("03a01Wa.wav")
    assert (info["speaker"], info["gender"], info["age"], info["text_code"], info["emotion"], info["version"]) == (
        "03", "M", 31, "a01", "anger", "a")
    assert info["text"] == SENTENCES["a01"] == "Der Lappen liegt auf dem Eisschrank."
    assert len(SENTENCES) == 10
    for bad in ("03a01Xa.wav", "99a01Fa.wav", "03c01Fa.wav", "03a01F.wav"):
        with pytest.raises(ValueError):
            parse_emodb_name(bad)


def test_release_and_leave_one_speaker_out(emodb_root):
    corpus = load_emodb(emodb_root)
    assert [r.utterance_id for r in corpus.records] == ["03a01Fa", "03a02Wb", "08a04Nc", "08b01Ta", "12a07Wa",
                                                        "12b10Nb"]
    assert [r.label for r in corpus.records] == ["happiness", "anger", "neutral", "sadness", "anger", "neutral"]
    assert corpus.dropped == {"E": 1, "L": 1}
    assert sum("File ignored" in note for note in corpus.skipped) == 3
    assert load_emodb(emodb_root / "wav").label_counts() == corpus.label_counts()
    folds = make_folds("leave_one_speaker_out", [r.speaker for r in corpus.records])
    assert [(f.name, sorted(f.test_speakers), sorted(f.validation_speakers)) for f in folds] == [
        ("fold01_03", ["03"], ["08"]), ("fold02_08", ["08"], ["12"]), ("fold03_12", ["12"], ["03"])]
    assert folds[0].test == (0, 1) and folds[0].train == (4, 5)
    assert load_emodb(emodb_root, classes=["boredom", "disgust"]).label_counts() == {"boredom": 1, "disgust": 1}


def test_leave_one_speaker_out_needs_three_speakers():
    with pytest.raises(ValueError, match="at least 3 speakers"):
        make_folds("leave_one_speaker_out", ["03", "08", "03"])
    folds = make_folds("leave_one_speaker_out", ["10", "9", "11"])  # numeric ids in numeric order
    assert [f.name for f in folds] == ["fold01_9", "fold02_10", "fold03_11"]
