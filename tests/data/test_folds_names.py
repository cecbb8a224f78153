"""Fold names are file names (the run folder writes `<fold>_seed<seed>.json` and `models/<fold>_seed<seed>/`): a
speaker or session value with a path in it gives a safe name; ordinary ids keep exactly the name they always had."""

import pytest

from memobert.data.folds import make_folds
from memobert.data.schema import safe_id

EVIL = ["../../evil", "a/b", "ok"]


def _is_plain_file_name(name: str) -> bool:
    return "/" not in name and "\\" not in name and ".." not in name and not name.startswith(".")


@pytest.mark.parametrize("spec", ["leave_one_speaker_out", "iemocap_loso_speaker", "msp_improv"])
def test_speakers_with_a_path_give_plain_fold_names(spec):
    speakers = EVIL + ["x", "y", "z"]
    sessions = ["1", "1", "2", "2", "3", "3"]
    folds = make_folds(spec, speakers, sessions if spec != "leave_one_speaker_out" else None)
    assert all(_is_plain_file_name(f.name) for f in folds), [f.name for f in folds]
    by_test = {next(iter(f.test_speakers)): f.name for f in folds}
    assert by_test["../../evil"].endswith(safe_id("../../evil")) and by_test["a/b"].endswith(safe_id("a/b"))
    assert by_test["ok"].endswith("_ok")  # the speakers themselves are kept; only the name changed
    assert len({f.name for f in folds}) == len(folds)


def test_sessions_with_a_path_give_plain_fold_names():
    folds = make_folds("iemocap_loso_session", ["s1", "s2", "s3", "s4", "s5", "s6"],
                       ["../../evil", "../../evil", "a/b", "a/b", "c", "c"])
    assert all(_is_plain_file_name(f.name) for f in folds), [f.name for f in folds]
    assert [f.name.split("_session")[0] for f in folds] == ["fold01", "fold02", "fold03"]


def test_ordinary_fold_names_stay_as_they_were():
    assert [f.name for f in make_folds("leave_one_speaker_out", ["03", "08", "1001"])] == [
        "fold01_03", "fold02_08", "fold03_1001"]
    speakers = ["Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M"]
    sessions = ["1", "1", "2", "2", "3", "3"]
    assert [f.name for f in make_folds("iemocap_loso_speaker", speakers, sessions)][:2] == [
        "fold01_Ses01F", "fold02_Ses01M"]
    assert [f.name for f in make_folds("iemocap_loso_session", speakers, sessions)] == [
        "fold01_session1", "fold02_session2", "fold03_session3"]
