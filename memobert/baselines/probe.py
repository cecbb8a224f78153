"""A linear-probe-style classifier on fixed features: a `StandardScaler` fitted on the training rows, one scikit-learn
classifier fitted per point of a hyper-parameter grid, and the point with the best validation UAR kept (the test rows
take no part). Shared by the anchors that read frozen features: the eGeMAPS + SVM speech anchor (`egemaps.py`) and
the frozen-text-encoder + logistic-regression anchor (`text_probe.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..evaluation.metrics import classification_metrics


class ValidatedProbe:
    """StandardScaler (training rows only) + `make(point)` for each grid point, the best validation UAR kept.

    `grid`: the candidate hyper-parameters (dicts, in search order; a strictly better UAR replaces, so the earliest
    point wins a tie); `default`: the point fitted alone when no validation rows are given. After `fit_features`,
    `search` lists every point with its validation metrics and `selected` is the kept one."""

    def __init__(self, make: Callable[[Mapping[str, Any]], Any], grid: Sequence[Mapping[str, Any]],
                 default: Mapping[str, Any], num_classes: int) -> None:
        if not grid:
            raise ValueError("ValidatedProbe needs a non-empty grid of hyper-parameters.")
        self.make, self.grid, self.default, self.num_classes = make, [dict(p) for p in grid], dict(default), num_classes
        self.scaler = None
        self.classifier = None
        self.search: list[dict] = []
        self.selected: dict | None = None

    def fit_features(self, x_train: np.ndarray, y_train: Sequence[int], x_validation: np.ndarray | None = None,
                     y_validation: Sequence[int] | None = None) -> ValidatedProbe:
        """Fits the scaler on `x_train`, one classifier per grid point on the training rows, keeps the best validation
        UAR (only the default point when no validation rows are given)."""
        from sklearn.preprocessing import StandardScaler

        x_train, y_train = np.asarray(x_train, dtype=np.float64), np.asarray(y_train, dtype=np.int64).reshape(-1)
        if x_train.ndim != 2 or len(x_train) != len(y_train) or not len(y_train):
            raise ValueError(f"fit needs (N, D) training features and N labels, got {x_train.shape} and "
                             f"{y_train.shape}.")
        if len(np.unique(y_train)) < 2:
            raise ValueError(f"the training rows hold a single class ({np.unique(y_train).tolist()}): a classifier "
                             "needs two.")
        self.scaler = StandardScaler().fit(x_train)
        train = self.scaler.transform(x_train)
        self.search, self.selected, self.classifier = [], None, None
        have_validation = x_validation is not None and y_validation is not None and len(y_validation) > 0
        if have_validation:
            validation = self.scaler.transform(np.asarray(x_validation, dtype=np.float64))
            y_validation = np.asarray(y_validation, dtype=np.int64).reshape(-1)
        best = -np.inf
        for point in (self.grid if have_validation else [self.default]):
            classifier = self.make(point).fit(train, y_train)
            point = dict(point)
            if have_validation:
                point["validation"] = classification_metrics(y_validation, classifier.predict(validation),
                                                             self.num_classes)
            self.search.append(point)
            score = point["validation"]["uar"] if have_validation else 0.0
            if score > best:  # strictly better: the earliest point wins a tie
                best, self.classifier, self.selected = score, classifier, point
        return self

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            raise RuntimeError(f"{type(self).__name__}.predict before fit.")
        return self.classifier.predict(self.scaler.transform(np.asarray(x, dtype=np.float64)))

    def selection_note(self, what: str, fitted: str = "classifiers") -> str:
        """How the kept classifier was chosen, `what` naming the grid (e.g. "kernel x C"), `fitted` the models."""
        if self.selected is None:
            return "not fitted"
        pair = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in self.selected.items() if k != "validation")
        if "validation" not in self.selected:
            return f"none (no validation rows: the defaults, {pair})"
        return f"best validation UAR over {what} ({len(self.search)} {fitted} fitted on the training rows): {pair}"


class ProbeBaseline:
    """A classical baseline (the runner's classical interface) made of fixed features per batch + a `ValidatedProbe`
    (`self.model`). Subclasses set `self.config`, `self.model`, `grid_name` / `fitted_name` (for the selection note)
    and give `batch_features(batch) -> (B, D)`; batches carry `labels` `(B,)` for fitting and evaluation."""

    kind = "classical"
    grid_name, fitted_name = "the grid", "classifiers"
    model: ValidatedProbe

    @property
    def search(self) -> list[dict]:
        return self.model.search

    @property
    def selected(self) -> dict | None:
        return self.model.selected

    def batch_features(self, batch: Mapping[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def features(self, batches: Iterable[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
        """(`(N, D)` features, `(N,)` labels or None when the batches hold none)."""
        feats, labels = [], []
        for batch in batches:
            feats.append(self.batch_features(batch))
            if batch.get("labels") is not None:
                labels.append(np.asarray(batch["labels"]).reshape(-1))
        if not feats:
            raise ValueError(f"{type(self).__name__} got no batches.")
        return np.concatenate(feats), (np.concatenate(labels) if labels else None)

    def _labelled(self, batches: Iterable[Mapping[str, Any]], what: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.features(batches)
        if y is None:
            raise ValueError(f"{type(self).__name__}.{what} needs 'labels' in the batches.")
        return x, y

    def fit(self, batches: Sequence[Mapping[str, Any]],
            validation_batches: Sequence[Mapping[str, Any]] | None = None) -> ProbeBaseline:
        x, y = self._labelled(batches, "fit")
        xv, yv = self._labelled(validation_batches, "fit (validation)") if validation_batches else (None, None)
        self.model.fit_features(x, y, xv, yv)
        return self

    def predict(self, batches: Iterable[Mapping[str, Any]]) -> np.ndarray:
        return self.model.predict_features(self.features(batches)[0])

    def evaluate(self, batches: Sequence[Mapping[str, Any]]) -> dict:
        x, y = self._labelled(batches, "evaluate")
        return classification_metrics(y, self.model.predict_features(x), self.config.num_classes)

    def selection_note(self) -> str:
        """How the kept classifier was chosen (for the run record)."""
        return self.model.selection_note(self.grid_name, self.fitted_name)


__all__ = ["ProbeBaseline", "ValidatedProbe"]
