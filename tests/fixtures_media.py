"""Media fixtures shared by the preprocessing tests (stages 1-4): the demo clips, generated once per test process,
and small synthetic files (tones, numbered frames, subtitle streams, truncated and single-stream files)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

DEMO_CLIPS = 3
DEMO_SEED = 0


@functools.cache
def demo_media() -> tuple[Path, list]:
    """(folder, clips) of the demo media, written once per process into a temporary folder."""
    from memobert.data.demo import make_demo_media

    folder = Path(tempfile.mkdtemp(prefix="memobert-demo-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder, make_demo_media(folder, DEMO_CLIPS, DEMO_SEED)


def numbered_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frames whose gray level encodes their index (k -> 4 * k mod 256), so decoded frames can be identified."""
    return [np.full((height, width, 3), (4 * k) % 256, np.uint8) for k in range(n)]


def frame_index(frame: np.ndarray) -> int:
    """The index `numbered_frames` encoded in a decoded frame (modulo 64)."""
    return int(round(float(np.median(frame)) / 4.0)) % 64


def tone(seconds: float, sample_rate: int = 24000, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_test_media(
    path: Path,
    *,
    seconds: float = 4.0,
    fps: float = 25.0,
    video: bool = True,
    audio: bool | np.ndarray = True,
    sample_rate: int = 24000,
    **kwargs,
) -> Path:
    """A small file with numbered frames and/or a 440 Hz tone (or the given audio)."""
    from memobert.data.demo import write_media

    frames = numbered_frames(int(round(seconds * fps))) if video else None
    if isinstance(audio, np.ndarray):
        samples = audio
    else:
        samples = tone(seconds, sample_rate) if audio else None
    return write_media(path, frames=frames, fps=fps, audio=samples, sample_rate=sample_rate, **kwargs)


def truncated_copy(path: Path, out: Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of the bytes of `path`, written to `out`."""
    data = Path(path).read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out
