"""Reader for the MELD release as laid out on disk (`MELD.Raw`: the CSVs and the unpacked clip archives).

- `train_sent_emo.csv`, `dev_sent_emo.csv`, `test_sent_emo.csv` with the columns `Sr No., Utterance, Speaker, Emotion,
  Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime` (times `00:16:16,059` or `0:16:16,059`
  in the episode, not in the clip).
- Clips `dia{D}_utt{U}.mp4` in `train_splits/` (train.tar.gz), `dev_splits_complete/` (dev.tar.gz) and
  `output_repeated_splits_test/` (test.tar.gz); a few are missing from the release (e.g. dev `dia110_utt7`).
- The CSVs are UTF-8 in the current release, but copies exist with Windows-1252 bytes or their mojibake (`â€™`,
  `\\x92`): each file is decoded as UTF-8 (cp1252 fallback) and such sequences are repaired to the characters meant.

One record per row whose emotion is one of `classes` (`MELD_EMOTIONS`: joy = happiness; disgust, fear and surprise
are dropped and counted unless asked for); its split is "train", "validation" (the dev set) or "test", written to the
corpus' session column so that the official split is the fold (`--folds official_split`). A record without its clip
keeps its text (`clip` None): the corpus row is then text only (no visual or acoustic frames).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .labels import EMOTION_CLASSES, MELD_EMOTIONS, EmotionLabels, LabeledCorpus

SPLITS = {"train": "train", "dev": "validation", "test": "test"}  # file prefix -> split name of the folds
CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
           "Episode", "StartTime", "EndTime")
_TIME = re.compile(r"^(\d+):(\d\d):(\d\d)[,.](\d{1,3})$")
# Windows-1252 punctuation as C1 control characters (its bytes read as latin-1), and UTF-8 read as Windows-1252
# ("â€™" for "’"; an undefined byte such as 0x9d kept as that control character).
_C1 = {chr(b): bytes([b]).decode("cp1252") for b in (0x85, 0x91, 0x92, 0x93, 0x94, 0x96, 0x97)}


def _as_cp1252(data: bytes) -> str:
    out = []
    for b in data:
        try:
            out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(b))
    return "".join(out)


_MOJIBAKE = {_as_cp1252(c.encode("utf-8")): c
             for c in "’‘“”–—…éèàóíñü"}
_MOJIBAKE_RE = re.compile("|".join(re.escape(k) for k in sorted(_MOJIBAKE, key=len, reverse=True)))


@dataclass
class MeldRecord:
    """One MELD utterance kept by `load_meld`."""

    utterance_id: str  # "train_dia0_utt3" (the dialogue and utterance ids repeat across splits)
    split: str  # train / validation / test
    dialogue: int
    utterance: int
    speaker: str
    label: str  # class name
    emotion: str  # raw MELD word, e.g. "joy"
    sentiment: str
    text: str
    season: int
    episode: int
    episode_start: float  # seconds into the episode
    episode_end: float
    clip: str | None  # dia{D}_utt{U}.mp4, None when the release lacks it
    sr_no: int

    def to_dict(self) -> dict:
        return asdict(self)


class MeldCorpus(LabeledCorpus):
    """MELD records + counts of rows dropped per emotion (`dropped`) + notes (missing clips, ...)."""


def repair_text(text: str) -> str:
    """Typographic quotes as the writer meant them: Windows-1252 bytes read as latin-1 (`\\x92`) and UTF-8 read as
    Windows-1252 (`â€™`) are decoded again; other text is unchanged. Whitespace runs become one space."""
    text = _MOJIBAKE_RE.sub(lambda match: _MOJIBAKE[match.group(0)], text)
    text = "".join(_C1.get(c, c) for c in text)
    return " ".join(text.split())


def read_csv_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_time(value: str) -> float:
    """`00:16:16,059` or `0:16:16,059` -> seconds; else raises."""
    match = _TIME.match(value.strip())
    if match is None:
        raise ValueError(f"time {value!r} is not H:MM:SS,mmm")
    h, m, s, ms = match.groups()
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def meld_root(root: str | os.PathLike) -> Path:
    """The folder holding the `*_sent_emo.csv` files: `root` or its `MELD.Raw/` or `MELD/`; else raises."""
    root = Path(root)
    for candidate in (root, root / "MELD.Raw", root / "MELD"):
        if (candidate / "train_sent_emo.csv").is_file() or (candidate / "test_sent_emo.csv").is_file():
            return candidate
    raise FileNotFoundError(f"No {{train,dev,test}}_sent_emo.csv in {root} (or its MELD.Raw/ folder); pass the MELD "
                            "folder holding them.")


def load_meld(
    root: str | os.PathLike,
    classes: Sequence[str] = EMOTION_CLASSES,
    labels: EmotionLabels | None = None,
    splits: Sequence[str] = tuple(SPLITS),
) -> MeldCorpus:
    """
    Reads MELD at `root` (the folder with the `*_sent_emo.csv` files and the clip folders, or its parent) ->
    `MeldCorpus`, records sorted by split (train, dev, test), dialogue and utterance. `splits`: the files to read
    (train dev test; an absent file is noted). A row that does not parse raises naming the file and its line.
    """
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"Unknown MELD split(s) {bad}; choose from {list(SPLITS)}.")
    labels = labels or EmotionLabels.create(classes, merge_excited=False)
    root = meld_root(root)
    records: list[MeldRecord] = []
    dropped: dict[str, int] = {}
    skipped: list[str] = []
    for split in splits:
        path = root / f"{split}_sent_emo.csv"
        if not path.is_file():
            skipped.append(f"{path}: absent, split {split} not read")
            continue
        reader = csv.DictReader(io.StringIO(read_csv_text(path)))
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header and c != "Sr No."]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; expected the official header {', '.join(COLUMNS)}.")
        reader.fieldnames = header
        clip_dir = root / CLIP_DIRS[split]
        missing_clips = 0
        seen: set[tuple[int, int]] = set()
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            try:
                dialogue, utterance = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
                start, end = parse_time(row["StartTime"]), parse_time(row["EndTime"])
                season, episode = int(row["Season"]), int(row["Episode"])
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: {error}; fix the row.") from None
            if (dialogue, utterance) in seen:
                raise ValueError(f"{where}: dia{dialogue}_utt{utterance} is listed twice; remove the duplicate.")
            seen.add((dialogue, utterance))
            raw = (row["Emotion"] or "").strip().lower()
            if raw not in MELD_EMOTIONS:
                raise ValueError(f"{where}: emotion {row['Emotion']!r} is not one of {list(MELD_EMOTIONS)}.")
            label = labels.class_of(MELD_EMOTIONS[raw])
            if label is None:
                dropped[raw] = dropped.get(raw, 0) + 1
                continue
            clip = clip_dir / f"dia{dialogue}_utt{utterance}.mp4"
            if not clip.is_file():
                missing_clips += 1
            sr_no = (row.get("Sr No.") or "").strip()
            records.append(MeldRecord(
                utterance_id=f"{split}_dia{dialogue}_utt{utterance}", split=SPLITS[split], dialogue=dialogue,
                utterance=utterance, speaker=repair_text(row["Speaker"] or "") or "unknown", label=label,
                emotion=raw, sentiment=(row["Sentiment"] or "").strip(), text=repair_text(row["Utterance"] or ""),
                season=season, episode=episode, episode_start=start, episode_end=end,
                clip=str(clip) if clip.is_file() else None, sr_no=int(sr_no) if sr_no.isdigit() else 0,
            ))
        if missing_clips:
            skipped.append(f"{clip_dir}: {missing_clips} clips of kept {split} rows absent: those rows are text only")
    order = {name: i for i, name in enumerate(SPLITS.values())}
    records.sort(key=lambda r: (order[r.split], r.dialogue, r.utterance))
    return MeldCorpus(records=records, labels=labels, dropped=dict(sorted(dropped.items())), skipped=skipped)
