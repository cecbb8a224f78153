"""Reader for the CREMA-D release as laid out on disk (the CheyneyComputerScience/CREMA-D repository, files from LFS).

- `AudioWAV/<name>.wav` (16 kHz PCM, for computation), `VideoFlash/<name>.flv` (the audio-visual clips), `AudioMP3/`
  (not read), `VideoDemographics.csv` (`ActorID,Age,Sex,Race,Ethnicity`) and `processedResults/summaryTable.csv`
  (`"",FileName,VoiceVote,VoiceLevel,FaceVote,FaceLevel,MultiModalVote,MultiModalLevel`: the crowd's majority
  emotion letter(s) A D F H N S per presentation, several separated by ':' on a tie).
- Names `ActorID_Sentence_Emotion_Level`, e.g. `1001_DFA_ANG_XX`: actor 1001-1091, one of the 12 sentence codes
  (`SENTENCES`, their texts), the intended emotion (`CREMA_D_CODES`: ANG DIS FEA HAP NEU SAD) and level (LO MD HI XX).

`label="intended"` (default) takes the emotion the actor was asked to convey; `"voice"`, `"face"` or
`"multimodal"` takes the crowd's majority vote of that presentation (perceived). A tie (`A:D`) counts as the intended
emotion when it is one of the tied ones (`ties="intended"`, default) or drops the clip (`ties="drop"`; counted as
`tie`); a clip without votes is dropped (`no_votes`). The speaker is the actor id: folds must be actor-independent.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .iemocap import read_text
from .labels import (
    CREMA_D_CODES,
    CREMA_D_VOTES,
    EMOTION_CLASSES,
    EmotionLabels,
    LabeledCorpus,
)
from .msp_improv import wav_duration_or_note

SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
LABEL_SOURCES = {"intended": None, "voice": "VoiceVote", "face": "FaceVote", "multimodal": "MultiModalVote"}
TIES = ("intended", "drop")
SUMMARY_TABLE = os.path.join("processedResults", "summaryTable.csv")
DEMOGRAPHICS = "VideoDemographics.csv"

_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")


@dataclass
class CremaDRecord:
    """One CREMA-D clip kept by `load_crema_d`."""

    utterance_id: str  # "1001_DFA_ANG_XX"
    speaker: str  # actor id, "1001"
    gender: str  # "M" / "F" from VideoDemographics.csv ("" when absent)
    age: str
    label: str  # class name of the chosen label (intended or perceived)
    label_source: str  # intended / voice / face / multimodal
    intended: str  # emotion name of the file name
    voice_vote: str  # the crowd's letters, raw ("A", "A:D", "" when the table lacks the clip)
    face_vote: str
    multimodal_vote: str
    sentence: str  # "DFA"
    text: str  # the sentence
    level: str  # low / medium / high / unspecified
    wav: str | None  # AudioWAV/<name>.wav, None when absent
    video: str | None  # VideoFlash/<name>.flv, None when absent
    start: float
    end: float | None  # the wav's duration (None without a wav)

    def to_dict(self) -> dict:
        return asdict(self)


class CremaDCorpus(LabeledCorpus):
    """CREMA-D records + counts of clips dropped (per emotion, `tie`, `no_votes`) + notes on skipped files."""


def parse_crema_d_name(name: str) -> dict:
    """`1001_DFA_ANG_XX` (with or without extension) -> actor, sentence, text, emotion code and name, level."""
    match = _NAME.match(Path(name).stem if "." in name else name)
    if match is None:
        raise ValueError(f"{name!r} is not a CREMA-D name (expected e.g. 1001_DFA_ANG_XX).")
    for value, table, what in ((match["sentence"], SENTENCES, "sentence"), (match["emotion"], CREMA_D_CODES, "emotion"),
                               (match["level"], LEVELS, "level")):
        if value not in table:
            raise ValueError(f"{name!r}: {what} code {value!r} is not one of {list(table)}.")
    return {"actor": match["actor"], "sentence": match["sentence"], "text": SENTENCES[match["sentence"]],
            "emotion_code": match["emotion"], "emotion": CREMA_D_CODES[match["emotion"]],
            "level": LEVELS[match["level"]]}


def _csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(read_text(path))))


def read_summary_table(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """`summaryTable.csv` -> {file name: {"VoiceVote": "A", "FaceVote": "A:D", ...}}; a header without the vote
    columns raises naming them."""
    path = Path(path)
    rows = _csv_rows(path)
    needed = ["FileName", *(c for c in LABEL_SOURCES.values() if c)]
    missing = [c for c in needed if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; expected the release's header "
                         "\"\",FileName,VoiceVote,VoiceLevel,FaceVote,FaceLevel,MultiModalVote,MultiModalLevel.")
    return {r["FileName"].strip(): {c: (r[c] or "").strip() for c in needed[1:]} for r in rows}


def vote_emotion(vote: str, intended: str, ties: str = "intended") -> str | None:
    """The emotion of a crowd vote ("A", or "A:D" on a tie): the letter's emotion; on a tie the intended emotion when
    it is tied (ties="intended") else None; None for an empty vote. An unknown letter raises."""
    letters = [v.strip() for v in vote.split(":") if v.strip()]
    unknown = [v for v in letters if v not in CREMA_D_VOTES]
    if unknown:
        raise ValueError(f"vote {vote!r}: letters {unknown} are not one of {list(CREMA_D_VOTES)}.")
    emotions = [CREMA_D_VOTES[v] for v in letters]
    if len(emotions) == 1:
        return emotions[0]
    if emotions and ties == "intended" and intended in emotions:
        return intended
    return None


def load_crema_d(
    root: str | os.PathLike,
    classes: Sequence[str] = EMOTION_CLASSES,
    labels: EmotionLabels | None = None,
    label: str = "intended",
    ties: str = "intended",
) -> CremaDCorpus:
    """
    Reads CREMA-D at `root` (the folder with `AudioWAV/`, `VideoFlash/`, `VideoDemographics.csv`,
    `processedResults/summaryTable.csv`) -> `CremaDCorpus`: one `CremaDRecord` per clip (a wav or flv) whose chosen
    label (`label`: intended / voice / face / multimodal; `ties`, see the module doc) is one of `classes`, sorted by
    name. Other emotions are dropped and counted per emotion name; files with other names are skipped with a note.
    """
    if label not in LABEL_SOURCES:
        raise ValueError(f"label must be one of {list(LABEL_SOURCES)}, got {label!r}.")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {list(TIES)}, got {ties!r}.")
    labels = labels or EmotionLabels.create(classes, merge_excited=False)
    root = Path(root)
    audio_dir, video_dir = root / "AudioWAV", root / "VideoFlash"
    if not audio_dir.is_dir() and not video_dir.is_dir():
        raise FileNotFoundError(f"Neither {audio_dir} nor {video_dir} exists; pass the CREMA-D folder that holds them.")
    skipped: list[str] = []
    media: dict[str, dict[str, Path]] = {}
    for kind, folder, ext in (("wav", audio_dir, ".wav"), ("video", video_dir, ".flv")):
        if not folder.is_dir():
            skipped.append(f"{folder}: absent, clips have no {kind}")
            continue
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() != ext or not _NAME.match(path.stem):
                skipped.append(f"{path}: not a CREMA-D {ext} clip, ignored")
                continue
            media.setdefault(path.stem, {})[kind] = path
    summary_path = root / SUMMARY_TABLE
    votes = read_summary_table(summary_path) if summary_path.is_file() else {}
    if not votes:
        if label != "intended":
            raise FileNotFoundError(f"{summary_path} not found: label={label!r} needs the crowd's votes.")
        skipped.append(f"{summary_path}: absent, no votes recorded")
    demographics_path = root / DEMOGRAPHICS
    people = {r["ActorID"].strip(): r for r in _csv_rows(demographics_path)} if demographics_path.is_file() else {}
    records: list[CremaDRecord] = []
    dropped: dict[str, int] = {}
    for name in sorted(media):
        try:
            info = parse_crema_d_name(name)
        except ValueError as error:
            skipped.append(f"{error} Clip ignored.")
            continue
        clip_votes = votes.get(name, {})
        column = LABEL_SOURCES[label]
        if column is None:
            emotion = info["emotion"]
        else:
            vote = clip_votes.get(column, "")
            try:
                emotion = vote_emotion(vote, info["emotion"], ties)
            except ValueError as error:
                raise ValueError(f"{summary_path}, {name}: {error}") from None
            if emotion is None:
                key = "tie" if vote else "no_votes"
                dropped[key] = dropped.get(key, 0) + 1
                continue
        class_name = labels.class_of(emotion)
        if class_name is None:
            dropped[emotion] = dropped.get(emotion, 0) + 1
            continue
        wav, video = media[name].get("wav"), media[name].get("video")
        end = wav_duration_or_note(wav, skipped)
        person = people.get(info["actor"], {})
        sex = (person.get("Sex") or "").strip()
        records.append(CremaDRecord(
            utterance_id=name, speaker=info["actor"], gender={"Male": "M", "Female": "F"}.get(sex, sex),
            age=(person.get("Age") or "").strip(), label=class_name, label_source=label, intended=info["emotion"],
            voice_vote=clip_votes.get("VoiceVote", ""), face_vote=clip_votes.get("FaceVote", ""),
            multimodal_vote=clip_votes.get("MultiModalVote", ""), sentence=info["sentence"], text=info["text"],
            level=info["level"], wav=str(wav) if wav else None, video=str(video) if video else None, start=0.0,
            end=end,
        ))
    return CremaDCorpus(records=records, labels=labels, dropped=dict(sorted(dropped.items())), skipped=skipped)
