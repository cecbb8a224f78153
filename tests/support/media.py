"""Media helpers: the settings of the shared demo clips, and small synthetic files (tones, numbered frames, truncated
and single-stream files, PCM wavs, re-encoded windows)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

# The demo clips every test shares (the `demo_media` fixture of tests/conftest.py builds them once per session): as few
# and as short as the assertions on them allow. 3 clips (the pipeline is sharded over several videos; 9 utterances for
# the active-speaker accuracy); utterances of 1.2-1.5 s of voice (their windows stay above the pipeline's 1 s minimum).
DEMO_SETTINGS = dict(
    num_clips=3,
    seed=0,
    utterances_per_clip=(3, 3),
    utterance_duration=(1.2, 1.5),
    pause=(0.5, 0.7),
)


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
    from memobert.demo.media import write_media

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


def write_pcm_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """16-bit mono PCM with the stdlib `wave` module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def to_avi(reader, start: float, end: float, path: Path, rate: int = 16000) -> Path:
    """[start, end) of a demo clip (a `MediaReader`) re-encoded as an .avi (H.264 + AAC, the clip's fps, `rate` Hz)."""
    from memobert.demo.media import write_media

    window = reader.window(start, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_media(path, frames=window.frames, fps=reader.fps, audio=window.audio, sample_rate=rate)

