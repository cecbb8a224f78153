"""Writers of tiny IEMOCAP and MSP-IMPROV copies in exactly the releases' on-disk layouts (see the readers' docs).

Tests hold their own expectations; the specs here only say what is written.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 16000


def write_wav(path: Path, seconds: float = 0.05, rate: int = RATE, frequency: float = 220.0) -> Path:
    """A real 16-bit mono PCM WAV (a short sine), written with the stdlib."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * rate))
    samples = [int(8000 * math.sin(2 * math.pi * frequency * i / rate)) for i in range(n)]
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(struct.pack(f"<{n}h", *samples))
    return path


# ---------------------------------------------------------------------------------------------------------------------
# IEMOCAP: (session, dialog, [(utterance suffix, code, start, end, transcript text or None, timestamp in transcript)])
# A None text writes no transcript line for that utterance.
IEMOCAP_SPEC = [
    (1, "Ses01F_impro01", [
        ("F000", "neu", 6.2901, 8.2357, "Excuse me.", True),
        ("M000", "ang", 7.5712, 10.4750, "Do you have your forms?", True),
        ("F001", "exc", 10.01, 11.3925, "Yeah.", False),  # transcript line without a timestamp
        ("M001", "xxx", 14.8872, 18.0175, "Let me see them.", True),
    ]),
    (1, "Ses01M_script01_1", [
        ("F000", "sad", 1.2, 3.4, "I'm sorry.", True),
        ("M000", "fru", 3.5, 5.0, "Again?", True),
        ("M001", "hap", 5.1, 7.25, "Caf\u00e9 time!", True),  # written in latin-1
        ("F001", "oth", 7.3, 8.0, None, False),
    ]),
    (2, "Ses02F_impro02", [
        ("F000", "ang", 0.5, 2.0, "Why would you do that?", True),
        ("M000", "neu", 2.1, 3.0, "I don't know.", True),
        ("F001", "sur", 3.1, 4.0, "Really?", True),
        ("M001", "exc", 4.1, 6.0, "We won!", True),
    ]),
    (2, "Ses02M_script02_2", [
        ("M000", "sad", 0.2, 1.9, "She left.", True),
        ("F000", "hap", 2.0, 2.9, "Good news.", True),
    ]),
    (3, "Ses03F_impro03", [
        ("F000", "neu", 1.0, 2.0, "Hello.", True),
        ("M000", "sad", 2.0, 3.5, "Not today.", True),
    ]),
    (4, "Ses04M_impro04", [
        ("F000", "ang", 1.0, 2.0, "Stop it.", True),
        ("M000", "hap", 2.0, 3.0, "Fine.", True),
        ("M001", "dis", 3.0, 4.0, "Gross.", True),
    ]),
    (5, "Ses05F_script01_1b", [
        ("F000", "exc", 0.3, 1.1, "Wow!", True),
        ("M000", "neu", 1.2, 2.2, "Okay.", True),
        ("M001", "fea", 2.3, 3.0, "Watch out.", True),
    ]),
]
IEMOCAP_LATIN1_DIALOG = "Ses01M_script01_1"  # transcript and evaluation file written in latin-1
IEMOCAP_VIDEO_SESSIONS = (1,)  # dialog avi files written for these sessions only


def _fmt_time(value: float) -> str:
    return f"{value:08.4f}"  # 006.2901, as the release writes it


def write_iemocap(tmp: Path) -> Path:
    """Writes `tmp/IEMOCAP_full_release/Session1..5/` per `IEMOCAP_SPEC`; returns the release folder."""
    root = Path(tmp) / "IEMOCAP_full_release"
    for session, dialog, utterances in IEMOCAP_SPEC:
        folder = root / f"Session{session}"
        evaluation = folder / "dialog" / "EmoEvaluation"
        transcripts = folder / "dialog" / "transcriptions"
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            (evaluation / sub).mkdir(parents=True, exist_ok=True)
        transcripts.mkdir(parents=True, exist_ok=True)
        encoding = "latin-1" if dialog == IEMOCAP_LATIN1_DIALOG else "utf-8"

        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for suffix, code, start, end, _text, _stamp in utterances:
            utt = f"{dialog}_{suffix}"
            lines += [
                f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 2.0000]",
                "C-E2:\tNeutral;\t()",
                # a latin-1 annotator comment in the latin-1 file
                "C-E3:\tAnger; Frustration;\t(tr\u00e8s f\u00e2ch\u00e9)" if encoding == "latin-1"
                else "C-E3:\tNeutral;\t()",
                "C-F1:\tNeutral;\t()",
                "A-E3:\tval 3; act 2; dom  2;\t()",
                "A-F1:\tval 3; act 3; dom  2;\t()",
                "",
            ]
        (evaluation / f"{dialog}.txt").write_bytes("\n".join(lines).encode(encoding))
        # Per-annotator files in the sub-folders: the reader must not read them (the '[' lines would not parse).
        (evaluation / "Categorical" / f"{dialog}_e2_cat.txt").write_text(
            f"{dialog}_{utterances[0][0]} :Neutral state; ()\n[not an utterance line\n"
        )
        (evaluation / "Attribute" / f"{dialog}_e3_atr.txt").write_text(
            f"{dialog}_{utterances[0][0]} :act 2; val 3; dom 2;\n[x\n"
        )
        (evaluation / "Self-evaluation" / f"{dialog}.txt").write_text("[broken self evaluation line\n")

        transcript = []
        for suffix, _code, start, end, text, stamp in utterances:
            if text is None:
                continue
            utt = f"{dialog}_{suffix}"
            transcript.append(f"{utt} [{_fmt_time(start)}-{_fmt_time(end)}]: {text}" if stamp else f"{utt}: {text}")
            if suffix == "F000":  # a turn that was never rated
                transcript.append(f"{dialog}_MXX0 [{_fmt_time(end)}-{_fmt_time(end + 0.5)}]: [LAUGHTER]")
        transcript.append("M: [BREATHING]")  # names no utterance
        (transcripts / f"{dialog}.txt").write_bytes(("\n".join(transcript) + "\n").encode(encoding))

        for suffix, *_ in utterances:
            write_wav(folder / "sentences" / "wav" / dialog / f"{dialog}_{suffix}.wav")
        if session in IEMOCAP_VIDEO_SESSIONS:
            video = folder / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
            video.parent.mkdir(parents=True, exist_ok=True)
            video.write_bytes(b"RIFF\x00\x00\x00\x00AVI ")
    return root


# ---------------------------------------------------------------------------------------------------------------------
# MSP-IMPROV: per session s (1..6), (sentence+target, speaker gender, scenario, turn, consensus).
def msp_improv_spec() -> list[tuple[str, str, str]]:
    """(evaluation name, consensus letter, rater line) for 6 sessions x 2 speakers, all scenarios, N/H/S/A/X."""
    items = []
    for s in range(1, 7):
        pattern = [
            ("S01A", "F", "R", "FM01", "A"),
            ("S01A", "M", "S", "MF01", "N"),
            ("S02H", "F", "P", "FM02", "H" if s % 2 else "X"),
            ("S03S", "M", "T", "MF03", "S"),
            ("S04N", "M", "P", "MF04", "X" if s == 1 else "N"),
        ]
        for sentence, gender, scenario, turn, code in pattern:
            name = f"UTD-IMPROV-{sentence}-{gender}{s:02d}-{scenario}-{turn}.avi"
            items.append((name, code, s, sentence, scenario))
    return items


def msp_stem(name: str) -> str:
    return "MSP-IMPROV-" + name[len("UTD-IMPROV-"):-len(".avi")]


def write_msp_improv(tmp: Path, skip_audio: tuple[str, ...] = ()) -> Path:
    """Writes `Evalution.txt`, `Audio/sessionN/S01A/R/*.wav` and a few `Video/` files; returns the root."""
    root = Path(tmp) / "MSP-IMPROV"
    blocks = []
    for k, (name, code, session, sentence, scenario) in enumerate(msp_improv_spec()):
        blocks.append(
            "\n".join(
                [
                    f"{name}; {code}; A:{2.0 + k % 3:.1f}; V:3.0; D:{3.5:.1f}; N:4.0;",
                    "MSP-rater-01; Neutral; A:3.0; V:3.0; D:3.0; N:4.0;",
                    "MSP-rater-02; Angry; Frustrated; A:2.0; V:2.0; D:3.0; N:4.0; tr\u00e8s",
                    "MSP-rater-03; Neutral; A:3.0; V:3.0; D:3.0; N:5.0;",
                ]
            )
        )
        stem = msp_stem(name)
        relative = Path(f"session{session}") / sentence / scenario
        if stem not in skip_audio:
            write_wav(root / "Audio" / relative / f"{stem}.wav", seconds=0.1)
        if session == 1:
            video = root / "Video" / relative / f"{stem}.avi"
            video.parent.mkdir(parents=True, exist_ok=True)
            video.write_bytes(b"RIFF\x00\x00\x00\x00AVI ")
    root.mkdir(parents=True, exist_ok=True)
    (root / "Evalution.txt").write_bytes(("\n\n".join(blocks) + "\n").encode("latin-1"))
    return root
