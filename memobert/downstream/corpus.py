"""The labelled rows of a corpus for the downstream runner: features memory-mapped, one class index per kept row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import schema
from ..data.corpus import feature_sizes, find_shards, list_lengths, load_shards, read_features
from ..data.folds import Fold, make_folds
from ..data.labels import EmotionLabels
from ..training.arguments import ConfigError


@dataclass
class DownstreamCorpus:
    """The labelled rows of a corpus: memory-mapped features, class index, speaker, session and id per kept row."""

    path: str
    dataset: object  # datasets.Dataset in numpy format, kept rows only
    labels: np.ndarray  # class index per row
    speakers: list[str]
    sessions: list[str] | None  # None when the corpus has no session column
    utterance_ids: list[str]
    sizes: dict[str, int]  # visual_dim, acoustic_dim
    dropped: dict[str, int]  # raw label -> rows dropped (not one of the classes)
    modalities: str = "LVA"  # letters of the modalities at least one kept row has (L text, V frames, A frames)

    def __len__(self) -> int:
        return len(self.labels)

    def folds(self, spec: str) -> list[Fold]:
        """The folds of scheme `spec` over these rows (`memobert.data.folds.make_folds`)."""
        try:
            return make_folds(spec, self.speakers, self.sessions)
        except ValueError as error:
            raise ConfigError(f"Corpus {self.path}: {error}") from error

    def class_counts(self, classes: Sequence[str], rows: np.ndarray | None = None) -> dict[str, int]:
        """{class: rows} over `rows` (default: all rows)."""
        values = self.labels if rows is None else self.labels[rows]
        return dict(zip(classes, np.bincount(values, minlength=len(classes)).tolist()))


def load_downstream_corpus(corpus: str | Path, labels: EmotionLabels) -> DownstreamCorpus:
    """Loads the shards and keeps the rows whose label maps to a class (`EmotionLabels.class_of_label`); the others
    are counted in `dropped`."""
    shards = find_shards(corpus)
    sizes = feature_sizes(read_features(shards))
    full = load_shards(shards)
    missing = [c for c in (schema.LABEL, schema.SPEAKER, schema.TEXT) if c not in full.column_names]
    if missing:
        raise ConfigError(f"Corpus {corpus} lacks the columns {missing}; downstream training needs labelled rows.")
    raw_labels = full.data.column(schema.LABEL).to_pylist()
    classes = [labels.class_of_label(label) for label in raw_labels]
    keep = [i for i, c in enumerate(classes) if c is not None]
    dropped = dict(sorted(Counter(str(raw_labels[i]) for i, c in enumerate(classes) if c is None).items()))
    if not keep:
        found = sorted(Counter(map(str, raw_labels)))[:10]
        raise ConfigError(
            f"Corpus {corpus} has no row labelled with one of the classes {list(labels.classes)} (labels found: "
            f"{found}); label the rows (the 'label' column) or choose --classes that match them."
        )
    dataset = full.select(keep).with_format(
        "numpy", columns=[schema.TEXT, schema.VISUAL_FEATS, schema.ACOUSTIC_FEATS]
    )

    def column(name: str) -> list[str]:
        values = full.data.column(name).to_pylist()
        return [str(values[i] or "") for i in keep]

    sessions = column(schema.SESSION) if schema.SESSION in full.column_names else None
    table = full.data
    present = {
        "L": any(text.strip() for text in column(schema.TEXT)),
        "V": list_lengths(table, schema.VISUAL_FEATS)[keep].max() > 0,
        "A": list_lengths(table, schema.ACOUSTIC_FEATS)[keep].max() > 0,
    }
    return DownstreamCorpus(
        path=str(corpus),
        dataset=dataset,
        labels=np.array([labels.index(classes[i]) for i in keep], dtype=np.int64),
        speakers=column(schema.SPEAKER),
        sessions=sessions if sessions and any(sessions) else None,
        utterance_ids=column(schema.UTTERANCE_ID),
        sizes={k: sizes[k] for k in ("visual_dim", "acoustic_dim")},
        dropped=dropped,
        modalities="".join(letter for letter, found in present.items() if found),
    )


__all__ = ["DownstreamCorpus", "load_downstream_corpus"]
