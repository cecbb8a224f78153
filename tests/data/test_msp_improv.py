"""MSP-IMPROV release-layout reader on a fixture written in the real layout (`msp_root`)."""

import pytest

from memobert.data.msp_improv import load_msp_improv, parse_msp_name
from tests.support.releases import write_msp_improv


def test_reads_the_right_utterances_labels_and_counts(msp_root):
    corpus = load_msp_improv(msp_root)
    assert len(corpus) == 26
    assert corpus.dropped == {"X": 4}
    assert corpus.label_counts() == {"anger": 6, "happiness": 3, "neutral": 11, "sadness": 6}
    assert corpus.speakers == sorted(f"{g}{s:02d}" for s in range(1, 7) for g in "FM")
    by_id = {r.utterance_id: r for r in corpus}
    first = by_id["MSP-IMPROV-S01A-F01-R-FM01"]
    assert (first.label, first.label_code, first.speaker, first.gender, first.session) == ("anger", "A", "F01", "F", 1)
    assert (first.sentence, first.target_emotion, first.scenario, first.turn) == ("S01", "anger", "R", "FM01")
    assert first.wav.endswith("Audio/session1/S01A/R/MSP-IMPROV-S01A-F01-R-FM01.wav")
    assert first.video.endswith("Video/session1/S01A/R/MSP-IMPROV-S01A-F01-R-FM01.avi")
    assert first.start == 0.0 and first.end == pytest.approx(0.1)
    assert (first.arousal, first.valence, first.dominance, first.naturalness) == (2.0, 3.0, 3.5, 4.0)
    assert first.raters == 3 and first.text == ""
    assert by_id["MSP-IMPROV-S03S-M04-T-MF03"].label == "sadness"
    assert by_id["MSP-IMPROV-S01A-M02-S-MF01"].video is None  # videos written for session 1 only
    assert "MSP-IMPROV-S02H-F02-P-FM02" not in by_id  # consensus X


def test_scenarios_transcripts_and_missing_audio(msp_root, tmp_path):
    read_only = load_msp_improv(msp_root, scenarios=("R",))
    assert {r.scenario for r in read_only} == {"R"} and len(read_only) == 6
    texts = tmp_path / "texts.tsv"
    texts.write_text("MSP-IMPROV-S01A-F01-R-FM01\tWhy  did you do that?\n")
    with_text = load_msp_improv(msp_root, transcripts=texts)
    assert {r.utterance_id: r.text for r in with_text}["MSP-IMPROV-S01A-F01-R-FM01"] == "Why did you do that?"
    assert sum(bool(r.text) for r in with_text) == 1

    root = write_msp_improv(tmp_path / "partial", skip_audio=("MSP-IMPROV-S03S-M02-T-MF03",))
    with pytest.raises(FileNotFoundError, match=r"MSP-IMPROV-S03S-M02-T-MF03\.wav not found.*Evalution\.txt, line"):
        load_msp_improv(root)
    corpus = load_msp_improv(root, on_missing_audio="skip")
    assert len(corpus) == 25 and any("S03S-M02" in note for note in corpus.skipped)


def test_malformed_header_names_file_and_line(tmp_path):
    root = write_msp_improv(tmp_path)
    path = root / "Evalution.txt"
    lines = path.read_bytes().decode("latin-1").splitlines()
    lines[5] = "UTD-IMPROV-S01A-M01-S-MF01.avi; Q; A:3.0; V:3.0; D:3.0; N:4.0;"
    path.write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(ValueError, match=r"Evalution\.txt, line 6: consensus category 'Q'"):
        load_msp_improv(root)
    lines[5] = "UTD-IMPROV-S01A-M01-S-MF01.avi; N; A:3.0; V:3.0;"
    path.write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(ValueError, match=r"line 6: 4 ';'-separated fields"):
        load_msp_improv(root)
    with pytest.raises(FileNotFoundError, match="Evalution.txt"):
        load_msp_improv(tmp_path)


def test_parse_name():
    info = parse_msp_name("UTD-IMPROV-S05H-M06-P-MF12.avi")
    assert (info["speaker"], info["session"], info["target_emotion"], info["scenario"]) == ("M06", 6, "happiness", "P")
    assert info["utterance_id"] == "MSP-IMPROV-S05H-M06-P-MF12"
    with pytest.raises(ValueError, match="scenario 'Z'"):
        parse_msp_name("UTD-IMPROV-S05H-M06-Z-MF12.avi")
