"""
Inference on the CPU: torch eager against onnxruntime (the graph of `memobert export-onnx`, run by
`memobert.onnx_export.ONNXEmotionModel`), for the class logits of one model. Prints a Markdown table of the median
milliseconds per call and the utterances per second for each batch size, and each engine's ratio to torch eager,
all measured in this run (calls of the two engines interleaved, so that a busy machine slows both alike).

The model: by default a MiniLM-sized MEmoBertForPrompt (6 layers, hidden 384, 12 heads, FFN 1536, the uncased
WordPiece vocabulary; 342-d faces and 768-d speech frames, the paper's feature sizes), randomly initialised from its
config: no download, and the timings do not depend on the weights. `--model DIR` takes a saved
MEmoBertForPrompt / MEmoBertForSequenceClassification instead. The model is exported to a temporary folder with
`export_onnx` (whose check compares the two engines' logits first); the table's last line gives the largest
difference of the logits seen in the timed calls.

Threads: both engines get `--threads`; idle threads sleep instead of spinning (`--spin` says why).

Inputs: every utterance has `--lengths` text tokens, face frames and acoustic frames (default 24 36 64), all real;
`--padded` gives each row after the first random shorter real lengths instead (torch eager then squeezes each row's
padding out before the encoder, the ONNX graph computes the padded positions under the attention mask).

    .venv/bin/python benchmarks/inference.py                       # ~2 min on 2 shared cores
    .venv/bin/python benchmarks/inference.py --batch-sizes 1 --calls 50 --threads 1
    .venv/bin/python benchmarks/inference.py --model runs/prompt/model --lengths 40 20 50
"""

from __future__ import annotations

import os
import sys

if "--spin" not in sys.argv[1:]:  # before torch starts its OpenMP threads (see --spin)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from memobert.command_line import CommandLineParser

MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
              visual_dim=342, acoustic_dim=768, max_visual_length=36, max_acoustic_length=64,
              label_token_ids=[4963, 3407, 8699, 6517], mask_token_id=103)  # anger happy neutral sad (uncased)


def parse_args(argv=None) -> argparse.Namespace:
    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="a saved MEmoBertForPrompt or MEmoBertForSequenceClassification folder (default: the "
                             "MiniLM-sized MEmoBertForPrompt built from a config, random weights)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32],
                        help="utterances per call; one pair of table lines per size (1 32)")
    parser.add_argument("--lengths", type=int, nargs=3, default=[24, 36, 64], metavar=("TEXT", "VISUAL", "ACOUSTIC"),
                        help="text tokens, face frames and acoustic frames per utterance; 0 leaves a modality out "
                             "(24 36 64)")
    parser.add_argument("--padded", action="store_true",
                        help="rows after the first get random shorter real lengths (partial masks) instead of all "
                             "real positions")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads of both engines: torch.set_num_threads and onnxruntime's intra-op threads (2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per engine and batch size first (3)")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per engine and batch size (20)")
    parser.add_argument("--spin", action="store_true",
                        help="leave both engines' idle threads spinning (their defaults). Without it, onnxruntime's "
                             "intra-op threads do not spin between calls and OMP_WAIT_POLICY=PASSIVE (unless set) "
                             "makes torch's OpenMP threads sleep: spinning threads hold the cores that the other "
                             "engine's interleaved calls need, and on a busy machine torch with 2 spinning threads "
                             "ran 30x slower than with 1")
    parser.add_argument("--opset", type=int, default=None,
                        help="ONNX opset of the export (default: the exporter's; >= 23 exports SDPA as Attention)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (0)")
    return parser.parse_args(argv)


def build_model(args, work: Path):
    """(the torch model in eval mode, the folder it is saved in: `work/model` for the default MiniLM size)."""
    import torch

    from memobert import MEmoBertConfig, MEmoBertForPrompt
    from memobert.onnx_export import load_classifier

    if args.model:
        return load_classifier(args.model), Path(args.model)
    torch.manual_seed(args.seed)
    model = MEmoBertForPrompt(MEmoBertConfig(**MINILM)).eval()
    folder = work / "model"
    model.save_pretrained(folder)
    return model, folder


def time_calls(engines: dict, inputs: dict, warmup: int, calls: int) -> dict[str, list[float]]:
    """Seconds of each timed call per engine, the engines' calls interleaved."""
    for _ in range(warmup):
        for run in engines.values():
            run(inputs)
    seconds = {name: [] for name in engines}
    for _ in range(calls):
        for name, run in engines.items():
            start = time.perf_counter()
            run(inputs)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memobert_inference_") as work:
        benchmark(args, Path(work))


def benchmark(args: argparse.Namespace, work: Path) -> None:
    import platform

    import onnxruntime
    import torch

    from memobert.onnx_export import ONNXEmotionModel, export_onnx, random_inputs, torch_inputs

    torch.set_num_threads(args.threads)
    model, folder = build_model(args, work)
    config = model.config
    start = time.perf_counter()
    onnx_path = export_onnx(folder, work / "onnx" / "model.onnx", opset=args.opset)
    export_seconds = time.perf_counter() - start
    options = onnxruntime.SessionOptions()
    if not args.spin:
        # onnxruntime's pool threads spin after each call by default, taking the cores from torch's next call
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    onnx_model = ONNXEmotionModel.from_pretrained(onnx_path, threads=args.threads, session_options=options)
    prompt = onnx_model.is_prompt

    def run_torch(inputs):
        with torch.inference_mode():
            return model(**inputs).logits

    engines = {"torch eager": run_torch, "onnxruntime": lambda inputs: onnx_model(**inputs)}
    text, visual, acoustic = args.lengths
    params = sum(p.numel() for p in model.parameters()) / 1e6
    threads = f"{args.threads} thread{'s' if args.threads != 1 else ''}"
    padded = " (rows after the first padded)" if args.padded else ""
    print(f"{type(model).__name__}: {config.num_hidden_layers} layers, hidden {config.hidden_size}, {params:.1f} M "
          f"parameters; {text} text tokens, {visual} face frames, {acoustic} acoustic frames per utterance{padded}; "
          f"{threads} ({'spinning' if args.spin else 'passive waits'}); torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__} (opset "
          f"{args.opset or 'default'}), python {platform.python_version()}; exported and checked in "
          f"{export_seconds:.1f} s ({onnx_path.stat().st_size / 2**20:.0f} MiB)")
    print()
    print("| batch | engine | median ms / call | utterances / s | x torch eager |")
    print("|---:|---|---:|---:|---:|")
    worst = 0.0
    for batch in args.batch_sizes:
        inputs = torch_inputs(random_inputs(config, batch, text, visual, acoustic, prompt=prompt, padded=args.padded,
                                            seed=args.seed + batch))
        worst = max(worst, float((run_torch(inputs) - onnx_model(**inputs)).abs().max()))
        seconds = time_calls(engines, inputs, args.warmup, args.calls)
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        for name, median in medians.items():
            print(f"| {batch} | {name} | {median * 1e3:.2f} | {batch / median:.1f} | "
                  f"{medians['torch eager'] / median:.2f} |")
    print()
    print(f"max |onnxruntime - torch| of the logits: {worst:.2g}")


if __name__ == "__main__":
    main()
