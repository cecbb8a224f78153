"""The perception front end on real media: one report of every part (issue 13's must-show list).

Parts (each is also a script of its own, `benchmarks/front_end_<part>.py --help`):
- faces: face detection recall and time per frame, per backend, on every frame of the real face videos
  (CREMA-D .flv, MEAD .mp4) and on real photos;
- speaker: active-speaker accuracy per frame and per utterance, per rule (lip landmarks vs pixel motion), on
  two-speaker composites of real talking faces with the audio of one of them;
- speech: VAD frame precision/recall (silero vs webrtc) on real speech padded with silence and noise, and ASR word
  error rate on speech with known transcripts;
- pipeline: the whole pipeline's real-time factor per core and peak memory per front end, 1- and 4-minute videos.

`--data` is the folder of real recordings (`../shared/real`: not part of the project, see its README); without it
the parts that need it say so and measure what pip packages ship.

    .venv/bin/python benchmarks/front_end.py --data ../shared/real                # everything (~15 min)
    .venv/bin/python benchmarks/front_end.py --data ../shared/real --parts faces speech --quick
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PARTS = ("faces", "speaker", "speech", "pipeline")


def main() -> None:
    from memobert.command_line import CommandLineParser

    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the real recordings (e.g. ../shared/real); absent: pip-shipped media only")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which parts to run (all)")
    parser.add_argument("--quick", action="store_true", help="fewer clips and shorter videos (a quick look)")
    parser.add_argument("--output", type=Path, default=None, help="also write the report to this Markdown file")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_dir():
        print(f"--data {args.data} is not a folder: the parts that need real recordings will say so.")
        args.data = None
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    report = [f"# Front end on {'real media from ' + str(args.data) if args.data else 'pip-shipped media only'}"]
    for part in args.parts:
        started = time.perf_counter()
        print(f"== {part} ==", flush=True)
        section = importlib.import_module(f"front_end_{part}").run(args.data, quick=args.quick)
        report += ["", section, "", f"({part}: {time.perf_counter() - started:.0f} s)"]
        print(section, flush=True)
    text = "\n".join(report) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"report -> {args.output}")


if __name__ == "__main__":
    main()
