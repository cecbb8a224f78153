"""The downstream loop, readable top to bottom: emotion classification on speaker-independent folds.

For every fold and seed: build a fresh model of the run's system (`systems.py`: a MEmoBERT setting or a baseline),
train it on the training speakers, evaluate on the validation speakers every `eval_steps`, keep the parameters of
the best validation UAR in memory (early stopping counts evaluations without improvement), then evaluate that
selected model on the test speakers in each modality case (L, V, A, LV, LA, VA, LVA). The test fold is read only
after selection. A classical system is fitted once instead (`classical.py`). What is written where: `results.py`.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from ..data.folds import Fold, subsample_per_class
from ..evaluation.metrics import classification_metrics, select_best
from ..training.arguments import ConfigError
from ..training.device import to_device
from ..training.optimization import build_optimizer
from .arguments import DownstreamArguments
from .batching import BatchBuilder, ModalityDropout, training_batches
from .classical import fit_and_test_classical
from .corpus import load_downstream_corpus
from .results import RESULTS_MD, RunFolder, run_record, write_results
from .systems import Run, build_system


def run_downstream(args: DownstreamArguments) -> dict:
    """Runs every fold x seed of `args` and writes the outputs (see `results.py`); returns the summary."""
    args.validate()
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        step_scheduler_with_optimizer=False,  # one schedule step per update, however many processes
    )
    labels = args.emotion_labels()

    # -- data, folds, the system -----------------------------------------------------------------------------------
    if args.corpus is None:
        from ..demo.corpus import build_demo_corpus

        with accelerator.main_process_first():
            args.corpus = str(build_demo_corpus(args.demo_cache_dir, progress=accelerator.is_main_process))
    with accelerator.main_process_first():
        corpus = load_downstream_corpus(args.corpus, labels)
    folds = corpus.folds(args.folds)
    fold_numbers = args.only_folds or list(range(1, len(folds) + 1))
    if max(fold_numbers) > len(folds):
        raise ConfigError(
            f"only_folds {args.only_folds} asks for fold {max(fold_numbers)}; {args.folds} has {len(folds)} folds."
        )
    system = build_system(args, labels, corpus.sizes)
    cases = system.cases(args.cases)
    try:
        train_case = args.training_case(corpus.modalities)
    except ValueError as error:
        raise ConfigError(f"{error} Corpus: {args.corpus}.") from None
    max_steps = args.resolved_max_steps

    run_folder = RunFolder(args.output_dir, args.name, labels)
    if accelerator.is_main_process:
        run_folder.start({**asdict(args), "learning_rate": args.resolved_learning_rate, "max_steps": max_steps,
                          "num_folds": len(folds), "rows": len(corpus), "dropped_labels": corpus.dropped})
    accelerator.wait_for_everyone()
    accelerator.print(
        f"{args.name}: {len(corpus)} labelled rows ({corpus.class_counts(labels.classes)}"
        f"{', dropped ' + str(corpus.dropped) if corpus.dropped else ''}), {len(fold_numbers)} of {len(folds)} folds "
        f"({args.folds}) x {len(args.seeds)} seeds, {max_steps} updates at lr {args.resolved_learning_rate:g} on "
        f"{accelerator.num_processes} process(es), trained and selected in case {train_case}."
    )
    bar = tqdm(total=len(fold_numbers) * len(args.seeds) * max_steps, desc=args.name, dynamic_ncols=True,
               disable=not (args.progress_bar and accelerator.is_main_process))

    # -- every fold x seed -----------------------------------------------------------------------------------------
    run = Run(args, system, corpus, labels, cases, accelerator, bar, run_folder, train_case)
    records = []
    for number in fold_numbers:
        for seed in args.seeds:
            fit_and_test = fit_and_test_classical if system.classical else train_and_test
            record, predictions = fit_and_test(run, folds[number - 1], number, seed)
            if accelerator.is_main_process:
                run_folder.add(record, predictions)
            records.append(record)
    bar.close()

    summary = {}
    if accelerator.is_main_process:
        run_folder.plot_confusion(records)
        summary = write_results(args.output_dir)
        if args.save_models and not system.classical:  # a card per saved model, now that its numbers exist
            from ..model_card import write_model_card

            for record in records:
                write_model_card(run_folder.model_folder(folds[record["fold_number"] - 1], record["seed"]),
                                 kind="downstream", arguments=args, run=record, results=summary["summary"])
        accelerator.print(f"Wrote {run_folder.path} and {Path(args.output_dir) / RESULTS_MD}:\n" + summary["table"])
    accelerator.wait_for_everyone()
    return {"runs": records, **summary}


class RunningLoss:
    """The mean training loss since the last `take`, summed on the device (one host sync per evaluation)."""

    def __init__(self, accelerator: Accelerator):
        self.accelerator, self.total, self.count = accelerator, torch.zeros((), device=accelerator.device), 0

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss.detach()
        self.count += 1

    def take(self) -> float | None:
        """The mean over every process since the last call (None when nothing was added), then reset."""
        mean = self.accelerator.reduce(self.total, "mean").item() / self.count if self.count else None
        self.total, self.count = torch.zeros((), device=self.accelerator.device), 0
        return mean


class Selection:
    """The validation curve of one run and the parameters (on the CPU) of its best validation UAR: strictly better
    replaces, so the earliest of equal scores is kept; `update` says when to stop early."""

    def __init__(self, patience: int):
        self.patience, self.curve, self.best_uar, self.best_state, self.since_best = patience, [], -math.inf, None, 0

    def update(self, step: int, train_loss: float | None, metrics: dict, model: torch.nn.Module) -> bool:
        """Adds a point to the curve, keeps the state when it is the best so far; True = stop early."""
        self.curve.append({"step": step, "train_loss": train_loss, "validation": metrics})
        if metrics["uar"] > self.best_uar:
            self.best_uar, self.since_best = metrics["uar"], 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.since_best += 1
        return bool(self.patience) and self.since_best >= self.patience

    def selected(self) -> dict:
        """The curve point of the kept state (the test fold never took part)."""
        _, point = select_best(self.curve, key="uar", split="validation")
        if point["validation"]["uar"] != self.best_uar:
            raise RuntimeError(f"The selected update {point['step']} is not the one whose parameters were kept "
                               f"(validation UAR {point['validation']['uar']} vs {self.best_uar}).")
        return point


def train_and_test(run: Run, fold: Fold, fold_number: int, seed: int) -> tuple[dict, list[dict]]:
    """One fold x seed: train, select on validation UAR, then test the selected model in every modality case."""
    args, system, corpus, labels = run.args, run.system, run.corpus, run.labels
    accelerator, bar = run.accelerator, run.bar
    max_steps, rank, world = args.resolved_max_steps, accelerator.process_index, accelerator.num_processes
    set_seed(seed)
    model, init = system.build()
    builder = BatchBuilder(corpus, system.processor, system.prompt, system.extra_keys)
    train_rows = subsample_per_class(fold.train, corpus.labels, args.train_fraction, seed=seed * 1000 + fold_number)
    validation_rows = np.asarray(fold.validation, dtype=np.int64)
    if system.needs_prepare:  # M3ER's modality check, ResNet34's speaker-ID stage: on the training rows only,
        model.to(accelerator.device)  # on the run's device (a stage may train)
        prepare_batches = builder.with_keys("speakers").batches(train_rows, args.per_device_train_batch_size,
                                                                run.train_case)
        init["prepare"] = model.prepare([to_device(b, accelerator.device) for b in prepare_batches])

    optimizer = build_optimizer(model, args, args.resolved_learning_rate, accelerator.device,
                                args.embedder_learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, args.warmup_steps, max_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    batches = training_batches(train_rows, args.per_device_train_batch_size,
                               np.random.SeedSequence([seed, fold_number]).generate_state(1)[0], rank, world,
                               corpus.labels[train_rows] if args.class_balanced_sampling else None)
    selection, train_loss = Selection(args.early_stopping_patience), RunningLoss(accelerator)
    # Every process draws the same case for its share of an update (one seed per fold x seed, not per rank).
    training_case = ModalityDropout(run.train_case, args.modality_dropout,
                                    np.random.SeedSequence([seed, fold_number, 1]).generate_state(1)[0])

    def validate(step: int) -> bool:
        """A point of the validation curve; True = stop early."""
        size = args.per_device_eval_batch_size
        metrics = predict(model, accelerator, builder, validation_rows, run.train_case, size)["metrics"]
        bar.set_postfix(fold=fold.name, seed=seed, val_uar=f"{metrics['uar']:.3f}")
        return selection.update(step, train_loss.take(), metrics, accelerator.unwrap_model(model))

    stopped_early, done = args.evaluate_at_start and validate(0), 0
    model.train()
    while done < max_steps and not stopped_early:
        batch = to_device(builder(next(batches), training_case()), accelerator.device)
        loss = model(**batch, return_dict=True).loss
        accelerator.backward(loss)
        if args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        if not accelerator.optimizer_step_was_skipped:  # fp16 GradScaler skipped it
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        train_loss.add(loss)
        done += 1
        bar.update(1)
        if done % args.eval_steps == 0 or done == max_steps:
            stopped_early = validate(done)
            model.train()
    if stopped_early:
        bar.update(max_steps - done)

    # -- selection (validation only), then the test fold ------------------------------------------------------------
    selected = selection.selected()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.load_state_dict(selection.best_state)
    if args.save_models and accelerator.is_main_process:
        system.save(unwrapped, run.folder.model_folder(fold, seed))
    test_rows = np.asarray(fold.test, dtype=np.int64)
    test_metrics, predictions = {}, []
    for case in run.cases:
        out = predict(model, accelerator, builder, test_rows, case, args.per_device_eval_batch_size)
        test_metrics[case] = out["metrics"]
        for row, probs in zip(out["rows"].tolist(), out["probabilities"].tolist()):
            predictions.append({"utterance_id": corpus.utterance_ids[row], "fold": fold.name, "seed": seed,
                                "case": case, "label": int(corpus.labels[row]), "probabilities": probs})

    record = run_record(
        name=args.name, setting=args.setting, baseline=args.baseline if args.setting == "baseline" else None,
        fold=fold, fold_number=fold_number, seed=seed, train_rows=train_rows, labels=labels,
        train_class_counts=corpus.class_counts(labels.classes, train_rows), init=init,
        label_words=list(labels.label_words) if system.prompt else None,
        learning_rate=args.resolved_learning_rate, max_steps=max_steps, steps_trained=done,
        stopped_early=bool(stopped_early),
        selection=f"best validation UAR ({run.train_case}), earliest on ties; the test fold is evaluated only after "
                  "selection", train_case=run.train_case,
        curve=selection.curve, selected=selected, test=test_metrics,
    )
    accelerator.print(
        f"{args.name} {fold.name} seed {seed}: selected update {selected['step']} (validation UAR "
        f"{selected['validation']['uar'] * 100:.2f}); test UAR " +
        ", ".join(f"{c} {test_metrics[c]['uar'] * 100:.2f}" for c in run.cases)
    )
    accelerator.free_memory()
    return record, predictions


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    accelerator: Accelerator,
    builder: BatchBuilder,
    rows: np.ndarray,
    case: str,
    batch_size: int,
) -> dict:
    """
    Class probabilities of `rows` in one modality case, each row once (split across processes, gathered with
    `gather_for_metrics`), with the metrics and the mean cross-entropy. The model is left in eval mode.
    """
    model.eval()
    loader = DataLoader(
        [int(r) for r in rows], batch_size=batch_size, shuffle=False,
        collate_fn=lambda chunk: builder(chunk, case, row_ids=True),
        generator=torch.Generator(),  # evaluation never draws from the global RNG (training's dropout)
    )
    loader = accelerator.prepare_data_loader(loader)
    all_logits, all_labels, all_rows = [], [], []
    for batch in loader:
        labels, row_ids = batch.pop("labels"), batch.pop("rows")
        logits = model(**batch, return_dict=True).logits.float()
        logits, labels, row_ids = accelerator.gather_for_metrics((logits, labels, row_ids))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
        all_rows.append(row_ids.cpu())
    logits, labels, row_ids = torch.cat(all_logits), torch.cat(all_labels), torch.cat(all_rows)
    metrics = classification_metrics(labels.numpy(), logits.argmax(dim=-1).numpy(), logits.shape[-1])
    metrics["loss"] = float(F.cross_entropy(logits, labels))
    return {"metrics": metrics, "probabilities": logits.softmax(dim=-1), "rows": row_ids, "labels": labels}


__all__ = ["run_downstream", "train_and_test", "predict", "Selection"]
