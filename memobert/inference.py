"""Emotion of every utterance of a video: the preprocessing pipeline + a trained `MEmoBertForPrompt`.

`predict_video(video, model_dir, transcript=None)` cuts the video into the utterances of its transcript (a given
.srt/.vtt/.csv, else the sidecar .srt/.vtt or the embedded subtitles, as the pipeline reads them), extracts the face,
speech and text features with the same `Pipeline` that builds corpora, builds the prompt "<text> i am [MASK] ." with the
model's `MEmoBertProcessor` and returns, per utterance, its times, text, the predicted emotion (the label word with the
highest score) and the softmax over the label words' [MASK] logits. Utterances the pipeline skips or cannot read are
returned too, with their status and reason and no prediction. `write_predictions` writes them as CSV or JSON.

The pipeline's extractors must give the feature sizes the model was trained on (`config.visual_dim`,
`config.acoustic_dim`); a mismatch is an error naming both sizes and the fix.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from .data import schema
from .modeling_memobert import MEmoBertForPrompt, quiet_transformers
from .preprocessing.pipeline import Pipeline, PipelineConfig, WorkItem, item_id_for
from .preprocessing.transcripts import read_transcript
from .processing_memobert import MEmoBertProcessor

__all__ = [
    "PREDICTION_FIELDS",
    "load_prompt_model",
    "check_feature_sizes",
    "predict_video",
    "write_predictions",
    "write_predictions_csv",
]

PREDICTION_FIELDS = ("utterance_id", "start", "end", "text", "speaker", "emotion", "status", "reason",
                     "visual_frames", "acoustic_frames")


def load_prompt_model(model_dir: str | os.PathLike, device: str | torch.device | None = None
                      ) -> tuple[MEmoBertForPrompt, MEmoBertProcessor]:
    """A trained `MEmoBertForPrompt` (eval mode, on `device`) and its processor from a folder saved by
    `save_pretrained`; errors name the folder and what it lacks."""
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no config.json: give the folder a prompt-tuned MEmoBertForPrompt was "
                                "saved to (model.save_pretrained(dir) and processor.save_pretrained(dir)).")
    with quiet_transformers():
        model = MEmoBertForPrompt.from_pretrained(str(folder))
    if model.config.label_token_ids is None:
        raise ValueError(f"The model in {folder} has no label words (config.label_token_ids is empty), so it cannot "
                         "score emotions: use a prompt-tuned model, or call model.set_label_words(words, tokenizer) "
                         "and save it again.")
    processor = MEmoBertProcessor.from_pretrained(str(folder))
    if processor.label_words != list(model.config.label_words):
        raise ValueError(f"{folder}: the processor's label words {processor.label_words} differ from the "
                         f"model's {model.config.label_words}; save the processor made from this model's config.")
    if list(processor.label_token_ids) != list(model.config.label_token_ids):
        raise ValueError(f"{folder}: the tokenizer maps the label words to ids {processor.label_token_ids} but the "
                         f"model scores ids {model.config.label_token_ids}; save the tokenizer the model was trained "
                         "with beside it.")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model.to(device).eval(), processor


def check_feature_sizes(model: MEmoBertForPrompt, pipeline: Pipeline, model_dir: str | os.PathLike = "the model"
                        ) -> None:
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
    Per utterance of `video` (in time order): utterance_id, start, end, text, speaker, emotion (a label word; ""
    when not predicted), probabilities ({label word: p}, summing to 1; {} when not predicted), status ("ok",
    "skipped", "failed"), reason, visual_frames, acoustic_frames. `config` defaults to
    `PipelineConfig.keep_every_utterance()` (every utterance kept); `pipeline` reuses built stages. An unreadable video or transcript raises `ValueError`.
    """
    video = Path(video)
    if not video.is_file():
        raise FileNotFoundError(f"Video {video} does not exist; check the path.")
    model, processor = load_prompt_model(model_dir, device)
    pipeline = pipeline or Pipeline(config or PipelineConfig.keep_every_utterance())
    check_feature_sizes(model, pipeline, model_dir)
    rows, records = pipeline.process(_work_item(video, transcript))
    broken = [r for r in records if r["status"] == "failed" and not r["utterance_id"]]
    if broken:
        hint = "" if transcript is not None else " (give a transcript with --transcript file.srt|vtt|csv)"
        raise ValueError(f"{video}: {broken[0]['reason']}{hint}")

    words = list(model.config.label_words)
    probabilities: dict[str, np.ndarray] = {}
    for first in range(0, len(rows), max(1, batch_size)):
        batch = rows[first:first + batch_size]
        inputs = processor(
            text=[row[schema.TEXT] for row in batch],
            visual=_frames(batch, schema.VISUAL_FEATS),
            acoustic=_frames(batch, schema.ACOUSTIC_FEATS),
            prompt=True,
        ).to(model.device)
        with torch.no_grad():
            logits = model(**inputs).logits.float()
        for row, p in zip(batch, torch.softmax(logits, dim=-1).cpu().numpy()):
            probabilities[row[schema.UTTERANCE_ID]] = p

    by_id = {row[schema.UTTERANCE_ID]: row for row in rows}
    out = []
    for record in records:
        utterance_id = record["utterance_id"]
        row, p = by_id.get(utterance_id), probabilities.get(utterance_id)
        out.append({
            "utterance_id": utterance_id,
            "start": _number(row[schema.START] if row else record["start"]),
            "end": _number(row[schema.END] if row else record["end"]),
            "text": row[schema.TEXT] if row else "",
            "speaker": row[schema.SPEAKER] if row else "",
            "emotion": words[int(np.argmax(p))] if p is not None else "",
            "probabilities": {w: float(x) for w, x in zip(words, p)} if p is not None else {},
            "status": record["status"],
            "reason": record["reason"],
            "visual_frames": int(record["visual_frames"]),
            "acoustic_frames": int(record["acoustic_frames"]),
        })
    out.sort(key=lambda r: (r["start"] is None, r["start"] or 0.0, r["utterance_id"]))
    return out


def _frames(rows: Sequence[dict], column: str) -> list[np.ndarray | None]:
    """A modality's frames per row (None where the row has none, so the processor pads it out)."""
    return [row[column] if len(row[column]) else None for row in rows]


def write_predictions(predictions: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write `predict_video`'s output as CSV (one `prob_<word>` column per label word) or JSON, by the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"{path}: write predictions to a .csv or a .json file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        path.write_text(json.dumps(list(predictions), indent=1, ensure_ascii=False), encoding="utf-8")
        return path
    with open(path, "w", newline="", encoding="utf-8") as handle:
        write_predictions_csv(predictions, handle)
    return path


def write_predictions_csv(predictions: Sequence[dict], handle: TextIO) -> None:
    """`predict_video`'s output as CSV on an open text handle (e.g. sys.stdout)."""
    words = list(dict.fromkeys(w for p in predictions for w in p["probabilities"]))
    writer = csv.DictWriter(handle, fieldnames=[*PREDICTION_FIELDS, *(f"prob_{w}" for w in words)])
    writer.writeheader()
    for p in predictions:
        writer.writerow({**{k: ("" if p[k] is None else p[k]) for k in PREDICTION_FIELDS},
                         **{f"prob_{w}": f"{x:.6f}" for w, x in p["probabilities"].items()}})
