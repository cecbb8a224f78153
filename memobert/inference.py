"""Emotion of every utterance of a video: the preprocessing pipeline + a trained `MEmoBertForPrompt`, in one object.

    recognizer = EmotionRecognizer.from_pretrained("outputs/downstream/prompt/models/fold01_seed1")
    for u in recognizer("talk.mp4"):                      # the sidecar .srt/.vtt, the embedded subtitles, else ASR
        print(u.start, u.end, u.emotion, u.probabilities, u.modalities)
    videos = recognizer.predict_many(["a.mp4", "b.mp4"])  # a progress bar; a failed video is recorded, not raised

`EmotionRecognizer` holds the preprocessing `Pipeline` and the model, loaded once. A video is cut into the utterances
of its transcript (a given .srt/.vtt/.csv, else the sidecar .srt/.vtt or the embedded subtitles, as the pipeline reads
them); the same `Pipeline` that builds corpora extracts the face, speech and text features; the model's
`MEmoBertProcessor` builds the prompt "<text> i am [MASK] ."; the model gives the label words' [MASK] logits, whose
softmax is each utterance's `probabilities` and whose argmax is its `emotion`. Utterances the pipeline skips or cannot
read are returned too, with their status and reason and no prediction.

The model is used only as "batch dict -> class logits" (`EmotionModel`): a `TorchEmotionModel` around
`MEmoBertForPrompt` (backend="torch") or `memobert.onnx_export.ONNXEmotionModel` (backend="onnx", the folder's
`model.onnx` or its only .onnx file) are interchangeable. The pipeline's extractors must give the feature sizes the
model was trained on (`config.visual_dim`, `config.acoustic_dim`): a mismatch is an error naming both sizes and the
fix (`check_feature_sizes`).

`predict_video(video, model_dir)` is the one-call form (a recognizer for one video, results as dicts);
`write_predictions` writes results as CSV or JSON.
"""

from __future__ import annotations

import csv
import json
import math
import os
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

import numpy as np
import torch

from .data import schema
from .modeling_memobert import MODEL_INPUT_NAMES, MEmoBertForPrompt, quiet_transformers
from .onnx_export import ONNX_FILE_NAME, ONNXEmotionModel, require_label_words, require_model_folder
from .preprocessing.pipeline import Pipeline, PipelineConfig, WorkItem, item_id_for
from .preprocessing.transcripts import read_transcript
from .processing_memobert import MEmoBertProcessor

__all__ = [
    "PREDICTION_FIELDS",
    "MODEL_INPUTS",
    "BACKENDS",
    "UtteranceEmotion",
    "VideoEmotions",
    "EmotionModel",
    "TorchEmotionModel",
    "EmotionRecognizer",
    "load_prompt_model",
    "check_feature_sizes",
    "media_duration",
    "predict_video",
    "write_predictions",
    "write_predictions_csv",
]

PREDICTION_FIELDS = ("utterance_id", "start", "end", "text", "speaker", "emotion", "status", "reason",
                     "visual_frames", "acoustic_frames", "speaker_score", "speaker_rule", "modalities")
# What the recognizer gives a model, in this order (None for a modality absent from the whole batch).
MODEL_INPUTS = MODEL_INPUT_NAMES
BACKENDS = ("torch", "onnx")


# ----------------------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class UtteranceEmotion:
    """One utterance of a video and its predicted emotion."""

    utterance_id: str
    start: float | None  # seconds; None when the transcript item had no readable time
    end: float | None
    text: str
    speaker: str  # the transcript's speaker name, else ""
    emotion: str  # the label word of highest probability; "" when not predicted
    probabilities: dict[str, float]  # {label word: p}, summing to 1, in the model's class order; {} when not predicted
    status: str  # "ok", "skipped" or "failed"
    reason: str  # why skipped or failed, or a note (e.g. "kept without face frames: ...", "text by ASR")
    visual_frames: int  # face frames the pipeline extracted (the model gets at most config.max_visual_length)
    acoustic_frames: int  # acoustic frames the pipeline extracted (at most config.max_acoustic_length reach the model)
    # The active-speaker score of the face track taken as the speaker's (None: no face), and the rule that scored it:
    # "pixels" (TPR - FPR of mouth motion against voice activity) or "landmarks" (lip synchrony); "" when no rule ran.
    speaker_score: float | None = None
    speaker_rule: str = ""
    modalities: tuple[str, ...] = ()  # which of text / visual / acoustic the model got (() when not predicted)

    @property
    def predicted(self) -> bool:
        return bool(self.probabilities)

    def to_dict(self) -> dict:
        """A JSON-ready dict (modalities as a list)."""
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        return out


@dataclass
class VideoEmotions:
    """The result of one video of `EmotionRecognizer.predict_many`: its utterances, or why it failed."""

    video: str
    utterances: list[UtteranceEmotion] = field(default_factory=list)
    status: str = "ok"  # "ok" or "failed" (then `reason` says why and `utterances` is empty)
    reason: str = ""
    duration: float | None = None  # seconds, from the container header (None when it does not say)
    detail: str = ""  # the traceback of an unexpected error (not a bad input: see predict_many), else ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ----------------------------------------------------------------------------------------------------------------------
# The model: batch dict -> class logits
# ----------------------------------------------------------------------------------------------------------------------


class EmotionModel(Protocol):
    """What the recognizer needs of a model: its `MEmoBertConfig` (label words, feature sizes) and
    `model(**batch)` -> `(batch, num_labels)` class logits, for a batch of `MODEL_INPUTS` (None: modality absent)."""

    config: object

    def __call__(self, **batch) -> torch.Tensor: ...


class TorchEmotionModel:
    """`MEmoBertForPrompt` as an `EmotionModel`: moves the batch to the model's device, no gradients, float logits."""

    def __init__(self, model: MEmoBertForPrompt):
        self.model = model.eval()
        self.config = model.config

    @property
    def device(self) -> torch.device:
        return self.model.device

    def __call__(self, **batch) -> torch.Tensor:
        inputs = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        with torch.no_grad():
            return self.model(**inputs).logits.float()


def load_prompt_model(model_dir: str | os.PathLike, device: str | torch.device | None = None
                      ) -> tuple[MEmoBertForPrompt, MEmoBertProcessor]:
    """A trained `MEmoBertForPrompt` (eval mode, on `device`) and its processor from a folder saved by
    `save_pretrained`; errors name the folder and what it lacks."""
    folder = require_model_folder(model_dir)
    with quiet_transformers():
        model = MEmoBertForPrompt.from_pretrained(str(folder))
    processor = _matching_processor(folder, model.config)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model.to(device).eval(), processor


def _matching_processor(folder: Path, config) -> MEmoBertProcessor:
    """The folder's processor, checked against the model's label words and their token ids."""
    require_label_words(config, folder)
    processor = MEmoBertProcessor.from_pretrained(str(folder))
    if processor.label_words != list(config.label_words):
        raise ValueError(f"{folder}: the processor's label words {processor.label_words} differ from the "
                         f"model's {config.label_words}; save the processor made from this model's config.")
    if list(processor.label_token_ids) != list(config.label_token_ids):
        raise ValueError(f"{folder}: the tokenizer maps the label words to ids {processor.label_token_ids} but the "
                         f"model scores ids {config.label_token_ids}; save the tokenizer the model was trained "
                         "with beside it.")
    return processor


def _load_onnx_model(folder: Path) -> ONNXEmotionModel:
    """The folder's exported model (`ONNXEmotionModel.from_pretrained(folder)`); errors name the export command."""
    path = folder / ONNX_FILE_NAME
    try:
        return ONNXEmotionModel.from_pretrained(folder)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"backend='onnx': {error} Here: memobert export-onnx {folder} {path} (or python -m memobert.onnx_export; "
            "needs pip install onnx onnxscript), or use backend='torch'."
        ) from error
    except ImportError as error:
        raise ImportError(f"backend='onnx' needs onnxruntime ({error}): pip install onnxruntime, or use "
                          "backend='torch'.") from error


def check_feature_sizes(model: EmotionModel | MEmoBertForPrompt, pipeline: Pipeline,
                        model_dir: str | os.PathLike = "the model") -> None:
    """Raise `ValueError` when the pipeline's extractors do not give the model's visual/acoustic feature sizes."""
    config, cfg = model.config, pipeline.config
    visual, acoustic = pipeline.face_extractor.feature_dim, pipeline.acoustic_extractor.feature_dim
    if (config.visual_dim, config.acoustic_dim) == (visual, acoustic):
        return
    raise ValueError(
        f"The model in {model_dir} expects visual_dim={config.visual_dim} and acoustic_dim={config.acoustic_dim}, but "
        f"the preprocessing pipeline gives visual features of size {visual} (face_extractor={cfg.face_extractor!r}) "
        f"and acoustic features of size {acoustic} (acoustic_extractor={cfg.acoustic_extractor!r}). Fix: use the "
        "extractors of the corpus the model was trained on (its corpus.json lists them: --face-extractor, "
        "--acoustic-extractor; a DenseNet FER+ checkpoint gives 342, facebook/wav2vec2-base gives 768, whisper_ct2 gives 384), or a model "
        f"trained on {visual}/{acoustic}-d features."
    )


# ----------------------------------------------------------------------------------------------------------------------
# The recognizer
# ----------------------------------------------------------------------------------------------------------------------


class EmotionRecognizer:
    """
    The preprocessing pipeline and a prompt model, loaded once: `recognizer(video, transcript=None)` gives the video's
    `UtteranceEmotion`s (in time order); `recognizer([video, ...])` or `recognizer.predict_many(videos)` gives one
    `VideoEmotions` per video, a failed video recorded with its reason while the others go on.

    Build it with `from_pretrained`, or from parts: `EmotionRecognizer(model, processor, pipeline)` where `model` is
    any `EmotionModel` (`TorchEmotionModel(MEmoBertForPrompt)`, `ONNXEmotionModel`, ...).
    """

    def __init__(self, model: EmotionModel, processor: MEmoBertProcessor, pipeline: Pipeline, *,
                 batch_size: int = 16, model_dir: str | os.PathLike = "the model", backend: str = "torch"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        check_feature_sizes(model, pipeline, model_dir)
        self.model, self.processor, self.pipeline = model, processor, pipeline
        self.batch_size, self.model_dir, self.backend = batch_size, str(model_dir), backend

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        *,
        pipeline_config: PipelineConfig | None = None,
        pipeline: Pipeline | None = None,
        device: str | torch.device | None = None,
        backend: str = "torch",
        batch_size: int = 16,
    ) -> EmotionRecognizer:
        """
        The model and processor saved in `model_dir` (a prompt-tuned `MEmoBertForPrompt`; with backend="onnx" its
        exported `model_dir/model.onnx` or only .onnx file, the processor still from the folder) and the pipeline of
        `pipeline_config` (default `PipelineConfig.keep_every_utterance()`: every utterance kept), or `pipeline` (built
        stages, reused). `device`: the torch model's device (default cuda when available; the ONNX model runs on
        onnxruntime's CPU provider; the pipeline's extractors follow `pipeline_config.device`). `batch_size`:
        utterances per model call. Errors name the folder and the fix.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}.")
        if pipeline is not None and pipeline_config is not None:
            raise ValueError("Give pipeline_config or a built pipeline, not both.")
        folder = require_model_folder(model_dir)
        if backend == "torch":
            model, processor = load_prompt_model(folder, device)
            emotion_model: EmotionModel = TorchEmotionModel(model)
        else:
            emotion_model = _load_onnx_model(folder)
            processor = _matching_processor(folder, emotion_model.config)
        pipeline = pipeline or Pipeline(pipeline_config or PipelineConfig.keep_every_utterance())
        return cls(emotion_model, processor, pipeline, batch_size=batch_size, model_dir=folder, backend=backend)

    @property
    def label_words(self) -> list[str]:
        return list(self.model.config.label_words)

    # -- calls -------------------------------------------------------------------------------------------------------

    def __call__(self, video, transcript=None, *, batch_size: int | None = None, progress: bool = True):
        """One video (a path) -> its `UtteranceEmotion`s; a list of videos -> `predict_many`."""
        if isinstance(video, (str, os.PathLike)):
            return self.predict(video, transcript, batch_size=batch_size)
        return self.predict_many(video, transcript, batch_size=batch_size, progress=progress)

    def predict(self, video: str | os.PathLike, transcript: str | os.PathLike | None = None, *,
                batch_size: int | None = None) -> list[UtteranceEmotion]:
        """
        Every utterance of `video`, in time order, predicted or with the reason it was not. `transcript`: an
        .srt/.vtt/.ass or a CSV manifest (its rows of this video); default the sidecar .srt/.vtt, the embedded
        subtitles, else ASR (per the pipeline's `transcribe`). A missing video is `FileNotFoundError`; an unreadable
        video or transcript is `ValueError`.
        """
        video = _existing_video(video)
        rows, records = self.pipeline.process(_work_item(video, transcript))
        broken = [r for r in records if r["status"] == "failed" and not r["utterance_id"]]
        if broken:
            hint = "" if transcript is not None else " (give a transcript with --transcript file.srt|vtt|csv)"
            raise ValueError(f"{video}: {broken[0]['reason']}{hint}")
        probabilities = self.score_rows(rows, batch_size=batch_size)
        words = self.label_words
        by_id = {row[schema.UTTERANCE_ID]: row for row in rows}
        out = []
        for record in records:
            utterance_id = record["utterance_id"]
            row, p = by_id.get(utterance_id), probabilities.get(utterance_id)
            out.append(UtteranceEmotion(
                utterance_id=utterance_id,
                start=_number(row[schema.START] if row else record["start"]),
                end=_number(row[schema.END] if row else record["end"]),
                text=row[schema.TEXT] if row else "",
                speaker=row[schema.SPEAKER] if row else "",
                emotion=words[int(np.argmax(p))] if p is not None else "",
                probabilities={w: float(x) for w, x in zip(words, p)} if p is not None else {},
                status=record["status"],
                reason=record["reason"],
                visual_frames=int(record["visual_frames"]),
                acoustic_frames=int(record["acoustic_frames"]),
                speaker_score=_number(row[schema.SPEAKER_SCORE] if row else record["speaker_score"]),
                speaker_rule=str(record.get("speaker_rule") or ""),
                modalities=_modalities(row) if p is not None else (),
            ))
        out.sort(key=lambda r: (r.start is None, r.start or 0.0, r.utterance_id))
        return out

    def predict_many(self, videos: Iterable[str | os.PathLike],
                     transcripts: str | os.PathLike | Sequence[str | os.PathLike | None] | None = None, *,
                     batch_size: int | None = None, progress: bool = True) -> list[VideoEmotions]:
        """
        One `VideoEmotions` per video, in order, under a tqdm bar (`progress`). `transcripts`: None (each video's own),
        one file for every video (a CSV manifest naming them), or one per video (None entries allowed). A video that
        fails (missing, unreadable, no transcript, ...) is recorded with status "failed" and its reason (an
        unexpected error also with its traceback in `detail`); the others go on.
        """
        from tqdm.auto import tqdm

        videos = [str(v) for v in videos]
        if transcripts is None or isinstance(transcripts, (str, os.PathLike)):
            if transcripts is not None and len(videos) > 1 and Path(transcripts).suffix.lower() != ".csv":
                raise ValueError(f"One transcript {transcripts} for {len(videos)} videos: give one transcript per "
                                 "video, or a CSV manifest (video,start,end,text) naming every video.")
            per_video = [transcripts] * len(videos)
        else:
            per_video = list(transcripts)
            if len(per_video) != len(videos):
                raise ValueError(f"{len(videos)} videos but {len(per_video)} transcripts: give one transcript per "
                                 "video (None for a video's own), or one CSV manifest for all.")
        results = []
        bar = tqdm(list(zip(videos, per_video)), desc="videos", unit="video", disable=not progress)
        for video, transcript in bar:
            try:
                utterances = self.predict(video, transcript, batch_size=batch_size)
            except Exception as error:  # noqa: BLE001  a batch job records the failure of an item and goes on
                if isinstance(error, _expected_errors()):
                    results.append(VideoEmotions(video, status="failed", reason=str(error)))
                else:  # a fault, not a bad input: keep its traceback
                    results.append(VideoEmotions(video, status="failed", reason=f"{type(error).__name__}: {error}",
                                                 detail=traceback.format_exc()))
            else:
                results.append(VideoEmotions(video, utterances, duration=media_duration(video)))
            bar.set_postfix(failed=sum(not r.ok for r in results))
        return results

    def score_rows(self, rows: Sequence[dict], *, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Per corpus row (by utterance id): the softmax over the label words, `batch_size` rows per model call."""
        size = max(1, batch_size or self.batch_size)
        probabilities: dict[str, np.ndarray] = {}
        for first in range(0, len(rows), size):
            batch = rows[first:first + size]
            inputs = self.processor(
                text=[row[schema.TEXT] for row in batch],
                visual=_frames(batch, schema.VISUAL_FEATS),
                acoustic=_frames(batch, schema.ACOUSTIC_FEATS),
                prompt=True,
            )
            logits = torch.as_tensor(self.model(**{k: inputs.get(k) for k in MODEL_INPUTS})).float().cpu()
            for row, p in zip(batch, torch.softmax(logits, dim=-1).numpy()):
                probabilities[row[schema.UTTERANCE_ID]] = p
        return probabilities

    def __repr__(self) -> str:
        return (f"EmotionRecognizer(model_dir={self.model_dir!r}, backend={self.backend!r}, "
                f"label_words={self.label_words}, batch_size={self.batch_size})")


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The errors of a bad input (missing or unreadable media or transcript, a missing package): a reason suffices."""
    from .preprocessing.decode import MediaError

    errors: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError, OSError, ImportError, MediaError)
    try:
        import av
    except ImportError:
        return errors
    return errors + (av.error.FFmpegError,)


def _existing_video(video: str | os.PathLike) -> Path:
    video = Path(video)
    if not video.is_file():
        raise FileNotFoundError(f"Video {video} does not exist; check the path.")
    return video


def _work_item(video: Path, transcript: str | os.PathLike | None) -> WorkItem:
    item = WorkItem(item_id_for(str(video)), str(video))
    if transcript is None:
        return item  # the pipeline reads the sidecar .srt/.vtt or the embedded subtitles
    read = read_transcript(transcript, source=str(video), min_duration=None)
    if read.format == "csv":
        mine = [u for u in read.utterances if Path(u.source).resolve() == video.resolve()]
        if not mine:
            named = sorted({Path(u.source).name for u in read.utterances})
            raise ValueError(f"{transcript}: no row names the video {video} (its video column names {named}); "
                             "fix the video column or give an .srt/.vtt transcript.")
        item.utterances = mine
        item.skipped = [s for s in read.skipped if Path(s.source).resolve() in (video.resolve(), Path(transcript)
                                                                                 .resolve())]
    else:
        item.utterances, item.skipped = list(read.utterances), list(read.skipped)
    return item


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def media_duration(video: str | os.PathLike) -> float | None:
    """The duration (seconds) in a media file's container header; None when it does not say or cannot be read."""
    from .preprocessing.decode import MediaError, probe

    try:
        return probe(video).duration
    except (MediaError, OSError):
        return None


def _frames(rows: Sequence[dict], column: str) -> list[np.ndarray | None]:
    """A modality's frames per row (None where the row has none, so the processor pads it out)."""
    return [row[column] if len(row[column]) else None for row in rows]


def _modalities(row: dict) -> tuple[str, ...]:
    """The modalities a corpus row gives the model: text when the utterance has words (the prompt alone is not the
    utterance's text), visual / acoustic when it has at least one frame of them."""
    present = {
        "text": bool(str(row[schema.TEXT] or "").strip()),
        "visual": len(row[schema.VISUAL_FEATS]) > 0,
        "acoustic": len(row[schema.ACOUSTIC_FEATS]) > 0,
    }
    return tuple(m for m in schema.MODALITIES if present[m])


# ----------------------------------------------------------------------------------------------------------------------
# One call, and the files
# ----------------------------------------------------------------------------------------------------------------------


def predict_video(
    video: str | os.PathLike,
    model_dir: str | os.PathLike,
    transcript: str | os.PathLike | None = None,
    *,
    config: PipelineConfig | None = None,
    pipeline: Pipeline | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
) -> list[dict]:
    """
    `EmotionRecognizer.from_pretrained(model_dir, ...)(video, transcript)` as dicts (`UtteranceEmotion.to_dict`): per
    utterance of `video` (in time order): utterance_id, start, end, text, speaker, emotion (a label word; "" when not
    predicted), probabilities ({label word: p}, summing to 1; {} when not predicted), status ("ok", "skipped",
    "failed"), reason, visual_frames, acoustic_frames, speaker_score, speaker_rule, modalities. `config` defaults to
    `PipelineConfig.keep_every_utterance()` (every utterance kept); `pipeline` reuses built stages. A missing video
    is `FileNotFoundError`; an unreadable video or transcript raises `ValueError`. For several videos, build the
    recognizer once.
    """
    video = _existing_video(video)
    recognizer = EmotionRecognizer.from_pretrained(model_dir, pipeline_config=config if pipeline is None else None,
                                                   pipeline=pipeline, device=device, batch_size=batch_size)
    return [u.to_dict() for u in recognizer.predict(video, transcript)]


def _as_dict(prediction: UtteranceEmotion | Mapping) -> dict:
    return prediction.to_dict() if isinstance(prediction, UtteranceEmotion) else dict(prediction)


def write_predictions(predictions: Sequence[UtteranceEmotion | dict], path: str | os.PathLike) -> Path:
    """Write a video's results (`UtteranceEmotion`s or their dicts) as CSV (one `prob_<word>` column per label word)
    or JSON, by the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"{path}: write predictions to a .csv or a .json file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        path.write_text(json.dumps([_as_dict(p) for p in predictions], indent=1, ensure_ascii=False),
                        encoding="utf-8")
        return path
    with open(path, "w", newline="", encoding="utf-8") as handle:
        write_predictions_csv(predictions, handle)
    return path


def write_predictions_csv(predictions: Sequence[UtteranceEmotion | dict], handle: TextIO) -> None:
    """A video's results as CSV on an open text handle (e.g. sys.stdout); modalities joined by "+"."""
    predictions = [_as_dict(p) for p in predictions]
    words = list(dict.fromkeys(w for p in predictions for w in p["probabilities"]))
    writer = csv.DictWriter(handle, fieldnames=[*PREDICTION_FIELDS, *(f"prob_{w}" for w in words)])
    writer.writeheader()
    for p in predictions:
        cells = {k: p.get(k) for k in PREDICTION_FIELDS}
        cells["modalities"] = "+".join(cells["modalities"] or ())
        writer.writerow({**{k: ("" if v is None else v) for k, v in cells.items()},
                         **{f"prob_{w}": f"{x:.6f}" for w, x in p["probabilities"].items()}})
