"""Speaker folds, metrics (hand-computed), validation-only selection, the results table and the confusion PNG."""

import math

import pytest

from memobert.data.folds import (
    iemocap_leave_one_session_out,
    iemocap_leave_one_speaker_out,
    msp_improv_folds,
    speaker_folds,
)
from memobert.data.iemocap import load_iemocap
from memobert.data.msp_improv import load_msp_improv
from memobert.evaluation.metrics import classification_metrics, select_best
from memobert.evaluation.plots import plot_confusion_matrix
from memobert.evaluation.tables import results_table, summarize
from tests.fixtures_datasets import write_iemocap, write_msp_improv


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    return load_iemocap(write_iemocap(tmp_path_factory.mktemp("iemocap")))


@pytest.fixture(scope="module")
def msp(tmp_path_factory):
    return load_msp_improv(write_msp_improv(tmp_path_factory.mktemp("msp")))


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


def test_metrics_match_hand_computation():
    y_true = [0, 0, 0, 0, 0, 0, 1, 1, 2, 3]
    y_pred = [0, 0, 0, 0, 0, 0, 0, 1, 2, 2]
    m = classification_metrics(y_true, y_pred, num_classes=5)  # class 4 absent: not part of UAR
    assert m["wa"] == pytest.approx(0.8)
    assert m["uar"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)  # 0.625: UAR != WA on imbalanced data
    f1 = [12 / 13, 2 / 3, 2 / 3, 0.0]
    assert m["f1"] == pytest.approx(sum(f1) / 4)
    assert m["wf1"] == pytest.approx((6 * f1[0] + 2 * f1[1] + 1 * f1[2]) / 10)
    assert m["confusion"] == [[6, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    assert m["support"] == [6, 2, 1, 1, 0]
    with pytest.raises(ValueError, match="outside 0..3"):
        classification_metrics([0, 4], [0, 1], num_classes=4)
    with pytest.raises(ValueError, match="must match"):
        classification_metrics([0, 1], [0], num_classes=4)


def test_select_best_reads_validation_only():
    history = [
        {"step": 100, "validation": {"uar": 0.50}, "test": {"uar": 0.90}},
        {"step": 200, "validation": {"uar": 0.70}, "test": {"uar": 0.40}},
        {"step": 300, "validation": {"uar": 0.70}, "test": {"uar": 0.60}},
        {"step": 400, "validation": {"uar": 0.60}, "test": {"uar": 0.95}},
    ]
    index, best = select_best(history)
    assert (index, best["step"]) == (1, 200)  # earliest of the tie
    perturbed = [{**r, "test": {"uar": 1.0 - r["test"]["uar"]}} for r in history]  # only test labels change
    assert select_best(perturbed)[1]["step"] == 200
    flat = [{"step": r["step"], "validation/uar": r["validation"]["uar"]} for r in history]
    assert select_best(flat)[0] == 1
    assert select_best(flat, key="uar", mode="min")[0] == 0
    with pytest.raises(ValueError, match="never on the test fold"):
        select_best(history, split="test")


def test_results_table_mean_and_std():
    rows = []
    for (fold, seed), uar in zip([(1, 1), (2, 1), (1, 2), (2, 2)], [0.8, 0.6, 0.7, 0.9]):
        rows.append({"setting": "prompt", "modalities": "LVA", "fold": fold, "seed": seed,
                     "wa": 0.5, "uar": uar, "wf1": 0.4, "f1": 0.3})
    rows.append({"setting": "direct", "modalities": "L", "fold": 1, "seed": 1,
                 "metrics": {"wa": 0.25, "uar": 0.3, "wf1": 0.2, "f1": 0.1}})
    table = results_table(rows)
    lines = table.strip().splitlines()
    assert lines[0] == "| Setting | Modalities | n | WA | UAR | WF1 | F1 |"
    std = math.sqrt((0.05**2 * 2 + 0.15**2 * 2) / 3) * 100  # sample std of 80, 60, 70, 90
    assert lines[2] == f"| prompt | LVA | 4 | 50.00 ± 0.00 | 75.00 ± {std:.2f} | 40.00 ± 0.00 | 30.00 ± 0.00 |"
    assert lines[3] == "| direct | L | 1 | 25.00 | 30.00 | 20.00 | 10.00 |"
    by_seed = summarize(rows[:4], over="seeds")[0]  # seed means 0.7 and 0.8
    assert by_seed["n"] == 2 and by_seed["uar_mean"] == pytest.approx(0.75)
    assert by_seed["uar_std"] == pytest.approx(math.sqrt(0.005))
    only_setting = results_table(rows, group_by=("setting",), metrics=("uar",), percent=False, digits=3)
    assert "| prompt | 4 | 0.750 ± 0.129 |" in only_setting
    with pytest.raises(KeyError, match="row 0 has no 'acc'"):
        results_table(rows, metrics=("acc",))


def test_confusion_png_written(tmp_path):
    path = plot_confusion_matrix([[5, 1, 0, 0], [2, 3, 0, 0], [0, 0, 4, 1], [0, 0, 0, 0]],
                                 ["anger", "happiness", "neutral", "sadness"], tmp_path / "out" / "confusion.png")
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    raw = plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], tmp_path / "raw.png", normalize=False, title="counts")
    assert raw.stat().st_size > 0
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "bad.png")
