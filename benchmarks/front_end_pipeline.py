"""The whole pipeline's speed and memory per front end: real-time factor per core and peak memory on a 1- and a
4-minute video, for the stand-in front end (Haar + webrtcvad + pixel mouth motion + log-mel), the neural one
(BlazeFace + FaceMesh lips + silero + log-mel: the default) and the same with Whisper tiny.en encoder features.

Videos: demo-style (two real face photos talking in turn, 320x240, 10 fps sampling; `benchmarks/preprocess.py`
makes them), each configuration in a fresh process on one torch/OpenCV thread (per core). Ratios from one run.

    .venv/bin/python benchmarks/front_end_pipeline.py                 # 1- and 4-minute videos (~4 min)
    .venv/bin/python benchmarks/front_end_pipeline.py --minutes 1     # quicker
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from preprocess import STAGE_COLUMNS, make_video, measure  # noqa: E402

FRONT_ENDS = {
    "Haar + webrtc + pixels + log-mel": {"face_detector": "haar", "vad": "webrtc", "landmarks": "none",
                                         "acoustic_extractor": "log_mel"},
    "BlazeFace + FaceMesh + silero + log-mel (default)": {"face_detector": "auto", "vad": "auto",
                                                         "landmarks": "auto", "acoustic_extractor": "log_mel"},
    "BlazeFace + FaceMesh + silero + Whisper tiny.en encoder": {"face_detector": "auto", "vad": "auto",
                                                               "landmarks": "auto",
                                                               "acoustic_extractor": "whisper_ct2"},
}


def run(data: Path | None = None, quick: bool = False, minutes: list[float] | None = None) -> str:
    """Markdown: one row per front end and video length. `data` is not used (the videos are generated)."""
    from memobert.preprocessing.decode import probe

    minutes = minutes or ([1.0] if quick else [1.0, 4.0])
    lines = ["### Whole pipeline per front end (per core: 1 thread, fresh process each)", "",
             "| front end | video | rows | " + " | ".join(STAGE_COLUMNS).replace("faces", "faces + ASD")
             + " | CPU RTF | x real time per core | peak RSS | peak vs 1st length |",
             "|---|---|---|" + "---|" * len(STAGE_COLUMNS) + "---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="memobert-front-end-") as tmp:
        tmp = Path(tmp)
        videos = {m: make_video(tmp / f"media-{m}", m, seed=i) for i, m in enumerate(minutes)}
        for name, settings in FRONT_ENDS.items():
            first_peak = None
            for m, video in videos.items():
                print(f"  {name}, {m} min ...", flush=True)
                result = measure(video, tmp / f"out-{abs(hash(name))}-{m}", 1, settings)
                seconds = probe(video).duration
                stages = result["stages"]
                first_peak = first_peak or result["peak_rss_mb"]
                cells = " | ".join(f"{stages[s] / seconds:.3f}" for s in STAGE_COLUMNS)
                lines.append(f"| {name} | {seconds / 60:.1f} min | {result['rows']} | {cells} | "
                             f"{result['cpu'] / seconds:.3f} | {seconds / result['cpu']:.1f}x | "
                             f"{result['peak_rss_mb']:.0f} MB | {result['peak_rss_mb'] / first_peak:.2f}x |")
            backends = ", ".join(f"{k}={v}" for k, v in result.get("backends", {}).items())
            lines.append(f"<!-- {name}: {backends} -->")
    lines += ["", "Stage columns: seconds of compute per second of video (RTF). CPU RTF: CPU seconds of the process "
              "per second of video (1 thread: the per-core figure); x real time per core = 1 / CPU RTF (target for "
              "the default: >= 10x). Peak RSS includes the models."]
    return "\n".join(line for line in lines if not line.startswith("<!--"))


def main() -> None:
    from memobert.command_line import CommandLineParser

    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 4.0], help="video lengths (1 4)")
    args = parser.parse_args()
    print(run(minutes=args.minutes))


if __name__ == "__main__":
    main()
