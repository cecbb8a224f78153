"""Voice activity with webrtcvad (package `webrtcvad-wheels`): a speech mask per 10/20/30 ms frame, and helpers to put
that mask on the video frame times and to turn it into speech segments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "VadResult",
    "speech_mask",
    "mask_to_frame_times",
    "speech_fraction",
    "mask_segments",
    "rms_dbfs",
    "VAD_SAMPLE_RATES",
]

VAD_SAMPLE_RATES = (8000, 16000, 32000, 48000)
_FRAME_MS = (10, 20, 30)


@dataclass
class VadResult:
    """A speech mask: `mask[i]` says whether audio frame [start + i * frame_s, start + (i + 1) * frame_s) is speech."""

    mask: np.ndarray  # (n,) bool
    frame_ms: int
    start: float = 0.0  # time of the first audio sample (seconds), e.g. the window start

    @property
    def frame_s(self) -> float:
        return self.frame_ms / 1000.0

    @property
    def speech_ratio(self) -> float:
        return float(self.mask.mean()) if len(self.mask) else 0.0

    def at(self, times: np.ndarray, frame_duration: float | None = None, threshold: float = 0.5) -> np.ndarray:
        """The mask resampled to video frames starting at `times` (see `mask_to_frame_times`)."""
        return mask_to_frame_times(
            self.mask, self.frame_ms, times, start=self.start, frame_duration=frame_duration, threshold=threshold
        )

    def segments(self, min_speech: float = 0.0, min_silence: float = 0.0) -> list[tuple[float, float]]:
        """Speech segments (start, end) in seconds (see `mask_segments`)."""
        return mask_segments(self.mask, self.frame_ms, start=self.start, min_speech=min_speech, min_silence=min_silence)


def speech_mask(
    audio: np.ndarray,
    sample_rate: int = 16000,
    *,
    aggressiveness: int = 2,
    frame_ms: int = 30,
    start: float = 0.0,
) -> VadResult:
    """Run webrtcvad on mono float audio in [-1, 1] (or int16). `aggressiveness` 0 (keeps most) .. 3 (strictest);
    `frame_ms` 10, 20 or 30. The trailing partial frame is dropped. `start`: time of the first sample (kept in the
    result, for resampling to absolute frame times)."""
    import webrtcvad  # noqa: PLC0415

    if sample_rate not in VAD_SAMPLE_RATES:
        raise ValueError(f"webrtcvad needs a sample rate in {VAD_SAMPLE_RATES}, got {sample_rate}; resample the audio")
    if frame_ms not in _FRAME_MS:
        raise ValueError(f"webrtcvad frames are 10, 20 or 30 ms, got {frame_ms}")
    if not 0 <= aggressiveness <= 3:
        raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {audio.shape}")
    if audio.dtype == np.int16:
        pcm = audio
    else:
        pcm = (np.clip(audio.astype(np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)
    frame_len = sample_rate * frame_ms // 1000
    n = len(pcm) // frame_len
    vad = webrtcvad.Vad(aggressiveness)
    data = pcm[: n * frame_len].tobytes()
    step = frame_len * 2
    mask = np.fromiter(
        (vad.is_speech(data[i * step : (i + 1) * step], sample_rate) for i in range(n)), dtype=bool, count=n
    )
    return VadResult(mask, frame_ms, float(start))


def mask_to_frame_times(
    mask: np.ndarray,
    frame_ms: int,
    times: np.ndarray,
    *,
    start: float = 0.0,
    frame_duration: float | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """For each video frame shown over [t, t + frame_duration), True when at least `threshold` of that interval is
    speech. `times` are absolute seconds, `start` the time of the mask's first frame; `frame_duration` defaults to the
    spacing of `times` (or one VAD frame when there is a single time). Outside the mask counts as silence."""
    times = np.asarray(times, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if len(times) == 0:
        return np.zeros(0, dtype=bool)
    if frame_duration is None:
        frame_duration = float(np.median(np.diff(times))) if len(times) > 1 else frame_ms / 1000.0
    return speech_fraction(mask, frame_ms, times, start=start, frame_duration=frame_duration) >= threshold - 1e-9


def speech_fraction(
    mask: np.ndarray, frame_ms: int, times: np.ndarray, *, start: float = 0.0, frame_duration: float
) -> np.ndarray:
    """Fraction of each interval [t, t + frame_duration) covered by speech frames of `mask` (0..1)."""
    step = frame_ms / 1000.0
    # Cumulative speech time at the VAD frame edges; interpolate it at the interval ends.
    edges = start + np.arange(len(mask) + 1) * step
    cumulative = np.concatenate([[0.0], np.cumsum(mask.astype(np.float64)) * step])
    a = np.interp(times, edges, cumulative, left=0.0, right=cumulative[-1])
    b = np.interp(times + frame_duration, edges, cumulative, left=0.0, right=cumulative[-1])
    return (b - a) / frame_duration


def mask_segments(
    mask: np.ndarray, frame_ms: int, *, start: float = 0.0, min_speech: float = 0.0, min_silence: float = 0.0
) -> list[tuple[float, float]]:
    """Runs of speech as (start, end) seconds; silences shorter than `min_silence` are bridged, then segments shorter
    than `min_speech` dropped."""
    step = frame_ms / 1000.0
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    change = np.diff(np.concatenate([[0], m, [0]]))
    runs = list(zip(np.flatnonzero(change == 1), np.flatnonzero(change == -1)))
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and (a - merged[-1][1]) * step < min_silence:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(start + a * step, start + b * step) for a, b in merged if (b - a) * step >= min_speech]


def rms_dbfs(audio: np.ndarray) -> float:
    """Loudness of float audio in dB relative to full scale (-inf for digital silence)."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(audio**2)))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")
