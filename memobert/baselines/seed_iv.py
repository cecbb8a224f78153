"""The EEG side of the face + EEG system on SEED-IV: `EEGEncoder` trained and tested on subject- or session-held-out
folds, scored with the library's WA / UAR (`baselines/seed_iv.py` is its command).

Data: the SEED-IV feature release as `read_seed_iv` reads it (`eeg_feature_smooth/<session>/<subject>_<date>.mat`,
arrays `<feature>1..24` of (62, windows, 5)); one sample per DE window (4 s), labelled with its trial's emotion
(0 neutral, 1 sad, 2 fear, 3 happy).

Folds (`folds`):
- `loso`: subject-independent leave-one-subject-out; fold k tests on every window of subject k (all its sessions)
  and trains on the other subjects.
- `session`: session held out; fold k tests on session k (every subject) and trains on the other sessions, so the
  test subjects are seen in training (cross-session, not subject-independent).

Each fold trains a fresh encoder for a fixed number of epochs (AdamW, seeded shuffles) and is tested once; nothing is
selected on the test fold (there is no validation split and no early stopping). Outputs in `output_dir`:
`results.md` (mean ± std over folds, then one row per fold), `results.json` (the arguments, per-fold metrics and the
summary) and `predictions.csv` (fold, subject, session, trial, window, label, prediction, p_<class>).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..evaluation.metrics import classification_metrics
from ..evaluation.tables import results_table, summarize
from .face_eeg import SEED_IV_CLASSES, EEGEncoder, SeedIVTrial, read_seed_iv, seed_iv_samples

SEED_IV_FOLDS = ("loso", "session")
SEED_IV_FEATURES = ("de_movingAve", "de_LDS", "psd_movingAve", "psd_LDS")


@dataclass
class SeedIVArguments:
    """The options of `baselines/seed_iv.py` (each `--name`; `--help` shows them)."""

    data_dir: str = field(metadata={"help": "the SEED-IV feature release: the folder that holds eeg_feature_smooth/ "
                                            "(<session>/<subject>_<date>.mat), or that folder itself"})
    output_dir: str = field(default="outputs/seed-iv",
                            metadata={"help": "where results.md, results.json and predictions.csv are written"})
    folds: str = field(default="loso",
                       metadata={"help": "loso: subject-independent leave-one-subject-out (test = one subject, all "
                                         "its sessions) | session: session held out (test = one session, every "
                                         "subject; the test subjects' other sessions are in training)"})
    feature: str = field(default="de_movingAve",
                         metadata={"help": f"feature arrays to read, one of {list(SEED_IV_FEATURES)}"})
    sessions: list[int] | None = field(default=None,
                                       metadata={"help": "sessions to read, e.g. 1 2 (None: every one found)"})
    subjects: list[int] | None = field(default=None,
                                       metadata={"help": "subjects to read, e.g. 1 2 3 (None: every one found)"})
    eeg_encoder: str = field(default="mlp", metadata={"help": "EEGEncoder kind: mlp (over the 62 x 5 features) or "
                                                               "cnn (1-D over the electrodes, bands as channels)"})
    hidden_size: int = field(default=128, metadata={"help": "hidden width of the encoder"})
    dropout: float = field(default=0.2, metadata={"help": "dropout of the encoder"})
    epochs: int = field(default=20, metadata={"help": "training epochs per fold (fixed: no selection on the test "
                                                      "fold)"})
    batch_size: int = field(default=256, metadata={"help": "windows per update"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seed of each fold's initialisation and shuffles"})
    device: str = field(default="auto", metadata={"help": "torch device: auto (cuda when available, else cpu), cpu, "
                                                          "cuda, cuda:1 ..."})
    progress_bar: bool = field(default=True, metadata={"help": "show a tqdm bar over the folds"})

    def validate(self) -> None:
        """Raises ValueError naming every problem (reads no data)."""
        problems = []
        if self.folds not in SEED_IV_FOLDS:
            problems.append(f"folds {self.folds!r} is unknown (choose from {list(SEED_IV_FOLDS)})")
        if self.feature not in SEED_IV_FEATURES:
            problems.append(f"feature {self.feature!r} is unknown (choose from {list(SEED_IV_FEATURES)})")
        if self.eeg_encoder not in ("mlp", "cnn"):
            problems.append(f"eeg_encoder must be mlp or cnn, got {self.eeg_encoder!r}")
        for name in ("hidden_size", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            problems.append("learning_rate must be > 0 and weight_decay >= 0")
        if problems:
            raise ValueError("Invalid SEED-IV arguments: " + "; ".join(problems) + ".")


def seed_iv_folds(trials: Sequence[SeedIVTrial], scheme: str = "loso"
                  ) -> list[tuple[str, list[SeedIVTrial], list[SeedIVTrial]]]:
    """(name, training trials, test trials) per fold: `loso` holds out each subject, `session` each session."""
    if scheme not in SEED_IV_FOLDS:
        raise ValueError(f"SEED-IV folds {scheme!r} is unknown (choose from {list(SEED_IV_FOLDS)}).")
    key, label = ("subject", "subject{:02d}") if scheme == "loso" else ("session", "session{}")
    groups = sorted({getattr(t, key) for t in trials})
    if len(groups) < 2:
        raise ValueError(f"SEED-IV folds {scheme!r} need at least 2 {key}s; the data hold {groups}.")
    return [(label.format(g), [t for t in trials if getattr(t, key) != g], [t for t in trials if getattr(t, key) == g])
            for g in groups]


def train_eeg_encoder(x: np.ndarray, y: np.ndarray, args: SeedIVArguments, device: torch.device) -> EEGEncoder:
    """A fresh `EEGEncoder` trained on `(N, 62, 5)` windows for `args.epochs` epochs (AdamW, cross-entropy, shuffles
    seeded with `args.seed`); returned in eval mode."""
    torch.manual_seed(args.seed)
    model = EEGEncoder(len(SEED_IV_CLASSES), x.shape[1], x.shape[2], args.eeg_encoder, args.hidden_size,
                       args.dropout).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    features, labels = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(features), generator=generator).to(device)
        for start in range(0, len(order), args.batch_size):
            index = order[start:start + args.batch_size]
            if len(index) < 2:  # BatchNorm needs two samples
                continue
            loss = torch.nn.functional.cross_entropy(model(features[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict_eeg(model: EEGEncoder, x: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Class probabilities `(N, 4)` of `(N, 62, 5)` windows (the model in eval mode)."""
    model.eval()
    out = [model(torch.from_numpy(x[i:i + batch_size]).to(device)).softmax(-1).cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def run_seed_iv(args: SeedIVArguments) -> dict:
    """Reads SEED-IV, trains and tests one encoder per fold, writes results.md / results.json / predictions.csv into
    `args.output_dir`; returns {"folds": [...], "summary": [...], "table": str}."""
    args.validate()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    trials = read_seed_iv(args.data_dir, args.feature, args.sessions, args.subjects)
    folds = seed_iv_folds(trials, args.folds)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    setting = f"eeg_{args.eeg_encoder}"
    records, rows, predictions = [], [], []
    for name, train, test in tqdm(folds, desc=f"SEED-IV {args.folds} folds", disable=not args.progress_bar):
        x_train, y_train, _ = seed_iv_samples(train)
        x_test, y_test, _ = seed_iv_samples(test)
        model = train_eeg_encoder(x_train, y_train, args, device)
        probabilities = predict_eeg(model, x_test, args.batch_size, device)
        predicted = probabilities.argmax(-1)
        metrics = classification_metrics(y_test, predicted, len(SEED_IV_CLASSES))
        records.append({"fold": name, "train_subjects": sorted({t.subject for t in train}),
                        "test_subjects": sorted({t.subject for t in test}),
                        "test_sessions": sorted({t.session for t in test}), "train_windows": len(y_train),
                        "test_windows": len(y_test), "metrics": metrics})
        rows.append({"setting": setting, "modalities": "EEG", "fold": name, **metrics})
        windows = (w for t in test for w in range(len(t.features)))
        trial_of = [t for t in test for _ in range(len(t.features))]
        for trial, window, label, prediction, probs in zip(trial_of, windows, y_test, predicted, probabilities):
            predictions.append([name, trial.subject, trial.session, trial.trial, window, SEED_IV_CLASSES[label],
                                SEED_IV_CLASSES[prediction]] + [f"{p:.6f}" for p in probs])
    summary = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in entry.items()}
               for entry in summarize(rows)]
    table = _write_outputs(output_dir, args, records, rows, summary, predictions)
    return {"folds": records, "summary": summary, "table": table}


def _write_outputs(output_dir: Path, args: SeedIVArguments, records: list[dict], rows: list[dict],
                   summary: list[dict], predictions: list[list]) -> str:
    """Writes predictions.csv, results.md and results.json; returns the text of results.md."""
    with open(output_dir / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fold", "subject", "session", "trial", "window", "label", "prediction"]
                        + [f"p_{c}" for c in SEED_IV_CLASSES])
        writer.writerows(predictions)
    scheme = {"loso": "leave-one-subject-out (subject-independent)",
              "session": "session held out (test subjects seen in other sessions)"}[args.folds]
    text = (
        f"# SEED-IV EEG results\n\nEEGEncoder ({args.eeg_encoder}) on {args.feature} windows, {scheme}: "
        f"{len(records)} folds, {args.epochs} epochs each, no selection on the test fold. Test WA / UAR / WF1 / F1 "
        f"(%), mean ± sample std over folds, then per fold. Classes: {', '.join(SEED_IV_CLASSES)}.\n\n"
        + results_table(rows) + "\n" + results_table(rows, group_by=("fold",))
    )
    (output_dir / "results.md").write_text(text, encoding="utf-8")
    (output_dir / "results.json").write_text(json.dumps(
        {"arguments": asdict(args), "classes": list(SEED_IV_CLASSES), "folds": records, "summary": summary},
        indent=2))
    return text


def seed_iv_argument_parser(prog: str | None = None):
    """The parser of `baselines/seed_iv.py` (an argparse parser: one `--option` per `SeedIVArguments` field)."""
    from ..command_line import DataclassParser

    return DataclassParser(SeedIVArguments, prog=prog, description=__doc__.split("\n\n")[0].replace("\n", " "))


def main(argv: Sequence[str] | None = None) -> dict:
    """`baselines/seed_iv.py [--option value ...]`: parses, runs, prints the results table."""
    args = seed_iv_argument_parser("baselines/seed_iv.py").parse_dataclass(sys.argv[1:] if argv is None else list(argv))
    try:
        result = run_seed_iv(args)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from error
    print(result["table"])
    return result


__all__ = ["SEED_IV_FOLDS", "SeedIVArguments", "main", "predict_eeg", "run_seed_iv", "seed_iv_argument_parser",
           "seed_iv_folds", "train_eeg_encoder"]
