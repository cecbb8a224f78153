"""What a downstream run writes: the run folder (config, one JSON per fold and seed, predictions, confusion matrix)
and the results table over every run folder of the output directory.

    <run_name>/config.json                 the arguments of this run
    <run_name>/runs/<fold>_seed<seed>.json validation curve, selected step, test metrics per modality case
    <run_name>/predictions.csv             utterance_id, fold, seed, case, label, prediction, p_<class>...
    <run_name>/confusion_LVA.png           test confusion matrix of the LVA case, summed over folds and seeds
    <run_name>/models/<fold>_seed<seed>/   with `save_models`: the selected model and its processor
    results.md, results.json               mean ± std over folds and seeds of WA / UAR / WF1 / F1, per run name and
                                           modality case, over every run folder in output_dir
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.folds import Fold
from ..data.labels import EmotionLabels
from ..evaluation.metrics import METRICS
from ..evaluation.plots import plot_confusion_matrix
from ..evaluation.tables import results_table, summarize
from .arguments import MODALITY_CASES, SETTINGS

RUNS = "runs"
MODELS = "models"
PREDICTIONS = "predictions.csv"
RESULTS_MD = "results.md"
RESULTS_JSON = "results.json"
RUN_CONFIG = "config.json"


def jsonable(value):
    """Numbers and containers as JSON types (a baseline's prepare summary may hold tensors or numpy values)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def run_record(
    *,
    name: str,
    setting: str,
    baseline: str | None,
    fold: Fold,
    fold_number: int,
    seed: int,
    train_rows: np.ndarray,
    labels: EmotionLabels,
    train_class_counts: dict[str, int],
    init: dict,
    selection: str,
    curve: list[dict],
    selected: dict,
    test: dict[str, dict],
    **details,
) -> dict:
    """The JSON of one fold x seed: who trained on what, how the model was selected, its test metrics per case."""
    return {
        "setting": setting,
        "baseline": baseline,
        "run_name": name,
        "fold": fold.name,
        "fold_number": fold_number,
        "seed": seed,
        "speakers": {split: sorted(fold.speakers(split)) for split in ("train", "validation", "test")},
        "rows": {"train_available": len(fold.train), "train": len(train_rows), "validation": len(fold.validation),
                 "test": len(fold.test)},
        "train_class_counts": train_class_counts,
        "classes": list(labels.classes),
        "init": jsonable(init),
        **details,
        "selection": selection,
        "validation_curve": curve,
        "selected_step": selected["step"],
        "selected_validation": selected["validation"],
        "test": test,
    }


class RunFolder:
    """The folder of one run name: replaced on a rerun, then filled fold by fold (main process only)."""

    def __init__(self, output_dir: str | Path, name: str, labels: EmotionLabels):
        self.output_dir, self.labels = Path(output_dir), labels
        self.path = self.output_dir / name

    def start(self, config: dict) -> None:
        """Clears what an earlier run of this name wrote (and only that), writes config.json and the CSV header."""
        shutil.rmtree(self.path / RUNS, ignore_errors=True)
        shutil.rmtree(self.path / MODELS, ignore_errors=True)
        for old in [self.path / PREDICTIONS, self.path / RUN_CONFIG, *self.path.glob("confusion_*.png")]:
            old.unlink(missing_ok=True)
        (self.path / RUNS).mkdir(parents=True, exist_ok=True)
        (self.path / RUN_CONFIG).write_text(json.dumps(config, indent=2))
        with open(self.path / PREDICTIONS, "w", newline="", encoding="utf-8") as handle:
            header = ["utterance_id", "fold", "seed", "case", "label", "prediction"]
            csv.writer(handle).writerow(header + [f"p_{c}" for c in self.labels.classes])

    def _inside(self, folder: str, fold_name: str, leaf: str) -> Path:
        """`<run>/<folder>/<leaf>`; raises ValueError naming the fold when the fold name would lead outside it."""
        base = (self.path / folder).resolve()
        target = (base / leaf).resolve()
        if target.parent != base:
            raise ValueError(f"Fold name {fold_name!r} is not a plain file name: {folder}/{leaf} would be written "
                             f"outside {base}; rename the fold (its speaker / session, or the folds file's name).")
        return self.path / folder / leaf

    def model_folder(self, fold: Fold, seed: int) -> Path:
        return self._inside(MODELS, fold.name, f"{fold.name}_seed{seed}")

    def add(self, record: dict, predictions: Sequence[dict]) -> None:
        """One fold x seed: its JSON and its rows of predictions.csv."""
        target = self._inside(RUNS, str(record["fold"]), f"{record['fold']}_seed{record['seed']}.json")
        target.write_text(json.dumps(record, indent=2))
        classes = self.labels.classes
        with open(self.path / PREDICTIONS, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            for item in predictions:
                probs = item["probabilities"]
                writer.writerow([item["utterance_id"], item["fold"], item["seed"], item["case"],
                                 classes[item["label"]], classes[int(np.argmax(probs))]] + [f"{p:.6f}" for p in probs])

    def plot_confusion(self, records: list[dict]) -> Path | None:
        """The test confusion matrix of the LVA case (else the last case) summed over the runs, as a PNG."""
        if not records:
            return None
        case = "LVA" if "LVA" in records[0]["test"] else list(records[0]["test"])[-1]
        total = np.sum([np.asarray(r["test"][case]["confusion"]) for r in records], axis=0)
        return plot_confusion_matrix(
            total, list(self.labels.classes), self.path / f"confusion_{case}.png",
            title=f"{records[0]['run_name']}, {case}: test, summed over {len(records)} runs (folds x seeds)",
        )


def collect_runs(output_dir: str | Path) -> list[dict]:
    """Every run JSON under `output_dir/<run_name>/runs/`, as rows for `results_table` (one per run and case)."""
    rows = []
    for path in sorted(Path(output_dir).glob(f"*/{RUNS}/*.json")):
        run = json.loads(path.read_text())
        for case, metrics in run["test"].items():
            rows.append({"setting": run["run_name"], "modalities": case, "fold": run["fold"], "seed": run["seed"],
                         **{m: metrics[m] for m in METRICS}})
    order = {s: i for i, s in enumerate(SETTINGS)}
    rows.sort(key=lambda r: (order.get(r["setting"].split("-")[0], len(order)), r["setting"],
                             MODALITY_CASES.index(r["modalities"]) if r["modalities"] in MODALITY_CASES else 99))
    return rows


def write_results(output_dir: str | Path) -> dict:
    """`results.md` and `results.json`: mean ± std over folds and seeds per run name and modality case."""
    output_dir = Path(output_dir)
    rows = collect_runs(output_dir)
    if not rows:
        raise FileNotFoundError(f"No run results under {output_dir}/*/{RUNS}/; run prompt_tuning/run.py first.")
    table = results_table(rows)
    runs = Counter(r["setting"] for r in rows if r["modalities"] == rows[0]["modalities"])
    text = (
        "# Downstream results\n\n"
        "Test-fold WA / UAR / WF1 / F1 (%), mean ± sample std over folds x seeds (n runs); the model of each run is "
        "the one with the best validation UAR (the test fold never takes part in selection).\n\n"
        + table
    )
    (output_dir / RESULTS_MD).write_text(text, encoding="utf-8")
    summary = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in entry.items()}
               for entry in summarize(rows)]
    (output_dir / RESULTS_JSON).write_text(json.dumps({"runs": dict(runs), "summary": summary}, indent=2))
    return {"table": table, "summary": summary}


__all__ = ["RunFolder", "run_record", "collect_runs", "write_results", "jsonable", "RUNS", "PREDICTIONS",
           "RESULTS_MD", "RESULTS_JSON", "RUN_CONFIG"]
