"""Acoustic feature extractors: 16 kHz mono waves -> pooled frame features, one interface.

- `HFSpeechExtractor`: any Hugging Face wav2vec2 / HuBERT / WavLM checkpoint (hub name or local path) through
  `AutoModel` + `AutoFeatureExtractor`; hidden layer selectable (default last); non-overlapping mean over `pool` frames
  (3 x 20 ms = 60 ms); audio capped at `max_seconds` (10 s); batched by length (sorted, zero-padded, attention mask
  only where the checkpoint's feature extractor asks for one, outputs unpadded by the model's own output lengths).
- `LogMelExtractor`: log-mel filterbank from transformers' `audio_utils` (no librosa/torchaudio), 80 bins, 25 ms
  window, 10 ms hop, mean-pooled over 6 frames, so one frame is 60 ms as in the wav2vec2 path and max lengths mean the
  same.

Pooling keeps a shorter trailing window (its mean over the frames it has), so no audio is dropped; 1 s of audio gives
49 wav2vec2 frames -> 17 pooled frames. A wave too short for even one model frame gives a `(0, feature_dim)` array.

Note on batching: checkpoints whose feature extractor has `return_attention_mask=False` (e.g. wav2vec2-base, whose
first conv layer uses group norm over time) are fed zero-padded batches without a mask, as Hugging Face recommends;
zero padding shifts that group norm's statistics, so by default (`max_padding=None`) such checkpoints only batch waves
of equal length: an utterance's features never depend on what it was batched with (shard and resume runs stay
identical). Checkpoints with an attention mask batch waves within `max_padding=0.25` of the longest.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

SAMPLING_RATE = 16_000


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


class AcousticExtractor(ABC):
    """Waves (16 kHz mono float32, one per utterance) -> `(frames, feature_dim)` float32 arrays, one per wave."""

    name: str = "acoustic"
    feature_dim: int
    frame_seconds: float  # duration covered by one output frame
    sampling_rate: int = SAMPLING_RATE

    @abstractmethod
    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One `(frames, feature_dim)` float32 array per wave, in input order."""


class HFSpeechExtractor(AcousticExtractor):
    """Hidden states of a Hugging Face speech encoder (wav2vec2, HuBERT, WavLM ...), mean-pooled over `pool` frames.

    Args:
        model_name_or_path: hub id (e.g. `"facebook/wav2vec2-base"`) or a local folder saved with `save_pretrained`.
        layer: hidden layer to take: -1 = last (default); `k >= 0` = `hidden_states[k]` (0 = the input of the first
            transformer layer).
        pool: frames averaged into one output frame (3 = 60 ms for a 20 ms-stride model).
        max_seconds: audio beyond this is cut (10 s).
        batch_size: utterances per forward pass; `max_padding`: a batch is closed when padding would exceed this
            fraction of its longest wave (None: 0.25 with an attention mask, 0.0 = equal lengths only without one).
        device / dtype: where and in which precision the model runs (default: CUDA when available, float32).
    """

    name = "hf_speech"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike = "facebook/wav2vec2-base",
        layer: int = -1,
        pool: int = 3,
        max_seconds: float = 10.0,
        batch_size: int = 8,
        max_padding: float | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, Wav2Vec2FeatureExtractor

        source = os.fspath(model_name_or_path)
        self.source = source
        try:
            config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise OSError(
                f"Cannot load the speech model config from {source!r}: give a Hugging Face hub id (needs the network "
                f"or a cached copy) or a local folder written by save_pretrained. ({err})"
            ) from err
        try:
            self.processor = AutoFeatureExtractor.from_pretrained(source)
        except (OSError, ValueError):
            # Some checkpoints ship no preprocessor_config.json: fall back to wav2vec2's documented defaults.
            self.processor = Wav2Vec2FeatureExtractor(
                feature_size=1, sampling_rate=SAMPLING_RATE, padding_value=0.0, do_normalize=True,
                return_attention_mask=getattr(config, "feat_extract_norm", "group") == "layer",
            )
        rate = getattr(self.processor, "sampling_rate", SAMPLING_RATE)
        if rate != SAMPLING_RATE:
            raise ValueError(f"{source} expects {rate} Hz audio; this extractor works at {SAMPLING_RATE} Hz.")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AutoModel.from_pretrained(source, dtype=dtype or torch.float32).to(self.device).eval()
        if not hasattr(self.model, "_get_feat_extract_output_lengths"):
            raise ValueError(
                f"{source} loads as {type(self.model).__name__}, which is not a wav2vec2-style speech encoder "
                "(no _get_feat_extract_output_lengths); use a wav2vec2 / HuBERT / WavLM checkpoint."
            )
        num_layers = self.model.config.num_hidden_layers
        if not -num_layers - 1 <= layer <= num_layers:
            raise ValueError(f"layer {layer} is out of range for {source}: it has hidden states 0..{num_layers}.")
        self.layer = layer
        self._use_hidden_states = layer not in (-1, num_layers)
        self.use_attention_mask = bool(getattr(self.processor, "return_attention_mask", False))
        self.pool = pool
        self.max_samples = int(round(max_seconds * SAMPLING_RATE))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = batch_size
        if max_padding is None:
            max_padding = 0.25 if self.use_attention_mask else 0.0
        if not 0.0 <= max_padding < 1.0:
            raise ValueError(f"max_padding must be in [0, 1), got {max_padding}.")
        self.max_padding = max_padding
        self.feature_dim = int(self.model.config.hidden_size)
        stride = int(np.prod(getattr(self.model.config, "conv_stride", [320])))
        self.frame_seconds = stride * pool / SAMPLING_RATE

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
        if self._use_hidden_states:
            hidden = self.model(values, output_hidden_states=True, **kwargs).hidden_states[self.layer]
        else:
            hidden = self.model(values, **kwargs).last_hidden_state
        hidden = hidden.float()
        for row, i in enumerate(idx):
            pooled = mean_pool_frames(hidden[row, : frames[i]], self.pool)
            results[i] = pooled.cpu().numpy().astype(np.float32, copy=False)


LOG_MEL_NORMALIZATIONS = ("fixed", "utterance", "none")


class LogMelExtractor(AcousticExtractor):
    """Log-mel filterbank (transformers `audio_utils`), mean-pooled over `pool` hops (6 x 10 ms = 60 ms).

    Args:
        n_mels: mel bins (80); win_ms / hop_ms: analysis window and hop (25 / 10 ms); pool: hops per output frame;
        max_seconds: audio cap (10 s); fmin / fmax: mel range in Hz (0 .. 8000).
        normalize: "fixed" (default) maps log energies to about unit scale with one fixed affine map,
            `(log(max(mel, 1e-6)) + 6) / 4`, so that frame regression (SpanMAFR) works on a unit scale while loudness
            and pitch level, which carry emotion, are kept; "utterance" standardises each mel bin over the utterance
            (Kaldi-style CMVN: removes channel effects, and with them loudness and pitch level); "none" keeps raw
            natural-log energies.
    """

    name = "log_mel"

    def __init__(
        self,
        n_mels: int = 80,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        pool: int = 6,
        max_seconds: float = 10.0,
        fmin: float = 0.0,
        fmax: float | None = None,
        normalize: str = "fixed",
    ) -> None:
        from transformers.audio_utils import mel_filter_bank, optimal_fft_length, window_function

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
        self.max_samples = int(round(max_seconds * SAMPLING_RATE))
        self.feature_dim = n_mels
        self.frame_seconds = self.hop_length * pool / SAMPLING_RATE
        if normalize not in LOG_MEL_NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {LOG_MEL_NORMALIZATIONS}, got {normalize!r}.")
        self.normalize = normalize

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


def make_acoustic_extractor(name_or_path: str | os.PathLike = "log_mel", **kwargs) -> AcousticExtractor:
    """`"log_mel"` (alias `"logmel"`, `"fbank"`) -> `LogMelExtractor`; anything else is a Hugging Face speech
    checkpoint (hub id or local folder) -> `HFSpeechExtractor`."""
    key = os.fspath(name_or_path)
    if key.lower() in ("log_mel", "logmel", "log-mel", "fbank", "mel"):
        return LogMelExtractor(**kwargs)
    return HFSpeechExtractor(key, **kwargs)
