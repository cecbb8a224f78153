"""The results table: mean and sample std over folds and seeds."""

import math

import pytest

from memobert.evaluation.tables import results_table, summarize


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
