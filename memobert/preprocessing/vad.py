"""Voice activity: a speech mask per short audio frame from one of two backends of the ``vad`` stage, and helpers to put
that mask on the video frame times and to turn it into speech segments.

Backends (`make_vad`; registered in `memobert.backends`, ``"auto"`` takes the first one installed):

- ``silero`` (default; package ``silero-vad``, MIT): the Silero VAD v6 network, one speech probability per 32 ms frame
  of 16 kHz audio, turned into speech segments by Silero's own hysteresis (`threshold` to enter speech,
  `neg_threshold` to leave it, `min_speech_ms`, `min_silence_ms`, `speech_pad_ms`); a frame is speech when the
  segments cover at least half of it. The package bundles the same weights as TorchScript and ONNX;
  ``model="sequence"`` (the default when onnxruntime is installed) runs its batched ONNX export (one call per 16 s of
  audio, bit-exact with the streaming model) and was the fastest on one core: 0.0017 s per second of audio against
  0.0064 (streaming ONNX) and 0.0089 (TorchScript). Importing ``silero_vad`` calls ``torch.set_num_threads(1)`` for
  the whole process: the import is done here with the caller's thread setting saved and restored.
- ``webrtc`` (fallback; package ``webrtcvad-wheels``): the WebRTC GMM detector on 10/20/30 ms frames, `aggressiveness`
  0 (keeps most) .. 3 (strictest). `speech_mask` is this backend as a function (the historical API).

Input is mono float audio in [-1, 1] (or int16); any sample rate is accepted by the backend objects and resampled to
one the model runs at (16 kHz for Silero; webrtcvad keeps 8/16/32/48 kHz as they are).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import (
    MissingBackendError,
    make_backend,
    module_available,
    package_version,
    register_backend,
    weights_record,
)

__all__ = [
    "VadResult",
    "SileroVad",
    "WebRtcVad",
    "make_vad",
    "speech_mask",
    "mask_to_frame_times",
    "speech_fraction",
    "mask_segments",
    "rms_dbfs",
    "resample_audio",
    "mono_float32",
    "keep_torch_threads",
    "silero_model_file",
    "VAD_SAMPLE_RATES",
    "MissingBackendError",
]

VAD_SAMPLE_RATES = (8000, 16000, 32000, 48000)
_FRAME_MS = (10, 20, 30)


@dataclass
class VadResult:
    """A speech mask: `mask[i]` says whether audio frame [start + i * frame_s, start + (i + 1) * frame_s) is speech.
    `probability`: the backend's speech probability per frame, when it has one (Silero)."""

    mask: np.ndarray  # (n,) bool
    frame_ms: int
    start: float = 0.0  # time of the first audio sample (seconds), e.g. the window start
    probability: np.ndarray | None = None  # (n,) float32 in [0, 1], or None

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


# -- audio -------------------------------------------------------------------------------------------------------------


def mono_float32(audio: np.ndarray) -> np.ndarray:
    """`audio` as float32 mono in [-1, 1] (int16 scaled; NaN/inf replaced, the rest clipped)."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {audio.shape}")
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32768.0
    audio = np.nan_to_num(audio.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(audio, -1.0, 1.0)


def resample_audio(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 `audio` at `sample_rate` resampled to `target_rate` (polyphase filter, scipy)."""
    audio = np.asarray(audio, dtype=np.float32)
    if int(sample_rate) == int(target_rate):
        return audio
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    from scipy.signal import resample_poly  # noqa: PLC0415

    ratio = Fraction(int(target_rate), int(sample_rate))
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


# -- webrtcvad ---------------------------------------------------------------------------------------------------------


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
    result, for resampling to absolute frame times). The ``webrtc`` backend as a function (`WebRtcVad` also resamples
    other rates)."""
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
        pcm = (mono_float32(audio) * 32767.0).astype(np.int16)
    frame_len = sample_rate * frame_ms // 1000
    n = len(pcm) // frame_len
    vad = webrtcvad.Vad(aggressiveness)
    data = pcm[: n * frame_len].tobytes()
    step = frame_len * 2
    mask = np.fromiter(
        (vad.is_speech(data[i * step : (i + 1) * step], sample_rate) for i in range(n)), dtype=bool, count=n
    )
    return VadResult(mask, frame_ms, float(start))


class WebRtcVad:
    """The ``webrtc`` backend: webrtcvad's GMM detector. Rates other than 8/16/32/48 kHz are resampled to 16 kHz."""

    name = "webrtc"
    OPTIONS = ("aggressiveness", "frame_ms")

    def __init__(self, aggressiveness: int = 2, frame_ms: int = 30):
        if frame_ms not in _FRAME_MS:
            raise ValueError(f"webrtcvad frames are 10, 20 or 30 ms, got {frame_ms}")
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
        self.aggressiveness = int(aggressiveness)
        self.frame_ms = int(frame_ms)

    def speech_mask(self, audio: np.ndarray, sample_rate: int = 16000, start: float = 0.0) -> VadResult:
        """Speech per `frame_ms` frame of mono `audio` (the trailing partial frame is dropped)."""
        if sample_rate not in VAD_SAMPLE_RATES:
            audio, sample_rate = resample_audio(mono_float32(audio), sample_rate, 16000), 16000
        return speech_mask(audio, sample_rate, aggressiveness=self.aggressiveness, frame_ms=self.frame_ms, start=start)

    def provenance(self) -> dict[str, Any]:
        return {
            "backend": self.name, "package": "webrtcvad-wheels", "version": package_version("webrtcvad-wheels"),
            "weights": [], "aggressiveness": self.aggressiveness, "frame_ms": self.frame_ms,
        }

    def __repr__(self) -> str:
        return f"WebRtcVad(aggressiveness={self.aggressiveness}, frame_ms={self.frame_ms})"


# -- Silero VAD --------------------------------------------------------------------------------------------------------

SILERO_SAMPLE_RATE = 16000
SILERO_FRAME = 512  # samples per probability at 16 kHz (32 ms)
# The weight files of silero-vad's wheel, per way of running them.
SILERO_MODELS = {
    "sequence": "silero_vad_16k_sequence.onnx",  # batched ONNX export (onnxruntime): fastest
    "onnx": "silero_vad.onnx",  # streaming ONNX, one call per frame (onnxruntime)
    "jit": "silero_vad.jit",  # TorchScript, one call per frame
}


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Restore torch's intra-op thread count on exit (importing ``silero_vad`` sets it to 1 for the process)."""
    import torch  # noqa: PLC0415

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _silero_model(model: str) -> str:
    if model == "auto":
        return "sequence" if importlib.util.find_spec("onnxruntime") is not None else "jit"
    if model not in SILERO_MODELS:
        raise ValueError(f"unknown Silero model {model!r}; choose one of auto, {', '.join(SILERO_MODELS)}")
    return model


def silero_model_file(model: str = "auto") -> Path:
    """The weight file of silero-vad's wheel that `SileroVad(model=...)` loads (found without importing silero_vad)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackendError(_missing_message("silero"))
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / SILERO_MODELS[_silero_model(model)]
    if not path.is_file():
        raise MissingBackendError(f"silero-vad is installed without its model file {path}; reinstall it: "
                                  "`pip install --force-reinstall silero-vad==6.2.3`")
    return path


def _missing_message(name: str) -> str:
    from ..backends import backend  # noqa: PLC0415

    return backend("vad", name).missing_message()


class SileroVad:
    """The ``silero`` backend: Silero VAD v6's speech probability per 32 ms frame at 16 kHz, cut into speech segments
    by Silero's hysteresis (enter at `threshold`, leave below `neg_threshold` (default threshold - 0.15) after
    `min_silence_ms`; segments shorter than `min_speech_ms` dropped, the rest padded by `speech_pad_ms` each side).

    `model`: "sequence" (batched ONNX), "onnx" (streaming ONNX), "jit" (TorchScript) or "auto" (sequence when
    onnxruntime is installed, else jit): the same network and weights, equal probabilities to 1e-6."""

    name = "silero"
    OPTIONS = ("threshold", "neg_threshold", "min_speech_ms", "min_silence_ms", "speech_pad_ms", "model")
    frame_ms = SILERO_FRAME * 1000 // SILERO_SAMPLE_RATE

    def __init__(
        self,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        min_speech_ms: int = 250,
        min_silence_ms: int = 100,
        speech_pad_ms: int = 30,
        model: str = "auto",
    ):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        neg_threshold = max(threshold - 0.15, 0.01) if neg_threshold is None else float(neg_threshold)
        if not 0.0 < neg_threshold <= threshold:
            raise ValueError(f"neg_threshold must be in (0, threshold={threshold}], got {neg_threshold}")
        for option, value in (("min_speech_ms", min_speech_ms), ("min_silence_ms", min_silence_ms),
                              ("speech_pad_ms", speech_pad_ms)):
            if value < 0:
                raise ValueError(f"{option} must be >= 0, got {value}")
        self.threshold = float(threshold)
        self.neg_threshold = neg_threshold
        self.min_speech_ms = int(min_speech_ms)
        self.min_silence_ms = int(min_silence_ms)
        self.speech_pad_ms = int(speech_pad_ms)
        self.model = _silero_model(model)
        self.model_file = silero_model_file(self.model)
        with keep_torch_threads():  # silero_vad's import calls torch.set_num_threads(1)
            silero = importlib.import_module("silero_vad")
            if self.model == "sequence":
                self._net = silero.load_silero_vad(sequence=True)
            else:
                self._net = silero.load_silero_vad(onnx=self.model == "onnx")
        self._timestamps = silero.get_speech_timestamps_from_probs

    def speech_probability(self, audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        """Speech probability per 32 ms frame of mono `audio` (resampled to 16 kHz; the last frame zero-padded)."""
        audio = resample_audio(mono_float32(audio), sample_rate, SILERO_SAMPLE_RATE)
        return self._probability(audio)

    def _probability(self, audio: np.ndarray) -> np.ndarray:
        n = math.ceil(len(audio) / SILERO_FRAME)
        if n == 0:
            return np.zeros(0, np.float32)
        padded = np.zeros(n * SILERO_FRAME, np.float32)
        padded[: len(audio)] = audio
        if self.model == "sequence":
            probability = self._net.audio_forward(padded, SILERO_SAMPLE_RATE)
        else:
            import torch  # noqa: PLC0415

            with torch.inference_mode():
                probability = self._net.audio_forward(torch.from_numpy(padded), SILERO_SAMPLE_RATE).numpy()
        return np.asarray(probability, dtype=np.float32).reshape(-1)[:n]

    def speech_mask(self, audio: np.ndarray, sample_rate: int = 16000, start: float = 0.0) -> VadResult:
        """Speech per 32 ms frame of mono `audio` (a frame is speech when Silero's segments cover half of it)."""
        audio = resample_audio(mono_float32(audio), sample_rate, SILERO_SAMPLE_RATE)
        probability = self._probability(audio)
        mask = np.zeros(len(probability), dtype=bool)
        if len(probability):
            segments = self._timestamps(
                probability.tolist(), sampling_rate=SILERO_SAMPLE_RATE, threshold=self.threshold,
                neg_threshold=self.neg_threshold, min_speech_duration_ms=self.min_speech_ms,
                min_silence_duration_ms=self.min_silence_ms, speech_pad_ms=self.speech_pad_ms,
                audio_length_samples=len(audio),
            )
            half = SILERO_FRAME // 2
            for segment in segments:  # frames whose centre lies in [start, end) samples
                first = max(0, math.ceil((segment["start"] - half) / SILERO_FRAME))
                stop = min(len(mask), math.ceil((segment["end"] - half) / SILERO_FRAME))
                mask[first:stop] = True
        return VadResult(mask, self.frame_ms, float(start), probability)

    def provenance(self) -> dict[str, Any]:
        return {
            "backend": self.name, "package": "silero-vad", "version": package_version("silero-vad"),
            "weights": weights_record(self.model_file), "model": self.model, "sample_rate": SILERO_SAMPLE_RATE,
            "frame_ms": self.frame_ms, "threshold": self.threshold, "neg_threshold": self.neg_threshold,
            "min_speech_ms": self.min_speech_ms, "min_silence_ms": self.min_silence_ms,
            "speech_pad_ms": self.speech_pad_ms,
        }

    def __repr__(self) -> str:
        return (f"SileroVad(model={self.model!r}, threshold={self.threshold}, neg_threshold={self.neg_threshold}, "
                f"min_speech_ms={self.min_speech_ms}, min_silence_ms={self.min_silence_ms}, "
                f"speech_pad_ms={self.speech_pad_ms})")


# -- registry ----------------------------------------------------------------------------------------------------------

_BUILTIN_OPTIONS = {SileroVad.name: SileroVad.OPTIONS, WebRtcVad.name: WebRtcVad.OPTIONS}

register_backend(
    "vad", "silero", SileroVad, package="silero-vad", pip="pip install silero-vad==6.2.3", priority=10,
    available=module_available("silero_vad"), weights=lambda: [silero_model_file()],
    description="Silero VAD v6 (MIT): a small neural network, 32 ms frames at 16 kHz, weights in the wheel",
)
register_backend(
    "vad", "webrtc", WebRtcVad, package="webrtcvad-wheels", pip="pip install webrtcvad-wheels", priority=0,
    available=module_available("webrtcvad"),
    description="WebRTC's GMM voice activity detector: 10/20/30 ms frames, aggressiveness 0-3 (no weight file)",
)


def make_vad(name: str | None = "auto", **options) -> SileroVad | WebRtcVad:
    """Build VAD backend `name` ("silero", "webrtc", "auto": the best installed). `options` may hold the settings of
    every built-in backend (e.g. a config's `aggressiveness` and `threshold` together): each backend takes its own
    (`SileroVad.OPTIONS`, `WebRtcVad.OPTIONS`) and the others are left out; an option no backend knows is an error."""
    from ..backends import default_backend  # noqa: PLC0415

    chosen = default_backend("vad") if name in (None, "auto") else name
    if chosen in _BUILTIN_OPTIONS:
        known = {option for accepted in _BUILTIN_OPTIONS.values() for option in accepted}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown VAD option(s) {', '.join(unknown)}; silero takes {', '.join(SileroVad.OPTIONS)}; "
                            f"webrtc takes {', '.join(WebRtcVad.OPTIONS)}")
        options = {key: value for key, value in options.items() if key in _BUILTIN_OPTIONS[chosen]}
    return make_backend("vad", chosen, **options)


# -- masks on frame times ---------------------------------------------------------------------------------------------


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
