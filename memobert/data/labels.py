"""Emotion label definitions shared by the dataset readers, the training runner and the evaluation code.

- The 4 default classes (`EMOTION_CLASSES`): anger, happiness, neutral, sadness, in the order of
  `MEmoBertConfig.label_words` (`DEFAULT_LABEL_WORDS`: anger, happy, neutral, sad).
- The raw label codes of the releases: IEMOCAP (`IEMOCAP_CODES`: neu hap exc ang sad fru sur fea dis oth xxx) and
  MSP-IMPROV consensus letters (`MSP_IMPROV_CODES`: N H S A, X = no agreement), each mapped to an emotion name.
- `EmotionLabels`: a class list + label words + merges (e.g. excited -> happiness, the common IEMOCAP practice),
  which turns an emotion name into a class name (or `None`: not a class, the record is dropped and counted), and
  any label string a corpus may hold into a class (`class_of_label`).
- The emotion codes of RAVDESS (`RAVDESS_CODES`: 01-08 of the file name), CREMA-D (`CREMA_D_CODES`: ANG DIS FEA
  HAP NEU SAD of the file name; `CREMA_D_VOTES`: the crowd's letters A D F H N S), MELD (`MELD_EMOTIONS`: its seven
  words, joy = happiness) and EmoDB (`EMODB_CODES`: the German letters W L E A F T N). These are not read by
  `class_of_label` (EmoDB's A is fear, MSP-IMPROV's A anger): their readers write class names.
- The face-expression classes of FER+ (`FERPLUS_CLASSES`, the order of its vote columns) and FER2013
  (`FER2013_CLASSES`, the order of its `emotion` codes 0-6).

This module imports nothing else of ours (and no third-party package), so `memobert.evaluation` may use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

EMOTION_CLASSES: tuple[str, ...] = ("anger", "happiness", "neutral", "sadness")
FERPLUS_CLASSES: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"
)
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Emotion name of "no agreement between the annotators" (IEMOCAP `xxx`, MSP-IMPROV `X`): never a class.
NO_AGREEMENT = "no_agreement"

# One verbalizer word per emotion name (a user may pass other words to `EmotionLabels`).
LABEL_WORDS: dict[str, str] = {
    "anger": "anger",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "excited": "excited",
    "frustration": "frustrated",
    "surprise": "surprised",
    "fear": "afraid",
    "disgust": "disgusted",
    "calm": "calm",  # RAVDESS
    "boredom": "bored",  # EmoDB
    "other": "other",
}

IEMOCAP_CODES: dict[str, str] = {
    "neu": "neutral",
    "hap": "happiness",
    "exc": "excited",
    "ang": "anger",
    "sad": "sadness",
    "fru": "frustration",
    "sur": "surprise",
    "fea": "fear",
    "dis": "disgust",
    "oth": "other",
    "xxx": NO_AGREEMENT,
}

MSP_IMPROV_CODES: dict[str, str] = {
    "N": "neutral",
    "H": "happiness",
    "S": "sadness",
    "A": "anger",
    "X": NO_AGREEMENT,
}

RAVDESS_CODES: dict[str, str] = {
    "01": "neutral", "02": "calm", "03": "happiness", "04": "sadness",
    "05": "anger", "06": "fear", "07": "disgust", "08": "surprise",
}
CREMA_D_CODES: dict[str, str] = {
    "ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness",
}
CREMA_D_VOTES: dict[str, str] = {
    "A": "anger", "D": "disgust", "F": "fear", "H": "happiness", "N": "neutral", "S": "sadness",
}
MELD_EMOTIONS: dict[str, str] = {
    "anger": "anger", "disgust": "disgust", "fear": "fear", "joy": "happiness", "neutral": "neutral",
    "sadness": "sadness", "surprise": "surprise",
}
EMODB_CODES: dict[str, str] = {  # German initials: Wut, Langeweile, Ekel, Angst, Freude, Trauer, Neutral
    "W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral",
}

EMOTIONS: tuple[str, ...] = tuple(LABEL_WORDS)  # every emotion name a class may use
# The verbalizer of the 4 default classes (anger happy neutral sad: MEmoBertConfig.label_words' default too).
DEFAULT_LABEL_WORDS: tuple[str, ...] = tuple(LABEL_WORDS[c] for c in EMOTION_CLASSES)

DEFAULT_MERGES: dict[str, str] = {"excited": "happiness"}


@dataclass(frozen=True)
class EmotionLabels:
    """
    The classes of a downstream task: `classes` (class order = model output order), one `label_words` entry per class
    (the prompt verbalizer), and `merges` {emotion: class} folding an emotion into a class (excited -> happiness).
    An emotion that is neither a class nor merged into one maps to `None` (the reader drops and counts it).
    """

    classes: tuple[str, ...] = EMOTION_CLASSES
    label_words: tuple[str, ...] = DEFAULT_LABEL_WORDS
    merges: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MERGES))

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "label_words", tuple(self.label_words))
        object.__setattr__(self, "merges", dict(self.merges))
        if not self.classes:
            raise ValueError("EmotionLabels needs at least one class.")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"EmotionLabels: duplicate class in {list(self.classes)}.")
        unknown = [c for c in self.classes if c not in EMOTIONS]
        if unknown:
            raise ValueError(f"Unknown emotion class(es) {unknown}; choose from {list(EMOTIONS)}.")
        if len(self.label_words) != len(self.classes):
            raise ValueError(
                f"EmotionLabels: {len(self.label_words)} label_words for {len(self.classes)} classes; "
                "give one word per class, in class order."
            )
        for source, target in self.merges.items():
            if source not in EMOTIONS or target not in EMOTIONS:
                raise ValueError(f"EmotionLabels: merge {source!r} -> {target!r} names an unknown emotion; "
                                 f"choose from {list(EMOTIONS)}.")
            if source in self.classes:
                raise ValueError(
                    f"EmotionLabels: {source!r} is both a class and merged into {target!r}; "
                    f"drop it from the classes or from the merges (e.g. merge_excited=False)."
                )

    def __hash__(self) -> int:
        return hash((self.classes, self.label_words, tuple(sorted(self.merges.items()))))

    @classmethod
    def create(
        cls,
        classes: Sequence[str] = EMOTION_CLASSES,
        merge_excited: bool = True,
        label_words: Sequence[str] | None = None,
        merges: Mapping[str, str] | None = None,
    ) -> EmotionLabels:
        """Class list with default label words (`LABEL_WORDS`) and excited merged into happiness unless told not to."""
        classes = tuple(classes)
        unknown = [c for c in classes if c not in LABEL_WORDS]
        if unknown:
            raise ValueError(f"Unknown emotion class(es) {unknown}; choose from {list(EMOTIONS)}.")
        words = tuple(label_words) if label_words is not None else tuple(LABEL_WORDS[c] for c in classes)
        all_merges = dict(merges or {})
        if merge_excited:
            all_merges.setdefault("excited", "happiness")
        return cls(classes=classes, label_words=words, merges=all_merges)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.classes))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def class_of(self, emotion: str) -> str | None:
        """The class an emotion name counts as, or `None` when it is not one of the classes."""
        emotion = self.merges.get(emotion, emotion)
        return emotion if emotion in self.classes else None

    def class_of_label(self, label: str | None) -> str | None:
        """
        The class of a label string as corpora hold it: a class name ('happiness'), a label word ('happy', as in the
        demo corpus), an IEMOCAP code ('exc'), an MSP-IMPROV letter ('H') or an emotion name merged into a class
        ('excited'); None when it is none of the classes.
        """
        raw = (label or "").strip()
        if not raw:
            return None
        for candidate in (raw, raw.lower()):
            if candidate in self.classes:
                return candidate
            if candidate in self.label_words:
                return self.classes[self.label_words.index(candidate)]
        lower = raw.lower()
        if raw in MSP_IMPROV_CODES and len(raw) == 1:
            return self.class_of(MSP_IMPROV_CODES[raw])
        if lower in IEMOCAP_CODES:
            return self.class_of(IEMOCAP_CODES[lower])
        if lower in EMOTIONS:
            return self.class_of(lower)
        by_word = {word: emotion for emotion, word in LABEL_WORDS.items()}
        if lower in by_word:
            return self.class_of(by_word[lower])
        return None

    def index(self, class_name: str) -> int:
        """Class index (model output position) of a class name."""
        try:
            return self.classes.index(class_name)
        except ValueError:
            raise KeyError(f"{class_name!r} is not one of the classes {list(self.classes)}.") from None

    def indices(self, class_names: Iterable[str]) -> list[int]:
        """Class index of each class name."""
        return [self.index(name) for name in class_names]


DEFAULT_LABELS = EmotionLabels()


def iemocap_emotion(code: str) -> str:
    """Emotion name of an IEMOCAP label code (`exc` -> excited, `xxx` -> no_agreement); unknown codes raise."""
    try:
        return IEMOCAP_CODES[code]
    except KeyError:
        raise KeyError(f"Unknown IEMOCAP label code {code!r}; known codes: {' '.join(IEMOCAP_CODES)}.") from None


def msp_improv_emotion(code: str) -> str:
    """Emotion name of an MSP-IMPROV consensus letter (`X` -> no_agreement); unknown letters raise."""
    try:
        return MSP_IMPROV_CODES[code]
    except KeyError:
        raise KeyError(f"Unknown MSP-IMPROV category {code!r}; known: {' '.join(MSP_IMPROV_CODES)}.") from None


@dataclass
class LabeledCorpus:
    """
    Records read from a release (one per utterance kept) with `labels`, the counts of utterances dropped per raw label
    code (`dropped`, e.g. {"fru": 1849, "xxx": 2507}) and human-readable notes on anything else left out (`skipped`).
    """

    records: list
    labels: EmotionLabels
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, index):
        return self.records[index]

    @property
    def speakers(self) -> list[str]:
        """Sorted speaker ids."""
        return sorted({r.speaker for r in self.records})

    def label_counts(self) -> dict[str, int]:
        """Utterances per class, in class order."""
        counts = {name: 0 for name in self.labels.classes}
        for record in self.records:
            counts[record.label] += 1
        return counts

    def label_ids(self) -> list[int]:
        """Class index of each record."""
        return [self.labels.index(r.label) for r in self.records]
