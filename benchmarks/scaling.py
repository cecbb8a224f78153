"""How a pretraining step's time and memory grow with sequence length and batch size.

For a grid of batch sizes and row lengths (full rows of text + faces + acoustic frames, scaled together), it runs full
training steps (forward, backward, clipping, AdamW; WWMLM) and prints per cell: seconds per step, time per position
relative to the smallest cell (1.00 = linear growth; above 1 is the quadratic attention term and cache effects), and the
activation memory: the bytes of every tensor autograd saves for the backward (counted once per storage), which is what
grows with batch x length (parameters, gradients and AdamW state are constant: printed once).

    .venv/bin/python benchmarks/scaling.py                    # demo size, batch 4-32 x 33-130 positions (~3 min)
    .venv/bin/python benchmarks/scaling.py --config base --batch-sizes 8 16 --steps 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pretrain_throughput import SIZES, SPECIAL, make_optimizer, memobert_config

from memobert import MEmoBertForPreTraining
from memobert.data.synthetic import random_corpus_rows
from memobert.objectives import MODALITIES, PretrainingCollator
from memobert.training.pretrain import masking_generator
from memobert.command_line import CommandLineParser

# (text word pieces, faces, acoustic frames): 1/4, 1/2 and all of the maximum lengths (30 + 36 + 64 positions).
LENGTHS = {"quarter": (6, 9, 16), "half": (13, 18, 32), "full": (28, 36, 64)}


def saved_activation_bytes(model: torch.nn.Module, batch: dict) -> int:
    """Bytes autograd keeps for the backward of one forward (each storage once), then runs that backward."""
    storages: dict[int, int] = {}
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}  # weights (or views of them) are state

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


def main() -> None:
    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="demo", choices=sorted(SIZES), help="model size (demo)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[4, 8, 16, 32], help="batch sizes (4 8 16 32)")
    parser.add_argument("--lengths", nargs="+", default=list(LENGTHS), choices=list(LENGTHS),
                        help="row lengths: quarter, half, full (of 30 text + 36 face + 64 acoustic positions)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per cell, after one warm-up (2)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = memobert_config(args.config)
    model = MEmoBertForPreTraining(config).train()
    optimizer = make_optimizer(model, torch.device("cpu"))
    collator = PretrainingCollator(SPECIAL, config, seed=0)
    state_bytes = sum(p.numel() * p.element_size() for p in model.parameters()) * 4  # weights, grads, 2 AdamW moments
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, CPU; {args.config}: "
          f"parameters + gradients + AdamW state = {state_bytes / 2**20:.0f} MiB at every size\n")
    print("| batch | positions per row | s/step | time per position (x smallest) | activation memory | "
          "memory per position (x smallest) |")
    print("|---|---|---|---|---|---|")
    reference = None
    for batch_size in sorted(args.batch_sizes):
        for name in args.lengths:
            text, faces, frames = LENGTHS[name]
            rows = random_corpus_rows(batch_size, seed=1, text_pieces=(text, text), visual_frames=(faces, faces),
                                      acoustic_frames=(frames, frames), missing_face_rate=0.0)
            padded = collator.pad(rows, include=MODALITIES, face_soft_labels=True)
            batch = collator.task("wwmlm").build_batch(padded, SPECIAL, masking_generator(0, 0, 0, 0))
            positions = text + 2 + faces + frames
            memory = saved_activation_bytes(model, batch)

            def step() -> None:
                model(**batch).loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            step()
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            per_position = (seconds / (batch_size * positions), memory / (batch_size * positions))
            reference = reference or per_position
            print(f"| {batch_size} | {positions} | {seconds:.3f} | {per_position[0] / reference[0]:.2f} | "
                  f"{memory / 2**20:.0f} MiB | {per_position[1] / reference[1]:.2f} |")


if __name__ == "__main__":
    main()
