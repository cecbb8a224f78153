"""Speaker folds: IEMOCAP leave-one-speaker/session-out and MSP-IMPROV folds on the release fixtures, folds of dict
rows, `make_folds` specs (speaker k-fold, the dataset protocols, a folds file) and their errors."""

import json

import pytest

from memobert.data.folds import (
    iemocap_leave_one_session_out,
    iemocap_leave_one_speaker_out,
    make_folds,
    msp_improv_folds,
    speaker_folds,
)


def _check_disjoint_and_complete(folds, records):
    for fold in folds:
        assert not fold.train_speakers & fold.validation_speakers
        assert not fold.train_speakers & fold.test_speakers
        assert not fold.validation_speakers & fold.test_speakers
        assert sorted(fold.train + fold.validation + fold.test) == list(range(len(records)))
        for split in ("train", "validation", "test"):
            assert {records[i].speaker for i in fold.indices(split)} == fold.speakers(split)


def test_iemocap_leave_one_speaker_out(iemocap):
    folds = iemocap_leave_one_speaker_out(iemocap.records)
    assert len(folds) == 10
    _check_disjoint_and_complete(folds, iemocap.records)
    assert sorted(s for f in folds for s in f.test_speakers) == iemocap.speakers  # each speaker is test once
    first = folds[0]
    assert first.name == "fold01_Ses01F"
    assert (set(first.test_speakers), set(first.validation_speakers)) == ({"Ses01F"}, {"Ses01M"})
    assert {iemocap.records[i].session for i in first.train} == {2, 3, 4, 5}
    assert first.to_dict()["validation_speakers"] == ["Ses01M"]


def test_iemocap_leave_one_session_out(iemocap):
    folds = iemocap_leave_one_session_out(iemocap.records)
    assert len(folds) == 5
    _check_disjoint_and_complete(folds, iemocap.records)
    assert sorted(s for f in folds for s in f.test_speakers) == iemocap.speakers
    for k, fold in enumerate(folds):
        session, next_session = k + 1, (k + 1) % 5 + 1
        assert {iemocap.records[i].session for i in fold.test} == {session}
        assert {iemocap.records[i].session for i in fold.validation} == {next_session}
        assert len(fold.validation_speakers) == 2
    one = iemocap_leave_one_session_out(iemocap.records, validation="next_speaker")
    _check_disjoint_and_complete(one, iemocap.records)
    assert [len(f.validation_speakers) for f in one] == [1] * 5
    assert [next(iter(f.validation_speakers))[-1] for f in one] == ["F", "M", "F", "M", "F"]


def test_msp_improv_folds(msp):
    folds = msp_improv_folds(msp.records)
    assert len(folds) == 12
    _check_disjoint_and_complete(folds, msp.records)
    assert sorted(s for f in folds for s in f.test_speakers) == msp.speakers
    for fold in folds:
        (test,), (validation,) = fold.test_speakers, fold.validation_speakers
        assert test[1:] == validation[1:] and test[0] != validation[0]  # the other speaker of the same session


def test_speaker_folds_on_dict_rows_and_errors():
    rows = [{"speaker": s, "session": int(s[1])} for s in ["a1", "b1", "a2", "b2", "a3"]]
    (fold,) = speaker_folds(rows, [("x", ["a1"], ["b1"])])
    assert (fold.test, fold.validation, fold.train) == ((0,), (1,), (2, 3, 4))
    with pytest.raises(ValueError, match="both test and validation"):
        speaker_folds(rows, [("x", ["a1"], ["a1"])])
    with pytest.raises(ValueError, match="have no records"):
        speaker_folds(rows, [("x", ["zz"], ["b1"])])
    with pytest.raises(ValueError, match="train split is empty"):
        speaker_folds(rows[:2], [("x", ["a1"], ["b1"])])
    with pytest.raises(ValueError, match="only speaker"):
        iemocap_leave_one_speaker_out(rows)
    with pytest.raises(ValueError, match="sessions 1 and 2"):
        iemocap_leave_one_speaker_out(rows + [{"speaker": "a1", "session": 2}])


# -- make_folds specs --------------------------------------------------------------------------------------------------


def assert_disjoint(folds, speakers):
    for fold in folds:
        train, validation, test = (fold.speakers(s) for s in ("train", "validation", "test"))
        assert not (train & validation or train & test or validation & test)
        assert train | validation | test == set(speakers)
        for split in ("train", "validation", "test"):
            assert {speakers[i] for i in fold.indices(split)} == fold.speakers(split)


def test_folds_are_speaker_disjoint():
    demo = [f"demo_{i // 2:03d}_{'AB'[i % 2]}" for i in range(20) for _ in range(1 + i % 3)]
    folds = make_folds("speaker_kfold:5", demo)
    assert len(folds) == 5
    assert_disjoint(folds, demo)
    assert [f.validation_speakers for f in folds] == [folds[(k + 1) % 5].test_speakers for k in range(5)]
    assert sorted(s for f in folds for s in f.test_speakers) == sorted(set(demo))  # each speaker tested once
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 3  # balanced by utterances

    iemocap = [f"Ses{s:02d}{g}" for s in range(1, 6) for g in "FM" for _ in range(3)]
    sessions = [speaker[3:5].lstrip("0") for speaker in iemocap]  # as the session column holds them: "1".."5"
    by_speaker = make_folds("iemocap_loso_speaker", iemocap, sessions)
    assert len(by_speaker) == 10
    assert_disjoint(by_speaker, iemocap)
    assert by_speaker[0].test_speakers == {"Ses01F"} and by_speaker[0].validation_speakers == {"Ses01M"}
    by_session = make_folds("iemocap_loso_session", iemocap, sessions)
    assert len(by_session) == 5 and by_session[0].test_speakers == {"Ses01F", "Ses01M"}
    assert_disjoint(by_session, iemocap)
    msp = [f"{g}{s:02d}" for s in range(1, 11) for g in "FM" for _ in range(2)]
    msp_folds = make_folds("msp_improv", msp, [speaker[1:].lstrip("0") for speaker in msp])
    assert len(msp_folds) == 20 and msp_folds[-1].test_speakers == {"M10"}  # sessions sort as numbers: 2 before 10
    assert msp_folds[-1].validation_speakers == {"F10"} and msp_folds[2].test_speakers == {"F02"}

    with pytest.raises(ValueError, match="'session' column"):
        make_folds("iemocap_loso_speaker", iemocap)  # the sessions are read from the corpus, never parsed from names
    with pytest.raises(ValueError, match="speaker_kfold"):
        make_folds("iemocap_loso_speaker", iemocap, [""] * len(iemocap))
    with pytest.raises(ValueError, match="no speaker"):
        make_folds("speaker_kfold:3", ["a", "", "b"])


def test_a_folds_file_gives_explicit_folds(tmp_path):
    speakers = ["a", "a", "b", "c", "c", "d"]
    path = tmp_path / "folds.json"
    path.write_text(json.dumps({"folds": [{"name": "first", "test": ["a"], "validation": ["b"]},
                                          {"name": "second", "test": ["c", "d"], "validation": ["a"]}]}))
    first, second = make_folds(str(path), speakers)
    assert (first.name, first.test, first.validation, first.train) == ("first", (0, 1), (2,), (3, 4, 5))
    assert second.train_speakers == {"b"} and second.test == (3, 4, 5)
    path.write_text(json.dumps({"folds": [{"name": "x", "test": ["zz"], "validation": ["b"]}]}))
    with pytest.raises(ValueError, match=r"folds.json: Fold x: speakers \['zz'\] have no records"):
        make_folds(str(path), speakers)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="is not of the form"):
        make_folds(str(path), speakers)
