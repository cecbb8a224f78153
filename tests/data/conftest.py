"""Fixtures of the dataset reader tests: tiny IEMOCAP and MSP-IMPROV releases in their real layouts, written once per
session (read-only: a test that changes a release writes its own copy). The RAVDESS, CREMA-D, MELD and EmoDB ones
are in tests/conftest.py (the preprocessing tests use them too)."""

from pathlib import Path

import pytest

from tests.support.releases import write_iemocap, write_msp_improv


@pytest.fixture(scope="session")
def iemocap_root(tmp_path_factory) -> Path:
    return write_iemocap(tmp_path_factory.mktemp("iemocap"))


@pytest.fixture(scope="session")
def msp_root(tmp_path_factory) -> Path:
    return write_msp_improv(tmp_path_factory.mktemp("msp"))


@pytest.fixture(scope="session")
def iemocap(iemocap_root):
    """The IEMOCAP release read with the default options."""
    from memobert.data.iemocap import load_iemocap

    return load_iemocap(iemocap_root)


@pytest.fixture(scope="session")
def msp(msp_root):
    """The MSP-IMPROV release read with the default options."""
    from memobert.data.msp_improv import load_msp_improv

    return load_msp_improv(msp_root)

