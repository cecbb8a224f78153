"""Downstream corpora from IEMOCAP / MSP-IMPROV releases through the preprocessing pipeline, on tiny copies of both
layouts written with real media (demo clips: two faces side by side, the speaker's mouth moving with its voice)."""

from __future__ import annotations

import csv
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from memobert.cli import main as memobert_main
from memobert.data import schema
from memobert.data.demo import make_demo_media, write_media
from memobert.preprocessing.decode import MediaReader
from memobert.preprocessing.pipeline import Pipeline, WorkItem, run_pipeline
from memobert.preprocessing.releases import (
    RECORDS_CSV,
    build_iemocap_corpus,
    build_msp_improv_corpus,
    downstream_config,
    iemocap_work_items,
)

RATE = 16000
IEMOCAP_CODE = {"anger": "ang", "happy": "hap", "neutral": "neu", "sad": "sad"}
MSP_CODE = {"anger": "A", "happy": "H", "neutral": "N", "sad": "S"}
CLASS = {"anger": "anger", "happy": "happiness", "neutral": "neutral", "sad": "sadness"}


def write_pcm_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """16-bit mono PCM with the stdlib `wave` module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def to_avi(reader: MediaReader, start: float, end: float, path: Path) -> Path:
    """[start, end) of a demo clip re-encoded as an .avi (H.264 + AAC, 15 fps, 16 kHz)."""
    window = reader.window(start, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_media(path, frames=window.frames, fps=reader.fps, audio=window.audio, sample_rate=RATE)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    return make_demo_media(folder, 2, seed=0, utterances_per_clip=(2, 3), utterance_duration=(1.2, 1.6),
                           pause=(0.5, 0.7))


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(downstream_config())


# -- IEMOCAP ---------------------------------------------------------------------------------------------------------

IEMOCAP_DIALOGS = ((1, "Ses01F_impro01"), (2, "Ses02M_script01_1"))  # markers F / M: on the left half by the rule


@pytest.fixture(scope="module")
def iemocap(clips, tmp_path_factory):
    """`IEMOCAP_full_release/Session{1,2}` with one dialog each (demo clip -> avi, one wav per utterance); the first
    happy utterance is written `exc`, an `xxx` turn is dropped, one wav is missing. Returns (root, expected rows)."""
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    expected, missing = {}, None
    for (session, dialog), clip in zip(IEMOCAP_DIALOGS, clips):
        folder = root / f"Session{session}"
        markers = dialog[5]
        other = "M" if markers == "F" else "F"
        counts = {"F": 0, "M": 0}
        evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        transcript = []
        reader = MediaReader(clip.video, sample_rate=RATE, fps=clip.fps)
        to_avi(reader, 0.0, clip.duration, folder / "dialog" / "avi" / "DivX" / f"{dialog}.avi")
        for u in clip.utterances:
            gender = markers if u.speaker_side == "left" else other
            utt = f"{dialog}_{gender}{counts[gender]:03d}"
            counts[gender] += 1
            code = IEMOCAP_CODE[u.label]
            if code == "hap" and not any(e["code"] == "exc" for e in expected.values()):
                code = "exc"
            evaluation += [f"[{u.start:.4f} - {u.end:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 2.0000]",
                           "C-E2:\tNeutral;\t()", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
            transcript.append(f"{utt} [{u.start:08.4f}-{u.end:08.4f}]: {u.text}")
            wav = folder / "sentences" / "wav" / dialog / f"{utt}.wav"
            if missing is None and session == 2:
                missing = (utt, wav)  # listed and labelled, but its wav is not there
            else:
                write_pcm_wav(wav, reader.audio(u.start, u.end))
            expected[utt] = {"label": CLASS[u.label], "code": code, "speaker": f"Ses0{session}{gender}", "text": u.text,
                             "dialog": dialog, "side": u.speaker_side, "start": u.start, "end": u.end}
        last = clip.utterances[-1]
        evaluation += [f"[{last.start:.4f} - {last.end:.4f}]\t{dialog}_{other}099\txxx\t[2.5000, 3.0000, 2.0000]", ""]
        (folder / "dialog" / "EmoEvaluation").mkdir(parents=True)
        (folder / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(evaluation))
        (folder / "dialog" / "transcriptions").mkdir(parents=True)
        (folder / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(transcript) + "\n")
    return root, expected, missing


def read_rows(folder: Path) -> dict[str, dict]:
    import datasets

    shards = sorted(str(p) for p in (folder / "shards").glob("*.parquet"))
    rows = datasets.load_dataset("parquet", data_files=shards, split="train").with_format("numpy")
    return {str(row[schema.UTTERANCE_ID]): row for row in rows}


def read_manifest(folder: Path) -> dict[str, dict]:
    with open(folder / "manifest.csv", encoding="utf-8") as handle:
        return {r["utterance_id"]: r for r in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def iemocap_corpus(iemocap, pipeline, tmp_path_factory):
    root, _, _ = iemocap
    out = tmp_path_factory.mktemp("iemocap_corpus")
    summary = build_iemocap_corpus(root.parent, out, pipeline=pipeline, progress=False)
    return out, summary


def test_iemocap_corpus_has_one_row_per_kept_utterance_with_its_label_speaker_text_and_frames(iemocap, iemocap_corpus):
    _, expected, (missing, missing_wav) = iemocap
    out, summary = iemocap_corpus
    rows = read_rows(out)
    assert sorted(rows) == sorted(set(expected) - {missing})
    assert summary["records"] == len(expected) and summary["dropped"] == {"xxx": 2}
    assert summary["items"] == 2 and summary["processed"] == 2
    for utt, row in rows.items():
        want = expected[utt]
        assert (row[schema.LABEL], row[schema.SPEAKER], row[schema.TEXT]) == (want["label"], want["speaker"],
                                                                                want["text"])
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


def test_iemocap_rerun_resumes_and_changes_nothing(iemocap, iemocap_corpus, pipeline):
    root, _, _ = iemocap
    out, _ = iemocap_corpus
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.parquet")}
    summary = build_iemocap_corpus(root, out, pipeline=pipeline, progress=False)
    assert summary["already_done"] == 2 and summary["processed"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.parquet")} == before


def test_side_rule_searches_only_the_speakers_half(iemocap, pipeline):
    """With the rule right, the speaker's face is found in its half; flipped, the half shows the still listener."""
    from memobert.data.iemocap import load_iemocap

    root, expected, (missing, _) = iemocap
    corpus = load_iemocap(root, sessions=[1])
    right = iemocap_work_items(corpus, face="side", markers_side="left")
    assert len(right) == 1 and right[0].face_side == {u: expected[u]["side"] for u in right[0].face_side}
    wrong = iemocap_work_items(corpus, face="side", markers_side="right")
    rows, records = pipeline.process(right[0])
    assert len(rows) == len(corpus.records) and all(len(r[schema.VISUAL_FEATS]) > 0 for r in rows)
    rows, records = pipeline.process(wrong[0])
    assert len(rows) == len(corpus.records)  # kept (no_speaker="keep") without face frames
    assert all(len(r[schema.VISUAL_FEATS]) == 0 for r in rows)
    assert all("kept without face frames" in r["reason"] for r in records)


def test_bad_face_rule_and_empty_release_are_clear_errors(iemocap, tmp_path):
    root, _, _ = iemocap
    with pytest.raises(ValueError, match="face must be one of"):
        build_iemocap_corpus(root, tmp_path / "x", face="middle")
    with pytest.raises(ValueError, match="no utterance of the classes"):
        build_iemocap_corpus(root, tmp_path / "x", classes=["fear"])
    with pytest.raises(FileNotFoundError, match="IEMOCAP root"):
        build_iemocap_corpus(tmp_path / "nowhere", tmp_path / "x")


# -- MSP-IMPROV ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def msp_improv(clips, tmp_path_factory):
    """`Evalution.txt`, `Audio/session1/...wav` and `Video/session1/...avi` (one file per utterance, cut from clip 0);
    plus an `X` (no agreement) block and a block whose wav is missing (its video exists)."""
    root = tmp_path_factory.mktemp("msp") / "MSP-IMPROV"
    clip = clips[0]
    reader = MediaReader(clip.video, sample_rate=RATE, fps=clip.fps)
    blocks, expected = [], {}
    names = [("S01A", "F", "R", "FM01"), ("S02H", "M", "S", "MF02"), ("S03S", "F", "P", "FM03"),
             ("S04N", "M", "T", "MF04")]
    plan = list(zip(names, clip.utterances)) + [(("S05N", "F", "P", "FM05"), clip.utterances[0])]
    missing = None
    for k, ((sentence, gender, scenario, turn), u) in enumerate(plan):
        stem = f"MSP-IMPROV-{sentence}-{gender}01-{scenario}-{turn}"
        code = "X" if k == len(plan) - 1 else MSP_CODE[u.label]
        blocks.append(f"UTD-IMPROV-{sentence}-{gender}01-{scenario}-{turn}.avi; {code}; A:3.0; V:3.0; D:3.0; N:4.0;\n"
                      "MSP-rater-01; Neutral; A:3.0; V:3.0; D:3.0; N:4.0;")
        relative = Path("session1") / sentence / scenario
        to_avi(reader, u.start, u.end, root / "Video" / relative / f"{stem}.avi")
        if k == 1:
            missing = (stem, root / "Audio" / relative / f"{stem}.wav")
        else:
            write_pcm_wav(root / "Audio" / relative / f"{stem}.wav", reader.audio(u.start, u.end))
        if code != "X":
            expected[stem] = {"label": CLASS[u.label], "speaker": f"{gender}01", "seconds": u.end - u.start}
    root.mkdir(parents=True, exist_ok=True)
    (root / "Evalution.txt").write_text("\n\n".join(blocks) + "\n")
    return root, expected, missing


def test_msp_improv_corpus_from_whole_videos_and_utterance_wavs(msp_improv, pipeline, tmp_path):
    root, expected, (missing, missing_wav) = msp_improv
    transcripts = {u: f"utterance {u[-4:].lower()}" for u in expected}
    summary = build_msp_improv_corpus(root, tmp_path, pipeline=pipeline, progress=False, transcripts=transcripts)
    assert summary["records"] == len(expected) and summary["dropped"] == {"X": 1}
    rows = read_rows(tmp_path)
    assert sorted(rows) == sorted(set(expected) - {missing})
    for utt, row in rows.items():
        want = expected[utt]
        assert (row[schema.LABEL], row[schema.SPEAKER], row[schema.TEXT]) == (want["label"], want["speaker"],
                                                                                transcripts[utt])
        assert row[schema.SOURCE] == f"{utt}.avi" and row[schema.START] == 0.0
        assert row[schema.END] == pytest.approx(want["seconds"], abs=0.1)
        assert len(row[schema.VISUAL_FEATS]) > 0
        assert row[schema.ACOUSTIC_FEATS].shape == (pytest.approx(want["seconds"] / 0.06, abs=2), 80)
    manifest = read_manifest(tmp_path)
    assert manifest[missing]["status"] == "failed" and str(missing_wav) in manifest[missing]["reason"]
    with pytest.raises(ValueError, match="face must be one of"):
        build_msp_improv_corpus(root, tmp_path / "x", face="side")


def test_pipeline_accepts_ready_work_items_and_checks_the_side(pipeline, tmp_path, clips):
    from memobert.preprocessing.pipeline import frame_half

    frames = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    np.testing.assert_array_equal(frame_half(frames, "right"), frames[:, :, 3:])
    with pytest.raises(ValueError, match="left' or 'right"):
        frame_half(frames, "top")
    summary = run_pipeline([WorkItem("empty-item", str(tmp_path / "absent.avi"), [])], tmp_path / "out",
                           pipeline=pipeline, progress=False)
    assert summary["items"] == 1 and summary["rows"] == 0


def test_prepare_command(iemocap, msp_improv, tmp_path, capsys):
    iemocap_root, iemocap_expected, _ = iemocap
    memobert_main(["prepare", "iemocap", "--root", str(iemocap_root), "--output", str(tmp_path / "iemocap"),
                   "--face", "side", "--sessions", "1", "--fps", "5", "--no-progress"])
    assert sorted(read_rows(tmp_path / "iemocap")) == sorted(u for u in iemocap_expected if u.startswith("Ses01"))
    release = json.loads((tmp_path / "iemocap" / "release.json").read_text())
    assert (release["face"], release["markers_side"]) == ("side", "left")
    assert json.loads((tmp_path / "iemocap" / "corpus.json").read_text())["config"]["fps"] == 5.0

    root, expected, _ = msp_improv
    with pytest.raises(SystemExit) as exit_info:
        memobert_main(["prepare", "msp_improv", "--root", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")])
    assert "Evalution.txt" in str(exit_info.value.code)
    with pytest.raises(SystemExit):
        memobert_main(["prepare", "--help"])
    assert "iemocap" in capsys.readouterr().out
    memobert_main(["prepare", "msp_improv", "--root", str(root), "--output", str(tmp_path / "corpus"),
                   "--no-progress", "--scenarios", "R"])
    rows = read_rows(tmp_path / "corpus")
    assert sorted(rows) == [u for u in expected if "-R-" in u]
    assert "rows" in capsys.readouterr().out
