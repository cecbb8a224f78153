"""Pretraining step throughput, measured side by side in one run (ratios, not bare times, are the claim).

For the demo and base model sizes it prints: samples/s and tokens/s of a full training step (forward, backward,
clipping, AdamW) for each pretraining task and for the 2:1:1:1 mix; the model FLOPs utilisation against this
machine's measured fp32 matmul rate; the ratio against `transformers.BertForMaskedLM` on the same number of tokens;
and the padding efficiency of realistic batches with and without length grouping.

    .venv/bin/python benchmarks/pretrain_throughput.py                 # demo and base, batch 16
    .venv/bin/python benchmarks/pretrain_throughput.py --configs base --batch-size 16 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM

from memobert import MEmoBertConfig, MEmoBertForPreTraining
from memobert.data.synthetic import random_corpus_rows
from memobert.objectives import PretrainingCollator, SpecialTokenIds
from memobert.training.corpus import LengthLimits, length_grouped_batches, padding_efficiency
from memobert.training.pretrain import MODALITIES, adamw, masking_generator

SIZES = {
    "demo": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
MIX = {"wwmlm": 2, "span_mvfr": 1, "span_mvfc_kl": 1, "span_mafr": 1}
SPECIAL = SpecialTokenIds(pad_token_id=0, cls_token_id=101, sep_token_id=102, mask_token_id=103, never_mask_ids=(100,),
                          vocab_size=30522)


def matmul_rate(hidden: int, tokens: int, repeats: int = 7) -> tuple[float, float]:
    """Median and best fp32 GFLOP/s of the model's own matmul shapes."""
    rates = []
    for m, k, n in ((tokens, hidden, 4 * hidden), (tokens, 4 * hidden, hidden), (tokens, hidden, hidden)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            rates.append(2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates), max(rates)


def step_flops(config: MEmoBertConfig, positions: int, batch: int, masked_tokens: int, frame_dims: int) -> float:
    """Model FLOPs of one training step (forward + backward = 3x forward) for the positions actually computed."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = layers * (2 * (4 * h * h + 2 * h * i) + 4 * positions * h)  # projections, FFN, attention scores
    forward = batch * positions * per_token + batch * frame_dims * 2 * h + masked_tokens * 2 * (h * h + h * config.vocab_size)
    return 3 * forward


def timed_steps(step, steps: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark(name: str, batch_size: int, steps: int, threads: int) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    config = MEmoBertConfig(**SIZES[name], visual_dim=342, acoustic_dim=768, hidden_dropout_prob=0.1)
    model = MEmoBertForPreTraining(config).train()
    optimizer = adamw(model, _Args(), torch.device("cpu"))
    collator = PretrainingCollator(SPECIAL, config, seed=0)

    # Full-length rows: 30 text tokens, 36 faces, 64 acoustic frames = 130 positions (equal tokens for BERT).
    full_rows = random_corpus_rows(batch_size, seed=1, text_pieces=(28, 28), visual_frames=(36, 36),
                                   acoustic_frames=(64, 64), missing_face_rate=0.0)
    padded = collator.pad(full_rows, include=MODALITIES, face_soft_labels=True)
    positions = int(padded.attention_mask.shape[1] + padded.visual_mask.shape[1] + padded.acoustic_mask.shape[1])

    def ours(task: str):
        batch = collator.task(task).build_batch(padded, SPECIAL, masking_generator(0, 0, 0, 0))

        def step():
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step, batch

    bert = BertForMaskedLM(BertConfig(**SIZES[name], max_position_embeddings=512)).train()
    bert_optimizer = torch.optim.AdamW(bert.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01)
    bert_ids = torch.randint(2000, 8000, (batch_size, positions))
    bert_labels = torch.full_like(bert_ids, -100)
    bert_labels[:, 1:5] = bert_ids[:, 1:5]

    def bert_step():
        loss = bert(input_ids=bert_ids, labels=bert_labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bert.parameters(), 5.0)
        bert_optimizer.step()
        bert_optimizer.zero_grad(set_to_none=True)

    median_rate, best_rate = matmul_rate(config.hidden_size, batch_size * positions)
    bert_time = timed_steps(bert_step, steps)
    print(f"\n## {name}: hidden {config.hidden_size}, {config.num_hidden_layers} layers, batch {batch_size}, "
          f"{positions} positions, {threads} threads")
    print(f"fp32 matmul at the model's shapes: median {median_rate:.0f} GFLOP/s, best {best_rate:.0f}")
    print(f"BertForMaskedLM (equal tokens): {bert_time:.2f} s/step, {batch_size / bert_time:.2f} samples/s")
    print("| task | s/step | samples/s | tokens/s | MFU vs median matmul | x BertForMaskedLM |")
    print("|---|---|---|---|---|---|")
    mix_time = 0.0
    for task, weight in MIX.items():
        step, batch = ours(task)
        seconds = timed_steps(step, steps)
        masked = int((batch["labels"] != -100).sum()) if "labels" in batch else 0
        frames = batch_size * (36 * 342 + 64 * 768) // 1000  # projections are cheap; counted roughly
        flops = step_flops(config, positions, batch_size, masked, frames)
        mfu = flops / seconds / 1e9 / median_rate
        mix_time += weight * seconds / sum(MIX.values())
        print(f"| {task} | {seconds:.2f} | {batch_size / seconds:.2f} | {batch_size * positions / seconds:.0f} | "
              f"{100 * mfu:.0f} % | {bert_time / seconds:.2f} |")
    print(f"| 2:1:1:1 mix | {mix_time:.2f} | {batch_size / mix_time:.2f} | {batch_size * positions / mix_time:.0f} | "
          f"| {bert_time / mix_time:.2f} |")


def padding_report(batch_size: int) -> None:
    """Padding efficiency of realistic length mixes (text 5-30, faces 0/10-36, acoustic 10-64)."""
    rows = random_corpus_rows(4096, seed=2, visual_dim=1, acoustic_dim=1, text_pieces=(3, 28))
    limits = LengthLimits(30, 36, 64)
    sizes = limits.positions(
        np.array([len(r["input_ids"]) for r in rows]),
        np.array([len(r["visual_feats"]) for r in rows]),
        np.array([len(r["acoustic_feats"]) for r in rows]),
    )
    print(f"\n## padding efficiency, batch {batch_size}, 4096 realistic rows (real positions / computed positions)")
    print("| batching | efficiency | waste |")
    print("|---|---|---|")
    for label, grouped in (("random order", False), ("length-grouped", True)):
        batches = length_grouped_batches(sizes, batch_size, seed=0, epoch=0, group_by_length=grouped)
        efficiency = padding_efficiency([sizes[b] for b in batches])
        print(f"| {label} | {100 * efficiency:.1f} % | {100 * (1 - efficiency):.1f} % |")
    separate = [sizes[b] for b in length_grouped_batches(sizes, batch_size, seed=0, epoch=0, group_by_length=False)]
    each_segment = sum(int(b.sum()) for b in separate) / sum(int(b.max(axis=0).sum()) * len(b) for b in separate)
    print(f"| random order, segments padded separately (no squeezing) | {100 * each_segment:.1f} % | "
          f"{100 * (1 - each_segment):.1f} % |")


class _Args:
    learning_rate, adam_beta1, adam_beta2, adam_epsilon, weight_decay = 1e-4, 0.9, 0.98, 1e-6, 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["demo", "base"], choices=sorted(SIZES), help="model sizes")
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (after one warm-up)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args()
    padding_report(args.batch_size)
    for name in args.configs:
        benchmark(name, args.batch_size, args.steps, args.threads)


if __name__ == "__main__":
    main()
