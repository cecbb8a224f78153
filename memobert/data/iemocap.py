"""Reader for the IEMOCAP release as laid out on disk (`IEMOCAP_full_release/Session1..5/`).

Per session folder:
- `dialog/EmoEvaluation/<dialog>.txt`: a `%` header line, then blocks separated by blank lines; a block starts
  `[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]` (start, end, utterance, label code,
  [valence, arousal, dominance]) followed by per-annotator lines (`C-E2: ...`, `A-E3: ...`), which are ignored.
  The sub-folders `Categorical/`, `Attribute/`, `Self-evaluation/` (per-annotator files) are ignored.
- `dialog/transcriptions/<dialog>.txt`: `Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.`; lines for turns that
  were never rated (`..._MXX0`) and lines that match no utterance are ignored (counted in `skipped`); a line with an
  utterance id but no timestamp (`Ses01F_impro01_F001: Yeah.`) still gives that utterance its text.
- `sentences/wav/<dialog>/<utterance>.wav` and `dialog/avi/DivX/<dialog>.avi` (both actors side by side).

Files are not always valid UTF-8: each is decoded as UTF-8 with a latin-1 fallback.
The utterance's last name group (`F000`, `M012`) is the speaking actor: speaker = `Ses01F` / `Ses01M` (10 in all).
The letter after `Ses0N` in the dialog name is the actor who wore the motion-capture markers.

With the 4 default classes and excited merged into happiness, the full release gives 5531 utterances.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .labels import EMOTION_CLASSES, EmotionLabels, LabeledCorpus, iemocap_emotion

RELEASE_DIR = "IEMOCAP_full_release"
EVALUATION_DIR = os.path.join("dialog", "EmoEvaluation")
TRANSCRIPT_DIR = os.path.join("dialog", "transcriptions")
WAV_DIR = os.path.join("sentences", "wav")
VIDEO_DIR = os.path.join("dialog", "avi", "DivX")

_NUMBER = r"[-+]?\d+(?:\.\d*)?"
_EVAL_LINE = re.compile(
    rf"^\[\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*\]\s+(?P<utt>\S+)\s+(?P<code>\S+)\s+"
    rf"\[\s*(?P<v>{_NUMBER})\s*,\s*(?P<a>{_NUMBER})\s*,\s*(?P<d>{_NUMBER})\s*\]\s*$"
)
_TRANSCRIPT_LINE = re.compile(
    rf"^(?P<utt>Ses\d\d[FM]_[^\s:\[]+)\s*"
    rf"(?:\[\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*\])?\s*:\s?(?P<text>.*)$"
)
_UTTERANCE = re.compile(
    r"^(?P<dialog>Ses(?P<session>\d\d)(?P<markers>[FM])_(?P<kind>impro|script)[^\s]*)_(?P<actor>[FM])\d+$"
)


@dataclass
class IemocapRecord:
    """One rated IEMOCAP utterance kept by `load_iemocap` (times in seconds from the dialog's start)."""

    utterance_id: str
    dialog: str
    session: int
    speaker: str  # "Ses01F": session + the speaking actor's gender
    gender: str  # "F" or "M"
    label: str  # class name after merging, e.g. "happiness"
    label_code: str  # raw code from the release, e.g. "exc"
    text: str  # "" when the transcript has no line for the utterance
    wav: str
    video: str | None  # the dialog's avi, None when absent
    start: float
    end: float
    improvised: bool
    valence: float
    arousal: float
    dominance: float
    markers: str  # gender of the actor who wore the markers (letter after SesN in the dialog name)

    def to_dict(self) -> dict:
        return asdict(self)


class IemocapCorpus(LabeledCorpus):
    """IEMOCAP records + counts of utterances dropped per label code (`dropped`) + notes on skipped items."""


def read_text(path: str | os.PathLike) -> str:
    """A text file decoded as UTF-8, or as latin-1 when it is not valid UTF-8 (some IEMOCAP files are not)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.lstrip("\ufeff")


def _lines(path: Path):
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        yield number, line.strip()


def parse_utterance_id(utterance_id: str) -> dict:
    """`Ses01M_script01_1_F000` -> dialog, session, markers, improvised, gender, speaker; malformed ids raise."""
    match = _UTTERANCE.match(utterance_id)
    if match is None:
        raise ValueError(
            f"{utterance_id!r} is not an IEMOCAP utterance id "
            "(expected e.g. Ses01F_impro01_F000 or Ses01M_script01_1_M012)."
        )
    session = int(match["session"])
    return {
        "dialog": match["dialog"],
        "session": session,
        "markers": match["markers"],
        "improvised": match["kind"] == "impro",
        "gender": match["actor"],
        "speaker": f"Ses{session:02d}{match['actor']}",
    }


def read_emo_evaluation(path: str | os.PathLike) -> list[dict]:
    """
    The utterance lines of one `EmoEvaluation/<dialog>.txt`: dicts with utterance_id, start, end, code, valence,
    arousal, dominance, line. Annotator lines are skipped; a `[`-line that does not parse raises naming file and line.
    """
    path = Path(path)
    entries: list[dict] = []
    seen: dict[str, int] = {}
    for number, line in _lines(path):
        if not line.startswith("["):
            continue  # header (%), blank separator, per-annotator lines (C-E2:, A-E3:, ...)
        match = _EVAL_LINE.match(line)
        if match is None:
            raise ValueError(
                f"{path}, line {number}: cannot parse {line!r}; expected "
                "'[START - END]<TAB>UTTERANCE<TAB>CODE<TAB>[V, A, D]' (e.g. '[6.2901 - 8.2357]\tSes01F_impro01_F000\t"
                "neu\t[2.5000, 2.5000, 2.5000]'). Fix or remove the line."
            )
        utt = match["utt"]
        if utt in seen:
            raise ValueError(
                f"{path}, line {number}: utterance {utt} already listed at line {seen[utt]}; remove the duplicate."
            )
        seen[utt] = number
        start, end = float(match["start"]), float(match["end"])
        if end < start:
            raise ValueError(f"{path}, line {number}: end {end} is before start {start} for {utt}; fix the times.")
        entries.append(
            {
                "utterance_id": utt,
                "start": start,
                "end": end,
                "code": match["code"],
                "valence": float(match["v"]),
                "arousal": float(match["a"]),
                "dominance": float(match["d"]),
                "line": number,
            }
        )
    return entries


def read_transcription(path: str | os.PathLike) -> tuple[dict[str, str], list[str]]:
    """
    `transcriptions/<dialog>.txt` -> ({utterance_id: text}, notes on skipped lines). Lines without a timestamp that
    still name an utterance keep their text; lines naming no utterance are skipped with a note.
    """
    path = Path(path)
    texts: dict[str, str] = {}
    skipped: list[str] = []
    for number, line in _lines(path):
        if not line:
            continue
        match = _TRANSCRIPT_LINE.match(line)
        if match is None:
            skipped.append(f"{path}, line {number}: no utterance id, line ignored: {line[:60]!r}")
            continue
        texts[match["utt"]] = " ".join(match["text"].split())
    return texts, skipped


def _release_root(root: str | os.PathLike) -> Path:
    root = Path(root)
    if (root / RELEASE_DIR).is_dir():
        root = root / RELEASE_DIR
    if not root.is_dir():
        raise FileNotFoundError(f"IEMOCAP root {root} does not exist; pass the IEMOCAP_full_release folder.")
    return root


def _session_dirs(root: Path, sessions: Sequence[int] | None) -> list[tuple[int, Path]]:
    if sessions is None:
        found = sorted(
            (int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := re.fullmatch(r"Session(\d+)", p.name))
        )
        if not found:
            raise FileNotFoundError(
                f"No Session1..Session5 folders in {root}; pass the IEMOCAP_full_release folder (or its parent)."
            )
        return found
    out = []
    for n in sessions:
        folder = root / f"Session{n}"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist; sessions={list(sessions)} asks for it.")
        out.append((int(n), folder))
    return out


def load_iemocap(
    root: str | os.PathLike,
    classes: Sequence[str] = EMOTION_CLASSES,
    merge_excited: bool = True,
    labels: EmotionLabels | None = None,
    sessions: Sequence[int] | None = None,
    on_missing_audio: str = "error",
) -> IemocapCorpus:
    """
    Reads IEMOCAP at `root` (`IEMOCAP_full_release` or its parent) -> `IemocapCorpus`: one `IemocapRecord` per rated
    utterance whose label is one of `classes` (excited merged into happiness unless `merge_excited=False`; or pass
    a ready `labels`), sorted by utterance id. Other labels are dropped and counted per raw code in `dropped`.

    `on_missing_audio`: "error" (default) raises when an utterance's wav is absent; "skip" leaves the utterance out
    with a note in `skipped`; "keep" keeps it (the wav path then does not exist).
    Malformed evaluation lines raise `ValueError` naming the file and line.
    """
    if on_missing_audio not in ("error", "skip", "keep"):
        raise ValueError(f"on_missing_audio must be 'error', 'skip' or 'keep', got {on_missing_audio!r}.")
    labels = labels or EmotionLabels.create(classes, merge_excited=merge_excited)
    root = _release_root(root)
    records: list[IemocapRecord] = []
    dropped: dict[str, int] = {}
    skipped: list[str] = []
    for session, folder in _session_dirs(root, sessions):
        evaluation_dir = folder / EVALUATION_DIR
        if not evaluation_dir.is_dir():
            raise FileNotFoundError(f"{evaluation_dir} does not exist: is {folder} an IEMOCAP session folder?")
        # Only the files directly in EmoEvaluation/: its sub-folders hold per-annotator files. "._*" are macOS debris.
        eval_files = sorted(p for p in evaluation_dir.glob("*.txt") if p.is_file() and not p.name.startswith("."))
        for eval_path in eval_files:
            dialog = eval_path.stem
            transcript_path = folder / TRANSCRIPT_DIR / f"{dialog}.txt"
            if transcript_path.is_file():
                texts, notes = read_transcription(transcript_path)
                skipped.extend(notes)
            else:
                texts = {}
                skipped.append(f"{transcript_path}: no transcript file, texts of {dialog} left empty")
            video = folder / VIDEO_DIR / f"{dialog}.avi"
            for entry in read_emo_evaluation(eval_path):
                utt = entry["utterance_id"]
                where = f"{eval_path}, line {entry['line']}"
                try:
                    info = parse_utterance_id(utt)
                except ValueError as error:
                    raise ValueError(f"{where}: {error}") from None
                if info["dialog"] != dialog:
                    raise ValueError(f"{where}: utterance {utt} does not belong to dialog {dialog} (the file's name).")
                if info["session"] != session:
                    raise ValueError(f"{where}: utterance {utt} is from session {info['session']}, found in {folder}.")
                try:
                    emotion = iemocap_emotion(entry["code"])
                except KeyError as error:
                    raise ValueError(f"{where}: {error.args[0]}") from None
                label = labels.class_of(emotion)
                if label is None:
                    dropped[entry["code"]] = dropped.get(entry["code"], 0) + 1
                    continue
                wav = folder / WAV_DIR / dialog / f"{utt}.wav"
                if not wav.is_file():
                    if on_missing_audio == "error":
                        raise FileNotFoundError(
                            f"{wav} not found (utterance {utt}, {where}); restore the release's sentences/wav folder "
                            "or pass on_missing_audio='skip'."
                        )
                    if on_missing_audio == "skip":
                        skipped.append(f"{wav}: missing audio, utterance {utt} left out")
                        continue
                if utt not in texts:
                    skipped.append(f"{transcript_path}: no transcript line for {utt}, text left empty")
                records.append(
                    IemocapRecord(
                        utterance_id=utt,
                        dialog=dialog,
                        session=session,
                        speaker=info["speaker"],
                        gender=info["gender"],
                        label=label,
                        label_code=entry["code"],
                        text=texts.get(utt, ""),
                        wav=str(wav),
                        video=str(video) if video.is_file() else None,
                        start=entry["start"],
                        end=entry["end"],
                        improvised=info["improvised"],
                        valence=entry["valence"],
                        arousal=entry["arousal"],
                        dominance=entry["dominance"],
                        markers=info["markers"],
                    )
                )
    records.sort(key=lambda r: r.utterance_id)
    return IemocapCorpus(records=records, labels=labels, dropped=dict(sorted(dropped.items())), skipped=skipped)


def speaker_side(record: IemocapRecord | dict, markers_side: str = "left") -> str:
    """
    Which half ("left" / "right") of the dialog's side-by-side avi shows the speaking actor: a HEURISTIC, not a fact
    of the release. Rule: the actor who wore the markers (letter after SesN in the dialog name, e.g. `F` in
    `Ses01F_impro01`) is on the `markers_side` half, the other actor on the other half. Check it on a few frames of
    your copy (and flip `markers_side` if needed); the active-speaker pipeline is the default and needs no rule.
    """
    if markers_side not in ("left", "right"):
        raise ValueError(f"markers_side must be 'left' or 'right', got {markers_side!r}.")
    utterance_id = record["utterance_id"] if isinstance(record, dict) else record.utterance_id
    info = parse_utterance_id(utterance_id)
    other = "right" if markers_side == "left" else "left"
    return markers_side if info["gender"] == info["markers"] else other


def side_box(side: str, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) of the `side` half of a `width` x `height` frame, for cropping one actor."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}.")
    half = width // 2
    return (0, 0, half, height) if side == "left" else (half, 0, width, height)
