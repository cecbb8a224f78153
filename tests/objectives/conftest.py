"""Fixtures of the objective tests: the tiny config with room for longer frame sequences, and its collator."""

import pytest

from tests.support.models import objectives_config


@pytest.fixture(scope="module")
def config():
    return objectives_config()


@pytest.fixture(scope="module")
def collator(tokenizer, config):
    from memobert.objectives import PretrainingCollator

    return PretrainingCollator(tokenizer, config, seed=0)
