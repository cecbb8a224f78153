"""Writers of tiny RAVDESS, CREMA-D, MELD and EmoDB releases in exactly their published layouts, with generated media
(`memobert.demo.media.write_media`: a real face photo and a tone; PCM wavs), each with the release's odd cases.

Tests hold their own expectations; the specs here only say what is written.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from tests.support.media import tone, write_pcm_wav

RATE = 16000
SECONDS = 0.6
FPS = 25.0


def face_frames(seconds: float = SECONDS, fps: float = FPS, mouth: bool = True) -> list[np.ndarray]:
    """Frames of the demo face (a real photo) on a dark 240 x 200 frame, its mouth opening and closing 4 times a
    second."""
    from memobert.demo.media import demo_face

    frames = []
    for k in range(round(seconds * fps)):
        face = demo_face(mouth_open=float(0.5 - 0.5 * np.cos(2 * np.pi * 4 * k / fps)) if mouth else 0.0)
        frame = np.full((200, 240, 3), 30, np.uint8)
        frame[15:15 + face.shape[0], 37:37 + face.shape[1]] = face
        frames.append(frame)
    return frames


def write_clip(path: Path, audio: bool = True, video: bool = True, seconds: float = SECONDS) -> Path:
    """A short clip (H.264 + AAC; the container of the suffix: .mp4, .flv) of the face and a tone."""
    from memobert.demo.media import write_media

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_media(path, frames=face_frames(seconds) if video else None, fps=FPS,
                       audio=tone(seconds, RATE, 220.0) if audio else None, sample_rate=RATE)


def write_flash_clip(path: Path, seconds: float = SECONDS, rate: int = 22050) -> Path:
    """A Flash video as CREMA-D's `VideoFlash/` holds them: an FLV of the face (Sorenson Spark, the FLV1 codec; the
    release's is VP6, which FFmpeg decodes but cannot write) and a tone (MP3, mono)."""
    from fractions import Fraction

    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = face_frames(seconds)
    sound = tone(seconds, rate, 220.0)
    with av.open(str(path), "w", format="flv") as container:
        video = container.add_stream("flv", rate=Fraction(FPS).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        video.codec_context.thread_count = 1
        audio = container.add_stream("libmp3lame", rate=rate, layout="mono")
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        block = audio.codec_context.frame_size or 1152
        for start in range(0, len(sound), block):
            chunk = np.zeros((1, block), np.float32)
            part = sound[start:start + block]
            chunk[0, :len(part)] = part
            samples = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            samples.sample_rate, samples.pts = rate, start
            container.mux(audio.encode(samples))
        container.mux(audio.encode(None))
    return path


def write_tone_wav(path: Path, seconds: float = SECONDS, rate: int = RATE) -> Path:
    return write_pcm_wav(path, tone(seconds, rate, 330.0), rate)


# ---------------------------------------------------------------------------------------------------------------------
# RAVDESS: Actor_XX/ of MM-VV-EE-II-SS-RR-AA files; (name, what is written)
RAVDESS_FILES = [
    "03-01-05-01-01-01-01.wav", "01-01-05-01-01-01-01.mp4",  # angry: wav + audio-visual (preferred)
    "03-01-01-01-01-01-01.wav", "02-01-01-01-01-01-01.mp4",  # neutral: wav + video only
    "03-02-05-01-01-01-01.wav", "01-02-05-01-01-01-01.mp4",  # song: skipped
    "03-01-02-01-01-01-02.wav",  # calm: dropped (not one of the 4 classes)
    "03-01-03-02-02-01-02.wav",  # happy, strong, statement 02: audio only
    "01-01-04-01-01-02-02.mp4",  # sad: audio-visual, no wav (the mp4's sound)
    "03-01-04-01-02-01-03.wav",  # sad: audio only
    "02-01-05-02-01-02-03.mp4",  # angry: video only, no wav: no sound at all
]


def write_ravdess(root: Path) -> Path:
    """`root/Actor_01..03/` of `RAVDESS_FILES` (wavs 48 kHz PCM), plus a README in Actor_03 and macOS debris."""
    for name in RAVDESS_FILES:
        modality, actor = name.split("-")[0], name.split("-")[-1][:2]
        path = root / f"Actor_{actor}" / name
        if modality == "03":
            write_tone_wav(path, rate=48000)
        else:
            write_clip(path, audio=modality == "01")
    (root / "Actor_03" / "README.txt").write_text("not a recording\n")
    (root / "Actor_03" / "._03-01-04-01-02-01-03.wav").write_bytes(b"\x00\x05\x16\x07")
    return root


# ---------------------------------------------------------------------------------------------------------------------
# CREMA-D: (name, wav written, flv written, votes (voice, face, multimodal) or None: not in summaryTable.csv)
CREMA_D_CLIPS = [
    ("1001_DFA_ANG_XX", True, True, ("A", "A", "A")),
    ("1001_IEO_HAP_LO", True, True, ("N", "H", "H")),  # perceived from the voice: neutral
    ("1001_ITH_SAD_XX", True, False, None),  # no votes
    ("1002_TIE_SAD_MD", True, False, ("N:S", "S", "S")),  # voice tie holding the intended emotion
    ("1002_WSI_NEU_HI", True, False, ("A:H", "N", "N")),  # voice tie without it
    ("1003_ITS_DIS_XX", True, False, ("D", "D", "D")),  # disgust: not a class
    ("1003_MTI_FEA_XX", True, False, ("S", "F", "F")),  # intended fear, heard as sad
    ("1003_IWL_NEU_XX", False, True, ("N", "N", "N")),  # flv only: its own sound
]
CREMA_D_ACTORS = [("1001", 51, "Male"), ("1002", 21, "Female"), ("1003", 42, "Male")]


def write_crema_d(root: Path) -> Path:
    """`AudioWAV/`, `VideoFlash/`, `VideoDemographics.csv`, `processedResults/summaryTable.csv` of `CREMA_D_CLIPS`
    (the table's quoting and header as released), plus a file with an unknown sentence code."""
    table = io.StringIO()
    writer = csv.writer(table, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(["", "FileName", "VoiceVote", "VoiceLevel", "FaceVote", "FaceLevel", "MultiModalVote",
                     "MultiModalLevel"])
    row = 0
    for name, wav, flv, votes in CREMA_D_CLIPS:
        if wav:
            write_tone_wav(root / "AudioWAV" / f"{name}.wav")
        if flv:
            write_flash_clip(root / "VideoFlash" / f"{name}.flv")
        if votes is not None:
            row += 1
            levels = [":".join("55.5" for _ in v.split(":")) for v in votes]
            writer.writerow([str(row), name, votes[0], levels[0], votes[1], levels[1], votes[2], levels[2]])
    write_tone_wav(root / "AudioWAV" / "1001_XYZ_ANG_XX.wav")  # unknown sentence code
    (root / "processedResults").mkdir(parents=True, exist_ok=True)
    (root / "processedResults" / "summaryTable.csv").write_text(table.getvalue())
    lines = ['"ActorID","Age","Sex","Race","Ethnicity"']
    lines += [f'{actor},{age},"{sex}","Caucasian","Not Hispanic"' for actor, age, sex in CREMA_D_ACTORS]
    (root / "VideoDemographics.csv").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------------------------------------------------------------
# MELD: per split, rows (Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, clip written)
MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
               "Episode", "StartTime", "EndTime"]
MELD_ROWS = {
    "train": [
        (1, "Oh my God, he\u2019s lost it. He\u2019s totally lost it.", "Phoebe", "sadness", "negative", 0, 0, True),
        (2, "You\u00e2\u20ac\u2122re a genius!", "Chandler", "joy", "positive", 0, 1, True),  # mojibake of ’
        (3, "\u201cWhere\u2019s number 27?!\u201d\u2026", "Richard\u2019s Date", "anger", "negative", 0, 2, False),
        (4, "What?", "Monica", "surprise", "negative", 0, 3, False),  # not a class
        (5, "Come on, Lydia, you can do it.", "Joey", "neutral", "neutral", 1, 0, True),
    ],
    "dev": [  # written in Windows-1252: the apostrophe is the byte 0x92
        (1, "Aww, man, now we won\u2019t be bank buddies!", "Joey", "sadness", "negative", 0, 0, True),
        (2, "Push!", "Joey", "fear", "negative", 0, 1, False),
        (3, "Okay.", "Rachel", "neutral", "neutral", 0, 2, False),
    ],
    "test": [
        (1, "Why do all you\u2019re coffee mugs have numbers on the bottom?", "Mark", "joy", "positive", 0, 0, True),
        (19, "Y'know what?", "Rachel", "neutral", "neutral", 1, 0, False),  # Sr No. not contiguous, clip missing
    ],
}
MELD_CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}


def write_meld(root: Path) -> Path:
    """`root/{train,dev,test}_sent_emo.csv` of `MELD_ROWS` (official header and quoting; H:MM:SS,mmm and
    HH:MM:SS,mmm times) and the clips marked written in the three clip folders."""
    root.mkdir(parents=True, exist_ok=True)
    for split, rows in MELD_ROWS.items():
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(MELD_HEADER)
        for k, (sr, utterance, speaker, emotion, sentiment, dialogue, utt, clip) in enumerate(rows):
            start = f"{'0' if k % 2 else '00'}:12:{24 + 2 * k:02d},660"
            writer.writerow([sr, utterance, speaker, emotion, sentiment, dialogue, utt, 4, 7, start,
                             f"00:12:{25 + 2 * k:02d},915"])
            if clip:
                write_clip(root / MELD_CLIP_DIRS[split] / f"dia{dialogue}_utt{utt}.mp4")
        (root / f"{split}_sent_emo.csv").write_bytes(text.getvalue().encode("cp1252" if split == "dev" else "utf-8"))
    return root


# ---------------------------------------------------------------------------------------------------------------------
# EmoDB: wav/SSTTTEV.wav
EMODB_FILES = [
    "03a01Fa.wav", "03a02Wb.wav", "08a04Nc.wav", "08b01Ta.wav", "12a07Wa.wav", "12b10Nb.wav",
    "09b02La.wav",  # boredom: dropped
    "10b03Ea.wav",  # disgust: dropped
    "03a01Xa.wav",  # unknown emotion letter: skipped
    "99a01Fa.wav",  # unknown speaker: skipped
    "03c01Fa.wav",  # unknown text code: skipped
]


def write_emodb(root: Path) -> Path:
    """`root/wav/` of `EMODB_FILES` (16-bit PCM, 16 kHz), plus a `silb/`-like text file beside it."""
    for k, name in enumerate(EMODB_FILES):
        write_tone_wav(root / "wav" / name, seconds=SECONDS + 0.1 * (k % 3))
    (root / "wav" / "notes.txt").write_text("not a wav\n")
    return root
