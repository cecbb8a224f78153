"""Reader for the Berlin Emotional Speech Database (EmoDB) as laid out on disk (`wav/` of the download).

Names `SSTTTEV.wav`, e.g. `03a01Fa.wav`: speaker `03` (03 08 09 10 11 12 13 14 15 16; `SPEAKERS` gives sex and
age), text code `a01` (one of the ten German sentences, `SENTENCES`), emotion letter `F` (`EMODB_CODES`: W anger,
L boredom, E disgust, A fear, F happiness, T sadness, N neutral) and version letter `a` (a, b, c, ...). `root` may be
the download folder (with `wav/`) or the `wav/` folder itself. Utterances are whole files (start 0, end the wav's
duration); the text is the sentence (German). The protocol is leave-one-speaker-out (`--folds
leave_one_speaker_out`).
"""

from __future__ import annotations

import os
import re
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .labels import EMODB_CODES, EMOTION_CLASSES, EmotionLabels, LabeledCorpus
from .msp_improv import wav_duration

SPEAKERS = {  # speaker -> (sex, age) from the database's documentation
    "03": ("M", 31), "08": ("F", 34), "09": ("F", 21), "10": ("M", 32), "11": ("M", 26),
    "12": ("M", 30), "13": ("F", 32), "14": ("F", 35), "15": ("M", 25), "16": ("F", 31),
}
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])$")


@dataclass
class EmoDbRecord:
    """One EmoDB utterance kept by `load_emodb`."""

    utterance_id: str  # "03a01Fa"
    speaker: str  # "03"
    gender: str
    age: int
    label: str  # class name
    label_code: str  # the German letter, e.g. "W"
    text_code: str  # "a01"
    text: str  # the German sentence
    version: str
    wav: str
    start: float
    end: float

    def to_dict(self) -> dict:
        return asdict(self)


class EmoDbCorpus(LabeledCorpus):
    """EmoDB records + counts of utterances dropped per emotion letter (`dropped`) + notes on skipped files."""


def parse_emodb_name(name: str) -> dict:
    """`03a01Fa(.wav)` -> speaker, gender, age, text code and sentence, emotion letter and name, version; raises on a
    name that is not of the form or an unknown speaker, text code or emotion letter."""
    stem = name[:-4] if name.lower().endswith(".wav") else name
    match = _NAME.match(stem)
    if match is None:
        raise ValueError(f"{name!r} is not an EmoDB name (expected e.g. 03a01Fa.wav).")
    for value, table, what in ((match["speaker"], SPEAKERS, "speaker"), (match["text"], SENTENCES, "text code"),
                               (match["emotion"], EMODB_CODES, "emotion letter")):
        if value not in table:
            raise ValueError(f"{name!r}: {what} {value!r} is not one of {list(table)}.")
    sex, age = SPEAKERS[match["speaker"]]
    return {"utterance_id": stem, "speaker": match["speaker"], "gender": sex, "age": age,
            "text_code": match["text"], "text": SENTENCES[match["text"]], "label_code": match["emotion"],
            "emotion": EMODB_CODES[match["emotion"]], "version": match["version"]}


def load_emodb(
    root: str | os.PathLike,
    classes: Sequence[str] = EMOTION_CLASSES,
    labels: EmotionLabels | None = None,
) -> EmoDbCorpus:
    """
    Reads EmoDB at `root` (the folder with `wav/`, or `wav/` itself) -> `EmoDbCorpus`: one `EmoDbRecord` per wav
    whose emotion is one of `classes` (others dropped and counted per letter), sorted by name. Files whose name is
    not an EmoDB name (unknown speaker, text or emotion letter) are skipped with a note.
    """
    labels = labels or EmotionLabels.create(classes, merge_excited=False)
    root = Path(root)
    folder = root / "wav" if (root / "wav").is_dir() else root
    if not folder.is_dir():
        raise FileNotFoundError(f"EmoDB root {root} does not exist; pass the folder holding wav/.")
    wavs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav"
                  and not p.name.startswith("."))
    if not wavs:
        raise FileNotFoundError(f"No .wav files in {folder}; pass the EmoDB folder holding wav/ (03a01Fa.wav, ...).")
    records: list[EmoDbRecord] = []
    dropped: dict[str, int] = {}
    skipped: list[str] = []
    for path in wavs:
        try:
            info = parse_emodb_name(path.name)
        except ValueError as error:
            skipped.append(f"{path}: {error} File ignored.")
            continue
        label = labels.class_of(info["emotion"])
        if label is None:
            dropped[info["label_code"]] = dropped.get(info["label_code"], 0) + 1
            continue
        try:
            end = wav_duration(path)
        except (wave.Error, EOFError) as error:
            raise ValueError(f"{path}: not a readable PCM WAV ({error}); restore it from the release.") from None
        records.append(EmoDbRecord(
            utterance_id=info["utterance_id"], speaker=info["speaker"], gender=info["gender"], age=info["age"],
            label=label, label_code=info["label_code"], text_code=info["text_code"], text=info["text"],
            version=info["version"], wav=str(path), start=0.0, end=end,
        ))
    return EmoDbCorpus(records=records, labels=labels, dropped=dict(sorted(dropped.items())), skipped=skipped)
