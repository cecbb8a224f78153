"""IEMOCAP release-layout reader on a fixture written in the real layout (`iemocap_root`)."""

from pathlib import Path

import pytest

from memobert.data.iemocap import (
    load_iemocap,
    parse_utterance_id,
    read_emo_evaluation,
    read_transcription,
    side_box,
    speaker_side,
)
from tests.support.releases import write_iemocap


def test_reads_the_right_utterances_labels_and_counts(iemocap_root):
    corpus = load_iemocap(iemocap_root)
    ids = [r.utterance_id for r in corpus]
    assert ids == sorted(
        [
            "Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_F001",
            "Ses01M_script01_1_F000", "Ses01M_script01_1_M001",
            "Ses02F_impro02_F000", "Ses02F_impro02_M000", "Ses02F_impro02_M001",
            "Ses02M_script02_2_M000", "Ses02M_script02_2_F000",
            "Ses03F_impro03_F000", "Ses03F_impro03_M000",
            "Ses04M_impro04_F000", "Ses04M_impro04_M000",
            "Ses05F_script01_1b_F000", "Ses05F_script01_1b_M000",
        ]
    )
    assert corpus.dropped == {"dis": 1, "fea": 1, "fru": 1, "oth": 1, "sur": 1, "xxx": 1}
    assert corpus.label_counts() == {"anger": 3, "happiness": 6, "neutral": 4, "sadness": 3}
    by_id = {r.utterance_id: r for r in corpus}
    excited = by_id["Ses01F_impro01_F001"]
    assert (excited.label, excited.label_code) == ("happiness", "exc")
    assert excited.text == "Yeah."  # transcript line without a timestamp
    assert (excited.start, excited.end) == (10.01, 11.3925)
    assert (excited.valence, excited.arousal, excited.dominance) == (2.5, 3.0, 2.0)
    first = by_id["Ses01F_impro01_F000"]
    assert (first.text, first.label, first.start, first.end) == ("Excuse me.", "neutral", 6.2901, 8.2357)
    assert first.improvised and first.session == 1 and first.dialog == "Ses01F_impro01"
    latin = by_id["Ses01M_script01_1_M001"]
    assert latin.text == "Caf\u00e9 time!" and latin.label == "happiness" and not latin.improvised
    assert (latin.speaker, latin.gender, latin.markers) == ("Ses01M", "M", "M")
    assert by_id["Ses01M_script01_1_F000"].speaker == "Ses01F"
    assert by_id["Ses05F_script01_1b_M000"].speaker == "Ses05M"
    assert corpus.speakers == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    assert Path(first.wav).is_file()
    assert first.wav.endswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
    assert first.video.endswith("Session1/dialog/avi/DivX/Ses01F_impro01.avi")
    assert by_id["Ses02F_impro02_F000"].video is None  # no avi written for session 2
    assert corpus.label_ids()[ids.index("Ses01F_impro01_M000")] == 0
    # the MXX0 and 'M:' lines are ignored; the line without an utterance id is noted
    assert any("M: [BREATHING]" in note for note in corpus.skipped)


def test_excited_not_merged_and_sessions(iemocap_root):
    corpus = load_iemocap(iemocap_root, merge_excited=False)
    assert len(corpus) == 13
    assert corpus.dropped["exc"] == 3
    only = load_iemocap(iemocap_root, classes=("anger", "sadness"), sessions=[1, 2])
    assert {r.label for r in only} == {"anger", "sadness"} and {r.session for r in only} == {1, 2}
    assert only.dropped["neu"] == 2 and only.dropped["exc"] == 2


def test_readers_of_single_files(iemocap_root, tmp_path):
    eval_path = iemocap_root / "Session1/dialog/EmoEvaluation/Ses01M_script01_1.txt"
    with pytest.raises(UnicodeDecodeError):
        eval_path.read_bytes().decode("utf-8")  # the fixture really holds latin-1 bytes
    entries = read_emo_evaluation(eval_path)
    assert [e["code"] for e in entries] == ["sad", "fru", "hap", "oth"]
    texts, notes = read_transcription(iemocap_root / "Session1/dialog/transcriptions/Ses01F_impro01.txt")
    assert texts["Ses01F_impro01_MXX0"] == "[LAUGHTER]" and texts["Ses01F_impro01_F001"] == "Yeah."
    assert len(notes) == 1
    assert parse_utterance_id("Ses03M_impro05b_M018")["speaker"] == "Ses03M"
    with pytest.raises(ValueError, match="not an IEMOCAP utterance id"):
        parse_utterance_id("Ses01F_F000")


def test_malformed_evaluation_line_names_file_and_line(tmp_path):
    root = write_iemocap(tmp_path)
    path = root / "Session2/dialog/EmoEvaluation/Ses02M_script02_2.txt"
    lines = path.read_text().splitlines()
    lines[2] = "[0.2000 - 1.9000]\tSes02M_script02_2_M000\tsad"  # no [V, A, D]
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"Ses02M_script02_2\.txt, line 3: cannot parse"):
        load_iemocap(root)
    lines[2] = "[0.2000 - 1.9000]\tSes02M_script02_2_M000\tjoy\t[2.5, 2.5, 2.5]"
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"line 3: Unknown IEMOCAP label code 'joy'"):
        load_iemocap(root)


def test_missing_audio_error_or_skip(tmp_path):
    root = write_iemocap(tmp_path)
    (root / "Session3/sentences/wav/Ses03F_impro03/Ses03F_impro03_M000.wav").unlink()
    with pytest.raises(FileNotFoundError, match="Ses03F_impro03_M000.wav not found.*on_missing_audio='skip'"):
        load_iemocap(root)
    corpus = load_iemocap(tmp_path, on_missing_audio="skip")  # the parent of IEMOCAP_full_release works too
    assert len(corpus) == 15 and any("Ses03F_impro03_M000" in n for n in corpus.skipped)
    assert len(load_iemocap(root, on_missing_audio="keep")) == 16


def test_speaker_side_rule():
    records = {
        "Ses01F_impro01_F000": "left",  # the actor with markers (F) speaks
        "Ses01F_impro01_M000": "right",
        "Ses01M_script01_1_M001": "left",
        "Ses01M_script01_1_F000": "right",
    }
    for utt, side in records.items():
        assert speaker_side({"utterance_id": utt}) == side
        assert speaker_side({"utterance_id": utt}, markers_side="right") != side
    assert side_box("left", 720, 480) == (0, 0, 360, 480)
    assert side_box("right", 720, 480) == (360, 0, 720, 480)
