"""Tiny corpora: the labelled corpus of the downstream tests (rows in the corpus schema, a saved tiny MEmoBERT and text
BERT), the downstream runner's tiny arguments, and readers of what the pipeline and the runners write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from memobert.data import schema

DEMO_LABELS = ["anger", "happy", "neutral", "sad"]  # the demo corpus' label strings (label words)
CLASSES = ["anger", "happiness", "neutral", "sadness"]
SPEAKERS = [f"spk{i:02d}" for i in range(9)]
ROWS_PER_SPEAKER = 8


def corpus_rows(tokenizer, speakers=SPEAKERS, label_names=DEMO_LABELS, seed=0, sessions=None) -> list[dict]:
    """Rows in the corpus schema whose label is learnable a little: a label-dependent shift in both frame features,
    and the label word in the text of half the rows. Some rows have no face. `sessions`: {speaker: session}."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, speaker in enumerate(speakers):
        for j in range(ROWS_PER_SPEAKER):
            label = (s + j) % len(label_names)
            num_visual = 0 if rng.random() < 0.15 else int(rng.integers(3, 14))
            num_acoustic = int(rng.integers(3, 18))
            visual = rng.standard_normal((num_visual, 6))
            visual[:, label % 4] += 3.0
            acoustic = rng.standard_normal((num_acoustic, 5))
            acoustic[:, label % 4] += 3.0
            text = f"well it was {['a long', 'an odd', 'a quiet'][j % 3]} day"
            if rng.random() < 0.5:
                text += f" and i feel {DEMO_LABELS[label % 4]}"
            encoding = tokenizer(text, add_special_tokens=False)
            rows.append({
                schema.UTTERANCE_ID: f"{speaker}_{j:02d}",
                schema.SOURCE: f"video_{speaker}",
                schema.START: float(j),
                schema.END: float(j) + 1.5,
                schema.TEXT: text,
                schema.INPUT_IDS: encoding["input_ids"],
                schema.WORD_IDS: encoding.word_ids(),
                schema.VISUAL_FEATS: visual.astype(np.float16),
                schema.FACE_SOFT_LABELS: np.full((num_visual, 8), 1 / 8, dtype=np.float16),
                schema.ACOUSTIC_FEATS: acoustic.astype(np.float16),
                schema.SPEAKER_SCORE: 0.5,
                schema.SPEAKER: speaker,
                schema.LABEL: label_names[label],
                schema.SESSION: (sessions or {}).get(speaker, ""),
            })
    return rows


def write_corpus(folder: Path, rows: list[dict]) -> Path:
    from memobert.data.corpus import write_shard

    write_shard(rows, folder / "shard-00000.parquet", schema.corpus_features(6, 5, 8))
    return folder


def tiny_args(fixture: dict, output_dir: Path, **overrides):
    """DownstreamArguments of a short run on the `downstream_corpus` fixture (one fold, one seed, a few steps)."""
    from memobert.downstream import DownstreamArguments

    values = dict(
        setting="prompt",
        pretrained_model=str(fixture["pretrained"]),
        bert=str(fixture["bert"]),
        corpus=str(fixture["corpus"]),
        folds="speaker_kfold:3",
        only_folds=[1],
        seeds=[1],
        max_steps=6,
        eval_steps=2,
        learning_rate=1e-2,
        warmup_steps=1,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        early_stopping_patience=0,
        output_dir=str(output_dir),
        progress_bar=False,
    )
    values.update(overrides)
    return DownstreamArguments(**values)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def only_run(output_dir: Path, name: str) -> dict:
    (path,) = sorted((output_dir / name / "runs").glob("*.json"))
    return json.loads(path.read_text())


def read_corpus(folder: Path) -> dict[str, dict]:
    """The rows of a corpus folder the pipeline wrote (`shards/*.parquet`), by utterance id."""
    import datasets

    shards = sorted(str(p) for p in (folder / "shards").glob("*.parquet"))
    rows = datasets.load_dataset("parquet", data_files=shards, split="train").with_format("numpy")
    return {str(row[schema.UTTERANCE_ID]): row for row in rows}
