"""Speaker-independent cross-validation folds for IEMOCAP and MSP-IMPROV.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SPLITS = ("train", "validation", "test")


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


def speakers_by_session(records: Sequence) -> dict[int, list[str]]:
    """{session: sorted speakers}, sessions sorted; a speaker seen in two sessions raises."""
    session_of: dict[str, int] = {}
    for i, record in enumerate(records):
        speaker, session = str(_field(record, "speaker")), int(_field(record, "session"))
        if session_of.setdefault(speaker, session) != session:
            raise ValueError(
                f"Record {i}: speaker {speaker!r} appears in sessions {session_of[speaker]} and {session}; "
                "speaker ids must be unique across sessions (e.g. 'Ses01F', 'F01')."
            )
    out: dict[int, list[str]] = {}
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
            plan.append((f"fold{len(plan) + 1:02d}_{speaker}", [speaker], [s for s in speakers if s != speaker]))
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
        plan.append((f"fold{k + 1:02d}_session{session}", by_session[session], chosen))
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
