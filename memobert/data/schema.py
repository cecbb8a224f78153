"""The corpus schema: one row per utterance. Written by `memobert.preprocessing`, read by training and downstream.

A modality that an utterance lacks is stored as zero frames (shape `(0, dim)`), never as a fake frame.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MODALITIES = ("text", "visual", "acoustic")  # the inputs of an utterance, in sequence order

UTTERANCE_ID = "utterance_id"
SOURCE = "source"  # the input item (video file) the utterance was cut from
START = "start"  # seconds
END = "end"  # seconds
TEXT = "text"
INPUT_IDS = "input_ids"  # word pieces of `text`, no special tokens
WORD_IDS = "word_ids"  # index of the word each piece belongs to (for whole-word masking)
VISUAL_FEATS = "visual_feats"  # (frames, visual_dim) face-expression features of the active speaker
FACE_SOFT_LABELS = "face_soft_labels"  # (frames, num_face_classes) the face extractor's softmax per frame
ACOUSTIC_FEATS = "acoustic_feats"  # (frames, acoustic_dim) pooled speech features
SPEAKER_SCORE = "speaker_score"  # active-speaker score of the chosen face track (NaN: no face)
SPEAKER = "speaker"  # speaker name or id when the transcript gives one, else ""
LABEL = "label"  # emotion label when the transcript gives one, else ""
# Recording session of the release (IEMOCAP "1".."5", MSP-IMPROV "1".."6"), or the row's split where the release fixes
# one (MELD "train" / "validation" / "test", the `official_split` folds), else ""
SESSION = "session"

FRAME_COLUMNS = (VISUAL_FEATS, FACE_SOFT_LABELS, ACOUSTIC_FEATS)
# Columns a row may leave out (a reader of older corpora finds them missing too), with the value written instead.
OPTIONAL_COLUMNS = {SESSION: ""}
# Beside the shards: feature sizes, face class names and the settings that made the corpus.
CORPUS_INFO_FILE = "corpus.json"

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}


def safe_id(text: str, max_length: int = 100) -> str:
    """`text` made safe as a file name: only [A-Za-z0-9._-], no '..', no leading dot; a short hash keeps it unique
    when anything had to change. (Utterance ids, fold names; re-exported by `memobert.preprocessing.transcripts`.)"""
    original = str(text)
    s = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", s)
    s = re.sub(r"\.{2,}", "_", s)
    s = s.strip("._-")
    if s.upper().split(".")[0] in _WINDOWS_RESERVED:
        s = "_" + s
    if not s:
        s = "item"
    if s != original or len(s) > max_length:
        digest = hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        s = f"{s[: max_length - 9]}-{digest}"
    return s


def corpus_features(visual_dim: int = 342, acoustic_dim: int = 768, num_face_classes: int = 8):
    """The `datasets.Features` of a corpus shard; frame features are stored as float16."""
    from datasets import Array2D, Features, List, Value

    return Features(
        {
            UTTERANCE_ID: Value("string"),
            SOURCE: Value("string"),
            START: Value("float32"),
            END: Value("float32"),
            TEXT: Value("string"),
            INPUT_IDS: List(Value("int32")),
            WORD_IDS: List(Value("int32")),
            VISUAL_FEATS: Array2D(shape=(None, visual_dim), dtype="float16"),
            FACE_SOFT_LABELS: Array2D(shape=(None, num_face_classes), dtype="float16"),
            ACOUSTIC_FEATS: Array2D(shape=(None, acoustic_dim), dtype="float16"),
            SPEAKER_SCORE: Value("float32"),
            SPEAKER: Value("string"),
            LABEL: Value("string"),
            SESSION: Value("string"),
        }
    )
