"""Downstream corpora from IEMOCAP / MSP-IMPROV releases through the preprocessing pipeline, on tiny copies of both
layouts written with real media (the `iemocap_release` and `msp_improv_release` fixtures of conftest.py: demo clips,
two faces side by side, the speaker's mouth moving with its voice)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from memobert.cli import main as memobert_main
from memobert.data import schema
from memobert.preprocessing.pipeline import WorkItem, run_pipeline
from memobert.preprocessing.releases import (
    RECORDS_CSV,
    build_iemocap_corpus,
    build_msp_improv_corpus,
    iemocap_work_items,
)
from tests.support.corpora import read_corpus


def read_manifest(folder: Path) -> dict[str, dict]:
    with open(folder / "manifest.csv", encoding="utf-8") as handle:
        return {r["utterance_id"]: r for r in csv.DictReader(handle)}


# -- IEMOCAP ---------------------------------------------------------------------------------------------------------


def test_iemocap_corpus_has_one_row_per_kept_utterance_with_its_label_speaker_text_and_frames(iemocap_release,
                                                                                              iemocap_corpus):
    _, expected, (missing, missing_wav) = iemocap_release
    out, summary = iemocap_corpus
    rows = read_corpus(out)
    assert sorted(rows) == sorted(set(expected) - {missing})
    assert summary["records"] == len(expected) and summary["dropped"] == {"xxx": 2}
    assert summary["items"] == 2 and summary["processed"] == 2
    for utt, row in rows.items():
        want = expected[utt]
        assert (row[schema.LABEL], row[schema.SPEAKER], row[schema.TEXT]) == (want["label"], want["speaker"],
                                                                                want["text"])
        assert row[schema.SESSION] == want["speaker"][4]  # the session column the folds are decided from
        assert row[schema.SOURCE] == want["dialog"]
        assert row[schema.START] == pytest.approx(want["start"], abs=1e-3)
        seconds = want["end"] - want["start"]
        assert row[schema.VISUAL_FEATS].shape[1] == 128 and len(row[schema.VISUAL_FEATS]) >= 0.5 * seconds * 10
        assert 0 < row[schema.SPEAKER_SCORE] <= 1
        # The acoustic frames come from the utterance wav (60 ms frames), the text from the transcription.
        assert row[schema.ACOUSTIC_FEATS].shape == (pytest.approx(seconds / 0.06, abs=2), 80)
        assert len(row[schema.INPUT_IDS]) == len(row[schema.WORD_IDS]) > 0
    assert any(e["code"] == "exc" and rows[u][schema.LABEL] == "happiness" for u, e in expected.items() if u in rows)

    manifest = read_manifest(out)
    assert manifest[missing]["status"] == "failed"
    assert str(missing_wav) in manifest[missing]["reason"] and "not found" in manifest[missing]["reason"]
    assert all(manifest[u]["status"] == "ok" for u in rows)
    records = list(csv.DictReader(open(out / RECORDS_CSV, encoding="utf-8")))
    assert {r["utterance_id"]: (r["session"], r["gender"], r["label_code"]) for r in records} == {
        u: (e["speaker"][4], e["speaker"][-1], e["code"]) for u, e in expected.items()}
    release = json.loads((out / "release.json").read_text())
    assert release["dataset"] == "iemocap" and release["dropped"] == {"xxx": 2} and release["face"] == "active_speaker"
    corpus_info = json.loads((out / "corpus.json").read_text())
    assert corpus_info["config"]["min_duration"] == 0.0


def test_iemocap_rerun_resumes_and_changes_nothing(iemocap_release, iemocap_corpus, keep_every_pipeline):
    root, _, _ = iemocap_release
    out, _ = iemocap_corpus
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.parquet")}
    summary = build_iemocap_corpus(root, out, pipeline=keep_every_pipeline, progress=False)
    assert summary["already_done"] == 2 and summary["processed"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.parquet")} == before


def test_side_rule_searches_only_the_speakers_half(iemocap_release, keep_every_pipeline):
    """With the rule right, the speaker's face is found in its half; flipped, the half shows the still listener."""
    from memobert.data.iemocap import load_iemocap

    root, expected, (missing, _) = iemocap_release
    corpus = load_iemocap(root, sessions=[1])
    right = iemocap_work_items(corpus, face="side", markers_side="left")
    assert len(right) == 1 and right[0].face_side == {u: expected[u]["side"] for u in right[0].face_side}
    wrong = iemocap_work_items(corpus, face="side", markers_side="right")
    rows, records = keep_every_pipeline.process(right[0])
    assert len(rows) == len(corpus.records) and all(len(r[schema.VISUAL_FEATS]) > 0 for r in rows)
    rows, records = keep_every_pipeline.process(wrong[0])
    assert len(rows) == len(corpus.records)  # kept (no_speaker="keep") without face frames
    assert all(len(r[schema.VISUAL_FEATS]) == 0 for r in rows)
    assert all("kept without face frames" in r["reason"] for r in records)


def test_bad_face_rule_and_empty_release_are_clear_errors(iemocap_release, tmp_path):
    root, _, _ = iemocap_release
    with pytest.raises(ValueError, match="face must be one of"):
        build_iemocap_corpus(root, tmp_path / "x", face="middle")
    with pytest.raises(ValueError, match="no utterance of the classes"):
        build_iemocap_corpus(root, tmp_path / "x", classes=["fear"])
    with pytest.raises(FileNotFoundError, match="IEMOCAP root"):
        build_iemocap_corpus(tmp_path / "nowhere", tmp_path / "x")


# -- MSP-IMPROV ------------------------------------------------------------------------------------------------------


def test_msp_improv_corpus_from_whole_videos_and_utterance_wavs(msp_improv_release, keep_every_pipeline, tmp_path):
    root, expected, (missing, missing_wav) = msp_improv_release
    transcripts = {u: f"utterance {u[-4:].lower()}" for u in expected}
    summary = build_msp_improv_corpus(root, tmp_path, pipeline=keep_every_pipeline, progress=False,
                                      transcripts=transcripts)
    assert summary["records"] == len(expected) and summary["dropped"] == {"X": 1}
    rows = read_corpus(tmp_path)
    assert sorted(rows) == sorted(set(expected) - {missing})
    for utt, row in rows.items():
        want = expected[utt]
        assert (row[schema.LABEL], row[schema.SPEAKER], row[schema.TEXT]) == (want["label"], want["speaker"],
                                                                                transcripts[utt])
        assert row[schema.SOURCE] == f"{utt}.avi" and row[schema.START] == 0.0
        assert row[schema.SESSION] == str(int(want["speaker"][1:]))  # F01 -> session "1"
        assert row[schema.END] == pytest.approx(want["seconds"], abs=0.1)
        assert len(row[schema.VISUAL_FEATS]) > 0
        assert row[schema.ACOUSTIC_FEATS].shape == (pytest.approx(want["seconds"] / 0.06, abs=2), 80)
    manifest = read_manifest(tmp_path)
    assert manifest[missing]["status"] == "failed" and str(missing_wav) in manifest[missing]["reason"]
    with pytest.raises(ValueError, match="face must be one of"):
        build_msp_improv_corpus(root, tmp_path / "x", face="side")


def test_pipeline_accepts_ready_work_items_and_checks_the_side(keep_every_pipeline, tmp_path, demo_clips):
    from memobert.preprocessing.pipeline import frame_half

    frames = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    np.testing.assert_array_equal(frame_half(frames, "right"), frames[:, :, 3:])
    with pytest.raises(ValueError, match="left' or 'right"):
        frame_half(frames, "top")
    summary = run_pipeline([WorkItem("empty-item", str(tmp_path / "absent.avi"), [])], tmp_path / "out",
                           pipeline=keep_every_pipeline, progress=False)
    assert summary["items"] == 1 and summary["rows"] == 0


def test_prepare_command(iemocap_release, msp_improv_release, tmp_path, capsys):
    iemocap_root, iemocap_expected, _ = iemocap_release
    memobert_main(["prepare", "iemocap", "--root", str(iemocap_root), "--output", str(tmp_path / "iemocap"),
                   "--face", "side", "--sessions", "1", "--fps", "5", "--no-progress"])
    assert sorted(read_corpus(tmp_path / "iemocap")) == sorted(u for u in iemocap_expected if u.startswith("Ses01"))
    release = json.loads((tmp_path / "iemocap" / "release.json").read_text())
    assert (release["face"], release["markers_side"]) == ("side", "left")
    assert json.loads((tmp_path / "iemocap" / "corpus.json").read_text())["config"]["fps"] == 5.0

    root, expected, _ = msp_improv_release
    with pytest.raises(SystemExit) as exit_info:
        memobert_main(["prepare", "msp_improv", "--root", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")])
    assert "Evalution.txt" in str(exit_info.value.code)
    with pytest.raises(SystemExit):
        memobert_main(["prepare", "--help"])
    assert "iemocap" in capsys.readouterr().out
    memobert_main(["prepare", "msp_improv", "--root", str(root), "--output", str(tmp_path / "corpus"),
                   "--no-progress", "--scenarios", "R"])
    rows = read_corpus(tmp_path / "corpus")
    assert sorted(rows) == [u for u in expected if "-R-" in u]
    assert "rows" in capsys.readouterr().out
