"""Helpers of the test suite that are not fixtures: media and dataset-release writers, tiny corpora and configs.

The fixtures live in the conftest.py files; test modules import these helpers with `from tests.support... import`."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root: its scripts (pretrain/run.py, ...) and configs
