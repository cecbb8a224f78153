"""Fixtures of the pretraining-loop tests."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A random corpus of 60 rows in 3 shards (visual dim 6, acoustic dim 5). Read-only."""
    from memobert.data.synthetic import write_random_corpus

    folder = tmp_path_factory.mktemp("corpus")
    write_random_corpus(folder, 60, rows_per_shard=20, seed=3, visual_dim=6, acoustic_dim=5)
    return folder
