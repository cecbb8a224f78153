"""The pretraining loop, readable top to bottom: one task per update, Accelerate for devices, precision and processes."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType, set_seed
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from ..checkpoints import resolve_checkpoint
from ..configuration_memobert import DEFAULT_PRETRAINING_TASKS, MEmoBertConfig, verbalizer_token_ids
from ..data import schema
from ..modeling_memobert import MEmoBertForPreTraining, quiet_transformers
from ..objectives import MODALITIES, PretrainingCollator, TaskSchedule
from ..processing_memobert import MEmoBertProcessor
from .arguments import ConfigError, PretrainArguments
from .device import to_device
from .optimization import build_optimizer
from .corpus import (
    LengthLimits,
    MapStyleBatches,
    StreamingBatches,
    StreamPosition,
    load_pretrain_corpus,
    padding_efficiency,
)

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"


def pretraining_tasks(tasks: list[str]) -> list[str]:
    """The heads a model pretrained on `tasks` holds, in a fixed order (the paper's tasks in their default order,
    then any others as given): the order parameters are initialised in, so the same tasks give the same model."""
    known = [t for t in DEFAULT_PRETRAINING_TASKS if t in tasks]
    return known + [t for t in tasks if t not in known]


def build_pretraining_model(args: PretrainArguments, sizes: dict, tokenizer) -> MEmoBertForPreTraining:
    """From BERT (`from_bert`) or from scratch, with the corpus' feature sizes, the run's maximum lengths and one
    head per pretraining task."""
    overrides = dict(
        sizes,
        max_text_length=args.max_text_length,
        max_visual_length=args.max_visual_length,
        max_acoustic_length=args.max_acoustic_length,
        mask_token_id=tokenizer.mask_token_id,
        label_token_ids=verbalizer_token_ids(MEmoBertConfig().label_words, tokenizer),
        pretraining_tasks=pretraining_tasks(args.tasks),
    )
    bert = resolve_checkpoint(args.model_name_or_path)
    if bert is not None:
        return MEmoBertForPreTraining.from_bert(bert, tokenizer=tokenizer, **overrides)
    config = MEmoBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        intermediate_size=args.intermediate_size,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    return MEmoBertForPreTraining(config)


def untie_mlm_bias_for_fsdp2(accelerator: Accelerator, model: MEmoBertForPreTraining):
    """
    FSDP2 only: `cls.predictions.bias` is the decoder's bias (one Parameter, as in BERT). Accelerate 1.15 shards the
    word embeddings and the decoder as one group and leaves the rest of the head to the root group, and torch >= 2.13
    refuses a parameter seen by two groups ("Parameter 'cls.predictions.decoder.bias' is shared with a parameter
    already managed by another FSDP group"). So the head's alias is dropped before `prepare` (the forward pass uses
    the decoder's) and the returned function sets it again, to the sharded parameter, after `prepare`: the state dict
    and the saved model keep both names.
    """
    if not accelerator.is_fsdp2:
        return lambda prepared: None
    head = model.cls.predictions
    if head.bias is not head.decoder.bias:
        raise RuntimeError("cls.predictions.bias is not tied to cls.predictions.decoder.bias")
    del head._parameters["bias"]

    def retie(prepared) -> None:
        head = accelerator.unwrap_model(prepared).cls.predictions
        head.bias = head.decoder.bias

    return retie


def fill_fsdp_optimizer_state(accelerator: Accelerator, optimizer) -> None:
    """
    FSDP only, before `load_state`: AdamW state (step 0, zero moments) for every parameter that has none, i.e. what
    AdamW creates at a parameter's first gradient, so training is unchanged. FSDP checkpoints go through Distributed
    Checkpoint, whose load template holds state for every parameter: a checkpoint saved before every task head (and
    the unused pooler) had a gradient lacked theirs ("Missing key in checkpoint state_dict:
    optimizer.state.memobert.pooler.dense.weight.step") and could not be resumed.
    """
    if accelerator.distributed_type != DistributedType.FSDP:
        return
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state[param]
            if not state:
                on_device = group.get("fused") or group.get("capturable")
                state["step"] = torch.zeros((), dtype=torch.float32, device=param.device if on_device else "cpu")
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                if group.get("amsgrad"):
                    state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)


def fill_deepspeed_config(accelerator: Accelerator, args: PretrainArguments) -> None:
    """
    DeepSpeed only, before `prepare`: the values a DeepSpeed config leaves "auto" come from these arguments. Accelerate
    would take the micro-batch size from DataLoaders passed to `prepare` (the loop batches itself, so it refuses to
    start) and clip at 1.0. A value the config sets must agree with the arguments.
    """
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    if args.gradient_accumulation_steps != 1:
        # Accelerate's DeepSpeed backward() takes an optimizer step after every micro-batch unless the loop runs in
        # `accelerator.accumulate`, and the engine divides the loss by its accumulation steps as well as the loop.
        raise ConfigError(
            f"gradient_accumulation_steps {args.gradient_accumulation_steps} with DeepSpeed: this loop accumulates "
            "itself, which DeepSpeed does not follow. Use gradient_accumulation_steps 1 and a larger "
            "per_device_train_batch_size (ZeRO frees the memory for it), or FSDP/DDP."
        )
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    wanted = {
        "train_micro_batch_size_per_gpu": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "gradient_clipping": args.max_grad_norm,
        "train_batch_size": (args.per_device_train_batch_size * args.gradient_accumulation_steps
                             * accelerator.num_processes),
    }
    clashes = [f"{key} {config[key]} (the run's {value})" for key, value in wanted.items()
               if config.get(key, "auto") != "auto" and float(config[key]) != float(value)]
    if clashes:
        raise ConfigError("The DeepSpeed config disagrees with the pretraining arguments: " + ", ".join(clashes)
                          + '. Set these to "auto" in the DeepSpeed config (they are then taken from the arguments).')
    config.update(wanted)


def masking_generator(seed: int, step: int, micro_step: int, rank: int) -> torch.Generator:
    """The masks of a micro-batch depend on (seed, update, micro-batch, rank) only: resuming redraws them exactly."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, micro_step, rank]).generate_state(1)[0]))


def latest_checkpoint(output_dir: str) -> str | None:
    folder = Path(output_dir) / CHECKPOINTS
    steps = sorted(
        (int(p.name.split("_")[-1]), p) for p in folder.glob("step_*") if (p / TRAINER_STATE).is_file()
    ) if folder.is_dir() else []
    return str(steps[-1][1]) if steps else None


def parameter_fingerprint(model: torch.nn.Module) -> torch.Tensor:
    """A float64 sum of every parameter weighted by its position: equal on two replicas only if they match. Under
    FSDP2 a parameter is a DTensor shard: its whole tensor is gathered first (a collective: every process calls
    this)."""
    total = torch.zeros((), dtype=torch.float64)
    for i, param in enumerate(model.parameters()):
        if hasattr(param, "full_tensor"):
            param = param.full_tensor()
        total += (i + 1) * param.detach().double().cpu().sum() + param.detach().double().cpu().square().sum()
    return total.reshape(1)


def segment_lengths(batch) -> np.ndarray:
    """`(rows, 3)` real positions per segment of a padded batch (for the padding-efficiency figure)."""
    columns = []
    for mask in (batch.attention_mask, batch.visual_mask, batch.acoustic_mask):
        columns.append(mask.sum(dim=1).numpy() if mask is not None else np.zeros(len(batch.input_ids), dtype=np.int64))
    return np.stack(columns, axis=1)


class MicroBatchBuilder:
    """
    Rows of micro-batch `number` of a process's stream -> that batch padded and masked for its update's task. The loop
    gives it to the batch stream as its collate function, so it runs in the DataLoader workers when there are any (off
    the training step's path): the task and the masks are functions of (seed, update, micro-batch, rank) only, so a
    worker, the main process and a resumed run build the same batch.
    """

    def __init__(self, collator: PretrainingCollator, schedule: TaskSchedule, seed: int, accumulation: int, rank: int):
        self.collator, self.schedule, self.seed, self.accumulation, self.rank = collator, schedule, seed, accumulation, rank

    def __call__(self, rows: list[dict], number: int) -> dict:
        step, micro_step = divmod(number, self.accumulation)
        task = self.collator.task(self.schedule.task_for_update(step))
        # Frames stay float16 as stored: half the bytes from a worker and to the device, widened there (`to_device`).
        padded = self.collator.pad(rows, include=MODALITIES, face_soft_labels=True, keep_float16=True)
        generator = masking_generator(self.seed, step, micro_step, self.rank)
        return {
            "ids": [str(row[schema.UTTERANCE_ID]) for row in rows],
            "task": task.name,
            "lengths": segment_lengths(padded),
            "batch": task.build_batch(padded, self.collator.special_token_ids, generator),
        }


def pretrain(args: PretrainArguments) -> dict:
    """Runs pretraining as `args` says and returns the final metrics (also written to `output_dir/metrics.json`)."""
    args.validate()
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)  # one task's heads idle in each update
    trackers = _trackers(args.report_to)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=trackers or None,
        project_dir=args.output_dir,
        kwargs_handlers=[ddp],
        # The schedule counts updates (max_steps), and the loop steps it once per update. Tied to the optimizer,
        # Accelerate would step it once per process (it assumes an epoch of its own DataLoader split over them):
        # with 2 processes warm-up ended at warmup_steps / 2 and the rate reached 0 at max_steps / 2.
        step_scheduler_with_optimizer=False,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > accelerator.num_processes:
        # Accelerate 1.15 sets up FSDP, DeepSpeed and multi-GPU runs on accelerators only: on a machine without one
        # each launched process would train alone, on every row, into the same output_dir.
        raise ConfigError(
            f"Launched as {launched} processes, but Accelerate set up {accelerator.num_processes} "
            f"({accelerator.distributed_type}, device {accelerator.device}): the accelerate config wants GPUs. On "
            "CPUs launch with `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N` (data parallel "
            "over gloo); Accelerate runs FSDP and DeepSpeed on GPUs only."
        )
    fsdp_wanted = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    if fsdp_wanted and accelerator.distributed_type != DistributedType.FSDP:
        accelerator.print(f"Note: the accelerate config asks for FSDP, which Accelerate runs on GPUs only; this is a "
                          f"{accelerator.distributed_type} run (every process holds the whole model).")
    set_seed(args.seed)
    rank, world = accelerator.process_index, accelerator.num_processes
    output_dir = Path(args.output_dir)

    # -- data and model --------------------------------------------------------------------------------------------
    if args.corpus is None:
        from ..demo.corpus import build_demo_corpus

        with accelerator.main_process_first():
            args.corpus = str(build_demo_corpus(args.demo_cache_dir, progress=accelerator.is_main_process))
    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(args.tokenizer_name or args.model_name_or_path))
    limits = LengthLimits(args.max_text_length, args.max_visual_length, args.max_acoustic_length)
    with accelerator.main_process_first():
        corpus = load_pretrain_corpus(
            args.corpus, limits, args.eval_fraction, args.max_eval_samples, args.overlength, args.streaming
        )
    if "span_mvfc_kl" in args.tasks and corpus.sizes.get("num_face_classes", 1) == 0:
        raise ConfigError(
            f"{args.corpus}: its face encoder has no expression classes (num_face_classes 0, e.g. an hf: image "
            "encoder), so span_mvfc_kl has nothing to predict: leave it out, e.g. --tasks wwmlm span_mvfr span_mafr "
            "--task_ratios 2 1 1."
        )
    # Seeded again here: building the demo corpus (the first run of a fresh clone) draws random numbers in this
    # process, and the model must not depend on whether the corpus was built now or read from the cache.
    set_seed(args.seed)
    model = build_pretraining_model(args, corpus.sizes, tokenizer)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    if args.torch_compile:
        model.compile(dynamic=True)  # in place: parameter names and save_pretrained are unchanged
    collator = PretrainingCollator(tokenizer, model.config, tasks=args.tasks)
    schedule = TaskSchedule(args.task_mix, seed=args.seed)

    accumulation = args.gradient_accumulation_steps
    make_batch = MicroBatchBuilder(collator, schedule, args.seed, accumulation, rank)

    if args.streaming:
        batches = StreamingBatches(
            corpus.train, make_batch, args.per_device_train_batch_size, args.seed, limits, rank, world,
            args.group_by_length, args.length_group_size, args.shuffle_buffer_size,
        )
    else:
        batches = MapStyleBatches(
            corpus.train, corpus.train_lengths, make_batch, args.per_device_train_batch_size, args.seed, rank, world,
            args.group_by_length, args.length_group_size, args.dataloader_num_workers,
            args.dataloader_pin_memory and accelerator.device.type == "cuda",
        )

    fill_deepspeed_config(accelerator, args)
    retie_mlm_bias = untie_mlm_bias_for_fsdp2(accelerator, model)
    optimizer = build_optimizer(model, args, args.learning_rate, accelerator.device)
    scheduler = get_linear_schedule_with_warmup(optimizer, args.warmup_steps, args.max_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    retie_mlm_bias(model)
    fill_fsdp_optimizer_state(accelerator, optimizer)

    # -- resume ----------------------------------------------------------------------------------------------------
    start_step, position, history = 0, StreamPosition(), {"train": [], "eval": []}
    checkpoint = latest_checkpoint(args.output_dir) if args.resume_from_checkpoint == "latest" else args.resume_from_checkpoint
    if checkpoint:
        accelerator.load_state(checkpoint)
        state = json.loads((Path(checkpoint) / TRAINER_STATE).read_text())
        start_step, history = state["step"], state["history"]
        position = StreamPosition(**state["positions"][rank])
        accelerator.print(f"Resumed from {checkpoint} at update {start_step}.")
    elif args.resume_from_checkpoint == "latest":
        accelerator.print(f"No checkpoint in {output_dir / CHECKPOINTS}; starting from scratch.")

    run_config = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in asdict(args).items()}
    accelerator.init_trackers("memobert-pretrain", config=run_config)
    accelerator.print(
        f"Pretraining {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters on {world} process(es): "
        f"{len(corpus.eval)} held-out rows, tasks {schedule}, {args.max_steps} updates of "
        f"{args.per_device_train_batch_size * args.gradient_accumulation_steps * world} samples."
    )

    # -- the loop --------------------------------------------------------------------------------------------------
    stream = batches.iterate(position, first_batch_number=start_step * accumulation)
    loss_sums = {t: torch.zeros((), device=accelerator.device) for t in args.tasks}
    loss_counts = dict.fromkeys(args.tasks, 0)
    lengths_seen: list[np.ndarray] = []
    samples_since_log, log_time = 0, time.perf_counter()
    sample_log = None
    if args.log_sample_ids:
        (output_dir / "sample_ids").mkdir(parents=True, exist_ok=True)
        sample_log = open(output_dir / "sample_ids" / f"rank{rank}.jsonl", "a", encoding="utf-8")
    bar = tqdm(
        total=args.max_steps, initial=start_step, disable=not (args.progress_bar and accelerator.is_main_process),
        desc="pretrain", dynamic_ncols=True,
    )
    if start_step == 0 and args.eval_steps:
        # Where every task's held-out loss begins, so that the curves show how far training moved it.
        record = {"step": 0, **evaluate(model, corpus.eval, collator, args, accelerator)}
        history["eval"].append(record)
        accelerator.log({f"eval/{k}": v for k, v in record.items() if k != "step"}, step=0)
    model.train()
    for step in range(start_step, args.max_steps):
        task = collator.task(schedule.task_for_update(step))
        for micro_step in range(accumulation):
            item = next(stream)
            if item["task"] != task.name:
                raise RuntimeError(f"Update {step} is a {task.name} update but its batch was masked for "
                                   f"{item['task']}: the batch stream and the loop disagree on the update count.")
            if sample_log is not None:
                sample_log.write(json.dumps({"step": step, "micro_step": micro_step, "epoch": position.epoch,
                                             "ids": item["ids"]}) + "\n")
            lengths_seen.append(item["lengths"])
            batch = to_device(item["batch"], accelerator.device)
            last = micro_step == accumulation - 1
            with nullcontext() if last else accelerator.no_sync(model):
                loss = task.loss(model(**batch, return_dict=True))
                accelerator.backward(loss / accumulation)
            loss_sums[task.name] += loss.detach() / accumulation
            samples_since_log += len(item["ids"]) * world
        if args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        if not accelerator.optimizer_step_was_skipped:  # fp16 GradScaler skipped it
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_counts[task.name] += 1
        done = step + 1
        bar.update(1)

        if done % args.logging_steps == 0 or done == args.max_steps:
            # One host sync per logging interval, not per update.
            means = {t: accelerator.reduce(loss_sums[t], "mean").item() / loss_counts[t] for t in args.tasks if loss_counts[t]}
            elapsed = time.perf_counter() - log_time
            record = {"step": done, "lr": scheduler.get_last_lr()[0], "samples_per_s": samples_since_log / elapsed,
                      **{f"loss/{t}": v for t, v in means.items()}}
            history["train"].append(record)
            accelerator.log({k: v for k, v in record.items() if k != "step"}, step=done)
            bar.set_postfix({t: f"{v:.3f}" for t, v in means.items()} | {"samples/s": f"{record['samples_per_s']:.1f}"})
            loss_sums = {t: torch.zeros((), device=accelerator.device) for t in args.tasks}
            loss_counts = dict.fromkeys(args.tasks, 0)
            samples_since_log, log_time = 0, time.perf_counter()

        if (args.eval_steps and done % args.eval_steps == 0) or done == args.max_steps:
            record = {"step": done, **evaluate(model, corpus.eval, collator, args, accelerator)}
            history["eval"].append(record)
            accelerator.log({f"eval/{k}": v for k, v in record.items() if k != "step"}, step=done)
            bar.write(f"update {done}: held-out " + ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "step"))

        if args.save_steps and done % args.save_steps == 0 and done < args.max_steps:
            save_checkpoint(accelerator, args, done, position, history)
    bar.close()
    if sample_log is not None:
        sample_log.close()

    # -- the result ------------------------------------------------------------------------------------------------
    metrics = {
        "steps": args.max_steps,
        "processes": world,
        "padding_efficiency": padding_efficiency(lengths_seen),
        "first_train": history["train"][0] if history["train"] else None,
        "last_train": history["train"][-1] if history["train"] else None,
        "eval": history["eval"],
        "history": history,
        "rows_dropped_overlength": corpus.num_dropped,
        # One fingerprint per process: identical values mean the replicas stayed in sync.
        "parameter_fingerprints": accelerator.gather(parameter_fingerprint(model).to(accelerator.device)).tolist(),
    }
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # every process takes part: FSDP/DeepSpeed gather the shards
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        with quiet_transformers():  # our bar is the only one; the tied decoder's "shared tensor" note is expected
            unwrapped.save_pretrained(output_dir, state_dict=state_dict, safe_serialization=True)
        MEmoBertProcessor(tokenizer, unwrapped.config).save_pretrained(str(output_dir))
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        from ..evaluation.plots import plot_loss_curves

        plot_loss_curves(history, output_dir / "loss_curves.png")
        from ..model_card import write_model_card

        write_model_card(output_dir, kind="pretrained", arguments=args, metrics=metrics)
        accelerator.print(f"Saved the model, tokenizer, metrics.json, loss_curves.png and README.md (model card) to "
                          f"{output_dir}")
    accelerator.end_training()
    return metrics


@torch.no_grad()
def evaluate(model, eval_set, collator: PretrainingCollator, args: PretrainArguments, accelerator: Accelerator) -> dict:
    """Every task's mean loss on the held-out rows, with the same masks at every evaluation (seeded per batch)."""
    model.eval()
    rank, world = accelerator.process_index, accelerator.num_processes
    rows = list(range(rank, len(eval_set), world))
    totals = torch.zeros(len(args.tasks), device=accelerator.device)
    counts = torch.zeros(len(args.tasks), device=accelerator.device)
    for start in range(0, len(rows), args.per_device_eval_batch_size):
        chunk = eval_set[rows[start : start + args.per_device_eval_batch_size]]
        batch_rows = [dict(zip(chunk, values)) for values in zip(*chunk.values())]
        padded = collator.pad(batch_rows, include=MODALITIES, face_soft_labels=True)
        for i, name in enumerate(args.tasks):
            task = collator.task(name)
            generator = masking_generator(args.seed + 1, start, i, rank)
            batch = {k: v.to(accelerator.device) for k, v in task.build_batch(padded, collator.special_token_ids, generator).items()}
            totals[i] += task.loss(model(**batch, return_dict=True)).float()
            counts[i] += 1
    totals, counts = accelerator.reduce(totals, "sum"), accelerator.reduce(counts, "sum")
    model.train()
    return {f"loss/{t}": (totals[i] / counts[i]).item() if counts[i] else math.nan for i, t in enumerate(args.tasks)}


def save_checkpoint(accelerator: Accelerator, args: PretrainArguments, step: int, position: StreamPosition, history: dict) -> None:
    """`save_state` (model, optimizer, scheduler, RNG of every process) + the loop's own state; old ones pruned."""
    folder = Path(args.output_dir) / CHECKPOINTS / f"step_{step}"
    accelerator.save_state(str(folder))
    positions = accelerator.gather(
        torch.tensor([[position.epoch, position.batches_in_epoch]], device=accelerator.device)
    ).cpu().tolist()
    if accelerator.is_main_process:
        state = {"step": step, "history": history,
                 "positions": [{"epoch": e, "batches_in_epoch": b} for e, b in positions]}
        (folder / TRAINER_STATE).write_text(json.dumps(state, indent=2))
        kept = sorted(((int(p.name.split("_")[-1]), p) for p in folder.parent.glob("step_*")))
        for _, old in kept[: max(0, len(kept) - args.save_total_limit)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _trackers(report_to: str) -> list[str]:
    if report_to == "none":
        return []
    if report_to == "auto":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            return []
        return ["tensorboard"]
    return [report_to]
