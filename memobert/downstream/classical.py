"""The runner's path for a classical system (fit / predict / evaluate, no updates): the elderly-speech baseline and
the eGeMAPS + SVM anchor."""

from __future__ import annotations

import numpy as np
import torch
from accelerate.utils import set_seed

from ..data.folds import Fold, subsample_per_class
from ..evaluation.metrics import classification_metrics
from .batching import BatchBuilder
from .results import run_record
from .systems import Run


def fit_and_test_classical(run: Run, fold: Fold, fold_number: int, seed: int) -> tuple[dict, list[dict]]:
    """One fold x seed of a classical system: fitted once on the training rows (its own encoder epochs from its
    config; there are no updates to select among, so the validation fold is only reported; a system that
    `selects_on_validation` gets the validation batches in `fit(train, validation)` and chooses its
    hyper-parameters on them, recorded as `search`), then tested in each modality case it can read. A case without A
    gets one empty (masked) acoustic frame per utterance, one without L empty texts (a zero text vector). Predictions
    are hard: probability 1 for the predicted class. Not split across processes (every process computes it, the main
    one writes)."""
    args, system, corpus, labels = run.args, run.system, run.corpus, run.labels
    set_seed(seed)
    model, init = system.build()
    builder = BatchBuilder(corpus, system.processor, prompt=False, extra_keys=("texts",))
    size = args.per_device_eval_batch_size
    train_rows = subsample_per_class(fold.train, corpus.labels, args.train_fraction, seed=seed * 1000 + fold_number)

    def batches(rows: np.ndarray, case: str) -> list[dict]:
        out = builder.batches(rows, size, case)
        for batch in out:
            if "acoustic_feats" not in batch:
                batch["acoustic_feats"] = torch.zeros(len(batch["labels"]), 1, corpus.sizes["acoustic_dim"])
                batch["acoustic_mask"] = torch.zeros(len(batch["labels"]), 1, dtype=torch.long)
        return out

    validation_batches = batches(np.asarray(fold.validation, dtype=np.int64), run.train_case)
    details = {"train_case": run.train_case}
    if system.selects_on_validation:
        model.fit(batches(train_rows, run.train_case), validation_batches)
        selection = model.selection_note()
        details["search"] = list(model.search)
    else:
        model.fit(batches(train_rows, run.train_case))
        selection = "none (a classical system fitted once on the training rows; validation reported only)"
    validation = model.evaluate(validation_batches)
    test_rows = np.asarray(fold.test, dtype=np.int64)
    test_metrics, predictions = {}, []
    for case in run.cases:
        predicted = np.asarray(model.predict(batches(test_rows, case)))
        test_metrics[case] = classification_metrics(corpus.labels[test_rows], predicted, labels.num_classes)
        for row, label in zip(test_rows.tolist(), predicted.tolist()):
            predictions.append({"utterance_id": corpus.utterance_ids[row], "fold": fold.name, "seed": seed,
                                "case": case, "label": int(corpus.labels[row]),
                                "probabilities": np.eye(labels.num_classes)[int(label)].tolist()})
    run.bar.update(args.resolved_max_steps)
    record = run_record(
        name=args.name, setting=args.setting, baseline=args.baseline, fold=fold, fold_number=fold_number, seed=seed,
        train_rows=train_rows, labels=labels, train_class_counts=corpus.class_counts(labels.classes, train_rows),
        init=init, selection=selection, curve=[{"step": 0, "train_loss": None, "validation": validation}],
        selected={"step": 0, "validation": validation}, test=test_metrics, **details,
    )
    run.accelerator.print(f"{args.name} {fold.name} seed {seed}: validation UAR {validation['uar'] * 100:.2f}; test "
                          "UAR " + ", ".join(f"{c} {test_metrics[c]['uar'] * 100:.2f}" for c in run.cases))
    return record, predictions


__all__ = ["fit_and_test_classical"]
