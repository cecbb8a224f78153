"""Classification metrics against hand computation, and the validation-only model selection."""

import pytest

from memobert.evaluation.metrics import classification_metrics, select_best


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
