"""`RunFolder` writes a fold's files inside its run folder only: a fold name with a path in it (a folds file's own
name) is a ValueError naming the fold, before anything is written."""

import json

import pytest

from memobert.data.folds import Fold, make_folds
from memobert.data.labels import EmotionLabels
from memobert.downstream.results import RUNS, RunFolder


def _fold(name: str) -> Fold:
    return Fold(name=name, train_speakers=frozenset({"a"}), validation_speakers=frozenset({"b"}),
                test_speakers=frozenset({"c"}), train=(0,), validation=(1,), test=(2,))


@pytest.fixture()
def run_folder(tmp_path):
    folder = RunFolder(tmp_path / "out", "run", EmotionLabels(["anger", "happiness", "neutral", "sadness"]))
    folder.start({"name": "run"})
    return folder


@pytest.mark.parametrize("name", ["../../evil", "a/b", "../run2/x"])
def test_a_fold_name_leading_outside_the_run_folder_is_refused(run_folder, tmp_path, name):
    with pytest.raises(ValueError, match="Fold name") as error:
        run_folder.model_folder(_fold(name), 0)
    assert repr(name) in str(error.value)
    with pytest.raises(ValueError, match="Fold name") as error:
        run_folder.add({"fold": name, "seed": 0}, [])
    assert repr(name) in str(error.value)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "out/run/config.json", "out/run/predictions.csv"]


def test_folds_of_evil_speakers_are_written_inside_the_run_folder(run_folder, tmp_path):
    folds = make_folds("leave_one_speaker_out", ["../../evil", "a/b", "ok"])
    for fold in folds:
        assert run_folder.model_folder(fold, 1).parent == run_folder.path / "models"
        run_folder.add({"fold": fold.name, "seed": 1}, [])
    written = sorted((run_folder.path / RUNS).iterdir())
    assert [p.name for p in written] == sorted(f"{f.name}_seed1.json" for f in folds)
    assert json.loads(written[0].read_text())["seed"] == 1
    assert not (tmp_path / "evil_seed1.json").exists() and not list(tmp_path.parent.glob("evil*"))


def test_ordinary_fold_names_keep_their_paths(run_folder):
    assert run_folder.model_folder(_fold("fold01_Ses01F"), 2) == run_folder.path / "models" / "fold01_Ses01F_seed2"
