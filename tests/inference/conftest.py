"""Fixtures of the prediction tests: a tiny saved MEmoBertForPrompt (once per session) and a demo clip. The pipeline of
prediction is `keep_every_pipeline` (tests/conftest.py)."""

from pathlib import Path

import pytest

from tests.support.models import save_prompt_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tokenizer) -> Path:
    return save_prompt_model(tmp_path_factory.mktemp("model"), tokenizer)


@pytest.fixture(scope="session")
def clip(demo_clips):
    """The first demo clip (mp4 + sidecar srt): two faces talking in turn."""
    return demo_clips[0]
