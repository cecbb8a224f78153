"""Reader for the RAVDESS release as laid out on disk (`Actor_01/` .. `Actor_24/` folders, from the Zenodo zips).

- File names are seven two-digit fields `MM-VV-EE-II-SS-RR-AA.ext`: modality (01 audio-visual `.mp4`, 02 video only
  `.mp4`, 03 audio only `.wav`), vocal channel (01 speech, 02 song), emotion (01-08: neutral calm happy sad angry
  fearful disgust surprised, `RAVDESS_CODES`), intensity (01 normal, 02 strong; neutral has normal only), statement
  (01 "Kids are talking by the door", 02 "Dogs are sitting by the door"), repetition (01, 02) and actor (01-24; odd
  = male, even = female).
- The speech zip (`Audio_Speech_Actors_01-24.zip`) and the per-actor video zips (`Video_Speech_Actor_01.zip`, ...)
  each unpack to `Actor_XX/` folders: `root` may hold them side by side or merged; every `Actor_XX/` folder under
  `root` is read (the song zips too, whose files are skipped).

One record per speech recording (the six fields after the modality, e.g. `01-05-02-01-01-12`, are its utterance id):
song files (channel 02) are skipped and counted; the video is the audio-visual mp4 when present, else the video-only
mp4, else none (audio only); the audio is the wav when present, else the audio-visual mp4's sound. The speaker is the
actor (`Actor_12`): folds must be actor-independent (e.g. `speaker_kfold:K`). The text is the statement.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .labels import EMOTION_CLASSES, RAVDESS_CODES, EmotionLabels, LabeledCorpus
from .msp_improv import wav_duration_or_note

MODALITIES = {"01": "audio_visual", "02": "video_only", "03": "audio_only"}
CHANNELS = {"01": "speech", "02": "song"}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
EXTENSIONS = {"01": ".mp4", "02": ".mp4", "03": ".wav"}

_NAME = re.compile(r"^(?P<fields>\d\d(?:-\d\d){6})\.(?P<ext>mp4|wav)$", re.IGNORECASE)
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")


@dataclass
class RavdessRecord:
    """One RAVDESS speech recording kept by `load_ravdess`."""

    utterance_id: str  # "01-05-02-01-01-12": the name's fields after the modality
    speaker: str  # "Actor_12"
    actor: int
    gender: str  # "M" (odd actors) or "F"
    label: str  # class name, e.g. "anger"
    label_code: str  # "05"
    intensity: str  # normal / strong
    statement: str  # "01" / "02"
    repetition: int
    text: str  # the statement's sentence
    video: str | None  # audio-visual mp4, else video-only mp4, else None
    video_kind: str  # "audio_visual", "video_only" or "" (none)
    wav: str | None  # the audio-only wav, None when absent
    start: float
    end: float | None  # the wav's duration (None without a wav: the video's, found by the preprocessing)

    def to_dict(self) -> dict:
        return asdict(self)


class RavdessCorpus(LabeledCorpus):
    """RAVDESS records + counts of recordings dropped per emotion code (`dropped`) + notes on skipped files."""


def parse_ravdess_name(name: str) -> dict:
    """`03-01-05-02-01-01-12.wav` -> its fields (modality, channel, emotion code and name, intensity, statement,
    repetition, actor, gender, speaker, utterance_id); a name that is not seven known fields raises."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a RAVDESS file name (expected e.g. 03-01-05-02-01-01-12.wav).")
    modality, channel, emotion, intensity, statement, repetition, actor = match["fields"].split("-")
    for value, table, what in ((modality, MODALITIES, "modality"), (channel, CHANNELS, "vocal channel"),
                               (emotion, RAVDESS_CODES, "emotion"), (intensity, INTENSITIES, "intensity"),
                               (statement, STATEMENTS, "statement")):
        if value not in table:
            raise ValueError(f"{name!r}: {what} {value!r} is not one of {list(table)}.")
    if match["ext"].lower() != EXTENSIONS[modality][1:]:
        raise ValueError(f"{name!r}: modality {modality} ({MODALITIES[modality]}) is a {EXTENSIONS[modality]} file.")
    number = int(actor)
    if not 1 <= number <= 24 or repetition not in ("01", "02"):
        raise ValueError(f"{name!r}: actor must be 01-24 and repetition 01 or 02.")
    return {
        "modality": MODALITIES[modality],
        "channel": CHANNELS[channel],
        "emotion_code": emotion,
        "emotion": RAVDESS_CODES[emotion],
        "intensity": INTENSITIES[intensity],
        "statement": statement,
        "repetition": int(repetition),
        "actor": number,
        "gender": "M" if number % 2 else "F",
        "speaker": f"Actor_{number:02d}",
        "utterance_id": "-".join(match["fields"].split("-")[1:]),
    }


def load_ravdess(
    root: str | os.PathLike,
    classes: Sequence[str] = EMOTION_CLASSES,
    labels: EmotionLabels | None = None,
) -> RavdessCorpus:
    """
    Reads every `Actor_XX/` folder under `root` -> `RavdessCorpus`: one `RavdessRecord` per speech recording whose
    emotion is one of `classes` (calm and the others dropped and counted per code), sorted by utterance id. Song
    files and names that are not RAVDESS names are skipped with a note; a file in the wrong actor's folder raises.
    """
    labels = labels or EmotionLabels.create(classes, merge_excited=False)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"RAVDESS root {root} does not exist; pass the folder holding the Actor_XX folders.")
    folders = sorted(p for p in [root, *root.rglob("Actor_*")] if p.is_dir() and _ACTOR_DIR.match(p.name))
    if not folders:
        raise FileNotFoundError(f"No Actor_01..Actor_24 folders under {root}; unpack the RAVDESS zips there.")
    files: dict[str, dict[str, Path]] = {}  # utterance id -> modality -> file
    info_of: dict[str, dict] = {}
    skipped: list[str] = []
    songs = 0
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                info = parse_ravdess_name(path.name)
            except ValueError as error:
                skipped.append(f"{path}: {error} File ignored.")
                continue
            if info["speaker"] != folder.name:
                raise ValueError(f"{path}: actor {info['actor']:02d} of the name is not the folder's {folder.name}.")
            if info["channel"] == "song":
                songs += 1
                continue
            utt = info["utterance_id"]
            if info["modality"] in files.get(utt, {}):
                raise ValueError(f"{path}: {utt} is also {files[utt][info['modality']]}; remove the duplicate.")
            files.setdefault(utt, {})[info["modality"]] = path
            info_of[utt] = info
    if songs:
        skipped.append(f"{songs} song files (vocal channel 02) skipped: speech only")
    records: list[RavdessRecord] = []
    dropped: dict[str, int] = {}
    for utt in sorted(files):
        info, found = info_of[utt], files[utt]
        label = labels.class_of(info["emotion"])
        if label is None:
            dropped[info["emotion_code"]] = dropped.get(info["emotion_code"], 0) + 1
            continue
        kind = next((k for k in ("audio_visual", "video_only") if k in found), "")
        wav = found.get("audio_only")
        if kind == "video_only" and wav is None:
            skipped.append(f"{found[kind]}: video only and no wav of {utt}: its rows will have no sound")
        end = wav_duration_or_note(wav, skipped)
        records.append(RavdessRecord(
            utterance_id=utt, speaker=info["speaker"], actor=info["actor"], gender=info["gender"], label=label,
            label_code=info["emotion_code"], intensity=info["intensity"], statement=info["statement"],
            repetition=info["repetition"], text=STATEMENTS[info["statement"]],
            video=str(found[kind]) if kind else None, video_kind=kind, wav=str(wav) if wav is not None else None,
            start=0.0, end=end,
        ))
    return RavdessCorpus(records=records, labels=labels, dropped=dict(sorted(dropped.items())), skipped=skipped)
