"""Preprocessing speed and memory: real-time factors per stage and per core; time and memory against video length.

Writes demo-style videos (two faces talking in turn, as `make_demo_media` does, 320x240) and runs the full pipeline
(10 fps, Haar faces + active speaker, mini-Xception face features, an acoustic encoder, the tokenizer) on each in a
fresh process with `--threads` torch and OpenCV threads, then prints two tables:

1. Scaling with video length (log-mel): per stage the seconds of compute per second of video (real-time factor, RTF;
   below 1 is faster than real time), the wall-clock RTF, the CPU RTF (CPU seconds of the process per second of video,
   all threads counted: the per-core figure), the share of decoding (what overlapping it with compute could save at
   most), and the peak resident memory, also relative to the shortest video (flat memory: ~1.0x).
2. Acoustic encoders on the same video: log-mel, a tiny wav2vec2 (hidden 32, 2 layers) and a base-size wav2vec2
   (`Wav2Vec2Config()`: the architecture and compute of facebook/wav2vec2-base, random weights, built here without a
   download: its timings stand for the real checkpoint, its features mean nothing). Acoustic-stage RTF, end-to-end
   CPU RTF and times real time per core (= 1 / CPU RTF; the target is >= 1x).

The front end is the stand-in one these tables were first made with (`STAND_IN`: Haar, no landmarks, webrtc, pixel
rule), so that the figures stay comparable across releases; the neural default front end against it:
`benchmarks/front_end_pipeline.py`.

Ratios from one run are the claim; on a shared machine the absolute seconds move with the other jobs.

    .venv/bin/python benchmarks/preprocess.py                          # 0.5/1/2/4-minute videos + encoders (~5 min)
    .venv/bin/python benchmarks/preprocess.py --minutes 1 --encoders log_mel w2v_base   # a quicker look
    .venv/bin/python benchmarks/preprocess.py --before   # adds before/after of the memory fixes (~2 min more)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memobert.command_line import CommandLineParser

ENCODERS = ("log_mel", "w2v_tiny", "w2v_base")
ENCODER_NAMES = {"log_mel": "log-mel (80 bins)", "w2v_tiny": "wav2vec2 tiny (hidden 32, 2 layers)",
                 "w2v_base": "wav2vec2 base size (95M, random weights)"}
STAGE_COLUMNS = ("decode", "vad", "faces", "face_features", "acoustic", "text")
STAND_IN = {"face_detector": "haar", "landmarks": "none", "vad": "webrtc", "speaker_rule": "pixels"}


def make_video(folder: Path, minutes: float, seed: int) -> Path:
    """One demo clip of about `minutes` minutes (utterances of 1.5-4 s with pauses), with its SRT."""
    from memobert.demo.media import make_demo_media

    per_utterance = 3.65  # mean utterance (2.75 s) + mean pause (0.9 s)
    count = max(1, int(minutes * 60 / per_utterance))
    clips = make_demo_media(folder, num_clips=1, seed=seed, utterances_per_clip=(count, count))
    return clips[0].video


def save_wav2vec2(folder: Path, size: str) -> str:
    """A randomly initialised wav2vec2 saved like a hub checkpoint (group-norm conv stack, no attention mask)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model
    from transformers.utils import logging

    logging.disable_progress_bar()

    if size == "tiny":  # as the tests build it (TINY_SPEECH in tests/support/models.py)
        config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    else:
        config = Wav2Vec2Config()  # wav2vec2-base: 12 layers, hidden 768, 512-channel conv feature encoder
    torch.manual_seed(0)
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(folder)
    return str(folder)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM, which starts anew at exec (ru_maxrss keeps the parent's peak
    across fork + exec, so a child started by a big process would report the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(video: str, output: str, threads: int, settings: dict, before: bool = False) -> dict:
    """Runs the pipeline (`PipelineConfig(**settings)`) on one video in this process; returns timings, memory and the
    backends used. `before`: without the memory
    fixes (no heap trimming after each utterance, all of a video's audio held for one acoustic call, an utterance's
    faces in one batch of up to 256)."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    from memobert.preprocessing import pipeline as pipeline_module
    from memobert.preprocessing.pipeline import ITEMS, Pipeline, PipelineConfig, run_pipeline, stage_seconds

    chunk = {"acoustic_chunk": 10**9, "face_batch_size": 256} if before else {}
    if before:
        pipeline_module.release_free_memory = lambda: None
    pipeline = Pipeline(PipelineConfig(**{"device": "cpu", **settings, **chunk}))
    loaded_rss = peak_rss_mb()
    cpu_start = time.process_time()
    start = time.perf_counter()
    summary = run_pipeline(video, output, pipeline=pipeline, progress=False)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    records = [r for p in Path(output, ITEMS).glob("*.json") for r in json.loads(p.read_text())]
    return {
        "wall": wall,
        "cpu": cpu,
        "rows": summary["rows"],
        "stages": stage_seconds(records),
        "peak_rss_mb": peak_rss_mb(),
        "loaded_rss_mb": loaded_rss,
        "backends": {stage: info.get("backend") for stage, info in pipeline.corpus_info().get("provenance", {}).items()},
    }


def measure(video: Path, output: Path, threads: int, settings: str | dict, before: bool = False) -> dict:
    """`run_one` in a fresh process (`settings`: PipelineConfig fields, or an acoustic extractor name)."""
    if isinstance(settings, str):  # an acoustic extractor through the stand-in front end
        settings = {**STAND_IN, "acoustic_extractor": settings}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(
        [sys.executable, __file__, "--threads", str(threads), "--child", str(video), str(output), json.dumps(settings)]
        + (["--before"] if before else []),
        capture_output=True, text=True, env=env,
    )
    if result.returncode != 0:
        raise SystemExit(f"The pipeline failed on {video} ({settings}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="*", default=[0.5, 1.0, 2.0, 4.0],
                        help="video lengths of the scaling table, in minutes (0.5 1 2 4; none: skip the table)")
    parser.add_argument("--encoders", nargs="*", choices=ENCODERS, default=list(ENCODERS),
                        help="acoustic encoders of the encoder table (log_mel w2v_tiny w2v_base; none: skip it)")
    parser.add_argument("--encoder-minutes", type=float, default=1.0,
                        help="length of the video of the encoder table, in minutes (1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and OpenCV threads of the pipeline process (1 = per core figures)")
    parser.add_argument("--before", action="store_true",
                        help="also run the shortest and longest videos without the memory fixes (heap trimming after "
                             "each utterance, audio in chunks of 64 utterances, face batches of 32 instead of 256): "
                             "before/after in the same run")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], args.threads, json.loads(args.child[2]), args.before)))
        return

    from memobert.preprocessing.decode import probe

    started = time.perf_counter()
    print(f"Pipeline: 10 fps, Haar faces + active speaker, mini-Xception face features, {args.threads} torch/OpenCV "
          f"thread(s), CPU; one fresh process per run; {os.cpu_count()} CPUs visible.")
    videos: dict[float, Path] = {}
    with tempfile.TemporaryDirectory(prefix="memobert-preprocess-") as tmp:
        tmp = Path(tmp)

        def video_of(minutes: float) -> Path:
            if minutes not in videos:
                videos[minutes] = make_video(tmp / f"media-{minutes}", minutes, seed=len(videos))
            return videos[minutes]

        results: dict[tuple[str, float], dict] = {}

        def result_of(acoustic: str, minutes: float, spec: str) -> dict:
            if (acoustic, minutes) not in results:
                results[(acoustic, minutes)] = measure(video_of(minutes), tmp / f"out-{acoustic}-{minutes}",
                                                       args.threads, spec)
            return results[(acoustic, minutes)]

        if args.minutes:
            print("\n1. Scaling with video length (log-mel). Stage columns: RTF = seconds of compute per second of "
                  "video.")
            print("| video | rows | " + " | ".join(STAGE_COLUMNS).replace("faces", "faces + ASD") +
                  " | wall RTF | CPU RTF (per core) | decode share | peak RSS | peak vs shortest | peak - models |")
            print("|---|---|" + "---|" * len(STAGE_COLUMNS) + "---|---|---|---|---|---|")
            first_peak = None
            for minutes in args.minutes:
                result = result_of("log_mel", minutes, "log_mel")
                seconds = probe(video_of(minutes)).duration
                stages = result["stages"]
                first_peak = first_peak or result["peak_rss_mb"]
                cells = " | ".join(f"{stages[s] / seconds:.3f}" for s in STAGE_COLUMNS)
                print(f"| {seconds / 60:.1f} min | {result['rows']} | {cells} | {result['wall'] / seconds:.3f} | "
                      f"{result['cpu'] / seconds:.3f} | {stages['decode'] / max(sum(stages.values()), 1e-9):.1%} | "
                      f"{result['peak_rss_mb']:.0f} MB | {result['peak_rss_mb'] / first_peak:.2f}x | "
                      f"{result['peak_rss_mb'] - result['loaded_rss_mb']:.0f} MB |")

            if args.before and args.minutes:
                print("\nBefore/after of the memory fixes, same videos, same run (log-mel):")
                print("| video | peak RSS before | peak RSS after | peak - models before | after | wall RTF before "
                      "| after |")
                print("|---|---|---|---|---|---|---|")
                for minutes in sorted({min(args.minutes), max(args.minutes)}):
                    old = measure(video_of(minutes), tmp / f"before-{minutes}", args.threads, "log_mel", before=True)
                    new = result_of("log_mel", minutes, "log_mel")
                    seconds = probe(video_of(minutes)).duration
                    print(f"| {seconds / 60:.1f} min | {old['peak_rss_mb']:.0f} MB | {new['peak_rss_mb']:.0f} MB | "
                          f"{old['peak_rss_mb'] - old['loaded_rss_mb']:.0f} MB | "
                          f"{new['peak_rss_mb'] - new['loaded_rss_mb']:.0f} MB | {old['wall'] / seconds:.3f} | "
                          f"{new['wall'] / seconds:.3f} |")

        if args.encoders:
            minutes = args.encoder_minutes
            seconds = probe(video_of(minutes)).duration
            print(f"\n2. Acoustic encoders, {seconds / 60:.1f}-minute video (timings only: random weights).")
            print("| acoustic encoder | acoustic RTF | wall RTF | CPU RTF (per core) | x real time per core | "
                  "acoustic share | peak RSS |")
            print("|---|---|---|---|---|---|---|")
            for encoder in args.encoders:
                if encoder == "log_mel":
                    spec = "log_mel"
                else:
                    spec = save_wav2vec2(tmp / encoder, encoder.split("_")[1])
                result = result_of(encoder, minutes, spec)
                stages = result["stages"]
                print(f"| {ENCODER_NAMES[encoder]} | {stages['acoustic'] / seconds:.3f} | "
                      f"{result['wall'] / seconds:.3f} "
                      f"| {result['cpu'] / seconds:.3f} | {seconds / result['cpu']:.1f}x | "
                      f"{stages['acoustic'] / max(sum(stages.values()), 1e-9):.0%} | {result['peak_rss_mb']:.0f} MB |")
    print("\nRTF = seconds per second of video (< 1: faster than real time). CPU RTF counts every thread of the "
          f"process: with {args.threads} thread(s) it is the per-core figure. Peak RSS includes the models "
          f"(peak - models: what processing added). Whole benchmark: {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
