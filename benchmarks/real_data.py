"""MEmoBERT and its anchors on real corpora: `memobert prepare` + the downstream runner, one table per corpus.

Corpora (found under `--data`, e.g. ../shared/real, whose README gives their sources and licences; they are not part
of the project and are never copied into it):
- EmoDB (`emodb/`: real German acted speech, 10 speakers, leave-one-speaker-out): speech-only. Rows: the MEmoBERT
  settings trained, selected and tested on the audio alone (`--train-modalities A`, the default), the eGeMAPS + SVM
  anchor (openSMILE functionals, C and kernel chosen on the validation speaker) and the linear probe (mean + std of
  the very acoustic frames MEmoBERT gets, same SVM search).
- MELD (`meld/MELD/`: real dialogue text, official split, dev = validation; 4 classes, 57 % of the rows neutral):
  text-only. Rows: the frozen-MiniLM anchor (`text_probe`: mean-pooled embeddings of the shipped MiniLM +
  logistic regression, C chosen on dev) and the MEmoBERT settings on the text (case L), trained with class-balanced
  sampling (`--class_balanced_sampling`: the metric is UAR; plain shuffling leaves the rare classes under-fitted).

- CREMA-D and MEAD samples (`cremad/`: talking faces + voice as FLV, and voice-only MP3; `mead/`: faces without a
  sound track): too few clips for accuracy, so a pipeline check instead. The CREMA-D sample is laid out as the
  release (`VideoFlash/*.flv`; the MP3s decoded to `AudioWAV/*.wav`, 16 kHz; the two CSVs) and read by
  `build_crema_d_corpus`; each MEAD clip is one whole-file utterance. One row per clip: the frames sampled at the
  pipeline's rate, the face frames it kept (the real face in every frame: equal), the speaker rule, and the shapes of
  the row's face features and soft labels (the face extractor's: 128 + 7 for the offline mini-Xception, 342 + 8 for
  a DenseNet-BC FER+ checkpoint) and acoustic frames (one per 60 ms).

Each corpus is prepared once into `--work` (resumable; a rerun reuses it). Figures: WA / UAR / macro-F1, mean ± std
over folds x seeds, from each run's results.json. Without `--data` (or with a folder lacking a corpus) the script
says what it did not find and exits 0.

    .venv/bin/python benchmarks/real_data.py --data ../shared/real                    # 3 seeds, every fold
    .venv/bin/python benchmarks/real_data.py --data ../shared/real --quick            # 1 seed, 3 folds, 60 updates
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MEMOBERT_SETTINGS = ("direct", "bert_direct", "finetune", "prompt")
CORPORA = ("emodb", "meld", "cremad", "mead")


def prepare(name: str, root: Path, out: Path, acoustic: str) -> Path:
    """The corpus of release `name` at `root`, made once into `out` with the given acoustic extractor."""
    from memobert.preprocessing import releases
    from memobert.preprocessing.pipeline import PipelineConfig

    config = PipelineConfig.keep_every_utterance(acoustic_extractor=acoustic, transcribe="never")
    build = {"emodb": releases.build_emodb_corpus, "meld": releases.build_meld_corpus}[name]
    started = time.perf_counter()
    summary = build(root, out, config, progress=False)
    print(f"  prepared {name} ({acoustic}) -> {out}: {summary.get('rows', '?')} rows, "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return out


def run(corpus: Path, out: Path, setting: str, folds: str, cases: list[str], seeds: list[int], max_steps: int,
        only_folds: list[int] | None, pretrained: str | None, **extra) -> dict:
    """One runner call into its own folder; the summary entry of its modality case `cases[0]` (results.json)."""
    from memobert.downstream import DownstreamArguments, run_downstream

    args = DownstreamArguments(
        setting=setting, corpus=str(corpus), folds=folds, seeds=seeds, max_steps=max_steps, only_folds=only_folds,
        modality_cases=cases, output_dir=str(out), pretrained_model=pretrained, bert="minilm",
        eval_steps=max(10, max_steps // 6), warmup_steps=max(1, max_steps // 10), progress_bar=False, **extra,
    )
    run_downstream(args)
    summary = json.loads((out / "results.json").read_text())["summary"]
    return next(entry for entry in summary if entry["modalities"] == cases[0])


def summarise(entry: dict, label: str) -> str:
    """A table row: mean ± std over folds x seeds of WA / UAR / macro-F1 (%)."""
    cells = [f"{100 * entry[f'{m}_mean']:.1f} ± {100 * (entry[f'{m}_std'] or 0):.1f}" for m in ("wa", "uar", "f1")]
    return f"| {label} | {entry['modalities']} | " + " | ".join(cells) + f" | {entry['n']} |"


def stage_crema_d(sample: Path, out: Path) -> Path:
    """The flat CREMA-D sample (`*.flv`, `*.mp3`, `official_metadata/`) laid out as the release: `VideoFlash/` links to
    the FLVs, `AudioWAV/` the MP3s decoded to 16 kHz PCM WAV (the release's AudioWAV format), the two CSVs."""
    import wave

    from memobert.preprocessing.decode import MediaReader

    for folder in ("VideoFlash", "AudioWAV", "processedResults"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for flv in sorted(sample.glob("*.flv")):
        link = out / "VideoFlash" / flv.name
        if not link.exists():
            link.symlink_to(flv.resolve())
    for mp3 in sorted(sample.glob("*.mp3")):
        reader = MediaReader(str(mp3), sample_rate=16000)
        samples = reader.audio(0.0, reader.info.duration)
        with wave.open(str(out / "AudioWAV" / f"{mp3.stem}.wav"), "wb") as handle:
            handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
            handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    metadata = sample / "official_metadata"
    (out / "VideoDemographics.csv").write_bytes((metadata / "VideoDemographics.csv").read_bytes())
    (out / "processedResults" / "summaryTable.csv").write_bytes((metadata / "summaryTable.csv").read_bytes())
    return out


def pipeline_check(corpus: Path, media: dict[str, Path], fps: float) -> list[str]:
    """Table rows: per clip the frames sampled at `fps` over its row's window, the face frames kept, the speaker rule
    and score, and the shapes of the row's frame features (from the corpus shards and manifest)."""
    import csv

    from memobert.data import schema
    from memobert.data.corpus import find_shards, load_shards
    from memobert.preprocessing.decode import MediaReader

    with open(corpus / "manifest.csv", encoding="utf-8") as handle:
        manifest = {r["utterance_id"]: r for r in csv.DictReader(handle)}
    rows = {str(r[schema.UTTERANCE_ID]): r for r in load_shards(find_shards(corpus)).with_format("numpy")}
    lines = []
    for utterance, record in sorted(manifest.items()):
        row = rows.get(utterance)
        if row is None:
            lines.append(f"| {utterance} | {record['status']}: {record['reason']} | | | | | | |")
            continue
        path = media[utterance]
        info = MediaReader(str(path), fps=fps).info
        sampled = (len(MediaReader(str(path), fps=fps).window(float(row[schema.START]), float(row[schema.END]),
                                                                   audio=False).frames) if info.has_video else 0)
        visual, soft, acoustic = (np.asarray(row[c]).shape for c in schema.FRAME_COLUMNS)
        kind = "video + sound" if info.has_video and info.has_audio else ("video only" if info.has_video
                                                                          else "audio only")
        lines.append(f"| {utterance} | {kind} | {sampled} | {visual[0]} | {record['speaker_rule'] or '-'} "
                     f"({float(record['speaker_score']):.2f}) | {visual} | {soft} | {acoustic} |")
    return lines


def check_faces(data: Path, work: Path, names: list[str]) -> list[str]:
    """The CREMA-D / MEAD pipeline checks (module doc), as Markdown."""
    from memobert.preprocessing import releases
    from memobert.preprocessing.pipeline import PipelineConfig, WorkItem, merge_manifests, run_pipeline
    from memobert.preprocessing.transcripts import Utterance

    config = PipelineConfig.keep_every_utterance(acoustic_extractor="log_mel", transcribe="never")
    header = ["| clip | media | frames sampled | face frames kept | speaker rule (score) | visual_feats | "
              "face_soft_labels | acoustic_feats |", "|---|---|---|---|---|---|---|---|"]
    report = []
    if "cremad" in names:
        sample = data / "cremad"
        if not sample.is_dir():
            report.append(f"CREMA-D: {sample} not found, skipped.")
        else:
            root = stage_crema_d(sample, work / "cremad" / "release")
            releases.build_crema_d_corpus(root, work / "cremad" / "corpus", config, progress=False,
                                          classes=("anger", "disgust", "fear", "happiness", "neutral", "sadness"))
            media = {p.stem: p for folder in ("VideoFlash", "AudioWAV") for p in (root / folder).iterdir()}
            report += ["", f"## CREMA-D sample through `build_crema_d_corpus` ({sample}; {config.fps:g} fps)", "",
                       *header, *pipeline_check(work / "cremad" / "corpus", media, config.fps)]
    if "mead" in names:
        clips = sorted((data / "mead").glob("*.mp4"))
        if not clips:
            report.append(f"MEAD: no clips in {data / 'mead'}, skipped.")
        else:
            from memobert.preprocessing.decode import probe

            items = [WorkItem(p.stem, str(p), [Utterance(p.name, p.stem, 0, 0.0, probe(str(p)).duration, "",
                                                         p.stem.split("_")[0], "", "")]) for p in clips]
            run_pipeline(items, work / "mead" / "corpus", config, progress=False)
            merge_manifests(work / "mead" / "corpus")
            report += ["", f"## MEAD sample, each clip one whole-file utterance ({data / 'mead'}; {config.fps:g} "
                       "fps)", "", *header, *pipeline_check(work / "mead" / "corpus", {p.stem: p for p in clips},
                                                            config.fps)]
    return report


def main() -> None:
    from memobert.command_line import CommandLineParser

    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder of the real recordings (../shared/real)")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "memobert" / "real",
                        help="where the prepared corpora and the runs go (reused by a rerun)")
    parser.add_argument("--corpora", nargs="+", choices=CORPORA, default=list(CORPORA),
                        help="which corpora to run (emodb meld cremad mead)")
    parser.add_argument("--settings", nargs="+", choices=MEMOBERT_SETTINGS, default=list(MEMOBERT_SETTINGS),
                        help="MEmoBERT settings to run beside the anchors")
    parser.add_argument("--pretrained-model", default=str(REPO / "outputs" / "pretrain-demo"),
                        help="pretrained MEmoBERT for finetune/prompt (default: make demo's); absent: they are skipped")
    parser.add_argument("--acoustic-extractor", default="log_mel",
                        help="acoustic features of the EmoDB corpus MEmoBERT and the linear probe get (log_mel)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds per fold (1 2 3)")
    parser.add_argument("--max-steps", type=int, default=120, help="updates per MEmoBERT run (120)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="peak learning rate of the MEmoBERT runs (default: each setting's paper value)")
    parser.add_argument("--modality-dropout", type=float, default=0.0,
                        help="the runner's modality_dropout: share of training batches built in a sub-case of the "
                             "corpus' modalities (0 = the paper's recipe: every batch holds every modality)")
    parser.add_argument("--classifier-pooling", choices=("cls", "mean"), default="cls",
                        help="what the direct/bert_direct/finetune classifier reads (cls = BERT's [CLS]; mean)")
    parser.add_argument("--train-modalities", default="A",
                        help="the case the EmoDB MEmoBERT runs train and select in (A: speech-only models, tested in "
                             "A; LA: the paper's recipe, one model trained on sentence + speech and tested in A)")
    parser.add_argument("--only-folds", type=int, nargs="+", default=None,
                        help="run these folds only (default: every fold; --quick: 1 2 3)")
    parser.add_argument("--quick", action="store_true", help="1 seed, the first 3 folds, 60 updates")
    parser.add_argument("--output", type=Path, default=None, help="also write the tables to this Markdown file")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.max_steps = args.seeds[:1], 60
    only_folds = [1, 2, 3] if args.quick else args.only_folds
    if args.data is None or not args.data.is_dir():
        print(f"No real data: --data {args.data} is not a folder. This benchmark needs the real recordings "
              "(e.g. ../shared/real, not part of the project); nothing was run.")
        return
    pretrained = args.pretrained_model if Path(args.pretrained_model, "config.json").is_file() else None
    report = [f"# Real corpora ({'quick: 1 seed, folds 1-3, ' if args.quick else ''}{args.max_steps} updates per "
              f"MEmoBERT run, seeds {args.seeds})", ""]
    if pretrained is None:
        report.append(f"No pretrained model at {args.pretrained_model} (run `make demo`): finetune and prompt skipped.")
    settings = [s for s in args.settings if pretrained or s in ("direct", "bert_direct")]
    recipe = {"modality_dropout": args.modality_dropout, "classifier_pooling": args.classifier_pooling}
    if args.learning_rate:
        recipe["learning_rate"] = args.learning_rate
    report.append(f"MEmoBERT recipe: {recipe}; EmoDB runs trained and selected in case {args.train_modalities}.")
    header = ["| system | case | WA | UAR | macro-F1 | runs |", "|---|---|---|---|---|---|"]

    if "emodb" in args.corpora:
        root = args.data / "emodb"
        if not root.is_dir():
            report.append(f"EmoDB: {root} not found, skipped.")
        else:
            work = args.work / "emodb"
            frames = prepare("emodb", root, work / f"corpus-{args.acoustic_extractor.replace(':', '_')}",
                             args.acoustic_extractor)
            functionals = prepare("emodb", root, work / "corpus-egemaps", "egemaps")
            folds = "leave_one_speaker_out"
            lines = [f"## EmoDB (real speech, 10 speakers, {folds}; acoustic features {args.acoustic_extractor})", "",
                     *header]
            anchors = {"eGeMAPS + SVM": (functionals, "mean"), f"linear probe (mean + std of {args.acoustic_extractor},"
                       " SVM)": (frames, "mean_std")}
            for label, (corpus, pooling) in anchors.items():
                config = work / f"egemaps_svm_{pooling}.json"
                config.write_text(json.dumps({"baseline": "egemaps_svm", "config": {"pooling": pooling}}))
                entry = run(corpus, work / "runs" / f"anchor_{pooling}", "baseline", folds, ["A"], args.seeds[:1], 1,
                            only_folds, None, baseline="egemaps_svm", baseline_config=str(config))
                lines.append(summarise(entry, label))
            for setting in settings:
                entry = run(frames, work / "runs" / f"{setting}-{args.train_modalities}", setting, folds, ["A"],
                            args.seeds, args.max_steps, only_folds, pretrained, train_modalities=args.train_modalities,
                            **recipe)
                lines.append(summarise(entry, f"MEmoBERT {setting} (trained on {args.train_modalities})"))
            report += ["", *lines]
    if "meld" in args.corpora:
        root = args.data / "meld" / "MELD"
        if not root.is_dir():
            report.append(f"MELD: {root} not found, skipped.")
        else:
            work = args.work / "meld"
            corpus = prepare("meld", root, work / "corpus", "log_mel")
            lines = ["## MELD (real dialogue text, official split: dev = validation; 4 classes; MEmoBERT runs with "
                     "class-balanced sampling)", "", *header]
            config = work / "text_probe.json"
            config.write_text(json.dumps({"baseline": "text_probe", "config": {"text_model": "minilm"}}))
            entry = run(corpus, work / "runs" / "anchor_text_probe", "baseline", "official_split", ["L"],
                        args.seeds[:1], 1, None, None, baseline="text_probe", baseline_config=str(config))
            lines.append(summarise(entry, "frozen MiniLM (mean-pooled) + logistic regression"))
            for setting in settings:
                entry = run(corpus, work / "runs" / f"{setting}-balanced", setting, "official_split", ["L"],
                            args.seeds, args.max_steps, None, pretrained, class_balanced_sampling=True, **recipe)
                lines.append(summarise(entry, f"MEmoBERT {setting}"))
            report += ["", *lines]
    report += check_faces(args.data, args.work, [c for c in args.corpora if c in ("cremad", "mead")])
    text = "\n".join(report) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
