"""Writers of tiny dataset releases in exactly their on-disk layouts (see the readers' docs): IEMOCAP, MSP-IMPROV,
FER+ (fer2013.csv + fer2013new.csv) and SEED-IV (eeg_feature_smooth/*.mat); and IEMOCAP / MSP-IMPROV releases of real
media cut from demo clips.

Tests hold their own expectations; the specs here only say what is written.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from tests.support.media import write_pcm_wav

RATE = 16000


def write_wav(path: Path, seconds: float = 0.05, rate: int = RATE, frequency: float = 220.0) -> Path:
    """A real 16-bit mono PCM WAV (a short sine)."""
    t = np.arange(int(round(seconds * rate))) / rate
    return write_pcm_wav(path, 8000 / 32767 * np.sin(2 * np.pi * frequency * t), rate)


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


# ---------------------------------------------------------------------------------------------------------------------
# FER+: (Usage, Image name, 8 emotion votes, unknown, NF); the FER2013 'emotion' column is the original 7-class label.
FERPLUS_ROWS = [
    ("Training", "fer0000000.png", [4, 0, 0, 1, 3, 2, 0, 0], 0, 0),
    ("Training", "fer0000001.png", [6, 0, 1, 1, 0, 0, 0, 0], 2, 0),
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0], 0, 10),  # dropped by FER+ (empty Image name): not a face
    ("Training", "fer0000003.png", [0, 10, 0, 0, 0, 0, 0, 0], 0, 0),
    ("Training", "fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0], 7, 3),  # no emotion vote: dropped
    ("Training", "fer0000005.png", [0, 0, 8, 0, 0, 0, 2, 0], 0, 0),
    ("PublicTest", "fer0028709.png", [0, 9, 0, 0, 0, 0, 0, 1], 0, 0),
    ("PublicTest", "fer0028710.png", [10, 0, 0, 0, 0, 0, 0, 0], 0, 0),
    ("PrivateTest", "fer0032298.png", [0, 0, 0, 5, 5, 0, 0, 0], 0, 0),
    ("PrivateTest", "fer0032299.png", [1, 0, 0, 0, 0, 0, 0, 9], 0, 0),
]


def write_ferplus(folder, rows=FERPLUS_ROWS, seed=0, pixels_override=None, trailing_blank=False):
    """Writes fer2013.csv + fer2013new.csv exactly as the releases lay them out."""
    from memobert.data.ferplus import FERPLUS_COLUMNS

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "fer2013.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, (usage, *_rest) in enumerate(rows):
            pixels = " ".join(str(v) for v in rng.integers(0, 256, 48 * 48))
            if pixels_override and i in pixels_override:
                pixels = pixels_override[i]
            w.writerow([int(rng.integers(0, 7)), pixels, usage])
        if trailing_blank:
            f.write("\n")
    with open(os.path.join(folder, "fer2013new.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FERPLUS_COLUMNS)
        for usage, name, votes, unknown, nf in rows:
            w.writerow([usage, name, *votes, unknown, nf])
    return folder


# ---------------------------------------------------------------------------------------------------------------------
# SEED-IV: `eeg_feature_smooth/<session>/<subject>_<date>.mat`, `de_movingAve1..24` arrays of (62 electrodes, windows, 5
# bands); MATLAB v5 files (scipy) or v7.3 ones (HDF5, arrays stored transposed).
def write_seed_iv(root: Path, sessions=(1, 2)) -> dict:
    """Subject `session + 2` in each session (session 1 a v5 file, session 2 a v7.3 one), random features, plus
    `de_LDS` arrays; returns {session: {array name: array}}."""
    import h5py
    import scipy.io

    base = root / "eeg_feature_smooth"
    rng = np.random.default_rng(0)
    written = {}
    for session in sessions:
        folder = base / str(session)
        folder.mkdir(parents=True)
        arrays = {}
        for trial in range(1, 25):
            windows = 2 + trial % 3
            arrays[f"de_movingAve{trial}"] = rng.normal(size=(62, windows, 5)).astype(np.float32)
            arrays[f"de_LDS{trial}"] = np.zeros((62, windows, 5), np.float32)
        written[session] = arrays
        path = folder / f"{session + 2}_2015101{session}.mat"
        if session == 1:
            scipy.io.savemat(path, arrays)
        else:  # a MATLAB v7.3 file is HDF5 with the arrays stored transposed
            with h5py.File(path, "w") as f:
                for key, value in arrays.items():
                    f[key] = value.transpose()
    return written


def write_seed_iv_release(root: Path, subjects=(1, 2, 3), sessions=(1, 2), signal: float = 0.5) -> int:
    """`root/eeg_feature_smooth/<session>/<subject>_<date>.mat` with `de_movingAve1..24` (62, windows, 5) arrays whose
    trial emotion (the ReadMe's table) shifts 6 electrodes; returns the number of windows written."""
    import scipy.io

    from memobert.baselines.face_eeg import SEED_IV_SESSION_LABELS

    rng = np.random.default_rng(0)
    total = 0
    for session in sessions:
        folder = root / "eeg_feature_smooth" / str(session)
        folder.mkdir(parents=True)
        for subject in subjects:
            arrays = {}
            for trial, label in enumerate(SEED_IV_SESSION_LABELS[session], start=1):
                windows = 2 + (trial + subject) % 3
                array = rng.normal(size=(62, windows, 5)).astype(np.float32) + subject  # a per-subject offset too
                array[label * 6:(label + 1) * 6] += signal
                arrays[f"de_movingAve{trial}"] = array
                total += windows
            scipy.io.savemat(folder / f"{subject}_2015{session:02d}{subject:02d}.mat", arrays)
    return total


# ---------------------------------------------------------------------------------------------------------------------
# IEMOCAP and MSP-IMPROV releases of real media: demo clips (two faces side by side, the speaker's mouth moving with its
# voice) cut and re-encoded into the releases' layouts, for the preprocessing of releases into corpora.
IEMOCAP_CODE = {"anger": "ang", "happy": "hap", "neutral": "neu", "sad": "sad"}
MSP_CODE = {"anger": "A", "happy": "H", "neutral": "N", "sad": "S"}
CLASS = {"anger": "anger", "happy": "happiness", "neutral": "neutral", "sad": "sadness"}
IEMOCAP_DIALOGS = ((1, "Ses01F_impro01"), (2, "Ses02M_script01_1"))  # markers F / M: on the left half by the rule


def write_demo_iemocap(root: Path, clips) -> tuple[Path, dict, tuple[str, Path]]:
    """`root/Session{1,2}` with one dialog each (demo clip -> avi, one wav per utterance); the first happy utterance is
    written `exc`, an `xxx` turn is dropped, one wav is missing. Returns (root, expected rows, (missing id, its wav))."""
    from memobert.preprocessing.decode import MediaReader
    from tests.support.media import to_avi

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


def write_demo_msp_improv(root: Path, clip) -> tuple[Path, dict, tuple[str, Path]]:
    """`root/Evalution.txt`, `Audio/session1/...wav` and `Video/session1/...avi` (one file per utterance, cut from the
    demo clip); plus an `X` (no agreement) block and a block whose wav is missing (its video exists). Returns (root,
    expected rows, (missing id, its wav))."""
    from memobert.preprocessing.decode import MediaReader
    from tests.support.media import to_avi

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
