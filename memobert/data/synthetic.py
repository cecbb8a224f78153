"""Random corpus rows in the corpus schema, for tests and benchmarks of the training machinery (not for results)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import schema
from .corpus import write_shard


def random_corpus_rows(
    num_rows: int,
    seed: int = 0,
    visual_dim: int = 342,
    acoustic_dim: int = 768,
    num_face_classes: int = 8,
    text_pieces: tuple[int, int] = (3, 28),
    visual_frames: tuple[int, int] = (10, 36),
    acoustic_frames: tuple[int, int] = (10, 64),
    missing_face_rate: float = 0.1,
    token_range: tuple[int, int] = (2000, 8000),
) -> list[dict]:
    """
    Rows with the schema's columns and realistic lengths (uniform in the given ranges); a share of rows has no face.
    Words are 1-3 pieces long, so whole-word masking has something to group.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(num_rows):
        num_pieces = int(rng.integers(*text_pieces, endpoint=True))
        word_ids, word = [], 0
        while len(word_ids) < num_pieces:
            word_ids.extend([word] * int(rng.integers(1, 4)))
            word += 1
        num_faces = 0 if rng.random() < missing_face_rate else int(rng.integers(*visual_frames, endpoint=True))
        num_acoustic = int(rng.integers(*acoustic_frames, endpoint=True))
        logits = rng.standard_normal((num_faces, num_face_classes))
        soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        rows.append(
            {
                schema.UTTERANCE_ID: f"synthetic_{seed}_{index:06d}",
                schema.SOURCE: f"synthetic_{seed}",
                schema.START: float(index),
                schema.END: float(index) + 2.0,
                schema.TEXT: "",
                schema.INPUT_IDS: rng.integers(*token_range, size=num_pieces).tolist(),
                schema.WORD_IDS: word_ids[:num_pieces],
                schema.VISUAL_FEATS: rng.standard_normal((num_faces, visual_dim)).astype(np.float16),
                schema.FACE_SOFT_LABELS: soft.astype(np.float16),
                schema.ACOUSTIC_FEATS: rng.standard_normal((num_acoustic, acoustic_dim)).astype(np.float16),
                schema.SPEAKER_SCORE: float("nan") if num_faces == 0 else float(rng.random()),
                schema.SPEAKER: "",
                schema.LABEL: "",
                schema.SESSION: "",
            }
        )
    return rows


def write_random_corpus(
    out_dir: str | Path, num_rows: int, rows_per_shard: int = 256, seed: int = 0, **row_options
) -> list[Path]:
    """A folder of Parquet shards of random rows (see `random_corpus_rows`)."""
    rows = random_corpus_rows(num_rows, seed=seed, **row_options)
    features = schema.corpus_features(
        row_options.get("visual_dim", 342), row_options.get("acoustic_dim", 768), row_options.get("num_face_classes", 8)
    )
    return [
        write_shard(rows[start : start + rows_per_shard], Path(out_dir) / f"shard-{i:05d}.parquet", features)
        for i, start in enumerate(range(0, num_rows, rows_per_shard))
    ]
