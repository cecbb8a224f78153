"""A corpus on disk: Parquet shards in `memobert.data.schema`'s columns, plus `corpus.json` beside them.

Writing (`write_shard`, atomic) and reading (`find_shards`, `read_features`, `feature_sizes`, `read_corpus_info`,
`load_shards`) live here, so the preprocessing pipeline that writes a corpus and the loops that read it agree.
`datasets`' own progress bars stay off (`quiet_datasets`): a command shows its own bars only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import schema


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """`datasets`' progress bars ("Creating parquet ...", "Generating train split ...") off inside the block."""
    from datasets.utils import logging as datasets_logging

    enabled = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            datasets_logging.enable_progress_bar()


def write_shard(rows: list[dict], path: str | os.PathLike, features) -> Path:
    """
    Writes corpus rows to one Parquet shard atomically (a temporary file renamed into place), so a reader never
    sees a half-written shard and an interrupted writer leaves nothing behind.
    """
    import datasets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    optional = schema.OPTIONAL_COLUMNS
    columns = {name: [row.get(name, optional[name]) if name in optional else row[name] for row in rows]
               for name in features}
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with quiet_datasets():
        datasets.Dataset.from_dict(columns, features=features).to_parquet(str(temporary))
    os.replace(temporary, path)
    return path


def find_shards(corpus: str | Path) -> list[str]:
    """The Parquet shards of a corpus folder (searched recursively), sorted; an error names the folder if none."""
    root = Path(corpus).expanduser()
    if root.is_file() and root.suffix == ".parquet":
        return [str(root)]
    shards = sorted(str(p) for p in root.rglob("*.parquet"))
    if not shards:
        raise FileNotFoundError(
            f"No Parquet shards under {root}; make a corpus with `memobert preprocess --input ... --output {root}`."
        )
    return shards


def read_features(shards: Sequence[str]):
    """The `datasets.Features` stored in the first shard (feature sizes are read from them)."""
    import pyarrow.parquet as pq
    from datasets import Features

    features = Features.from_arrow_schema(pq.read_schema(shards[0]))
    missing = [c for c in (schema.UTTERANCE_ID, schema.INPUT_IDS, schema.VISUAL_FEATS, schema.ACOUSTIC_FEATS)
               if c not in features]
    if missing:
        raise ValueError(f"{shards[0]} is not a memobert corpus shard: it lacks the columns {missing}.")
    return features


def feature_sizes(features) -> dict[str, int]:
    """`visual_dim`, `acoustic_dim` and `num_face_classes` of a corpus."""
    return {
        "visual_dim": features[schema.VISUAL_FEATS].shape[1],
        "acoustic_dim": features[schema.ACOUSTIC_FEATS].shape[1],
        "num_face_classes": features[schema.FACE_SOFT_LABELS].shape[1],
    }


def read_corpus_info(corpus: str | Path) -> dict:
    """The corpus' `corpus.json` (feature sizes, face class names, the settings that made it); {} when absent."""
    path = Path(corpus).expanduser() / schema.CORPUS_INFO_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def list_lengths(table, column: str) -> np.ndarray:
    """Items per row of a list column of an Arrow table (word pieces, frames), read from its list offsets: no data
    is copied out of the memory map; 0 for a null row. Array2D columns are an extension type over
    list<list<...>>: their storage is measured."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = [c.storage if isinstance(c, pa.ExtensionArray) else c for c in table.column(column).chunks]
    if not chunks:
        return np.zeros(0, dtype=np.int64)
    return pc.fill_null(pc.list_value_length(pa.chunked_array(chunks)), 0).to_numpy().astype(np.int64)


def load_shards(shards: Sequence[str], streaming: bool = False):
    """The shards as one `datasets` table (memory-mapped), or as a stream."""
    from datasets import load_dataset

    with quiet_datasets():
        return load_dataset("parquet", data_files=list(shards), split="train", streaming=streaming)


__all__ = ["quiet_datasets", "write_shard", "find_shards", "read_features", "feature_sizes", "read_corpus_info",
           "list_lengths", "load_shards"]
