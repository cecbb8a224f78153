"""The MELD reader on a release-layout fixture ({train,dev,test}_sent_emo.csv, clip folders, non-ASCII quotes,
mojibake, a Windows-1252 file, missing clips) and the official-split folds."""

import pytest

from memobert.data.folds import make_folds
from memobert.data.meld import load_meld, parse_time, repair_text


def test_times_and_text_repair():
    assert parse_time("00:16:16,059") == pytest.approx(976.059)
    assert parse_time("0:10:44,769") == pytest.approx(644.769)
    with pytest.raises(ValueError):
        parse_time("16:16")
    assert repair_text("You\u00e2\u20ac\u2122re  here\u0092s") == "You\u2019re here\u2019s"
    assert repair_text("He\u2019s caf\u00e9 \u201cok\u201d\u2026") == "He\u2019s caf\u00e9 \u201cok\u201d\u2026"


def test_rows_splits_labels_and_clips(meld_root):
    corpus = load_meld(meld_root.parent)  # the parent of MELD.Raw/ works too
    ids = [r.utterance_id for r in corpus.records]
    assert ids == ["train_dia0_utt0", "train_dia0_utt1", "train_dia0_utt2", "train_dia1_utt0",
                   "dev_dia0_utt0", "dev_dia0_utt2", "test_dia0_utt0", "test_dia1_utt0"]
    by_id = {r.utterance_id: r for r in corpus.records}
    assert corpus.dropped == {"fear": 1, "surprise": 1}
    assert [by_id[i].split for i in ids] == ["train"] * 4 + ["validation"] * 2 + ["test"] * 2
    assert by_id["train_dia0_utt1"].label == "happiness" and by_id["train_dia0_utt1"].text == "You\u2019re a genius!"
    assert by_id["train_dia0_utt2"].text == "\u201cWhere\u2019s number 27?!\u201d\u2026"
    assert by_id["train_dia0_utt2"].speaker == "Richard\u2019s Date" and by_id["train_dia0_utt2"].clip is None
    assert by_id["dev_dia0_utt0"].text == "Aww, man, now we won\u2019t be bank buddies!"  # cp1252 file
    assert by_id["train_dia0_utt0"].clip.endswith("train_splits/dia0_utt0.mp4")
    assert by_id["dev_dia0_utt0"].clip.endswith("dev_splits_complete/dia0_utt0.mp4")
    assert by_id["test_dia0_utt0"].clip.endswith("output_repeated_splits_test/dia0_utt0.mp4")
    assert by_id["test_dia1_utt0"].clip is None and by_id["test_dia1_utt0"].sr_no == 19
    assert by_id["train_dia0_utt1"].episode_start == pytest.approx(12 * 60 + 26.66)
    assert sum("text only" in note for note in corpus.skipped) == 3
    seven = load_meld(meld_root, classes=["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"])
    assert len(seven) == 10 and seven.dropped == {}


def test_official_split_folds(meld_root):
    corpus = load_meld(meld_root)
    (fold,) = make_folds("official_split", [r.speaker for r in corpus.records], [r.split for r in corpus.records])
    assert (fold.name, fold.train, fold.validation, fold.test) == ("official", (0, 1, 2, 3), (4, 5), (6, 7))
    assert "Joey" in fold.train_speakers and "Joey" in fold.validation_speakers  # speakers shared, as released
    with pytest.raises(ValueError, match="'session' column"):
        make_folds("official_split", ["a", "b"], None)
    with pytest.raises(ValueError, match="not one of"):
        make_folds("official_split", ["a", "b"], ["train", "dev"])
    with pytest.raises(ValueError, match="no row of the split"):
        make_folds("official_split", ["a", "b"], ["train", "test"])


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="sent_emo.csv"):
        load_meld(tmp_path)
    (tmp_path / "train_sent_emo.csv").write_text("Utterance,Speaker\nhi,Joey\n")
    with pytest.raises(ValueError, match="no column"):
        load_meld(tmp_path)
    with pytest.raises(ValueError, match="Unknown MELD split"):
        load_meld(tmp_path, splits=["validation"])
