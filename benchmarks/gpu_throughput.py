"""Base-config pretraining throughput and MFU on a GPU: bf16 autocast + SDPA, measured side by side in one run.

Prints, for full-length rows (130 positions) at the given batch sizes: samples/s and tokens/s of a full training step
(forward, backward, clipping, fused AdamW) for WWMLM and the 2:1:1:1 mix; model FLOPs utilisation against the card's
dense bf16 peak (from its name; `--peak-tflops` overrides) and against the bf16 matmul rate measured at the model's
shapes in this run; and `BertForMaskedLM` at equal tokens under the same settings. With `--compile`, the same with
`torch.compile` as well. Target from issue 8: MFU >= 40 % of peak on an H100.

    python benchmarks/gpu_throughput.py                       # cuda, bf16, batch 32 64 128
    python benchmarks/gpu_throughput.py --compile --batch-sizes 64 128 --output gpu_throughput.md
    python benchmarks/gpu_throughput.py --device cpu --dtype fp32 --batch-sizes 2 --steps 1   # smoke test, no GPU

The header names the SDPA kernels that accept the model's attention call (bf16, the additive key-padding bias, dropout
0.1 in training): torch runs the first of them (flash attention takes no bias, so on CUDA it is the memory-efficient
or the cuDNN kernel).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch

from pretrain_throughput import (
    MIX,
    SPECIAL,
    bert_batch,
    bert_model,
    forward_flops,
    make_optimizer,
    memobert_config,
    train_step,
)

from memobert import MEmoBertForPreTraining
from memobert.data.synthetic import random_corpus_rows
from memobert.objectives import MODALITIES, PretrainingCollator
from memobert.training.pretrain import masking_generator
from memobert.command_line import CommandLineParser

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                    "H100": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.0}


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, steps: int, device: torch.device) -> float:
    for _ in range(2):  # warm-up (and compilation)
        step()
    synchronize(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sdpa_kernels(config, batch: int, positions: int, dtype: torch.dtype, device: torch.device) -> list[str]:
    """The SDPA backends that run the model's training-time attention call (additive bias, dropout), in torch's
    order of preference: the first is the one used."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads, size = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    q, k, v = (torch.randn(batch, heads, positions, size, device=device, dtype=dtype) for _ in range(3))
    bias = torch.zeros(batch, 1, 1, positions, device=device, dtype=dtype)
    bias[:, :, :, -3:] = torch.finfo(dtype).min
    usable = []
    for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                    SDPBackend.MATH):
        try:
            with sdpa_kernel([backend]), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch explains each refusal as a warning too
                torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                                                 dropout_p=config.attention_probs_dropout_prob)
        except RuntimeError:
            continue
        usable.append(backend.name.lower())
    return usable


def matmul_tflops(hidden: int, intermediate: int, tokens: int, dtype: torch.dtype, device: torch.device) -> float:
    """Median TFLOP/s of the model's FFN and projection matmuls at this dtype."""
    rates = []
    for m, k, n in ((tokens, hidden, intermediate), (tokens, intermediate, hidden), (tokens, hidden, hidden)):
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        synchronize(device)
        for _ in range(10):
            start = time.perf_counter()
            a @ b
            synchronize(device)
            rates.append(2 * m * k * n / (time.perf_counter() - start) / 1e12)
    return statistics.median(rates)


def main() -> None:
    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test)")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="autocast dtype (bf16)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64, 128], help="batch sizes (32 64 128)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement, after 2 warm-up (10)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile(dynamic=True)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (default: by name)")
    parser.add_argument("--output", default=None, help="also write the report (Markdown) to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; pass --device cpu for a smoke test")
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype != torch.float32 else nullcontext
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = args.peak_tflops or peak_tflops(device)
    config = memobert_config("base")
    collator = PretrainingCollator(SPECIAL, config, seed=0)
    kernels = sdpa_kernels(config, 2, 130, dtype, device)
    emit(f"{name}; torch {torch.__version__}; {args.dtype} autocast; base config; peak {peak or '?'} TFLOP/s; "
         f"SDPA kernels usable: {', '.join(kernels)} (runs {kernels[0] if kernels else '?'})\n")
    emit("| model | batch | s/step | samples/s | tokens/s | TFLOP/s | MFU of peak | of measured matmul | "
         "x BertForMaskedLM |")
    emit("|---|---|---|---|---|---|---|---|---|")
    for batch_size in args.batch_sizes:
        rows = random_corpus_rows(batch_size, seed=1, text_pieces=(28, 28), visual_frames=(36, 36),
                                  acoustic_frames=(64, 64), missing_face_rate=0.0)
        padded = collator.pad(rows, include=MODALITIES, face_soft_labels=True)
        positions = int(padded.attention_mask.shape[1] + padded.visual_mask.shape[1] + padded.acoustic_mask.shape[1])
        matmul = matmul_tflops(config.hidden_size, config.intermediate_size, batch_size * positions, dtype, device)

        bert, bert_optimizer = bert_model("base")
        bert = bert.to(device)  # in place: the optimizer keeps the same parameters
        bert_inputs = {k: v.to(device) for k, v in bert_batch([positions] * batch_size, seed=0).items()}
        with autocast():
            bert_time = timed(train_step(bert, bert_optimizer, bert_inputs), args.steps, device)
        del bert, bert_optimizer

        variants = [("MEmoBERT", False)] + ([("MEmoBERT compiled", True)] if args.compile else [])
        for label, compiled in variants:
            torch.manual_seed(0)
            model = MEmoBertForPreTraining(config).to(device).train()
            if compiled:
                model.compile(dynamic=True)
            optimizer = make_optimizer(model, device)
            mix_time, mix_flops = 0.0, 0.0
            for task, weight in MIX.items():
                batch = collator.task(task).build_batch(padded, SPECIAL, masking_generator(0, 0, 0, 0))
                masked = int((batch["labels"] != -100).sum()) if "labels" in batch else 0
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast():
                    seconds = timed(train_step(model, optimizer, batch), args.steps, device)
                share = weight / sum(MIX.values())
                mix_time += share * seconds
                mix_flops += share * 3 * forward_flops(config, positions, batch_size, masked)
                if task == "wwmlm":
                    report(f"{label} WWMLM", batch_size, positions, seconds,
                           3 * forward_flops(config, positions, batch_size, masked), peak, matmul, bert_time)
            report(f"{label} 2:1:1:1 mix", batch_size, positions, mix_time, mix_flops, peak, matmul, bert_time)
            del model, optimizer
        emit(f"| BertForMaskedLM | {batch_size} | {bert_time:.3f} | {batch_size / bert_time:.1f} | "
             f"{batch_size * positions / bert_time:.0f} | | | | 1.00 |")
    if args.output:
        Path(args.output).write_text("\n".join(REPORT) + "\n")
        print(f"\nWrote {args.output}")


REPORT: list[str] = []


def emit(line: str) -> None:
    """Print a line of the report and keep it for --output."""
    print(line, flush=True)
    REPORT.append(line)


def report(label: str, batch: int, positions: int, seconds: float, flops: float, peak: float | None,
           matmul: float, bert_time: float) -> None:
    tflops = flops / seconds / 1e12
    of_peak = f"{100 * tflops / peak:.0f} %" if peak else "?"
    emit(f"| {label} | {batch} | {seconds:.3f} | {batch / seconds:.1f} | {batch * positions / seconds:.0f} | "
         f"{tflops:.1f} | {of_peak} | {100 * tflops / matmul:.0f} % | {bert_time / seconds:.2f} |")


if __name__ == "__main__":
    main()
