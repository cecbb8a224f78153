"""Classification metrics of the emotion tasks and model selection on validation only.

- WA = accuracy; UAR = macro recall over the classes present in `y_true` (the headline number);
  WF1 = F1 weighted by true support; F1 = macro F1 over the classes present in `y_true` or `y_pred`
  (scikit-learn's default label set); `confusion` = counts, rows = true class, columns = predicted, all classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

METRICS = ("wa", "uar", "wf1", "f1")


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict:
    """{"wa", "uar", "wf1", "f1": float, "confusion": num_classes x num_classes list of int counts, "support"}."""
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}; they must match.")
    if y_true.size == 0:
        raise ValueError("classification_metrics needs at least one prediction.")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.min() < 0 or values.max() >= num_classes:
            raise ValueError(f"{name} holds class {values.min() if values.min() < 0 else values.max()}, outside "
                             f"0..{num_classes - 1} (num_classes={num_classes}).")
    present = np.unique(y_true)
    seen = np.union1d(present, np.unique(y_pred))
    all_classes = np.arange(num_classes)
    return {
        "wa": float(accuracy_score(y_true, y_pred)),
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "wf1": float(f1_score(y_true, y_pred, labels=all_classes, average="weighted", zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, labels=seen, average="macro", zero_division=0)),
        "confusion": confusion_matrix(y_true, y_pred, labels=all_classes).tolist(),
        "support": np.bincount(y_true, minlength=num_classes).tolist(),
    }


def _metric(record: Mapping, split: str, key: str, index: int) -> float:
    nested = record.get(split)
    if isinstance(nested, Mapping) and key in nested:
        return float(nested[key])
    flat = f"{split}/{key}"
    if flat in record:
        return float(record[flat])
    raise KeyError(f"Record {index} has neither record[{split!r}][{key!r}] nor record[{flat!r}].")


def select_best(
    records: Sequence[Mapping], key: str = "uar", split: str = "validation", mode: str = "max"
) -> tuple[int, Mapping]:
    """
    Model selection: (index, record) of the evaluation record with the best `split` metric `key` (earliest on ties).
    A record holds `record[split][key]` or `record[f"{split}/{key}"]`; other splits are never read.
    Selecting on a test split raises: selection on the test fold is the fault this library exists to avoid.
    """
    if split.startswith("test"):
        raise ValueError(f"select_best(split={split!r}): select on validation only, never on the test fold.")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
    if not records:
        raise ValueError("select_best needs at least one evaluation record.")
    best_index, best_value = 0, None
    for i, record in enumerate(records):
        value = _metric(record, split, key, i)
        if np.isnan(value):
            continue
        if best_value is None or (value > best_value if mode == "max" else value < best_value):
            best_index, best_value = i, value
    if best_value is None:
        raise ValueError(f"Every record's {split} {key} is NaN; nothing to select.")
    return best_index, records[best_index]
