"""What the paper's pretraining recipe costs: measured per-position cost here, projected to GPUs.

The recipe (MEmoBERT, ~200k utterances): 40,000 updates of 640 utterances, BERT-base, the 2:1:1:1 task mix. From the
realistic length mix (text 5-30 tokens, 0 or 10-36 faces, 10-64 acoustic frames) it computes the positions a run
computes (length-grouped, padding squeezed), the model FLOPs of the recipe, then:

- measured here: base-size training steps on length-grouped realistic batches (CPU, fp32), giving seconds per
  computed position and the MFU against this machine's measured fp32 matmul rate -> the recipe's CPU time;
- projected: wall time and cost on N GPUs at the given dense bf16 peak, for several MFU values (the GPU script
  `gpu_throughput.py` measures the real MFU on a card), with data-parallel scaling taken as linear (the gradient
  all-reduce of 110M parameters overlaps the backward at this batch size).

    .venv/bin/python benchmarks/pretrain_cost.py                          # 8 x H100 SXM at $3.00 per GPU-hour
    .venv/bin/python benchmarks/pretrain_cost.py --gpus 8 --peak-tflops 312 --price 1.5   # 8 x A100
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pretrain_throughput import (
    MIX,
    REALISTIC,
    SPECIAL,
    make_optimizer,
    forward_flops,
    matmul_rate,
    memobert_config,
    memobert_model,
    row_positions,
    train_step,
)

from memobert.data.synthetic import random_corpus_rows
from memobert.objectives import MODALITIES, PretrainingCollator, TaskSchedule
from memobert.training.corpus import length_grouped_batches, padding_efficiency
from memobert.training.pretrain import masking_generator
from memobert.command_line import CommandLineParser

UPDATES, SAMPLES_PER_UPDATE = 40_000, 640


def batches_flops(config, sizes: np.ndarray, batches: list[np.ndarray]) -> float:
    """Model FLOPs of training on `batches` (rows of `sizes`), padding squeezed, averaged over the task mix."""
    flops = 0.0
    masked_share = MIX["wwmlm"] / sum(MIX.values())  # the vocabulary head runs only in WWMLM updates
    for rows in batches:
        longest = int(sizes[rows].sum(axis=1).max())
        masked = masked_share * 0.15 * float(sizes[rows, 0].sum())
        flops += 3 * forward_flops(config, longest, len(rows), int(masked))
    return flops


def recipe_flops(config, sizes: np.ndarray, batch_size: int) -> tuple[float, float, float]:
    """(model FLOPs per sample, computed positions per sample, padding efficiency) of length-grouped batches."""
    batches = length_grouped_batches(sizes, batch_size, seed=0, epoch=0, group_by_length=True)
    samples = sum(len(b) for b in batches)
    computed = sum(int(sizes[b].sum(axis=1).max()) * len(b) for b in batches)
    efficiency = padding_efficiency([sizes[b] for b in batches])
    return batches_flops(config, sizes, batches) / samples, computed / samples, efficiency


def main() -> None:
    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs of the projection (8)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU (989: H100 SXM)")
    parser.add_argument("--price", type=float, default=3.0, help="USD per GPU-hour assumed (3.00)")
    parser.add_argument("--mfu", nargs="+", type=float, default=[0.1, 0.2, 0.3, 0.4],
                        help="MFU values projected (0.1 0.2 0.3 0.4)")
    parser.add_argument("--cpu-batches", type=int, default=4, help="base-size CPU steps measured (4, batch 16)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = memobert_config("base")
    pool = random_corpus_rows(8192, seed=5, visual_dim=1, acoustic_dim=1, **REALISTIC)
    sizes = row_positions(pool)
    per_gpu = SAMPLES_PER_UPDATE // args.gpus
    flops_per_sample, positions_per_sample, efficiency = recipe_flops(config, sizes, per_gpu)
    samples = UPDATES * SAMPLES_PER_UPDATE
    total_flops = samples * flops_per_sample
    print(f"Recipe: {UPDATES:,} updates x {SAMPLES_PER_UPDATE} utterances = {samples / 1e6:.1f}M samples; "
          f"{positions_per_sample:.1f} computed positions per sample ({100 * efficiency:.1f} % real, batches of "
          f"{per_gpu} per GPU); {flops_per_sample / 1e9:.1f} GFLOP per sample; {total_flops / 1e18:.2f} EFLOP in all.")

    # Measured: base-size steps on length-grouped realistic batches (batch 16) on this CPU.
    collator = PretrainingCollator(SPECIAL, config, seed=0)
    schedule = TaskSchedule(MIX, seed=0)
    rows_real = random_corpus_rows(16 * 50, seed=6, **REALISTIC)
    real_sizes = row_positions(rows_real)
    batches = length_grouped_batches(real_sizes, 16, seed=0, epoch=0)[: args.cpu_batches]
    model = memobert_model("base")
    optimizer = make_optimizer(model, torch.device("cpu"))
    built = []
    for step, rows in enumerate(batches):
        padded = collator.pad([rows_real[i] for i in rows], include=MODALITIES, face_soft_labels=True)
        built.append(collator.task(schedule.task_for_update(step)).build_batch(
            padded, SPECIAL, masking_generator(0, step, 0, 0)))
    train_step(model, optimizer, built[0])()  # warm-up
    start = time.perf_counter()
    for batch in built:
        train_step(model, optimizer, batch)()
    seconds = time.perf_counter() - start
    measured_samples = sum(len(b) for b in batches)
    median_rate, _ = matmul_rate(config.hidden_size, config.intermediate_size, 16 * 100)
    cpu_flops = batches_flops(config, real_sizes, batches)
    cpu_mfu = cpu_flops / seconds / 1e9 / median_rate
    print(f"\nMeasured here (CPU, {args.threads} threads, fp32): {measured_samples / seconds:.2f} samples/s, "
          f"MFU {100 * cpu_mfu:.0f} % of the measured {median_rate:.0f} GFLOP/s matmul rate -> the recipe would take "
          f"{samples / (measured_samples / seconds) / 86400:.0f} days on this machine.\n")

    print(f"Projection on {args.gpus} GPUs of {args.peak_tflops:.0f} dense bf16 TFLOP/s at ${args.price:.2f} per "
          "GPU-hour (linear data-parallel scaling):\n")
    print("| MFU | samples/s (all GPUs) | wall time | GPU-hours | cost | rows/s each GPU's loader must supply (5x) |")
    print("|---|---|---|---|---|---|")
    for mfu in args.mfu:
        rate = args.gpus * args.peak_tflops * 1e12 * mfu / flops_per_sample
        hours = samples / rate / 3600
        print(f"| {100 * mfu:.0f} % | {rate:,.0f} | {hours * 60:.0f} min | {hours * args.gpus:.1f} | "
              f"${hours * args.gpus * args.price:.0f} | {5 * rate / args.gpus:,.0f} |")


if __name__ == "__main__":
    main()
