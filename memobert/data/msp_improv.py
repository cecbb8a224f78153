"""Reader for the MSP-IMPROV release as laid out on disk.

- `Evalution.txt` (sic) at the root: blocks separated by blank lines; a block starts
  `UTD-IMPROV-S01A-F01-R-FM01.avi; N; A:3.0; V:3.0; D:3.0; N:4.0;` (consensus category N/H/S/A, X = no agreement,
  then arousal, valence, dominance and naturalness) followed by one line per rater (counted, otherwise ignored).
- Audio at `Audio/session1/S01A/R/MSP-IMPROV-S01A-F01-R-FM01.wav`; video likewise under `Video/` (`.avi`).
- Name fields: `S01A` = sentence `S01` + target emotion letter (A/H/S/N), `F01` = speaker (gender + session number:
  6 sessions x 2 = 12 speakers), scenario `R` (read), `S` (spontaneous), `P` (natural interaction), `T` (target
  sentence inside an improvisation), and a last tag (`FM01`) kept raw as `turn`.

MSP-IMPROV ships no transcript for most turns: `text` is "" unless `transcripts` supplies one (a mapping, a folder of
`<utterance_id>.txt` files, or a `utterance_id<TAB>text` file). Utterances are whole files: start = 0, end = the
wav's duration. Files are decoded as UTF-8 with a latin-1 fallback.
"""

from __future__ import annotations

import os
import re
import wave
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .iemocap import read_text
from .labels import EMOTION_CLASSES, MSP_IMPROV_CODES, EmotionLabels, LabeledCorpus, msp_improv_emotion

EVALUATION_FILE = "Evalution.txt"  # sic: the release's spelling
SCENARIOS = {"R": "read", "S": "spontaneous", "P": "natural interaction", "T": "target sentence in improvisation"}
TARGET_EMOTIONS = {"A": "anger", "H": "happiness", "S": "sadness", "N": "neutral"}

_NAME = re.compile(
    r"^(?:UTD|MSP)-IMPROV-(?P<sentence>S\d\d)(?P<target>[A-Z])-(?P<gender>[FM])(?P<session>\d\d)-"
    r"(?P<scenario>[A-Z])-(?P<turn>[A-Za-z0-9]+)(?:\.(?:avi|wav))?$"
)
_SCORE = re.compile(r"^(?P<key>[AVDN])\s*:\s*(?P<value>[-+]?\d+(?:\.\d*)?)$")


@dataclass
class MspImprovRecord:
    """One MSP-IMPROV utterance kept by `load_msp_improv`."""

    utterance_id: str  # "MSP-IMPROV-S01A-F01-R-FM01" (the wav's stem)
    session: int
    speaker: str  # "F01": gender + session
    gender: str
    label: str  # class name of the consensus category
    label_code: str  # consensus letter: N / H / S / A
    text: str  # "" unless a transcript was supplied
    wav: str
    video: str | None  # None when absent
    start: float
    end: float | None  # wav duration in seconds (None when the wav is absent)
    sentence: str  # "S01"
    target_emotion: str  # emotion the actors were asked to convey, e.g. "anger"
    scenario: str  # R / S / P / T
    turn: str  # last name field, kept raw
    arousal: float
    valence: float
    dominance: float
    naturalness: float
    raters: int  # rater lines in the block

    def to_dict(self) -> dict:
        return asdict(self)


class MspImprovCorpus(LabeledCorpus):
    """MSP-IMPROV records + counts of utterances dropped per consensus letter (`dropped`) + notes on skipped items."""


def parse_msp_name(name: str) -> dict:
    """`UTD-IMPROV-S01A-F01-R-FM01.avi` (or `MSP-IMPROV-...`, with or without extension) -> its fields; else raises."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(
            f"{name!r} is not an MSP-IMPROV name (expected e.g. UTD-IMPROV-S01A-F01-R-FM01.avi)."
        )
    if match["target"] not in TARGET_EMOTIONS:
        raise ValueError(f"{name!r}: target emotion letter {match['target']!r} is not one of {list(TARGET_EMOTIONS)}.")
    if match["scenario"] not in SCENARIOS:
        raise ValueError(f"{name!r}: scenario {match['scenario']!r} is not one of {list(SCENARIOS)}.")
    sentence_dir = f"{match['sentence']}{match['target']}"
    session = int(match["session"])
    stem = f"MSP-IMPROV-{sentence_dir}-{match['gender']}{match['session']}-{match['scenario']}-{match['turn']}"
    return {
        "utterance_id": stem,
        "sentence": match["sentence"],
        "sentence_dir": sentence_dir,
        "target_emotion": TARGET_EMOTIONS[match["target"]],
        "gender": match["gender"],
        "session": session,
        "speaker": f"{match['gender']}{match['session']}",
        "scenario": match["scenario"],
        "turn": match["turn"],
    }


def read_evaluation(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """
    `Evalution.txt` -> (one dict per block: name, code, arousal, valence, dominance, naturalness, raters, line;
    notes on lines outside any block). A header line that does not parse raises naming the file and line.
    """
    path = Path(path)
    blocks: list[dict] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    current: dict | None = None
    for number, raw in enumerate(read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line:
            current = None  # blank line closes the block
            continue
        fields = [f.strip() for f in line.split(";")]
        if not (line.startswith(("UTD-IMPROV-", "MSP-IMPROV-")) or fields[0].endswith(".avi")):
            if current is not None:
                current["raters"] += 1
            else:
                notes.append(f"{path}, line {number}: outside any block, ignored: {line[:60]!r}")
            continue
        hint = "expected 'UTD-IMPROV-S01A-F01-R-FM01.avi; N; A:3.0; V:3.0; D:3.0; N:4.0;'. Fix the line."
        fields = [f for f in fields if f]
        if len(fields) < 6:
            raise ValueError(f"{path}, line {number}: {len(fields)} ';'-separated fields in {line!r}; {hint}")
        try:
            info = parse_msp_name(fields[0])
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: {error} {hint}") from None
        code = fields[1]
        if code not in MSP_IMPROV_CODES:
            raise ValueError(
                f"{path}, line {number}: consensus category {code!r} is not one of {list(MSP_IMPROV_CODES)}; {hint}"
            )
        scores = {}
        for text in fields[2:6]:
            match = _SCORE.match(text)
            if match is None:
                raise ValueError(f"{path}, line {number}: score {text!r} is not 'A:3.0'-like; {hint}")
            scores[match["key"]] = float(match["value"])
        if list(scores) != ["A", "V", "D", "N"]:
            raise ValueError(
                f"{path}, line {number}: scores must be A, V, D, N in that order, got {list(scores)}; {hint}"
            )
        utt = info["utterance_id"]
        if utt in seen:
            raise ValueError(
                f"{path}, line {number}: {fields[0]} already listed at line {seen[utt]}; remove the duplicate."
            )
        seen[utt] = number
        current = {
            **info,
            "code": code,
            "arousal": scores["A"],
            "valence": scores["V"],
            "dominance": scores["D"],
            "naturalness": scores["N"],
            "raters": 0,
            "line": number,
        }
        blocks.append(current)
    return blocks, notes


def _read_transcripts(transcripts: Mapping[str, str] | str | os.PathLike | None) -> dict[str, str]:
    if transcripts is None:
        return {}
    if isinstance(transcripts, Mapping):
        return {str(k): " ".join(str(v).split()) for k, v in transcripts.items()}
    path = Path(transcripts)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if not p.name.startswith("."))
        return {p.stem: " ".join(read_text(p).split()) for p in files}
    if path.is_file():
        out = {}
        for number, line in enumerate(read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            if "\t" not in line:
                raise ValueError(f"{path}, line {number}: expected 'utterance_id<TAB>text', got {line[:60]!r}.")
            key, text = line.split("\t", 1)
            out[key.strip()] = " ".join(text.split())
        return out
    raise FileNotFoundError(f"transcripts {path} is neither a folder of <utterance_id>.txt files nor a file.")


def wav_duration(path: str | os.PathLike) -> float:
    """Duration in seconds of a PCM WAV file (stdlib `wave`)."""
    with wave.open(os.fspath(path), "rb") as handle:
        return handle.getnframes() / float(handle.getframerate())


def wav_duration_or_note(path: str | os.PathLike | None, notes: list[str]) -> float | None:
    """`wav_duration`, or None (with a note appended: the duration then comes from the media) when `path` is None or
    not a readable PCM WAV."""
    if path is None:
        return None
    try:
        return wav_duration(path)
    except (wave.Error, EOFError) as error:
        notes.append(f"{path}: not a readable PCM WAV ({error}); its duration is taken from the media")
        return None


def load_msp_improv(
    root: str | os.PathLike,
    classes: Sequence[str] = EMOTION_CLASSES,
    labels: EmotionLabels | None = None,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    transcripts: Mapping[str, str] | str | os.PathLike | None = None,
    on_missing_audio: str = "error",
) -> MspImprovCorpus:
    """
    Reads MSP-IMPROV at `root` (the folder holding `Evalution.txt`, `Audio/`, `Video/`) -> `MspImprovCorpus`: one
    `MspImprovRecord` per utterance whose consensus category is one of `classes` and whose scenario is in
    `scenarios`, sorted by utterance id. `X` (no agreement) and other classes are dropped and counted per letter.
    `on_missing_audio`: "error" (default), "skip" (noted in `skipped`) or "keep".
    """
    if on_missing_audio not in ("error", "skip", "keep"):
        raise ValueError(f"on_missing_audio must be 'error', 'skip' or 'keep', got {on_missing_audio!r}.")
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        raise ValueError(f"Unknown MSP-IMPROV scenario(s) {bad}; choose from {list(SCENARIOS)}.")
    labels = labels or EmotionLabels.create(classes, merge_excited=False)
    root = Path(root)
    evaluation = root / EVALUATION_FILE
    if not evaluation.is_file():
        raise FileNotFoundError(
            f"{evaluation} not found; pass the MSP-IMPROV folder that holds {EVALUATION_FILE} (sic)."
        )
    blocks, skipped = read_evaluation(evaluation)
    texts = _read_transcripts(transcripts)
    records: list[MspImprovRecord] = []
    dropped: dict[str, int] = {}
    for block in blocks:
        if block["scenario"] not in scenarios:
            continue
        label = labels.class_of(msp_improv_emotion(block["code"]))
        if label is None:
            dropped[block["code"]] = dropped.get(block["code"], 0) + 1
            continue
        utt = block["utterance_id"]
        relative = Path(f"session{block['session']}") / block["sentence_dir"] / block["scenario"]
        wav = root / "Audio" / relative / f"{utt}.wav"
        end = None
        if wav.is_file():
            try:
                end = wav_duration(wav)
            except (wave.Error, EOFError) as error:
                raise ValueError(f"{wav}: not a readable PCM WAV ({error}); re-extract it from the release.") from None
        elif on_missing_audio == "error":
            raise FileNotFoundError(
                f"{wav} not found ({evaluation}, line {block['line']}); restore the release's Audio folder or pass "
                "on_missing_audio='skip'."
            )
        elif on_missing_audio == "skip":
            skipped.append(f"{wav}: missing audio, utterance {utt} left out")
            continue
        video_dir = root / "Video" / relative
        candidates = [video_dir / f"{utt}.avi", video_dir / f"UTD-IMPROV-{utt[len('MSP-IMPROV-'):]}.avi"]
        video = next((str(p) for p in candidates if p.is_file()), None)
        records.append(
            MspImprovRecord(
                utterance_id=utt,
                session=block["session"],
                speaker=block["speaker"],
                gender=block["gender"],
                label=label,
                label_code=block["code"],
                text=texts.get(utt, ""),
                wav=str(wav),
                video=video,
                start=0.0,
                end=end,
                sentence=block["sentence"],
                target_emotion=block["target_emotion"],
                scenario=block["scenario"],
                turn=block["turn"],
                arousal=block["arousal"],
                valence=block["valence"],
                dominance=block["dominance"],
                naturalness=block["naturalness"],
                raters=block["raters"],
            )
        )
    records.sort(key=lambda r: r.utterance_id)
    return MspImprovCorpus(records=records, labels=labels, dropped=dict(sorted(dropped.items())), skipped=skipped)
