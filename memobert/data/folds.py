"""Speaker-independent cross-validation folds, decided here and only here.

`make_folds(spec, speakers, sessions)` turns a fold scheme and the `speaker` / `session` columns that the readers
write (`memobert prepare`; any CSV manifest may give them too) into `Fold`s; the downstream runner calls nothing else.
Schemes (`FOLD_SCHEMES`): `iemocap_loso_speaker`, `iemocap_loso_session`, `msp_improv` (these read the sessions),
`speaker_kfold:K` and `leave_one_speaker_out` (speakers only; EmoDB's protocol), `official_split` (one fold whose
splits are the session column's train / validation / test: MELD's official split, speakers shared) and a
`folds.json` file of explicit folds (`read_folds_file`).

One piece of logic (`speaker_folds`) turns a plan - per fold, the test speakers and the validation speakers - into
record indices; training = every other speaker. It checks that the three speaker sets are disjoint and non-empty.

- `iemocap_leave_one_speaker_out` / `msp_improv_folds` (`leave_one_speaker_out`): one fold per speaker (IEMOCAP 10,
  MSP-IMPROV 12); test = that speaker, validation = the other speaker(s) of the same session, training = the
  other sessions.
- `iemocap_leave_one_session_out` (`leave_one_session_out`): one fold per session (IEMOCAP 5); test = both speakers
  of the held-out session; validation = a different session so the selection data stays speaker-disjoint from
  training: by default the whole next session (cyclically: fold 5 validates on session 1; training = the other 3
  sessions), or with `validation="next_speaker"` one speaker of the next session (alternating F/M by fold,
  training = the remaining 7 speakers).

Records are objects with `speaker` and `session` attributes (`IemocapRecord`, `MspImprovRecord`) or mappings with
those keys (e.g. rows of a Hugging Face dataset).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .schema import safe_id

SPLITS = ("train", "validation", "test")
# Scheme name -> what it is (the --folds help); a path ending in .json is a folds file.
FOLD_SCHEMES = {
    "iemocap_loso_speaker": "10 folds: test = one speaker, validation = the other speaker of its session",
    "iemocap_loso_session": "5 folds: test = one session, validation = the next session",
    "msp_improv": "12 folds: test = one speaker, validation = the other speaker of its session",
    "speaker_kfold:K": "speakers in K groups balanced by utterances: test = group k, validation = group k+1",
    "leave_one_speaker_out": "one fold per speaker: test = that speaker, validation = the next speaker (sorted)",
    "official_split": "1 fold: the release's own split, the session column's train / validation / test (MELD)",
    "FILE.json": 'explicit folds: {"folds": [{"name": ..., "test": [speakers], "validation": [speakers]}, ...]}',
}


@dataclass(frozen=True)
class Fold:
    """One fold: the speakers and the record indices of each split."""

    name: str
    train_speakers: frozenset[str]
    validation_speakers: frozenset[str]
    test_speakers: frozenset[str]
    train: tuple[int, ...]
    validation: tuple[int, ...]
    test: tuple[int, ...]

    def indices(self, split: str) -> tuple[int, ...]:
        """Record indices of "train", "validation" or "test"."""
        if split not in SPLITS:
            raise KeyError(f"Unknown split {split!r}; choose from {list(SPLITS)}.")
        return getattr(self, split)

    def speakers(self, split: str) -> frozenset[str]:
        """Speakers of "train", "validation" or "test"."""
        if split not in SPLITS:
            raise KeyError(f"Unknown split {split!r}; choose from {list(SPLITS)}.")
        return getattr(self, f"{split}_speakers")

    def to_dict(self) -> dict:
        """JSON-friendly form (sorted speaker lists, index lists)."""
        out: dict = {"name": self.name}
        for split in SPLITS:
            out[f"{split}_speakers"] = sorted(self.speakers(split))
            out[split] = list(self.indices(split))
        return out


def _field(record, name: str):
    if isinstance(record, Mapping):
        if name not in record:
            raise KeyError(f"A record lacks the key {name!r}; folds need 'speaker' and 'session' for every record.")
        return record[name]
    if not hasattr(record, name):
        raise AttributeError(f"{type(record).__name__} has no {name!r}; folds need 'speaker' and 'session'.")
    return getattr(record, name)


def speakers_by_session(records: Sequence) -> dict[int | str, list[str]]:
    """{session: sorted speakers}, sessions sorted; a speaker seen in two sessions raises."""
    session_of: dict[str, int | str] = {}
    for i, record in enumerate(records):
        speaker, session = str(_field(record, "speaker")), _field(record, "session")
        if session_of.setdefault(speaker, session) != session:
            raise ValueError(
                f"Record {i}: speaker {speaker!r} appears in sessions {session_of[speaker]} and {session}; "
                "speaker ids must be unique across sessions (e.g. 'Ses01F', 'F01')."
            )
    out: dict[int | str, list[str]] = {}
    for speaker, session in session_of.items():
        out.setdefault(session, []).append(speaker)
    return {session: sorted(out[session]) for session in sorted(out)}


def speaker_folds(
    records: Sequence, plan: Sequence[tuple[str, Sequence[str], Sequence[str]]]
) -> list[Fold]:
    """
    Folds from a plan of (name, test speakers, validation speakers); training = all other speakers. Raises when a
    plan names an unknown speaker, when test and validation share a speaker, or when a split is empty.
    """
    speakers = [str(_field(r, "speaker")) for r in records]
    known = set(speakers)
    folds = []
    for name, test, validation in plan:
        test, validation = frozenset(test), frozenset(validation)
        unknown = sorted((test | validation) - known)
        if unknown:
            raise ValueError(f"Fold {name}: speakers {unknown} have no records.")
        if test & validation:
            raise ValueError(f"Fold {name}: speakers {sorted(test & validation)} are in both test and validation.")
        train = frozenset(known - test - validation)
        split_of = {**{s: "train" for s in train}, **{s: "validation" for s in validation}, **{s: "test" for s in test}}
        indices: dict[str, list[int]] = {split: [] for split in SPLITS}
        for i, speaker in enumerate(speakers):
            indices[split_of[speaker]].append(i)
        for split in SPLITS:
            if not indices[split]:
                raise ValueError(f"Fold {name}: the {split} split is empty; every split needs at least one speaker.")
        folds.append(
            Fold(
                name=name,
                train_speakers=train,
                validation_speakers=validation,
                test_speakers=test,
                train=tuple(indices["train"]),
                validation=tuple(indices["validation"]),
                test=tuple(indices["test"]),
            )
        )
    return folds


def leave_one_speaker_out(records: Sequence) -> list[Fold]:
    """One fold per speaker: test = the speaker, validation = the other speaker(s) of its session."""
    plan = []
    for session, speakers in speakers_by_session(records).items():
        if len(speakers) < 2:
            raise ValueError(
                f"Session {session} has only speaker {speakers}; leave-one-speaker-out needs its other speaker "
                "for validation."
            )
        for speaker in speakers:
            others = [s for s in speakers if s != speaker]
            plan.append((f"fold{len(plan) + 1:02d}_{safe_id(speaker)}", [speaker], others))
    return speaker_folds(records, plan)


def leave_one_session_out(records: Sequence, validation: str = "next_session") -> list[Fold]:
    """
    One fold per session: test = the session's speakers; validation = the next session cyclically
    ("next_session": all its speakers; "next_speaker": one of them, alternating by fold).
    """
    if validation not in ("next_session", "next_speaker"):
        raise ValueError(f"validation must be 'next_session' or 'next_speaker', got {validation!r}.")
    by_session = speakers_by_session(records)
    sessions = list(by_session)
    if len(sessions) < 3:
        raise ValueError(f"Leave-one-session-out needs at least 3 sessions (test, validation, train), got {sessions}.")
    plan = []
    for k, session in enumerate(sessions):
        next_speakers = by_session[sessions[(k + 1) % len(sessions)]]
        chosen = next_speakers if validation == "next_session" else [next_speakers[k % len(next_speakers)]]
        plan.append((f"fold{k + 1:02d}_session{safe_id(session)}", by_session[session], chosen))
    return speaker_folds(records, plan)


def iemocap_leave_one_speaker_out(records: Sequence) -> list[Fold]:
    """IEMOCAP 10-fold leave-one-speaker-out (validation = the other speaker of the held-out session)."""
    return leave_one_speaker_out(records)


def iemocap_leave_one_session_out(records: Sequence, validation: str = "next_session") -> list[Fold]:
    """IEMOCAP 5-fold leave-one-session-out (test = a whole session; validation = the next session, see module doc)."""
    return leave_one_session_out(records, validation=validation)


def msp_improv_folds(records: Sequence) -> list[Fold]:
    """MSP-IMPROV 12-fold leave-one-speaker-out (validation = the other speaker of the held-out session)."""
    return leave_one_speaker_out(records)


# ----------------------------------------------------------------------------------------------------------------------
# Schemes: the one entry point of the downstream runner
# ----------------------------------------------------------------------------------------------------------------------


def parse_fold_scheme(spec: str) -> tuple[str, int | None]:
    """'speaker_kfold:5' -> ('speaker_kfold', 5); 'x.json' -> ('file', None); the other schemes have no number.
    Raises ValueError naming the choices."""
    spec = str(spec)
    if spec.endswith(".json"):
        return "file", None
    name, _, number = spec.partition(":")
    if name == "speaker_kfold":
        if not number.isdigit() or int(number) < 3:
            raise ValueError(
                f"folds {spec!r}: speaker_kfold needs K >= 3 (test, validation, training), e.g. speaker_kfold:5"
            )
        return name, int(number)
    if name in FOLD_SCHEMES and not number:
        return name, None
    raise ValueError(f"folds {spec!r} is unknown (choose from {list(FOLD_SCHEMES)})")


def speaker_kfold(speakers: Sequence[str], k: int) -> list[Fold]:
    """
    K speaker-disjoint folds: speakers dealt to K groups balanced by utterance count (largest first, a stable hash of
    the name breaking ties, never the labels); fold k tests on group k and validates on group k+1 (cyclically).
    """
    counts = Counter(speakers)
    if len(counts) < k:
        raise ValueError(f"folds speaker_kfold:{k} needs at least {k} speakers; the corpus has {len(counts)}.")
    order = sorted(counts, key=lambda s: (-counts[s], hashlib.blake2b(s.encode(), digest_size=8).hexdigest()))
    groups: list[list[str]] = [[] for _ in range(k)]
    totals = [0] * k
    for speaker in order:
        smallest = int(np.argmin(totals))
        groups[smallest].append(speaker)
        totals[smallest] += counts[speaker]
    plan = [(f"fold{i + 1:02d}", groups[i], groups[(i + 1) % k]) for i in range(k)]
    return speaker_folds([{"speaker": s} for s in speakers], plan)


def read_folds_file(path: str | Path, speakers: Sequence[str]) -> list[Fold]:
    """Folds from a JSON file `{"folds": [{"name": "fold01", "test": ["spk1"], "validation": ["spk2"]}, ...]}`
    (training = every other speaker); errors name the file and the fold."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"folds file {path} does not exist.")
    try:
        folds = json.loads(path.read_text(encoding="utf-8"))["folds"]
        plan = [(str(f["name"]), [str(s) for s in f["test"]], [str(s) for s in f["validation"]]) for f in folds]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"folds file {path} is not of the form {FOLD_SCHEMES['FILE.json']} ({error!r}).") from error
    try:
        return speaker_folds([{"speaker": s} for s in speakers], plan)
    except ValueError as error:
        raise ValueError(f"folds file {path}: {error}") from error


def speaker_leave_one_out(speakers: Sequence[str]) -> list[Fold]:
    """One fold per speaker (sorted; numeric ids as numbers): test = the speaker, validation = the next speaker
    (cyclically), training = the others. Needs at least 3 speakers."""
    order = sorted(set(speakers), key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))
    if len(order) < 3:
        raise ValueError(f"folds leave_one_speaker_out needs at least 3 speakers; the corpus has {len(order)}.")
    plan = [(f"fold{k + 1:02d}_{safe_id(speaker)}", [speaker], [order[(k + 1) % len(order)]])
            for k, speaker in enumerate(order)]
    return speaker_folds([{"speaker": s} for s in speakers], plan)


def official_split(speakers: Sequence[str], splits: Sequence[str]) -> list[Fold]:
    """One fold `official` whose train / validation / test rows are those the `splits` column names (a release's own
    split, e.g. MELD's train / dev / test); the speaker sets may overlap (they do in MELD)."""
    unknown = sorted({s for s in splits} - set(SPLITS))
    if unknown:
        raise ValueError(f"folds official_split: session values {unknown[:5]} are not one of {list(SPLITS)}; the "
                         "corpus' session column must name each row's split (written by `memobert prepare meld`).")
    indices = {split: tuple(i for i, s in enumerate(splits) if s == split) for split in SPLITS}
    empty = [split for split in SPLITS if not indices[split]]
    if empty:
        raise ValueError(f"folds official_split: no row of the split(s) {empty}.")
    members = {split: frozenset(speakers[i] for i in indices[split]) for split in SPLITS}
    return [Fold(name="official", train_speakers=members["train"], validation_speakers=members["validation"],
                 test_speakers=members["test"], train=indices["train"], validation=indices["validation"],
                 test=indices["test"])]


def make_folds(spec: str, speakers: Sequence[str], sessions: Sequence[str] | None = None) -> list[Fold]:
    """The folds of scheme `spec` (`FOLD_SCHEMES`) over rows with these speakers and (for the session schemes)
    sessions, both as the corpus' columns hold them. Raises ValueError naming what is missing and the fix."""
    name, k = parse_fold_scheme(spec)
    missing_speakers = sum(not s for s in speakers)
    if missing_speakers:
        raise ValueError(
            f"{missing_speakers} labelled rows have no speaker; speaker-independent folds need the 'speaker' column "
            "filled for every labelled row."
        )
    if name == "file":
        return read_folds_file(spec, speakers)
    if name == "speaker_kfold":
        return speaker_kfold(speakers, k)
    if name == "leave_one_speaker_out":
        return speaker_leave_one_out([str(s) for s in speakers])
    if name == "official_split":
        if sessions is None:
            raise ValueError("folds official_split need the split of every labelled row in the corpus' 'session' "
                             "column (written by `memobert prepare meld`); this corpus has none.")
        return official_split([str(s) for s in speakers], [str(s).strip() for s in sessions])
    if sessions is None or any(not str(s).strip() for s in sessions):
        raise ValueError(
            f"folds {spec} need the recording session of every labelled row (the corpus' 'session' column, written "
            "by `memobert prepare iemocap|msp_improv`); this corpus has none. Rebuild it with memobert prepare, or "
            "use folds speaker_kfold:K or a folds .json file."
        )
    sessions = [str(s).strip() for s in sessions]
    numeric = all(s.isdigit() for s in sessions)  # then "2" sorts before "10"
    records = [{"speaker": str(sp), "session": int(se) if numeric else se} for sp, se in zip(speakers, sessions)]
    if name == "iemocap_loso_session":
        return iemocap_leave_one_session_out(records)
    return leave_one_speaker_out(records)


def subsample_per_class(rows: Sequence[int], labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """`fraction` of the rows of each class (at least one per class present), drawn with the seed; sorted."""
    rows = np.asarray(rows, dtype=np.int64)
    if fraction >= 1:
        return rows
    rng = np.random.default_rng(seed)
    kept = []
    for label in np.unique(labels[rows]):
        members = rows[labels[rows] == label]
        count = max(1, int(round(fraction * len(members))))
        kept.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(kept))
