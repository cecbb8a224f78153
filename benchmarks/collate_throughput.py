"""
Is data loading fast enough for pretraining? Measures, in one run, the rows/s the pretraining loop's own data path
produces and the rows/s a training step consumes, and prints their ratios (the claim: loading >= 5x consumption).

The data path is the real one: a corpus of random rows with realistic lengths (text 5-30 tokens, 0 or 10-36 faces,
10-64 acoustic frames; 342-d faces, 768-d speech) is written as Parquet shards with the library's writer
(`memobert.data.corpus.write_shard`), loaded with `load_pretrain_corpus`, and iterated with `MapStyleBatches` for 0
and N DataLoader workers (`--dataloader_num_workers`) and with `StreamingBatches`. The loop's own path is the
"padded and masked in the loader" line: `memobert.training.pretrain.MicroBatchBuilder` pads and masks each batch inside
the loader (in the workers when there are any). The other lines pad in the loader and mask in the main process with
`collator.task(...).build_batch(..., masking_generator(...))`, as the loop did before. Collating rows already held in
memory is one more line of the table.

Before/after lines of the loader optimisations come from the same run: `arrow_rows=False` reads rows through
`datasets`' numpy formatting (the previous path), and the "Arrow rows, numpy cast" line pads with the previous
per-row float16 -> float32 numpy cast (a copy of the old `_pad_frames`, kept here for the comparison).

Consumption: one full training step (forward, backward, clipping, fused AdamW; fp32) of the demo size (hidden 384,
6 layers, 12 heads, FFN 1536) and the base size (BERT-base) on this machine, on batches from the same corpus. For a GPU
the script prints an ESTIMATE (not a measurement): rows/s a base step would consume at a given share of the card's
bf16 peak (default 40 % of an H100's 989 TFLOP/s, counting 6 x parameters x positions FLOPs per row), and how many
loader workers the measured per-worker rate needs to stay 5x ahead of it.

    .venv/bin/python benchmarks/collate_throughput.py                       # ~3 min on 2 shared cores
    .venv/bin/python benchmarks/collate_throughput.py --sizes demo --batches 40 # quick look (~1 min)
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from pretrain_throughput import SIZES, make_optimizer  # the benchmarks' one table of model sizes and optimizer
from memobert.command_line import CommandLineParser


def parse_args() -> argparse.Namespace:
    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4096, help="corpus rows written to the temporary corpus (4096)")
    parser.add_argument("--rows-per-shard", type=int, default=512, help="rows per Parquet shard (512)")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per micro-batch, loading and training (32)")
    parser.add_argument("--batches", type=int, default=80,
                        help="timed batches per loader line, after warm-up batches that start the workers (80)")
    parser.add_argument("--workers", type=int, default=2,
                        help="N, the DataLoader worker processes of the multi-worker lines (2; 0 skips them)")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["demo", "base"],
                        help="model sizes whose training step is timed (demo base)")
    parser.add_argument("--train-steps", type=int, default=2,
                        help="timed training steps per size, after one warm-up (2)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the training steps (0: torch's default)")
    parser.add_argument("--loader-threads", type=int, default=1,
                        help="torch threads of the main process while the loader lines run (1: its small tensor ops "
                             "only lose to thread wake-ups, and on a busy machine to oversubscription)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds of every loader line; the best round is reported (3)")
    parser.add_argument("--device", default=None, help="training device (default: cuda if available, else cpu)")
    parser.add_argument("--no-streaming", action="store_true", help="skip the StreamingBatches line")
    parser.add_argument("--gpu-tflops", type=float, default=989.0,
                        help="peak bf16 dense TFLOP/s of the GPU of the estimate (989: H100 SXM)")
    parser.add_argument("--gpu-mfu", type=float, default=0.40,
                        help="model FLOPs utilisation assumed for the GPU estimate (0.40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus, batch order and masks (0)")
    return parser.parse_args()


def legacy_pad_frames(frames, max_length, dim, keep_float16=False):
    """The collator's `_pad_frames` before this benchmark's optimisation: float16 -> float32 cast by numpy per row."""
    import torch

    lengths = [min(len(f), max_length) for f in frames]
    length = max(1, max(lengths))
    feats = np.zeros((len(frames), length, dim), dtype=np.float32)
    for row, (array, n) in enumerate(zip(frames, lengths)):
        if n:
            feats[row, :n] = array[:n]
    mask = torch.arange(length) < torch.tensor(lengths)[:, None]
    return torch.from_numpy(feats), mask.long()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="memobert-loading-") as tmp:
        # The Arrow cache `load_dataset` writes stays in the temporary folder, not in the user's datasets cache.
        os.environ["HF_DATASETS_CACHE"] = str(Path(tmp) / "hf-cache")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    import datasets
    import torch

    from memobert import MEmoBertConfig, MEmoBertForPreTraining
    from memobert.data import schema
    from memobert.data.synthetic import random_corpus_rows, write_random_corpus
    from memobert.objectives import MODALITIES, PretrainingCollator, SpecialTokenIds, TaskSchedule
    from memobert.objectives import collator as collator_module
    from memobert.training.corpus import (
        ArrowRows,
        LengthLimits,
        MapStyleBatches,
        StreamingBatches,
        StreamPosition,
        load_pretrain_corpus,
    )
    from memobert.training.device import to_device
    from memobert.training.pretrain import MicroBatchBuilder, masking_generator

    datasets.disable_progress_bars()
    training_threads = torch.get_num_threads()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    special = SpecialTokenIds(pad_token_id=0, cls_token_id=101, sep_token_id=102, mask_token_id=103,
                              never_mask_ids=(100,), vocab_size=30522)
    limits = LengthLimits(30, 36, 64)

    start = time.perf_counter()
    write_random_corpus(tmp / "corpus", args.rows, rows_per_shard=args.rows_per_shard, seed=args.seed)
    corpus = load_pretrain_corpus(tmp / "corpus", limits, eval_fraction=0.01, max_eval_samples=64)
    streamed = None if args.no_streaming else load_pretrain_corpus(tmp / "corpus", limits, 0.01, 64, streaming=True)
    print(f"corpus: {args.rows} rows in {math.ceil(args.rows / args.rows_per_shard)} Parquet shards, "
          f"{len(corpus.train)} training rows (written and loaded in {time.perf_counter() - start:.0f} s); "
          f"batch {args.batch_size}; torch threads: {args.loader_threads} loading, {args.threads or training_threads} "
          f"training; {os.cpu_count()} CPUs visible; best of {args.repeats} interleaved rounds per loader line")

    config = MEmoBertConfig(**SIZES["demo"], visual_dim=342, acoustic_dim=768)
    collator = PretrainingCollator(special, config, seed=args.seed)
    schedule = TaskSchedule(seed=args.seed)

    def pad_rows(rows):  # the loop's collate function before masking moved into the loader (pad only)
        ids = [str(row[schema.UTTERANCE_ID]) for row in rows]
        return ids, collator.pad(rows, include=MODALITIES, face_soft_labels=True)

    make_batch = MicroBatchBuilder(collator, schedule, args.seed, accumulation=1, rank=0)  # the loop's, as it is

    def consume(batches, warmup: int, num_batches: int, in_loader: bool = False) -> tuple[float, float, list]:
        """rows/s of a data path over `num_batches` batches, main-process masking rows/s (nan when the loader masks
        itself: `in_loader`, the loop's `MicroBatchBuilder`), and the batches."""
        stream = batches.iterate(StreamPosition(), first_batch_number=0 if in_loader else None)
        for _ in range(warmup):  # starts the workers, fills their prefetch queues
            next(stream)
        rows, masking, kept = 0, 0.0, []
        start = time.perf_counter()
        for step in range(warmup, warmup + num_batches):
            if in_loader:
                item = next(stream)
                ids, batch = item["ids"], item["batch"]
            else:
                ids, padded = next(stream)
                masking -= time.perf_counter()
                task = collator.task(schedule.task_for_update(step))
                batch = task.build_batch(padded, special, masking_generator(args.seed, step, 0, 0))
                masking += time.perf_counter()
            rows += len(ids)
            if len(kept) < args.train_steps + 1:
                kept.append((len(ids), batch))
        return rows / (time.perf_counter() - start), (rows / masking if masking else math.nan), kept

    def map_style(workers: int, arrow_rows: bool, collate=pad_rows):
        return MapStyleBatches(corpus.train, corpus.train_lengths, collate, args.batch_size, args.seed,
                               num_workers=workers, arrow_rows=arrow_rows)

    # Read every row once, so that no line pays the first reads of the memory-mapped corpus for the others.
    every_row = ArrowRows(corpus.train)
    for first in range(0, len(every_row), 256):
        collator.pad(every_row.__getitems__(range(first, min(first + 256, len(every_row)))), face_soft_labels=True)

    memory_rows = random_corpus_rows(args.batch_size * 20, seed=args.seed + 1)

    def in_memory() -> tuple[float, float, list]:
        """Rows already in memory (float16 frames, as stored), collated and masked in one call."""
        start, count = time.perf_counter(), 0
        for step in range(args.batches):
            first = (step * args.batch_size) % len(memory_rows)
            chunk = memory_rows[first : first + args.batch_size]
            collator(chunk, schedule.task_for_update(step), masking_generator(args.seed, step, 0, 0))
            count += len(chunk)
        return count / (time.perf_counter() - start), math.nan, []

    def legacy(measure):
        """`measure` with the collator's previous padding (numpy float16 -> float32 cast per row)."""
        def run():
            original, collator_module._pad_frames = collator_module._pad_frames, legacy_pad_frames
            try:
                return measure()
            finally:
                collator_module._pad_frames = original
        return run

    BEFORE, AFTER = "map-style, datasets numpy formatting (before)", "map-style, Arrow rows, torch widening (after)"
    IN_LOADER = "map-style, Arrow rows, padded and masked in the loader (the loop now)"
    lines: list[tuple[str, int, object]] = [("rows in memory, collator(rows, task)", 0, in_memory)]
    worker_counts = [0] + ([args.workers] if args.workers else [])
    for workers in worker_counts:
        warmup = 2 + 2 * workers
        lines.append((BEFORE, workers, lambda w=workers, u=warmup: consume(map_style(w, False), u, args.batches)))
        if workers == 0:  # the intermediate step, once, in the main process
            lines.append(("map-style, Arrow rows, numpy float16 cast", 0,
                          legacy(lambda: consume(map_style(0, True), 2, args.batches))))
        lines.append((AFTER, workers, lambda w=workers, u=warmup: consume(map_style(w, True), u, args.batches)))
        lines.append((IN_LOADER, workers, lambda w=workers, u=warmup: consume(
            map_style(w, True, make_batch), u, args.batches, in_loader=True)))
    if streamed is not None:
        # One whole epoch from the start: the stream reads and groups `group_size` batches before its first one.
        epoch = math.ceil(len(corpus.train) / args.batch_size)
        lines.append(("streaming (StreamingBatches, in process), one epoch", 0, lambda: consume(
            StreamingBatches(streamed.train, pad_rows, args.batch_size, args.seed, limits), 0, epoch)))

    # Interleaved rounds, best round per line: other jobs on a shared machine slow some rounds down, never speed up.
    torch.set_num_threads(args.loader_threads)
    best: dict[tuple[str, int], tuple[float, float, list]] = {}
    for _ in range(args.repeats):
        for label, workers, measure in lines:
            result = measure()
            if (label, workers) not in best or result[0] > best[(label, workers)][0]:
                best[(label, workers)] = result
    torch.set_num_threads(args.threads or training_threads)
    results = {key: value[0] for key, value in best.items()}
    _, masking_rate, kept_batches = best[(AFTER, 0)]

    # 3. Consumption: training steps of each size on batches of the same corpus.
    consumption: dict[str, float] = {}
    param_counts: dict[str, tuple[int, int]] = {}
    for size in args.sizes:
        model_config = MEmoBertConfig(**SIZES[size], visual_dim=342, acoustic_dim=768)
        torch.manual_seed(args.seed)
        model = MEmoBertForPreTraining(model_config).to(device).train()
        optimizer = make_optimizer(model, device)
        embeddings = model_config.vocab_size * model_config.hidden_size
        param_counts[size] = (sum(p.numel() for p in model.parameters()), embeddings)

        def step(batch):
            loss = model(**to_device(batch, device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step(kept_batches[0][1])  # warm-up: allocator, kernels, AdamW state
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, rows = time.perf_counter(), 0
        for count, batch in kept_batches[1 : args.train_steps + 1]:
            step(batch)
            rows += count
        if device.type == "cuda":
            torch.cuda.synchronize()
        consumption[size] = rows / (time.perf_counter() - start)

    # -- report ---------------------------------------------------------------------------------------------------
    before0 = results[(BEFORE, 0)]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\nConsumption: a training step (forward, backward, clip, fused AdamW, fp32) on {device_name}: " +
          ", ".join(f"{s} {r:,.1f} rows/s" for s, r in consumption.items()))
    print("\n| data path | workers | rows/s | ms per batch | x before (0 workers) | " +
          " | ".join(f"x {s} step" for s in consumption) + " |")
    print("|---|---|---|---|---|" + "---|" * len(consumption))
    for (label, workers), rate in results.items():
        ratios = " | ".join(f"{rate / r:,.0f}" for r in consumption.values())
        print(f"| {label} | {workers} | {rate:,.0f} | {1000 * args.batch_size / rate:.2f} | {rate / before0:.2f} | "
              f"{ratios} |")
    print(f"\nMasking alone (build_batch): {masking_rate:,.0f} rows/s. The loop runs it inside the loader now "
          f"(`MicroBatchBuilder`, the 'padded and masked in the loader' lines), so DataLoader workers share it.")

    # -- GPU estimate -----------------------------------------------------------------------------------------------
    computed = []  # positions the model computes per row: each row's padding is squeezed out, so batch x longest row
    for _, batch in kept_batches:
        totals = sum(batch[k].sum(1) for k in ("attention_mask", "visual_mask", "acoustic_mask") if k in batch)
        computed.append(float(totals.max()))
    positions = float(np.mean(computed))
    total_params, embeddings = param_counts.get("base") or (
        sum(p.numel() for p in MEmoBertForPreTraining(MEmoBertConfig(**SIZES["base"], visual_dim=342,
                                                                     acoustic_dim=768)).parameters()),
        30522 * 768,
    )
    # Per loader process: fetch, pad and mask in one process (0 workers), and as measured through N DataLoader
    # workers, which adds the shared-memory transfer of every float32 batch to the main process.
    per_worker = {"in one process": results[(IN_LOADER, 0)]}
    if args.workers:
        per_worker[f"through {args.workers} workers, / {args.workers}"] = results[(IN_LOADER, args.workers)] / args.workers
    print(f"\nESTIMATE, not a measurement: a base step on a GPU at {100 * args.gpu_mfu:.0f} % of "
          f"{args.gpu_tflops:.0f} TFLOP/s bf16 (H100 SXM dense peak by default), counting 6 x parameters x "
          f"{positions:.0f} computed positions per row (this corpus' mean) FLOPs per row:")
    for label, params in (("all parameters", total_params), ("without the word embeddings", total_params - embeddings)):
        gpu_rows = args.gpu_mfu * args.gpu_tflops * 1e12 / (6 * params * positions)
        needed = ", ".join(f"{math.ceil(5 * gpu_rows / rate)} at {rate:,.0f} rows/s per worker ({how})"
                           for how, rate in per_worker.items())
        print(f"  {label} ({params / 1e6:.0f}M): ~{gpu_rows:,.0f} rows/s consumed; 5x = {5 * gpu_rows:,.0f} rows/s "
              f"needs loader workers: {needed}")
    print("\nTimings from one run; on a shared machine compare the ratios, not the absolute rows/s.")


if __name__ == "__main__":
    main()
