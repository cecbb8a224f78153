"""`baselines/seed_iv.py`: the EEG encoder on a tiny release written in the SEED-IV feature layout, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from memobert.baselines.face_eeg import SEED_IV_CLASSES, read_seed_iv
from memobert.baselines.seed_iv import SeedIVArguments, main, seed_iv_argument_parser, seed_iv_folds
from memobert.evaluation.metrics import METRICS, classification_metrics
from tests.support import REPO
from tests.support.corpora import read_csv
from tests.support.releases import write_seed_iv_release

SUBJECTS, SESSIONS = (1, 2, 3), (1, 2)


def check_outputs(out: Path, expected_folds: list[str], windows: int, setting: str = "eeg_mlp") -> dict:
    """results.md / results.json / predictions.csv agree: every metric is in [0, 1] and recomputed from the
    predictions; the summary is the mean over the folds."""
    results = json.loads((out / "results.json").read_text())
    assert [f["fold"] for f in results["folds"]] == expected_folds
    predictions = read_csv(out / "predictions.csv")
    assert len(predictions) == windows  # each window tested once, in its held-out fold
    for fold in results["folds"]:
        rows = [p for p in predictions if p["fold"] == fold["fold"]]
        assert len(rows) == fold["test_windows"]
        labels = [SEED_IV_CLASSES.index(p["label"]) for p in rows]
        predicted = [SEED_IV_CLASSES.index(p["prediction"]) for p in rows]
        assert predicted == [int(np.argmax([float(p[f"p_{c}"]) for c in SEED_IV_CLASSES])) for p in rows]
        recomputed = classification_metrics(labels, predicted, len(SEED_IV_CLASSES))
        for metric in METRICS:
            assert 0.0 <= fold["metrics"][metric] <= 1.0
            assert fold["metrics"][metric] == pytest.approx(recomputed[metric])
        assert fold["metrics"]["confusion"] == recomputed["confusion"]
    (summary,) = results["summary"]
    assert summary["n"] == len(expected_folds)
    for metric in ("wa", "uar"):
        assert summary[f"{metric}_mean"] == pytest.approx(np.mean([f["metrics"][metric] for f in results["folds"]]))
    table = (out / "results.md").read_text()
    assert f"| {setting} | EEG | " in table and all(f"| {name} |" in table for name in expected_folds)
    return results


def test_seed_iv_script_runs_leave_one_subject_out_end_to_end(tmp_path):
    windows = write_seed_iv_release(tmp_path / "SEED_IV", subjects=SUBJECTS, sessions=SESSIONS)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(REPO / "baselines" / "seed_iv.py"), "--data_dir", str(tmp_path / "SEED_IV"),
         "--output_dir", str(out), "--epochs", "15", "--hidden_size", "32", "--batch_size", "32", "--device", "cpu"],
        capture_output=True, text=True, cwd=REPO, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SEED-IV loso folds" in done.stderr  # the progress bar over the folds
    assert "| eeg_mlp | EEG |" in done.stdout
    results = check_outputs(out, ["subject01", "subject02", "subject03"], windows)
    for number, fold in enumerate(results["folds"], start=1):  # subject-independent: the test subject never trains
        assert fold["test_subjects"] == [number] and number not in fold["train_subjects"]
        assert fold["test_sessions"] == list(SESSIONS)
    assert results["summary"][0]["uar_mean"] > 0.5  # the emotion shift is learnt across subjects (chance: 0.25)


def test_seed_iv_session_held_out_folds_and_options(tmp_path, capsys):
    windows = write_seed_iv_release(tmp_path, subjects=(4, 5), sessions=SESSIONS)
    out = tmp_path / "out"
    main(["--data_dir", str(tmp_path / "eeg_feature_smooth"), "--output_dir", str(out), "--folds", "session",
          "--eeg_encoder", "cnn", "--hidden_size", "8", "--epochs", "2", "--no_progress_bar", "--device", "cpu"])
    results = json.loads((out / "results.json").read_text())
    assert results["arguments"]["folds"] == "session" and results["arguments"]["eeg_encoder"] == "cnn"
    for session, fold in zip(SESSIONS, results["folds"]):
        assert fold["fold"] == f"session{session}" and fold["test_sessions"] == [session]
        assert fold["train_subjects"] == fold["test_subjects"] == [4, 5]  # cross-session: the subjects are seen
    check_outputs(out, ["session1", "session2"], windows, setting="eeg_cnn")
    assert "| eeg_cnn | EEG |" in capsys.readouterr().out

    with pytest.raises(SystemExit, match="folds 'nope' is unknown"):
        main(["--data_dir", str(tmp_path), "--folds", "nope"])
    with pytest.raises(SystemExit, match="no session folders"):
        main(["--data_dir", str(tmp_path / "missing"), "--output_dir", str(out)])
    with pytest.raises(ValueError, match="at least 2 subjects"):
        seed_iv_folds(read_seed_iv(tmp_path, subjects=[4]), "loso")


def test_seed_iv_help_describes_every_option():
    text = " ".join(seed_iv_argument_parser("baselines/seed_iv.py").format_help().split())
    for f in fields(SeedIVArguments):
        assert f"--{f.name}" in text
        assert " ".join(f.metadata["help"].split()) in text
