"""Preprocessing speed and memory: real-time factor per stage, and peak memory as the video grows.

Writes demo-style videos of the given lengths (two faces talking in turn, as `make_demo_media` does), runs the full
pipeline on each in a fresh process, and prints per stage the seconds of compute per second of video (real-time
factor, RTF: below 1 is faster than real time) and the process's peak resident memory. Flat memory means the peak does
not grow with the video's length: decoding is per utterance window.

    .venv/bin/python benchmarks/preprocess.py                        # 1-minute and 4-minute videos
    .venv/bin/python benchmarks/preprocess.py --minutes 1 --threads 1 # one core
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


def make_video(folder: Path, minutes: float, seed: int) -> Path:
    """One demo clip of about `minutes` minutes (utterances of 1.5-4 s with pauses), with its SRT."""
    from memobert.data.demo import make_demo_media

    per_utterance = 3.65  # mean utterance (2.75 s) + mean pause (0.9 s)
    count = max(1, int(minutes * 60 / per_utterance))
    clips = make_demo_media(folder, num_clips=1, seed=seed, utterances_per_clip=(count, count))
    return clips[0].video


def run_one(video: str, output: str, threads: int) -> dict:
    """Runs the pipeline on one video in this process; returns timings and peak memory."""
    import torch

    torch.set_num_threads(threads)
    from memobert.preprocessing.pipeline import ITEMS, Pipeline, PipelineConfig, run_pipeline, stage_seconds

    pipeline = Pipeline(PipelineConfig())
    start = time.perf_counter()
    summary = run_pipeline(video, output, pipeline=pipeline, progress=False)
    wall = time.perf_counter() - start
    records = [r for p in Path(output, ITEMS).glob("*.json") for r in json.loads(p.read_text())]
    return {
        "wall": wall,
        "rows": summary["rows"],
        "stages": stage_seconds(records),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 4.0], help="video lengths to measure")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = per core figures)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], args.threads)))
        return

    from memobert.preprocessing.decode import probe

    print(f"Pipeline: 10 fps, Haar faces + active speaker, mini-Xception face features, log-mel, {args.threads} "
          "torch thread(s); one fresh process per video.")
    print("| video | rows | decode | VAD | faces + ASD | face features | acoustic | text | total RTF | "
          "wall RTF | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, minutes in enumerate(args.minutes):
            video = make_video(Path(tmp) / f"media{i}", minutes, seed=i)
            seconds = probe(video).duration
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
            out = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--child", str(video),
                 str(Path(tmp) / f"out{i}")],
                capture_output=True, text=True, env=env, check=True,
            ).stdout.strip().splitlines()[-1]
            result = json.loads(out)
            stages = result["stages"]
            cells = " | ".join(f"{stages[s] / seconds:.3f}" for s in
                               ("decode", "vad", "faces", "face_features", "acoustic", "text"))
            print(f"| {seconds / 60:.1f} min | {result['rows']} | {cells} | {sum(stages.values()) / seconds:.3f} | "
                  f"{result['wall'] / seconds:.3f} | {result['peak_rss_mb']:.0f} MB |")
    print("RTF = seconds of compute per second of video (< 1: faster than real time).")


if __name__ == "__main__":
    main()
