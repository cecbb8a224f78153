"""Reader for the FER+ release layout: `fer2013.csv` (pixels) + `fer2013new.csv` (FER+ annotator votes).

- `fer2013.csv`: columns `emotion,pixels,Usage`; `pixels` = 48x48 grayscale as 2304 space-separated ints;
  `Usage` = Training / PublicTest / PrivateTest.
- `fer2013new.csv`: columns `Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF`
  (10 annotator votes per image), in the same row order as `fer2013.csv`.

An empty `Image name` means the FER+ authors dropped the image; a row with no vote for any of the 8 emotions (only
unknown / NF votes) is dropped too. Targets are the 8 emotion votes normalised to sum to 1 (unknown/NF excluded).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from .labels import FERPLUS_CLASSES

FER2013_FILE = "fer2013.csv"
FERPLUS_FILE = "fer2013new.csv"
SPLITS = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48
FER2013_COLUMNS = ("emotion", "pixels", "Usage")
FERPLUS_COLUMNS = ("Usage", "Image name", *FERPLUS_CLASSES, "unknown", "NF")


@dataclass
class FerPlusSplit:
    """One Usage split: `images (N, 48, 48) uint8`, `votes (N, 8) int` over `FERPLUS_CLASSES`, `targets (N, 8)`
    (votes normalised), `labels (N,)` majority vote (ties -> first class in FERPLUS_CLASSES order), `image_names`, and
    `rows` (the 1-based data row in both CSVs, for tracing back)."""

    name: str
    images: np.ndarray
    votes: np.ndarray
    targets: np.ndarray
    labels: np.ndarray
    image_names: list[str]
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class FerPlusDropped:
    """Counts of rows the reader left out, per reason."""

    no_image_name: int = 0
    no_emotion_votes: int = 0


@dataclass
class FerPlusData:
    """The splits read from a FER+ layout (`data["Training"]`) and the counts of dropped rows."""

    splits: dict[str, FerPlusSplit]
    dropped: FerPlusDropped

    def __getitem__(self, split: str) -> FerPlusSplit:
        if split not in self.splits:
            raise KeyError(f"FER+ split {split!r} was not read; read splits: {list(self.splits)}.")
        return self.splits[split]

    def __contains__(self, split: str) -> bool:
        return split in self.splits


def _open_csv(path: str, expected: tuple[str, ...]):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found. The FER+ layout needs {FER2013_FILE} (from the FER2013 release) and {FERPLUS_FILE} "
            "(from the FER+ repository) in the same folder."
        )
    handle = open(path, newline="", encoding="utf-8-sig")
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        handle.close()
        raise ValueError(f"{path} is empty; expected a header row {','.join(expected)}.")
    header = [h.strip() for h in header]
    missing = [c for c in expected if c not in header]
    if missing:
        handle.close()
        raise ValueError(f"{path}: header {header} lacks columns {missing}; expected {','.join(expected)}.")
    rows = ((reader.line_num, row) for row in reader if any(field.strip() for field in row))
    return handle, rows, {name: header.index(name) for name in expected}, len(header)


def _parse_pixels(text: str, path: str, line: int) -> np.ndarray:
    parts = text.split()
    if len(parts) != IMAGE_SIZE * IMAGE_SIZE:
        raise ValueError(
            f"{path}, line {line}: 'pixels' has {len(parts)} values, expected {IMAGE_SIZE * IMAGE_SIZE} "
            f"({IMAGE_SIZE}x{IMAGE_SIZE} space-separated ints)."
        )
    try:
        values = np.array(parts, dtype=np.int64)
    except ValueError:
        bad = next((p for p in parts if not p.lstrip("-").isdigit()), parts[0])
        raise ValueError(f"{path}, line {line}: 'pixels' holds a non-integer value {bad!r}.") from None
    if values.min() < 0 or values.max() > 255:
        raise ValueError(f"{path}, line {line}: 'pixels' values must be 0..255, got {values.min()}..{values.max()}.")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _parse_votes(row: list[str], cols: dict[str, int], path: str, line: int) -> np.ndarray:
    votes = []
    for name in FERPLUS_COLUMNS[2:]:
        text = row[cols[name]].strip()
        try:
            value = int(float(text)) if text else 0
            if float(text or 0) != value or value < 0:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{path}, line {line}: column '{name}' must be a non-negative integer vote count, got {text!r}."
            ) from None
        votes.append(value)
    return np.array(votes, dtype=np.int64)


def read_ferplus(
    data_dir: str | os.PathLike,
    splits: tuple[str, ...] | list[str] | None = None,
    fer2013_csv: str | os.PathLike | None = None,
    ferplus_csv: str | os.PathLike | None = None,
) -> FerPlusData:
    """Reads the FER+ layout in `data_dir` -> `FerPlusData` (splits by Usage + counts of dropped rows).

    `splits` selects Usage values (default all three); every requested split is returned, possibly empty.
    Malformed input raises `ValueError` naming the file and line.
    """
    data_dir = os.fspath(data_dir)
    fer_path = os.fspath(fer2013_csv or os.path.join(data_dir, FER2013_FILE))
    new_path = os.fspath(ferplus_csv or os.path.join(data_dir, FERPLUS_FILE))
    wanted = tuple(splits) if splits is not None else SPLITS
    unknown = [s for s in wanted if s not in SPLITS]
    if unknown:
        raise ValueError(f"Unknown FER+ split(s) {unknown}; choose from {list(SPLITS)}.")
    acc = {s: {"images": [], "votes": [], "names": [], "rows": []} for s in wanted}
    dropped = FerPlusDropped()

    fer_handle, fer_reader, fer_cols, fer_width = _open_csv(fer_path, FER2013_COLUMNS)
    new_handle, new_reader, new_cols, new_width = _open_csv(new_path, FERPLUS_COLUMNS)
    try:
        row_index = 0
        while True:
            fer_item = next(fer_reader, None)
            new_item = next(new_reader, None)
            if fer_item is None and new_item is None:
                break
            row_index += 1
            if fer_item is None or new_item is None:
                short, longer = (fer_path, new_path) if fer_item is None else (new_path, fer_path)
                raise ValueError(
                    f"{short} ends at data row {row_index - 1} but {longer} has more rows: the two files must have the "
                    "same rows in the same order (use the matching FER2013 and FER+ releases)."
                )
            (fer_line, fer_row), (line, new_row) = fer_item, new_item
            if len(fer_row) != fer_width:
                raise ValueError(f"{fer_path}, line {fer_line}: {len(fer_row)} fields, expected {fer_width}.")
            if len(new_row) != new_width:
                raise ValueError(f"{new_path}, line {line}: {len(new_row)} fields, expected {new_width}.")
            usage = fer_row[fer_cols["Usage"]].strip()
            new_usage = new_row[new_cols["Usage"]].strip()
            if usage not in SPLITS:
                raise ValueError(f"{fer_path}, line {fer_line}: Usage {usage!r} is not one of {list(SPLITS)}.")
            if new_usage != usage:
                raise ValueError(
                    f"{new_path}, line {line}: Usage {new_usage!r} differs from {usage!r} in {fer_path} "
                    f"line {fer_line}: the files are "
                    "out of step (same rows in the same order are required)."
                )
            name = new_row[new_cols["Image name"]].strip()
            if not name:
                dropped.no_image_name += 1
                continue
            votes = _parse_votes(new_row, new_cols, new_path, line)[: len(FERPLUS_CLASSES)]
            if votes.sum() == 0:
                dropped.no_emotion_votes += 1
                continue
            if usage not in acc:
                continue
            image = _parse_pixels(fer_row[fer_cols["pixels"]], fer_path, fer_line)
            bucket = acc[usage]
            bucket["images"].append(image)
            bucket["votes"].append(votes)
            bucket["names"].append(name)
            bucket["rows"].append(row_index)
    finally:
        fer_handle.close()
        new_handle.close()

    result = {}
    for split, bucket in acc.items():
        n = len(bucket["images"])
        images = np.stack(bucket["images"]) if n else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        votes = np.stack(bucket["votes"]) if n else np.zeros((0, len(FERPLUS_CLASSES)), np.int64)
        targets = (votes / np.maximum(votes.sum(axis=1, keepdims=True), 1)).astype(np.float32)
        result[split] = FerPlusSplit(
            name=split,
            images=images,
            votes=votes,
            targets=targets,
            labels=votes.argmax(axis=1) if n else np.zeros((0,), np.int64),
            image_names=bucket["names"],
            rows=np.asarray(bucket["rows"], dtype=np.int64),
        )
    return FerPlusData(splits=result, dropped=dropped)
