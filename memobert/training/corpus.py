"""The pretraining corpus as batches: Parquet shards -> held-out split -> length-grouped, rank-sharded micro-batches.

Map-style (memory-mapped Arrow) for a corpus that fits on disk here; streaming (`IterableDataset`,
`split_dataset_by_node`) for one that does not. Both give every process an endless, resumable sequence of
micro-batches: a position is `(epoch, batches consumed in that epoch)`, and the order is a function of
(seed, epoch, rank) alone, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset, IterableDataset
from datasets.distributed import split_dataset_by_node
import torch
from torch.utils.data import DataLoader

from ..data import schema
from ..data.corpus import feature_sizes, find_shards, list_lengths, load_shards, read_corpus_info, read_features


def is_held_out(utterance_id: str, fraction: float) -> bool:
    """Stable train/eval split by a hash of the utterance id: the same across runs, shard layouts and machines."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(utterance_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


@dataclass
class LengthLimits:
    text: int  # tokens, [CLS] and [SEP] included
    visual: int
    acoustic: int

    def positions(self, text_pieces: np.ndarray, visual: np.ndarray, acoustic: np.ndarray) -> np.ndarray:
        """`(rows, 3)` positions of the text, visual and acoustic segments after truncation."""
        text = np.where(text_pieces > 0, np.minimum(text_pieces + 2, self.text), 0)
        return np.stack([text, np.minimum(visual, self.visual), np.minimum(acoustic, self.acoustic)], axis=-1)

    def fits(self, text_pieces: np.ndarray, visual: np.ndarray, acoustic: np.ndarray) -> np.ndarray:
        return (text_pieces + 2 <= self.text) & (visual <= self.visual) & (acoustic <= self.acoustic)


def _row_sizes(table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word pieces, face frames and acoustic frames per row, read from the Arrow list lengths (no data copied)."""
    return tuple(list_lengths(table, column) for column in (schema.INPUT_IDS, schema.VISUAL_FEATS,
                                                             schema.ACOUSTIC_FEATS))


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_size: int = 50, group_by_length: bool = True
) -> list[np.ndarray]:
    """
    One epoch's batches over all rows (`lengths`: per row, or `(rows, segments)`): a seeded shuffle, then (with `group_by_length`) rows sorted by length within
    groups of `group_size` batches, then the batch order shuffled. Every row is in exactly one batch.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lengths = lengths.sum(axis=-1) if lengths.ndim == 2 else lengths
    if group_by_length:
        group = batch_size * group_size
        order = np.concatenate(
            [chunk[np.argsort(-lengths[chunk], kind="stable")] for chunk in np.split(order, range(group, len(order), group))]
        ) if len(order) else order
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class ArrowRows(torch.utils.data.Dataset):
    """
    The rows of a `datasets.Dataset` (any `select`ion of it included) read straight from its memory-mapped Arrow
    columns, as dicts of numpy arrays in the *stored* dtypes: frames float16 `(frames, dim)` and word pieces int32,
    both read-only views of the memory map (no copy); floats as numpy scalars, strings as `str`, nulls as None.

    `datasets`' own numpy formatting of a batch of rows rebuilds the extension type of every row's frame column,
    walks nested lists and casts float16 to float32 (which the collator then copies a second time into its padded
    batch): ~0.8 ms per row, 85 % of the loading time. Here fetching a row is a few numpy slices, and float16 frames
    are widened once, by the collator or on the device (`pretrain.to_device`). The padded batches are identical.

    The column views are built on first use in each process (a DataLoader worker builds its own; pickling drops them).
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._columns: dict[str, tuple] | None = None
        self._rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getstate__(self) -> dict:
        return {"dataset": self.dataset, "_columns": None, "_rows": None}

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        if self._columns is None:
            self._build()
        positions = np.asarray(indices, dtype=np.int64)
        if len(positions) and (positions.min() < -len(self) or positions.max() >= len(self)):
            raise IndexError(f"Row index out of range for a dataset of {len(self)} rows: {list(indices)}.")
        positions = self._rows[positions] if self._rows is not None else positions % max(1, len(self))
        rows: list[dict] = [{} for _ in positions]
        for name, (ends, starts, readers) in self._columns.items():
            chunks = np.searchsorted(ends, positions, side="right")
            for row, chunk, local in zip(rows, chunks.tolist(), (positions - starts[chunks]).tolist()):
                row[name] = readers[chunk](local)
        return rows

    def _build(self) -> None:
        data = self.dataset.data  # the full table; `select` keeps an indices mapping beside it
        mapping = getattr(self.dataset, "_indices", None)
        self._rows = None if mapping is None else mapping.column(0).to_numpy().astype(np.int64)
        columns = {}
        for name in self.dataset.column_names:
            column = data.column(name)
            ends = np.cumsum([len(c) for c in column.chunks], dtype=np.int64)
            starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1]])
            columns[name] = (ends, starts, [_chunk_reader(c) for c in column.chunks])
        self._columns = columns


def _chunk_reader(chunk: pa.Array) -> Callable[[int], object]:
    """A function: index within `chunk` -> the row's value as numpy (see `ArrowRows`)."""
    shape = getattr(chunk.type, "shape", None)  # datasets' ArrayND extension types: (None, width)
    if isinstance(chunk, pa.ExtensionArray):
        chunk = chunk.storage
    kind = chunk.type
    nulls = chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else None

    def with_nulls(read: Callable[[int], object]) -> Callable[[int], object]:
        return read if nulls is None else (lambda i: None if nulls[i] else read(i))

    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _is_numeric(kind.value_type):
        offsets = chunk.offsets.to_numpy()
        values = _numpy_values(chunk.values)
        return with_nulls(lambda i: values[offsets[i] : offsets[i + 1]])
    if (
        (pa.types.is_list(kind) or pa.types.is_large_list(kind))
        and (pa.types.is_list(kind.value_type) or pa.types.is_large_list(kind.value_type))
        and _is_numeric(kind.value_type.value_type)
    ):
        inner = chunk.values
        outer_offsets, inner_offsets = chunk.offsets.to_numpy(), inner.offsets.to_numpy()
        widths = np.diff(inner_offsets)
        width = int(widths[0]) if len(widths) else (shape[-1] if shape is not None and len(shape) == 2 else None)
        if inner.null_count == 0 and width is not None and np.all(widths == width):
            # Every frame has the same width (Array2D): a row is one reshaped slice of the flat values.
            values = _numpy_values(inner.values)

            def frames(i: int) -> np.ndarray:
                if width == 0:  # (frames, 0): e.g. the soft labels of a face encoder without classes
                    return np.zeros((outer_offsets[i + 1] - outer_offsets[i], 0), values.dtype)
                return values[inner_offsets[outer_offsets[i]] : inner_offsets[outer_offsets[i + 1]]].reshape(-1, width)

            return with_nulls(frames)
    if _is_numeric(kind) and nulls is None:
        values = _numpy_values(chunk)
        return lambda i: values[i]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        _, offsets, data = chunk.buffers()
        offsets = np.frombuffer(offsets, dtype=np.int64 if pa.types.is_large_string(kind) else np.int32)
        offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1]
        data = memoryview(data) if data is not None else memoryview(b"")
        return with_nulls(lambda i: str(data[offsets[i] : offsets[i + 1]], "utf-8"))

    # Anything else (nested structs, ragged frames): Arrow's own conversion, as numpy where it is numeric.
    def generic(i: int) -> object:
        value = chunk[i].as_py()
        return np.asarray(value) if isinstance(value, list) else value

    return with_nulls(generic)


def _is_numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _numpy_values(array: pa.Array) -> np.ndarray:
    """A flat primitive Arrow array as numpy: zero-copy without nulls."""
    return array.to_numpy(zero_copy_only=array.null_count == 0 and not pa.types.is_boolean(array.type))


@dataclass
class StreamPosition:
    """Where a process is in its endless batch sequence."""

    epoch: int = 0
    batches_in_epoch: int = 0


class MapStyleBatches:
    """
    A memory-mapped corpus, held-out rows removed, as this process's micro-batches: each epoch's length-grouped
    batches are dealt to the processes in turn (batch i to rank i % world_size), so across ranks every training row is
    seen exactly once per epoch.

    Rows reach `collate_fn` as `ArrowRows` reads them (stored dtypes, read-only numpy views: fetching a batch of 32
    takes ~1 ms instead of the ~25 ms of the dataset's own numpy formatting); `arrow_rows=False` gives them as the
    dataset's format returns them.
    """

    def __init__(
        self,
        dataset: Dataset,
        lengths: np.ndarray,
        collate_fn: Callable,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        group_by_length: bool = True,
        group_size: int = 50,
        num_workers: int = 0,
        pin_memory: bool = False,
        arrow_rows: bool = True,
    ):
        if len(dataset) < world_size:
            raise ValueError(f"The corpus has {len(dataset)} training rows, fewer than the {world_size} processes.")
        self.dataset, self.lengths, self.collate_fn = dataset, lengths, collate_fn
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.group_by_length, self.group_size = group_by_length, group_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.rows = ArrowRows(dataset) if arrow_rows else dataset

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        batches = length_grouped_batches(
            self.lengths, self.batch_size, self.seed, epoch, self.group_size, self.group_by_length
        )
        return batches[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.dataset)

    def iterate(self, position: StreamPosition, first_batch_number: int | None = None) -> Iterator:
        """
        Endless micro-batches from `position`, which is advanced in place as batches are yielded. With
        `first_batch_number`, `collate_fn(rows, number)` also gets each batch's number in this process's stream
        (`first_batch_number` for the first batch yielded, then + 1 each): in DataLoader workers that number is all
        a collate function needs to mask the batch for its update (see `pretrain.py`).
        """
        yielded = 0
        while True:
            batches = self.epoch_batches(position.epoch)[position.batches_in_epoch :]
            first = None if first_batch_number is None else first_batch_number + yielded
            loader = DataLoader(
                _EpochBatches(self.rows, batches, self.collate_fn, first),
                batch_size=None,  # items are whole batches
                collate_fn=_as_is,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=False,
                # Its own generator: a DataLoader otherwise draws its worker seed from the global RNG, which would
                # shift dropout after a resume.
                generator=torch.Generator().manual_seed(self.seed + position.epoch),
            )
            for batch in loader:
                position.batches_in_epoch += 1
                yielded += 1
                yield batch
            position.epoch += 1
            position.batches_in_epoch = 0


class _EpochBatches(torch.utils.data.Dataset):
    """Item i: batch i's rows read in one call and collated (`collate_fn(rows, first_number + i)` when numbered)."""

    def __init__(self, rows, batches: list[np.ndarray], collate_fn: Callable, first_number: int | None):
        self.rows, self.batches, self.collate_fn, self.first_number = rows, batches, collate_fn, first_number

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        rows = self.rows.__getitems__(self.batches[index].tolist())
        return self.collate_fn(rows) if self.first_number is None else self.collate_fn(rows, self.first_number + index)


def _as_is(batch):
    return batch


class StreamingBatches:
    """
    A streamed corpus: shards (or rows) split across processes with `split_dataset_by_node`, a seeded shuffle buffer
    re-seeded per epoch, and length grouping inside windows of `group_size` batches. Resuming re-reads the epoch up to
    the saved position.
    """

    def __init__(
        self,
        dataset: IterableDataset,
        collate_fn: Callable,
        batch_size: int,
        seed: int,
        limits: LengthLimits,
        rank: int = 0,
        world_size: int = 1,
        group_by_length: bool = True,
        group_size: int = 50,
        shuffle_buffer_size: int = 2048,
    ):
        dataset = split_dataset_by_node(dataset, rank=rank, world_size=world_size)
        self.dataset = dataset.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
        self.collate_fn, self.batch_size, self.seed, self.limits = collate_fn, batch_size, seed, limits
        self.group_by_length, self.group_size = group_by_length, group_size

    def _epoch(self, epoch: int) -> Iterator[list[dict]]:
        self.dataset.set_epoch(epoch)
        window = self.batch_size * self.group_size
        rng = np.random.default_rng([self.seed, epoch, 7])
        rows: list[dict] = []

        def flush(rows: list[dict]) -> Iterator[list[dict]]:
            if self.group_by_length:
                sizes = np.array(
                    [
                        self.limits.positions(
                            np.array([len(r[schema.INPUT_IDS])]),
                            np.array([len(r[schema.VISUAL_FEATS])]),
                            np.array([len(r[schema.ACOUSTIC_FEATS])]),
                        )[0].sum()
                        for r in rows
                    ]
                )
                rows = [rows[i] for i in np.argsort(-sizes, kind="stable")]
            chunks = [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
            for i in rng.permutation(len(chunks)):
                yield chunks[i]

        for row in self.dataset:
            rows.append(row)
            if len(rows) == window:
                yield from flush(rows)
                rows = []
        if rows:
            yield from flush(rows)

    def iterate(self, position: StreamPosition, first_batch_number: int | None = None) -> Iterator:
        """Endless micro-batches from `position` (advanced in place); `first_batch_number` as in `MapStyleBatches`."""
        number = first_batch_number
        while True:
            for index, rows in enumerate(self._epoch(position.epoch)):
                if index < position.batches_in_epoch:
                    continue  # resuming: these were consumed before the checkpoint
                position.batches_in_epoch += 1
                if number is None:
                    yield self.collate_fn(rows)
                else:
                    yield self.collate_fn(rows, number)
                    number += 1
            position.epoch += 1
            position.batches_in_epoch = 0


@dataclass
class PretrainCorpus:
    """The training and held-out parts of a corpus, with its feature sizes."""

    train: Dataset | IterableDataset
    eval: Dataset
    train_lengths: np.ndarray | None  # map-style only
    sizes: dict[str, int]
    num_dropped: int


def load_pretrain_corpus(
    corpus: str | Path,
    limits: LengthLimits,
    eval_fraction: float,
    max_eval_samples: int,
    overlength: str = "truncate",
    streaming: bool = False,
) -> PretrainCorpus:
    """Loads the shards, splits off the held-out rows, and applies the over-length rule ('truncate' or 'drop')."""
    shards = find_shards(corpus)
    sizes: dict = feature_sizes(read_features(shards))
    names = read_corpus_info(corpus).get("face_class_names")
    if names and len(names) == sizes["num_face_classes"]:
        sizes["face_class_names"] = list(names)
    full = load_shards(shards)
    ids = full.data.column(schema.UTTERANCE_ID).to_pylist()
    held_out = np.array([is_held_out(u, eval_fraction) for u in ids], dtype=bool)
    text, visual, acoustic = _row_sizes(full.data)
    keep = np.ones(len(ids), dtype=bool)
    num_dropped = 0
    if overlength == "drop":
        keep = limits.fits(text, visual, acoustic)
        num_dropped = int((~keep & ~held_out).sum())
    eval_rows = np.flatnonzero(held_out & keep)[:max_eval_samples]
    eval_set = full.select(eval_rows).with_format("numpy")
    if streaming:
        stream = load_shards(shards, streaming=True).with_format("numpy")
        fraction = eval_fraction

        def in_training(row: dict) -> bool:
            if is_held_out(str(row[schema.UTTERANCE_ID]), fraction):
                return False
            if overlength == "drop":
                return bool(
                    limits.fits(
                        np.array([len(row[schema.INPUT_IDS])]),
                        np.array([len(row[schema.VISUAL_FEATS])]),
                        np.array([len(row[schema.ACOUSTIC_FEATS])]),
                    )[0]
                )
            return True

        return PretrainCorpus(stream.filter(in_training), eval_set, None, sizes, num_dropped)
    train_rows = np.flatnonzero(~held_out & keep)
    if len(train_rows) == 0:
        raise ValueError(f"The corpus {corpus} has no training rows left after the held-out split and length rule.")
    lengths = limits.positions(text[train_rows], visual[train_rows], acoustic[train_rows])
    return PretrainCorpus(full.select(train_rows).with_format("numpy"), eval_set, lengths, sizes, num_dropped)


def padding_efficiency(batch_lengths: Sequence[np.ndarray]) -> float:
    """
    Real positions / computed positions over batches of per-row lengths (`(rows,)` or `(rows, segments)`). The model
    squeezes each row's padding out, so a batch computes `rows x max(row total)` positions (1.0 = no padding).
    """
    totals = [b.sum(axis=-1) if b.ndim == 2 else b for b in batch_lengths]
    real = sum(int(t.sum()) for t in totals)
    computed = sum(int(t.max()) * len(t) for t in totals if len(t))
    return real / computed if computed else 1.0
