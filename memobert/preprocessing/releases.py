"""Downstream corpora from the official IEMOCAP, MSP-IMPROV, RAVDESS, CREMA-D, MELD and EmoDB releases, through the
preprocessing pipeline.

Each release record (read by `memobert.data.iemocap.load_iemocap` / `memobert.data.msp_improv.load_msp_improv`)
becomes one utterance of a pipeline `WorkItem`:
- IEMOCAP: one item per dialog video `SessionN/dialog/avi/DivX/<dialog>.avi`; the utterance's frames are the video
  window [start, end] of the evaluation file, its audio is the whole utterance wav `sentences/wav/<dialog>/<utt>.wav`.
  The avi shows both actors: `face="active_speaker"` (default) lets the active-speaker rule pick the face,
  `face="side"` searches only the speaker's half of the frame (`memobert.data.iemocap.speaker_side`, a documented
  heuristic: the actor wearing the markers is on `markers_side`).
- MSP-IMPROV: one item per utterance video `Video/sessionN/<sentence>/<scenario>/<utt>.avi` (whole file: [0, wav
  duration]); audio = `Audio/.../<utt>.wav`.

- RAVDESS (`memobert.data.ravdess`): one item per speech recording: the audio-visual mp4, else the video-only mp4,
  else the wav alone (rows without faces); audio = the wav when present (else the mp4's sound). Speaker `Actor_12`.
- CREMA-D (`memobert.data.crema_d`): one item per clip `VideoFlash/<name>.flv` (else the wav alone), audio =
  `AudioWAV/<name>.wav`; the label is the intended emotion or the crowd's perceived one. Speaker = actor id.
- MELD (`memobert.data.meld`): one item per clip `dia{D}_utt{U}.mp4` (the whole clip); the rows whose clip is absent
  are text-only items (one per dialogue: text and word pieces, zero visual and acoustic frames). Session = the split
  (train / validation / test): `--folds official_split`.
- EmoDB (`memobert.data.emodb`): one item per `wav/<name>.wav` (audio only). Speaker `03`..`16`:
  `--folds leave_one_speaker_out`.

Rows follow `memobert.data.schema` with the release's utterance id, text, speaker (`Ses01F`, `F01`) and label (class
name, e.g. "happiness"); `source` is the IEMOCAP dialog / the MSP-IMPROV video file name. Everything else a record
knows (session, gender, raw label code, improvised/scenario, times, file paths, ...) is written beside the shards to
`records.csv`, and the reader's counts (labels dropped, items skipped) and settings to `release.json`.
Resume, sharding, the manifest and the handling of bad inputs (a missing wav or avi is a manifest row with its
reason) are the pipeline's.

By default every labelled utterance is kept (`PipelineConfig.keep_every_utterance()`: no minimum duration, silent
utterances kept), so the corpus is the evaluation set the readers define.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..data.crema_d import CremaDCorpus, load_crema_d
from ..data.emodb import EmoDbCorpus, load_emodb
from ..data.iemocap import VIDEO_DIR, IemocapCorpus, load_iemocap, speaker_side
from ..data.labels import EMOTION_CLASSES
from ..data.meld import CLIP_DIRS, SPLITS, MeldCorpus, load_meld, meld_root
from ..data.msp_improv import SCENARIOS, MspImprovCorpus, load_msp_improv
from ..data.ravdess import RavdessCorpus, load_ravdess
from .decode import MediaError, probe
from .pipeline import (
    Pipeline,
    PipelineConfig,
    WorkItem,
    item_id_for,
    merge_manifests,
    run_pipeline,
    write_csv_atomic,
    write_json_atomic,
)
from .transcripts import Utterance

__all__ = [
    "FACE_RULES",
    "RECORDS_CSV",
    "RELEASE_INFO",
    "RELEASE_FOLDS",
    "iemocap_work_items",
    "msp_improv_work_items",
    "ravdess_work_items",
    "crema_d_work_items",
    "meld_work_items",
    "emodb_work_items",
    "build_iemocap_corpus",
    "build_msp_improv_corpus",
    "build_ravdess_corpus",
    "build_crema_d_corpus",
    "build_meld_corpus",
    "build_emodb_corpus",
]

FACE_RULES = ("active_speaker", "side")
RECORDS_CSV = "records.csv"
RELEASE_INFO = "release.json"
# The --folds of each release's protocol (written to release.json as "folds").
RELEASE_FOLDS = {"iemocap": "iemocap_loso_speaker", "msp_improv": "msp_improv", "ravdess": "speaker_kfold:6",
                 "crema_d": "speaker_kfold:5", "meld": "official_split", "emodb": "leave_one_speaker_out"}


def _check_face(face: str, allowed: Sequence[str] = FACE_RULES) -> None:
    if face not in allowed:
        raise ValueError(f"face must be one of {list(allowed)}, got {face!r}.")


def iemocap_work_items(corpus: IemocapCorpus, face: str = "active_speaker", markers_side: str = "left"
                       ) -> list[WorkItem]:
    """One `WorkItem` per dialog video, its utterances = the dialog's records (audio: each utterance's wav)."""
    _check_face(face)
    items: dict[str, WorkItem] = {}
    for record in corpus.records:
        # A dialog without an avi keeps its expected path: the pipeline then records "file not found" for it.
        video = record.video or str(Path(record.wav).parents[3] / VIDEO_DIR / f"{record.dialog}.avi")
        item = items.get(video)
        if item is None:
            item = items[video] = WorkItem(item_id_for(video), video, [])
        utterance = Utterance(record.dialog, record.utterance_id, len(item.utterances), record.start, record.end,
                              record.text, record.speaker, record.label, str(record.session))
        item.utterances.append(utterance)
        item.audio[record.utterance_id] = record.wav
        if face == "side":
            item.face_side[record.utterance_id] = speaker_side(record, markers_side)
    return sorted(items.values(), key=lambda item: item.item_id)


def _media_end(known: float | None, media: str | None) -> float:
    """The utterance's end: `known` (a wav's duration), else the media file's duration, else infinity (the window
    then ends with the file; a missing file is the pipeline's to record)."""
    if known is not None:
        return float(known)
    try:
        duration = probe(media).duration if media else None
    except (MediaError, OSError):
        duration = None
    return float(duration) if duration else math.inf


def _msp_end(record) -> float:
    """The utterance's end: the wav's duration, else (wav missing: the pipeline records it) the video's."""
    return _media_end(record.end, record.video)


def msp_improv_work_items(corpus: MspImprovCorpus, face: str = "active_speaker") -> list[WorkItem]:
    """One `WorkItem` per utterance video (the whole file), audio = the utterance's wav."""
    _check_face(face, ("active_speaker",))
    items = []
    for record in corpus.records:
        # A missing video keeps its expected path: the pipeline then records "file not found" for it.
        wav = Path(record.wav)  # ROOT/Audio/sessionN/S01A/R/<utt>.wav -> ROOT/Video/sessionN/S01A/R/<utt>.avi
        video = record.video or str(wav.parents[4] / "Video" / wav.relative_to(wav.parents[3]).with_suffix(".avi"))
        utterance = Utterance(Path(video).name, record.utterance_id, 0, float(record.start), _msp_end(record),
                              record.text, record.speaker, record.label, str(record.session))
        items.append(WorkItem(item_id_for(video), video, [utterance], audio={record.utterance_id: record.wav}))
    return sorted(items, key=lambda item: item.item_id)


def _whole_file_item(media: str, record, session: str = "", audio: str | None = None) -> WorkItem:
    """One item of one whole-file utterance: `media` [0, end], audio from `audio` when given."""
    utterance = Utterance(Path(media).name, record.utterance_id, 0, 0.0,
                          _media_end(getattr(record, "end", None), audio or media),
                          record.text, record.speaker, record.label, session)
    return WorkItem(item_id_for(media), media, [utterance], audio={record.utterance_id: audio} if audio else {})


def ravdess_work_items(corpus: RavdessCorpus) -> list[WorkItem]:
    """One item per recording: its video (audio-visual, else video only) with the wav's sound, or the wav alone."""
    items = []
    for record in corpus.records:
        media = record.video or record.wav
        items.append(_whole_file_item(media, record, audio=record.wav if record.video and record.wav else None))
    return sorted(items, key=lambda item: item.item_id)


def crema_d_work_items(corpus: CremaDCorpus) -> list[WorkItem]:
    """One item per clip: its flv with the wav's sound, or the flv alone, or the wav alone."""
    items = []
    for record in corpus.records:
        media = record.video or record.wav
        items.append(_whole_file_item(media, record, audio=record.wav if record.video and record.wav else None))
    return sorted(items, key=lambda item: item.item_id)


def meld_work_items(corpus: MeldCorpus, root: str | os.PathLike) -> list[WorkItem]:
    """One item per clip (the whole clip); the records without their clip: one text-only item per dialogue and split
    (`WorkItem.text_only`), whose rows keep the text."""
    by_split = {name: prefix for prefix, name in SPLITS.items()}
    items, text_only = [], {}
    for record in corpus.records:
        if record.clip is not None:
            items.append(_whole_file_item(record.clip, record, session=record.split))
            continue
        folder = Path(root) / CLIP_DIRS[by_split[record.split]]
        key = str(folder / f"dia{record.dialogue}")
        item = text_only.get(key)
        if item is None:
            item = text_only[key] = WorkItem(item_id_for(key), key, [], text_only=True)
        item.utterances.append(Utterance(f"dia{record.dialogue}_utt{record.utterance}.mp4", record.utterance_id,
                                         len(item.utterances), 0.0, record.episode_end - record.episode_start,
                                         record.text, record.speaker, record.label, record.split))
    return sorted(items + list(text_only.values()), key=lambda item: item.item_id)


def emodb_work_items(corpus: EmoDbCorpus) -> list[WorkItem]:
    """One audio-only item per wav (rows without faces)."""
    return sorted((_whole_file_item(record.wav, record) for record in corpus.records), key=lambda item: item.item_id)


def _write_records(out: Path, corpus, info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [record.to_dict() for record in corpus.records]
    write_csv_atomic(out / RECORDS_CSV, list(rows[0]) if rows else ["utterance_id"], rows)
    write_json_atomic(out / RELEASE_INFO, {
        **info,
        "records": len(corpus.records),
        "classes": list(corpus.labels.classes),
        "label_words": list(corpus.labels.label_words),
        "label_counts": corpus.label_counts(),
        "dropped": corpus.dropped,
        "skipped": corpus.skipped,
    })


def _build(items: list[WorkItem], corpus, info: dict, output_dir: str | os.PathLike, config: PipelineConfig | None,
           shard_index: int, num_shards: int, progress: bool, pipeline: Pipeline | None) -> dict:
    if not items:
        raise ValueError(f"{info['root']}: the release holds no utterance of the classes "
                         f"{list(corpus.labels.classes)}; check the folder and the classes.")
    out = Path(output_dir)
    config = pipeline.config if pipeline is not None else (config or PipelineConfig.keep_every_utterance())
    _write_records(out, corpus, info)
    summary = run_pipeline(items, out, config, shard_index=shard_index, num_shards=num_shards, progress=progress,
                           pipeline=pipeline)
    return {**summary, "records": len(corpus.records), "dropped": corpus.dropped,
            "manifest": str(merge_manifests(out))}


def build_iemocap_corpus(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: PipelineConfig | None = None,
    face: str = "active_speaker",
    *,
    classes: Sequence[str] = EMOTION_CLASSES,
    merge_excited: bool = True,
    sessions: Sequence[int] | None = None,
    markers_side: str = "left",
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    pipeline: Pipeline | None = None,
) -> dict:
    """
    IEMOCAP release at `root` (`IEMOCAP_full_release` or its parent) -> a corpus folder `output_dir` (shards/,
    items/, manifest.csv, corpus.json, records.csv, release.json). `face`: "active_speaker" or "side" (see the module
    docstring); `config` defaults to `PipelineConfig.keep_every_utterance()`; `pipeline` reuses built stages (its
    config wins).
    Returns the pipeline's summary plus `records`, `dropped` and the `manifest` path.
    """
    _check_face(face)
    corpus = load_iemocap(root, classes=classes, merge_excited=merge_excited, sessions=sessions,
                          on_missing_audio="keep")
    items = iemocap_work_items(corpus, face, markers_side)
    info = {"dataset": "iemocap", "root": str(Path(root).resolve()), "face": face, "folds": RELEASE_FOLDS["iemocap"],
            "markers_side": markers_side if face == "side" else None}
    return _build(items, corpus, info, output_dir, config, shard_index, num_shards, progress, pipeline)


def build_msp_improv_corpus(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: PipelineConfig | None = None,
    face: str = "active_speaker",
    *,
    classes: Sequence[str] = EMOTION_CLASSES,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    transcripts: Mapping[str, str] | str | os.PathLike | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    pipeline: Pipeline | None = None,
) -> dict:
    """
    MSP-IMPROV release at `root` (the folder with `Evalution.txt`, `Audio/`, `Video/`) -> a corpus folder, as
    `build_iemocap_corpus`. `face`: "active_speaker" only (each video is one utterance); `transcripts`: see
    `load_msp_improv` (the release ships none, so text is "" without them).
    """
    _check_face(face, ("active_speaker",))
    corpus = load_msp_improv(root, classes=classes, scenarios=scenarios, transcripts=transcripts,
                             on_missing_audio="keep")
    items = msp_improv_work_items(corpus, face)
    info = {"dataset": "msp_improv", "root": str(Path(root).resolve()), "face": face, "scenarios": list(scenarios),
            "folds": RELEASE_FOLDS["msp_improv"]}
    return _build(items, corpus, info, output_dir, config, shard_index, num_shards, progress, pipeline)


def _release_info(dataset: str, root: str | os.PathLike, **settings) -> dict:
    return {"dataset": dataset, "root": str(Path(root).resolve()), **settings, "folds": RELEASE_FOLDS[dataset]}


def build_ravdess_corpus(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: PipelineConfig | None = None,
    *,
    classes: Sequence[str] = EMOTION_CLASSES,
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    pipeline: Pipeline | None = None,
) -> dict:
    """RAVDESS (`root`: the folder holding the `Actor_XX/` folders) -> a corpus folder, as `build_iemocap_corpus`
    (speech only; the audio-visual file preferred, see the module docstring). Folds: actor-independent."""
    corpus = load_ravdess(root, classes=classes)
    info = _release_info("ravdess", root)
    return _build(ravdess_work_items(corpus), corpus, info, output_dir, config, shard_index, num_shards, progress,
                  pipeline)


def build_crema_d_corpus(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: PipelineConfig | None = None,
    *,
    classes: Sequence[str] = EMOTION_CLASSES,
    label: str = "intended",
    ties: str = "intended",
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    pipeline: Pipeline | None = None,
) -> dict:
    """CREMA-D (`root`: the folder with `AudioWAV/`, `VideoFlash/`, the CSVs) -> a corpus folder. `label`: intended
    (the file name's emotion) or the crowd's voice / face / multimodal vote; `ties`: see `load_crema_d`."""
    corpus = load_crema_d(root, classes=classes, label=label, ties=ties)
    info = _release_info("crema_d", root, label=label, ties=ties)
    return _build(crema_d_work_items(corpus), corpus, info, output_dir, config, shard_index, num_shards, progress,
                  pipeline)


def build_meld_corpus(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: PipelineConfig | None = None,
    *,
    classes: Sequence[str] = EMOTION_CLASSES,
    splits: Sequence[str] = tuple(SPLITS),
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    pipeline: Pipeline | None = None,
) -> dict:
    """MELD (`root`: the folder with the `*_sent_emo.csv` files and the clip folders) -> a corpus folder whose session
    column is the official split (`--folds official_split`); rows without their clip are text only."""
    corpus = load_meld(root, classes=classes, splits=splits)
    base = meld_root(root)
    info = _release_info("meld", root, splits=list(splits),
                         text_only=sum(r.clip is None for r in corpus.records))
    return _build(meld_work_items(corpus, base), corpus, info, output_dir, config, shard_index, num_shards, progress,
                  pipeline)


def build_emodb_corpus(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: PipelineConfig | None = None,
    *,
    classes: Sequence[str] = EMOTION_CLASSES,
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    pipeline: Pipeline | None = None,
) -> dict:
    """EmoDB (`root`: the folder with `wav/`, or `wav/` itself) -> a corpus folder of audio-only rows (`--folds
    leave_one_speaker_out`)."""
    corpus = load_emodb(root, classes=classes)
    info = _release_info("emodb", root)
    return _build(emodb_work_items(corpus), corpus, info, output_dir, config, shard_index, num_shards, progress,
                  pipeline)
