"""
Is the pretraining collator fast enough? Collates synthetic corpus rows (realistic lengths) into task batches and
times one training step (forward + backward + AdamW step) of the demo-size model, then prints both throughputs and
their ratio: rows/s the collator produces over rows/s the training consumes. A ratio well above 1 means collation,
even in the main process, does not hold training up.

    .venv/bin/python benchmarks/collate_throughput.py [--rows 10000] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from memobert import MEmoBertConfig, MEmoBertForPreTraining
from memobert.objectives import PretrainingCollator, SpecialTokenIds, TaskSchedule


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="corpus rows to collate (default 10000)")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per batch, collation and training (32)")
    parser.add_argument(
        "--pool", type=int, default=1000, help="distinct synthetic rows, reused in turn to make --rows (1000)"
    )
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps after 2 warm-up steps (5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="training device")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--frame-dtype",
        default="float32",
        choices=["float32", "float16"],
        help="dtype of the rows' frames: float32 as `dataset.with_format('numpy')` returns them, float16 as stored",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def demo_config() -> MEmoBertConfig:
    """The demo-size model: BERT-mini-like backbone with the paper's feature sizes and lengths."""
    return MEmoBertConfig(
        vocab_size=30522,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        visual_dim=342,
        acoustic_dim=768,
    )


def synthetic_rows(count: int, config: MEmoBertConfig, dtype: str, seed: int) -> list[dict]:
    """Rows with text 5-30 pieces (1-3 per word), 10-36 faces and 10-64 acoustic frames."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        n_text, n_faces, n_acoustic = int(rng.integers(5, 31)), int(rng.integers(10, 37)), int(rng.integers(10, 65))
        word_ids = np.repeat(np.arange(n_text), rng.integers(1, 4, size=n_text))[:n_text]
        soft = rng.random((n_faces, config.num_face_classes))
        rows.append(
            {
                "utterance_id": f"synthetic-{i}",
                "input_ids": rng.integers(1000, 30000, size=n_text),
                "word_ids": word_ids,
                "visual_feats": rng.standard_normal((n_faces, config.visual_dim)).astype(dtype),
                "face_soft_labels": (soft / soft.sum(axis=1, keepdims=True)).astype(dtype),
                "acoustic_feats": rng.standard_normal((n_acoustic, config.acoustic_dim)).astype(dtype),
            }
        )
    return rows


def time_collation(collator: PretrainingCollator, rows: list[dict], args, schedule: TaskSchedule) -> float:
    pool = len(rows)
    start = time.perf_counter()
    for step, first in enumerate(range(0, args.rows, args.batch_size)):
        batch_rows = [rows[(first + k) % pool] for k in range(min(args.batch_size, args.rows - first))]
        collator(batch_rows, schedule.task_for_update(step))
    return time.perf_counter() - start


def time_training_step(collator: PretrainingCollator, rows: list[dict], args, schedule: TaskSchedule) -> float:
    """Seconds per update (forward + backward + AdamW step), tasks drawn by the schedule."""
    device = torch.device(args.device)
    model = MEmoBertForPreTraining(collator.config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, betas=(0.9, 0.98), weight_decay=0.01)
    batches = [
        {k: v.to(device) for k, v in collator(rows[: args.batch_size], schedule.task_for_update(s)).items()}
        for s in range(args.train_steps + 2)
    ]

    def step(batch):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for batch in batches[:2]:  # warm-up: allocator, kernels, AdamW state
        step(batch)
    sync()
    start = time.perf_counter()
    for batch in batches[2:]:
        step(batch)
    sync()
    return (time.perf_counter() - start) / args.train_steps


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = demo_config()
    special_ids = SpecialTokenIds(cls_token_id=101, sep_token_id=102, pad_token_id=0, mask_token_id=103, vocab_size=30522)
    collator = PretrainingCollator(special_ids, config, seed=args.seed)
    schedule = TaskSchedule(seed=args.seed)
    rows = synthetic_rows(min(args.pool, args.rows), config, args.frame_dtype, args.seed)

    collate_seconds = time_collation(collator, rows, args, schedule)
    step_seconds = time_training_step(collator, rows, args, schedule)
    collate_rate = args.rows / collate_seconds
    train_rate = args.batch_size / step_seconds
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"torch threads: {torch.get_num_threads()}, training device: {args.device} ({device_name})")
    print(
        f"collation : {args.rows} rows in {collate_seconds:.3f} s -> {collate_rate:,.0f} rows/s "
        f"({1000 * collate_seconds / args.rows * args.batch_size:.2f} ms per batch of {args.batch_size})"
    )
    print(
        f"training  : {1000 * step_seconds:.1f} ms per step of {args.batch_size} rows -> {train_rate:,.0f} rows/s "
        "(demo model: hidden 256, 4 layers, 4 heads, FFN 1024, vocab 30522; forward+backward+AdamW)"
    )
    print(f"ratio     : collation produces {collate_rate / train_rate:.1f}x the rows training consumes")
    print(f"            collating {args.rows} rows takes the time of {collate_seconds / step_seconds:.1f} training steps")


if __name__ == "__main__":
    main()
