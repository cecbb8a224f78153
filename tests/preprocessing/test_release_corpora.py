"""RAVDESS, CREMA-D, MELD and EmoDB releases -> downstream corpora through the preprocessing pipeline (resume,
manifest, bad-input rows), on tiny copies of their layouts with generated media (tests/support/real_releases.py), and
the folds the runner takes from the columns they write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from memobert.cli import main as memobert_main
from memobert.data import schema
from memobert.data.folds import make_folds
from memobert.preprocessing.releases import (
    RECORDS_CSV,
    RELEASE_FOLDS,
    build_crema_d_corpus,
    build_meld_corpus,
    build_ravdess_corpus,
)
from tests.support.corpora import read_corpus

FRAMES = pytest.approx(0.6 / 0.06, abs=2)  # log-mel frames of a 0.6 s utterance


def read_manifest(folder: Path) -> dict[str, dict]:
    with open(folder / "manifest.csv", encoding="utf-8") as handle:
        return {r["utterance_id"]: r for r in csv.DictReader(handle)}


def folds_of(rows: dict, spec: str):
    ordered = [rows[u] for u in sorted(rows)]
    return make_folds(spec, [str(r[schema.SPEAKER]) for r in ordered], [str(r[schema.SESSION]) for r in ordered])


def test_ravdess_corpus(ravdess_root, keep_every_pipeline, tmp_path):
    summary = build_ravdess_corpus(ravdess_root, tmp_path, pipeline=keep_every_pipeline, progress=False)
    assert summary["records"] == 6 and summary["dropped"] == {"02": 1} and summary["items"] == 6
    rows = read_corpus(tmp_path)
    silent = "01-05-02-01-02-03"  # video only, no wav: a face-only row (no sound: the only face is the speaker)
    assert sorted(rows) == sorted({"01-01-01-01-01-01", "01-03-02-02-01-02", "01-04-01-01-02-02",
                                   "01-04-01-02-01-03", "01-05-01-01-01-01", silent})
    manifest = read_manifest(tmp_path)
    assert manifest[silent]["status"] == "ok" and manifest[silent]["speaker_rule"] == "only_face"
    assert rows[silent][schema.ACOUSTIC_FEATS].shape == (0, 80) and len(rows[silent][schema.VISUAL_FEATS]) > 0
    for utt, row in rows.items():
        assert row[schema.SPEAKER].startswith("Actor_0") and row[schema.SESSION] == ""
        assert row[schema.TEXT] in ("Kids are talking by the door", "Dogs are sitting by the door")
        if utt != silent:
            assert row[schema.ACOUSTIC_FEATS].shape == (FRAMES, 80)
    assert rows["01-05-01-01-01-01"][schema.LABEL] == "anger"
    assert rows["01-05-01-01-01-01"][schema.SOURCE] == "01-01-05-01-01-01-01.mp4"  # audio-visual preferred
    assert rows["01-01-01-01-01-01"][schema.SOURCE] == "02-01-01-01-01-01-01.mp4"  # video only + the wav's sound
    assert rows["01-03-02-02-01-02"][schema.SOURCE] == "03-01-03-02-02-01-02.wav"  # audio only
    for utt in ("01-05-01-01-01-01", "01-01-01-01-01-01", "01-04-01-01-02-02"):
        assert len(rows[utt][schema.VISUAL_FEATS]) > 0, utt  # the face photo is found
    assert len(rows["01-03-02-02-01-02"][schema.VISUAL_FEATS]) == 0
    release = json.loads((tmp_path / "release.json").read_text())
    assert release["dataset"] == "ravdess" and release["folds"] == RELEASE_FOLDS["ravdess"]
    with open(tmp_path / RECORDS_CSV, encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert {r["utterance_id"]: r["video_kind"] for r in records}[silent] == "video_only"
    folds = folds_of(rows, "speaker_kfold:3")
    assert all(not (f.test_speakers & f.train_speakers) for f in folds)  # actor-independent
    again = build_ravdess_corpus(ravdess_root, tmp_path, pipeline=keep_every_pipeline, progress=False)
    assert again["already_done"] == 6 and again["processed"] == 0


def test_crema_d_corpus_perceived_labels_and_flash_video(crema_d_root, keep_every_pipeline, tmp_path):
    summary = build_crema_d_corpus(crema_d_root, tmp_path, pipeline=keep_every_pipeline, progress=False,
                                   label="voice")
    assert summary["dropped"] == {"disgust": 1, "no_votes": 1, "tie": 1}
    rows = read_corpus(tmp_path)
    assert {u: r[schema.LABEL] for u, r in rows.items()} == {
        "1001_DFA_ANG_XX": "anger", "1001_IEO_HAP_LO": "neutral", "1002_TIE_SAD_MD": "sadness",
        "1003_MTI_FEA_XX": "sadness", "1003_IWL_NEU_XX": "neutral"}
    flv = rows["1001_DFA_ANG_XX"]
    assert flv[schema.SOURCE] == "1001_DFA_ANG_XX.flv" and len(flv[schema.VISUAL_FEATS]) > 0
    assert flv[schema.ACOUSTIC_FEATS].shape == (FRAMES, 80) and flv[schema.TEXT] == "Don't forget a jacket"
    assert len(rows["1003_IWL_NEU_XX"][schema.ACOUSTIC_FEATS]) > 0  # the flv's own sound
    assert rows["1002_TIE_SAD_MD"][schema.SOURCE] == "1002_TIE_SAD_MD.wav"
    assert {r[schema.SPEAKER] for r in rows.values()} == {"1001", "1002", "1003"}
    release = json.loads((tmp_path / "release.json").read_text())
    assert (release["label"], release["ties"], release["folds"]) == ("voice", "intended", "speaker_kfold:5")


def test_meld_corpus_text_only_rows_and_the_official_split(meld_root, keep_every_pipeline, tmp_path):
    summary = build_meld_corpus(meld_root, tmp_path, pipeline=keep_every_pipeline, progress=False)
    assert summary["records"] == 8 and summary["dropped"] == {"fear": 1, "surprise": 1}
    rows = read_corpus(tmp_path)
    assert len(rows) == 8
    text_only = {"train_dia0_utt2", "dev_dia0_utt2", "test_dia1_utt0"}
    for utt, row in rows.items():
        clip = utt not in text_only
        assert (len(row[schema.ACOUSTIC_FEATS]) > 0) == clip and (len(row[schema.VISUAL_FEATS]) > 0) == clip, utt
        assert row[schema.ACOUSTIC_FEATS].shape[1] == 80 and len(row[schema.INPUT_IDS]) > 0
    assert rows["train_dia0_utt2"][schema.TEXT] == "\u201cWhere\u2019s number 27?!\u201d\u2026"
    assert rows["train_dia0_utt2"][schema.SOURCE] == "dia0_utt2.mp4"
    assert rows["dev_dia0_utt0"][schema.SESSION] == "validation" and rows["train_dia0_utt1"][schema.LABEL] == "happiness"
    manifest = read_manifest(tmp_path)
    assert manifest["test_dia1_utt0"]["status"] == "ok"
    assert manifest["test_dia1_utt0"]["reason"] == "text only: dia1_utt0.mp4 not found"
    (fold,) = folds_of(rows, "official_split")
    ordered = sorted(rows)
    assert sorted(ordered[i] for i in fold.test) == ["test_dia0_utt0", "test_dia1_utt0"]
    assert sorted(ordered[i] for i in fold.validation) == ["dev_dia0_utt0", "dev_dia0_utt2"]
    assert json.loads((tmp_path / "release.json").read_text())["text_only"] == 3
    again = build_meld_corpus(meld_root, tmp_path, pipeline=keep_every_pipeline, progress=False)
    assert again["processed"] == 0 and again["already_done"] == summary["items"]


def test_prepare_commands(emodb_root, meld_root, tmp_path, capsys):
    out = tmp_path / "emodb"
    memobert_main(["prepare", "emodb", "--root", str(emodb_root), "--output", str(out), "--no-progress",
                   "--vad", "webrtc", "--speaker-rule", "pixels"])
    assert "--folds leave_one_speaker_out" in capsys.readouterr().out
    rows = read_corpus(out)
    assert sorted(rows) == ["03a01Fa", "03a02Wb", "08a04Nc", "08b01Ta", "12a07Wa", "12b10Nb"]
    assert all(len(r[schema.VISUAL_FEATS]) == 0 and len(r[schema.ACOUSTIC_FEATS]) > 0 for r in rows.values())
    assert rows["03a01Fa"][schema.TEXT] == "Der Lappen liegt auf dem Eisschrank."
    assert [sorted(f.test_speakers) for f in folds_of(rows, "leave_one_speaker_out")] == [["03"], ["08"], ["12"]]
    release = json.loads((out / "release.json").read_text())
    assert release["dropped"] == {"E": 1, "L": 1} and len(release["skipped"]) == 3

    memobert_main(["prepare", "meld", "--root", str(meld_root.parent), "--output", str(tmp_path / "meld"),
                   "--splits", "test", "--no-progress", "--vad", "webrtc", "--speaker-rule", "pixels"])
    assert sorted(read_corpus(tmp_path / "meld")) == ["test_dia0_utt0", "test_dia1_utt0"]
    for name, message in (("ravdess", "RAVDESS root"), ("crema_d", "AudioWAV"), ("meld", "sent_emo.csv"),
                          ("emodb", "EmoDB root")):
        with pytest.raises(SystemExit) as exit_info:
            memobert_main(["prepare", name, "--root", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")])
        assert message in str(exit_info.value.code), name
