"""Pretraining step throughput, measured side by side in one run (ratios, not bare times, are the claim).

For each model size (demo: 384 hidden, 6 layers; base: BERT-base) it prints four tables, every figure a full training
step (forward, backward, gradient clipping, AdamW) in fp32 on this machine's CPU threads:

1. Equal full-length tokens: every row 30 text tokens + 36 faces + 64 acoustic frames (130 positions); samples/s,
   model FLOPs utilisation (MFU) against the fp32 matmul rate measured at the model's own shapes in this run, and the
   ratio to `transformers.BertForMaskedLM` on the same number of tokens, per pretraining task and for the 2:1:1:1 mix.
2. Realistic length mix: text 5-30 tokens, 0 or 10-36 faces, 10-64 acoustic frames. MEmoBERT as the pretraining loop
   runs it (length-grouped batches, each row's padding squeezed out, the 2:1:1:1 task mix) against `BertForMaskedLM`
   as it is usually run (random batches padded to the longest row, frames counted as tokens, 15 % of them predicted).
3. Before/after of each optimisation, same rows, same run: torch's dropout vs the CPU keep-mask dropout
   (`dropout_implementation`), per-tensor vs fused AdamW, and padding squeezing on a realistic batch.
4. Padding efficiency of realistic batches (real positions / computed positions) for the batching choices.

    .venv/bin/python benchmarks/pretrain_throughput.py                        # demo and base, batch 16 (~8 min)
    .venv/bin/python benchmarks/pretrain_throughput.py --configs demo --steps 2 # quick look (~1 min)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM

from memobert import MEmoBertConfig, MEmoBertForPreTraining
from memobert.data.synthetic import random_corpus_rows
from memobert.objectives import MODALITIES, PretrainingCollator, SpecialTokenIds, TaskSchedule
from memobert.training.arguments import OptimizerArguments
from memobert.training.corpus import LengthLimits, length_grouped_batches, padding_efficiency
from memobert.training.optimization import build_optimizer
from memobert.training.pretrain import masking_generator
from memobert.command_line import CommandLineParser

SIZES = {
    "demo": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
MIX = {"wwmlm": 2, "span_mvfr": 1, "span_mvfc_kl": 1, "span_mafr": 1}
SPECIAL = SpecialTokenIds(pad_token_id=0, cls_token_id=101, sep_token_id=102, mask_token_id=103, never_mask_ids=(100,),
                          vocab_size=30522)
LIMITS = LengthLimits(30, 36, 64)
REALISTIC = dict(text_pieces=(3, 28), visual_frames=(10, 36), acoustic_frames=(10, 64), missing_face_rate=0.1)


def make_optimizer(model: torch.nn.Module, device: torch.device) -> torch.optim.AdamW:
    """The loops' AdamW (their default betas, epsilon and weight decay) at the demo recipe's learning rate."""
    return build_optimizer(model, OptimizerArguments(), 1e-4, device)


def matmul_rate(hidden: int, intermediate: int, tokens: int, repeats: int = 7) -> tuple[float, float]:
    """Median and best fp32 GFLOP/s of the model's own matmul shapes (QKV/output, FFN in and out)."""
    rates = []
    for m, k, n in ((tokens, hidden, intermediate), (tokens, intermediate, hidden), (tokens, hidden, hidden)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            rates.append(2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates), max(rates)


def forward_flops(config: MEmoBertConfig, row_positions: int, rows: int, masked_tokens: int) -> float:
    """Model FLOPs of one forward over `rows` sequences of `row_positions` computed positions (matmuls only)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = layers * (2 * (4 * h * h + 2 * h * i) + 4 * row_positions * h)  # projections, FFN, attention
    frames = rows * (LIMITS.visual * config.visual_dim + LIMITS.acoustic * config.acoustic_dim) * 2 * h
    return rows * row_positions * per_token + frames + masked_tokens * 2 * (h * h + h * config.vocab_size)


def timed(step: Callable[[], None], steps: int) -> float:
    """Median seconds of `steps` calls after one warm-up call."""
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> Callable[[], None]:
    def step() -> None:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def memobert_config(name: str, **overrides) -> MEmoBertConfig:
    return MEmoBertConfig(**SIZES[name], visual_dim=342, acoustic_dim=768, **overrides)


def memobert_model(name: str, **overrides) -> MEmoBertForPreTraining:
    torch.manual_seed(0)
    return MEmoBertForPreTraining(memobert_config(name, **overrides)).train()


def bert_model(name: str) -> tuple[BertForMaskedLM, torch.optim.Optimizer]:
    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(**SIZES[name], max_position_embeddings=512)).train()
    # transformers' Trainer default: AdamW (fused where torch supports it, as for MEmoBERT).
    return bert, torch.optim.AdamW(bert.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01, fused=True)


def bert_batch(lengths: list[int], seed: int) -> dict:
    """Token sequences of the given lengths padded to the longest, 15 % of real tokens predicted (at least one)."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.randint(2000, 8000, (len(lengths), longest), generator=generator)
    mask = torch.arange(longest)[None] < torch.tensor(lengths)[:, None]
    chosen = (torch.rand(ids.shape, generator=generator) < 0.15) & mask
    chosen[:, 1] = True
    return {"input_ids": ids.masked_fill(~mask, 0), "attention_mask": mask.long(),
            "labels": ids.masked_fill(~chosen, -100)}


def equal_tokens(name: str, batch_size: int, steps: int, collator: PretrainingCollator) -> None:
    model = memobert_model(name)
    config = model.config
    optimizer = make_optimizer(model, torch.device("cpu"))
    rows = random_corpus_rows(batch_size, seed=1, text_pieces=(28, 28), visual_frames=(36, 36),
                              acoustic_frames=(64, 64), missing_face_rate=0.0)
    padded = collator.pad(rows, include=MODALITIES, face_soft_labels=True)
    positions = int(padded.attention_mask.shape[1] + padded.visual_mask.shape[1] + padded.acoustic_mask.shape[1])
    bert, bert_optimizer = bert_model(name)
    bert_time = timed(train_step(bert, bert_optimizer, bert_batch([positions] * batch_size, seed=0)), steps)
    del bert, bert_optimizer
    median_rate, best_rate = matmul_rate(config.hidden_size, config.intermediate_size, batch_size * positions)
    print(f"\n### {name}, equal full-length tokens: batch {batch_size} x {positions} positions")
    print(f"fp32 matmul at the model's shapes: median {median_rate:.0f} GFLOP/s, best {best_rate:.0f}; "
          f"BertForMaskedLM: {bert_time:.2f} s/step = {batch_size / bert_time:.2f} samples/s\n")
    print("| task | s/step | samples/s | tokens/s | MFU (of median matmul) | x BertForMaskedLM |")
    print("|---|---|---|---|---|---|")
    mix_time = 0.0
    for task, weight in MIX.items():
        batch = collator.task(task).build_batch(padded, SPECIAL, masking_generator(0, 0, 0, 0))
        seconds = timed(train_step(model, optimizer, batch), steps)
        masked = int((batch["labels"] != -100).sum()) if "labels" in batch else 0
        mfu = 3 * forward_flops(config, positions, batch_size, masked) / seconds / 1e9 / median_rate
        mix_time += weight * seconds / sum(MIX.values())
        print(f"| {task} | {seconds:.2f} | {batch_size / seconds:.2f} | {batch_size * positions / seconds:.0f} | "
              f"{100 * mfu:.0f} % | {bert_time / seconds:.2f} |")
    print(f"| 2:1:1:1 mix | {mix_time:.2f} | {batch_size / mix_time:.2f} | {batch_size * positions / mix_time:.0f} | "
          f"| {bert_time / mix_time:.2f} |")


def realistic_mix(name: str, batch_size: int, num_batches: int, collator: PretrainingCollator) -> None:
    pool = random_corpus_rows(batch_size * 50, seed=3, **REALISTIC)
    sizes = row_positions(pool)
    schedule = TaskSchedule(MIX, seed=0)
    grouped = length_grouped_batches(sizes, batch_size, seed=0, epoch=0, group_by_length=True)[:num_batches]
    shuffled = length_grouped_batches(sizes, batch_size, seed=0, epoch=0, group_by_length=False)[:num_batches]

    model = memobert_model(name)
    optimizer = make_optimizer(model, torch.device("cpu"))
    ours = []
    for step, rows in enumerate(grouped):
        padded = collator.pad([pool[i] for i in rows], include=MODALITIES, face_soft_labels=True)
        task = collator.task(schedule.task_for_update(step))
        ours.append(task.build_batch(padded, SPECIAL, masking_generator(0, step, 0, 0)))
    ours_time = run_batches(model, optimizer, ours)
    del model, optimizer

    bert, bert_optimizer = bert_model(name)
    theirs = [bert_batch([int(sizes[i].sum()) for i in rows], seed=step) for step, rows in enumerate(shuffled)]
    bert_time = run_batches(bert, bert_optimizer, theirs)
    samples = num_batches * batch_size
    print(f"\n### {name}, realistic length mix: {num_batches} batches of {batch_size} rows "
          f"(text 5-30 tokens, 0 or 10-36 faces, 10-64 acoustic frames)\n")
    print("| system | batching | samples/s | x BertForMaskedLM |")
    print("|---|---|---|---|")
    print(f"| BertForMaskedLM | random, padded to the longest row | {samples / bert_time:.2f} | 1.00 |")
    print(f"| MEmoBERT (2:1:1:1 mix) | length-grouped, padding squeezed | {samples / ours_time:.2f} | "
          f"{bert_time / ours_time:.2f} |")


def run_batches(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[dict]) -> float:
    """Seconds to train on every batch once, after one warm-up step on the first."""
    train_step(model, optimizer, batches[0])()
    start = time.perf_counter()
    for batch in batches:
        train_step(model, optimizer, batch)()
    return time.perf_counter() - start


def timed_pair(before: Callable[[], None], after: Callable[[], None], steps: int) -> tuple[float, float]:
    """Median seconds of `before` and `after`, run alternately (one warm-up each) so that load changes hit both."""
    before(), after()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(steps):
        for step, bucket in ((before, times[0]), (after, times[1])):
            start = time.perf_counter()
            step()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def optimisations(name: str, batch_size: int, steps: int, collator: PretrainingCollator) -> None:
    """Each optimisation switched off alone, on the same batch, in this run (before and after steps alternate)."""
    full = random_corpus_rows(batch_size, seed=1, text_pieces=(28, 28), visual_frames=(36, 36),
                              acoustic_frames=(64, 64), missing_face_rate=0.0)
    batch = collator.task("wwmlm").build_batch(collator.pad(full, include=MODALITIES, face_soft_labels=True),
                                               SPECIAL, masking_generator(0, 0, 0, 0))
    print(f"\n### {name}, each optimisation on and off (WWMLM, batch {batch_size}, full length unless said)\n")
    print("| change | before s/step | after s/step | speed-up |")
    print("|---|---|---|---|")

    plain = memobert_model(name, dropout_implementation="torch")
    model = memobert_model(name, dropout_implementation="auto")
    before, after = timed_pair(train_step(plain, make_optimizer(plain, torch.device("cpu")), batch),
                               train_step(model, make_optimizer(model, torch.device("cpu")), batch), steps)
    del plain
    print(f"| dropout masks: torch `bernoulli_` -> 16-bit keep masks (`cpu_keep_mask`) | {before:.2f} | {after:.2f} | "
          f"{before / after:.2f}x |")

    loop = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False, fused=False)
    fused = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    before, after = timed_pair(train_step(model, loop, batch), train_step(model, fused, batch), steps)
    print(f"| AdamW: per-tensor loop -> fused kernel | {before:.2f} | {after:.2f} | {before / after:.2f}x |")

    pool = random_corpus_rows(batch_size * 50, seed=4, **REALISTIC)
    sizes = row_positions(pool)

    def batches(grouped: bool) -> list[dict]:
        chosen = length_grouped_batches(sizes, batch_size, seed=0, epoch=0, group_by_length=grouped)[:4]
        return [collator.task("wwmlm").build_batch(collator.pad([pool[i] for i in rows], include=MODALITIES,
                                                                face_soft_labels=True),
                                                   SPECIAL, masking_generator(0, step, 0, 0))
                for step, rows in enumerate(chosen)]

    naive, grouped = batches(False), batches(True)
    before, after = timed_pair(lambda: [train_step(_NoSqueeze(model), fused, b)() for b in naive],
                               lambda: [train_step(model, fused, b)() for b in grouped], max(1, steps - 1))
    print(f"| padding: random batches, each segment padded separately -> length-grouped batches, each row's padding "
          f"squeezed out (4 realistic batches; s per 4 steps) | {before:.2f} | {after:.2f} | {before / after:.2f}x |")


class _NoSqueeze(torch.nn.Module):
    """The model with `squeeze_padding` switched off (every segment keeps its padding): the before of that change."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **batch):
        import memobert.modeling_memobert as modeling

        original = modeling.squeeze_padding
        modeling.squeeze_padding = lambda hidden, mask: (hidden, mask, None)
        try:
            return self.model(**batch)
        finally:
            modeling.squeeze_padding = original


def row_positions(rows: list[dict]) -> np.ndarray:
    return LIMITS.positions(
        np.array([len(r["input_ids"]) for r in rows]),
        np.array([len(r["visual_feats"]) for r in rows]),
        np.array([len(r["acoustic_feats"]) for r in rows]),
    )


def padding_report(batch_size: int) -> None:
    """Padding efficiency of realistic length mixes (text 5-30, faces 0/10-36, acoustic 10-64)."""
    rows = random_corpus_rows(4096, seed=2, visual_dim=1, acoustic_dim=1, **REALISTIC)
    sizes = row_positions(rows)
    random_order = [sizes[b] for b in length_grouped_batches(sizes, batch_size, seed=0, epoch=0, group_by_length=False)]
    grouped = [sizes[b] for b in length_grouped_batches(sizes, batch_size, seed=0, epoch=0, group_by_length=True)]
    each_segment = sum(int(b.sum()) for b in random_order) / sum(int(b.max(axis=0).sum()) * len(b) for b in random_order)
    print(f"\n### padding efficiency, batch {batch_size}, 4096 realistic rows (real positions / computed positions)\n")
    print("| batching | efficiency |")
    print("|---|---|")
    print(f"| random order, each segment padded separately (the naive layout) | {100 * each_segment:.1f} % |")
    print(f"| random order, each row's padding squeezed out | {100 * padding_efficiency(random_order):.1f} % |")
    print(f"| length-grouped, padding squeezed out (the pretraining loop) | {100 * padding_efficiency(grouped):.1f} % |")


def main() -> None:
    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["demo", "base"], choices=sorted(SIZES), help="model sizes")
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per step (16)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement, after one warm-up (3)")
    parser.add_argument("--mix-batches", type=int, default=8, help="batches timed in the realistic-mix table (8)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--skip", nargs="*", default=[], choices=["equal", "mix", "optimisations", "padding"],
                        help="tables to leave out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, CPU")
    if "padding" not in args.skip:
        padding_report(args.batch_size)
    for name in args.configs:
        collator = PretrainingCollator(SPECIAL, memobert_config(name), seed=0)
        if "equal" not in args.skip:
            equal_tokens(name, args.batch_size, args.steps, collator)
        if "mix" not in args.skip:
            realistic_mix(name, args.batch_size, args.mix_batches, collator)
        if "optimisations" not in args.skip:
            optimisations(name, args.batch_size, args.steps, collator)


if __name__ == "__main__":
    main()
