"""MTCNN face detection (Zhang et al. 2016) in plain torch, on the weights that facenet-pytorch ships.

The three networks (P-Net, R-Net, O-Net), the non-maximum suppression and the three-stage cascade are ported from
facenet-pytorch 2.6.0 (MIT), which cannot be imported next to a torch without a matching torchvision. Only its weight
files are used: ``facenet_pytorch/data/{pnet,rnet,onet}.pt`` (state dicts, loaded with ``weights_only=True``), found
through `importlib.util.find_spec` without importing the package, in a folder named by ``MEMOBERT_MTCNN_WEIGHTS``, or
in a folder given explicitly.

Cascade (one RGB image at a time):
1. P-Net, fully convolutional, runs on an image pyramid (scale 12 / `min_face_size`, then times `factor` until the
   shorter side is below 12 px); every 12 x 12 window scoring >= `thresholds[0]` is a candidate; NMS (IoU 0.5) per
   scale, then over all scales (IoU 0.7); boxes are regressed and made square.
2. R-Net scores 24 x 24 crops of the candidates (>= `thresholds[1]`), NMS (IoU 0.7), regression, square.
3. O-Net scores 48 x 48 crops (>= `thresholds[2]`) and gives 5 landmarks; regression, then NMS with the
   intersection over the smaller box (0.7), which removes a small box inside a larger one.

Landmarks come in image coordinates in the order left eye, right eye, nose, left mouth corner, right mouth corner
("left" is the smaller x, i.e. the subject's right).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LANDMARK_NAMES",
    "MTCNN",
    "MTCNN_PIP",
    "WEIGHTS_ENV",
    "WEIGHT_FILES",
    "ONet",
    "PNet",
    "RNet",
    "facenet_version",
    "find_mtcnn_weights",
    "mtcnn_weight_files",
    "mtcnn_weights_available",
    "nms",
]

WEIGHT_FILES = ("pnet.pt", "rnet.pt", "onet.pt")
WEIGHTS_ENV = "MEMOBERT_MTCNN_WEIGHTS"
MTCNN_PIP = "pip install --no-deps facenet-pytorch==2.6.0"
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


# -- weights ---------------------------------------------------------------------------------------------------------


def _facenet_data_dir() -> Path | None:
    """facenet-pytorch's ``data`` folder, located without importing the package (its import fails here)."""
    try:
        spec = importlib.util.find_spec("facenet_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def find_mtcnn_weights(weights_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding pnet.pt, rnet.pt and onet.pt: `weights_dir`, else $MEMOBERT_MTCNN_WEIGHTS, else the data
    folder of an installed facenet-pytorch. Raises FileNotFoundError naming what is missing and how to add it."""
    if weights_dir is not None:
        candidates, origin = [Path(weights_dir)], "the given weights folder"
    elif os.environ.get(WEIGHTS_ENV):
        candidates, origin = [Path(os.environ[WEIGHTS_ENV])], f"${WEIGHTS_ENV}"
    else:
        found = _facenet_data_dir()
        candidates, origin = ([found] if found else []), "facenet-pytorch's data folder"
    for folder in candidates:
        if all((folder / name).is_file() for name in WEIGHT_FILES):
            return folder
    where = f" ({candidates[0]})" if candidates else " (facenet-pytorch is not installed)"
    raise FileNotFoundError(
        f"MTCNN weights {', '.join(WEIGHT_FILES)} not found in {origin}{where}: `{MTCNN_PIP}` installs them "
        f"(never imported), or point ${WEIGHTS_ENV} at a folder holding them"
    )


def mtcnn_weight_files(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """The three weight files (see `find_mtcnn_weights`)."""
    folder = find_mtcnn_weights(weights_dir)
    return [folder / name for name in WEIGHT_FILES]


def facenet_version(weights_dir: str | os.PathLike) -> str | None:
    """The facenet-pytorch version installed beside a weights folder (``<site>/facenet_pytorch/data``), if any."""
    import importlib.metadata

    site = Path(weights_dir).resolve().parent.parent
    for dist in importlib.metadata.distributions(path=[str(site)]):
        if (dist.metadata["Name"] or "").lower().replace("_", "-") == "facenet-pytorch":
            return dist.version
    return None


def mtcnn_weights_available(weights_dir: str | os.PathLike | None = None) -> bool:
    try:
        find_mtcnn_weights(weights_dir)
    except FileNotFoundError:
        return False
    return True


def _load(module: nn.Module, path: Path) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except Exception as error:  # a truncated or foreign file: say which one
        raise RuntimeError(f"cannot load MTCNN weights {path}: {error}; reinstall them with `{MTCNN_PIP}`") from error
    return module.eval()


# -- networks (parameter names as in facenet-pytorch, so its state dicts load) ---------------------------------------


def _max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """`F.max_pool2d(x, kernel, stride, ceil_mode=True)`, the same values, as separable strided maxima (several times
    faster on CPU than torch's ceil-mode kernel on large inputs)."""
    if x.numel() < 4096:
        return F.max_pool2d(x, kernel, stride, ceil_mode=True)
    for dim in (2, 3):
        size = x.shape[dim]
        out_size = -(-(size - kernel) // stride) + 1
        out = x.narrow(dim, 0, (out_size - 1) * stride + 1)[(slice(None),) * dim + (slice(None, None, stride),)]
        out = out.clone()
        for i in range(1, kernel):
            shifted = x.narrow(dim, i, size - i)[(slice(None),) * dim + (slice(None, None, stride),)]
            n = min(out_size, shifted.shape[dim])  # the last window of ceil mode may be partial
            head = out.narrow(dim, 0, n)
            torch.maximum(head, shifted.narrow(dim, 0, n), out=head)
        x = out
    return x


class PNet(nn.Module):
    """Proposal network: fully convolutional; per 12 x 12 window (stride 2) a face probability and box offsets."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = _max_pool(x, 2, 2)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement network on 24 x 24 crops: face probability and box offsets."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _max_pool(self.prelu1(self.conv1(x)), 3, 2)
        x = _max_pool(self.prelu2(self.conv2(x)), 3, 2)
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)  # the converted Caffe weights expect (W, H, C) order
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network on 48 x 48 crops: face probability, box offsets and 5 landmarks (x1..x5, y1..y5 relative)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = _max_pool(self.prelu1(self.conv1(x)), 3, 2)
        x = _max_pool(self.prelu2(self.conv2(x)), 3, 2)
        x = _max_pool(self.prelu3(self.conv3(x)), 2, 2)
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


# -- box helpers -----------------------------------------------------------------------------------------------------


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, *, mode: str = "union", offset: float = 0.0) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    A box is dropped when its overlap with a kept, higher-scoring box exceeds `threshold`. `mode`: "union" (IoU) or
    "min" (intersection over the smaller area). `offset`: added to widths and heights (1 for the inclusive pixel
    convention of MTCNN's last stage, 0 like torchvision's nms)."""
    if mode not in ("union", "min"):
        raise ValueError(f"mode must be 'union' or 'min', got {mode!r}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + offset) * (y2 - y1 + offset)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + offset)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + offset)
        inter = w * h
        if mode == "min":
            overlap = inter / np.maximum(np.minimum(area[i], area[rest]), 1e-12)
        else:
            overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes (N, >= 4) made square around their centres (side: the longer side)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by the networks' offsets (fractions of the inclusive width / height)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] = boxes[:, 0] + offsets[:, 0] * w
    out[:, 1] = boxes[:, 1] + offsets[:, 1] * h
    out[:, 2] = boxes[:, 2] + offsets[:, 2] * w
    out[:, 3] = boxes[:, 3] + offsets[:, 3] * h
    return out


def _resize(image: np.ndarray, width: int, height: int, resample: str) -> np.ndarray:
    """An (h, w, 3) float32 image area-resampled to `height` x `width`: OpenCV's INTER_AREA ("cv2") or torch's
    adaptive average pooling ("torch", what facenet-pytorch uses: its exact numbers, slower)."""
    if resample == "torch":
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        return F.interpolate(tensor, size=(height, width), mode="area")[0].permute(1, 2, 0).numpy()
    import cv2

    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _crops(image: np.ndarray, boxes: np.ndarray, size: int, resample: str) -> torch.Tensor:
    """(N, 3, size, size) crops of `image` (H, W, 3 float32) under `boxes`, each limited to the image (1-based
    inclusive corners, as facenet-pytorch cuts them), area-resampled and normalised to [-1, 1]."""
    h, w = image.shape[:2]
    corners = np.trunc(boxes[:, :4]).astype(np.int64)
    x = np.maximum(corners[:, 0], 1)
    y = np.maximum(corners[:, 1], 1)
    ex = np.minimum(corners[:, 2], w)
    ey = np.minimum(corners[:, 3], h)
    out = np.zeros((len(boxes), size, size, 3), dtype=np.float32)
    for k in range(len(boxes)):
        if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
            out[k] = _resize(image[y[k] - 1 : ey[k], x[k] - 1 : ex[k]], size, size, resample)
    return _normalise(out)


def _normalise(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) pixel values 0..255 to the networks' (N, 3, H, W) input in [-1, 1]."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2) - 127.5) * 0.0078125


# -- the cascade -----------------------------------------------------------------------------------------------------


class MTCNN(nn.Module):
    """The three-stage MTCNN cascade on one RGB uint8 image; `detect` gives boxes with scores and 5 landmarks.

    `min_face_size`: the smallest face searched for, in pixels (sets the pyramid's first scale; larger is faster).
    `thresholds`: the P-, R- and O-Net score thresholds. `factor`: the pyramid's scale step. `resample`: "cv2"
    (OpenCV's area filter, default, faster) or "torch" (torch's, as facenet-pytorch does: its numbers exactly; the two
    differ by a few pixels)."""

    def __init__(
        self,
        weights_dir: str | os.PathLike | None = None,
        *,
        min_face_size: float = 20.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        resample: str = "cv2",
    ):
        super().__init__()
        if resample not in ("cv2", "torch"):
            raise ValueError(f"resample must be 'cv2' or 'torch', got {resample!r}")
        if min_face_size < 12:
            raise ValueError(f"min_face_size must be >= 12 pixels, got {min_face_size}")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if len(thresholds) != 3:
            raise ValueError(f"thresholds must be three scores (P-, R-, O-Net), got {thresholds}")
        self.weights_dir = find_mtcnn_weights(weights_dir)
        self.weight_files = [self.weights_dir / name for name in WEIGHT_FILES]
        self.pnet = _load(PNet(), self.weight_files[0])
        self.rnet = _load(RNet(), self.weight_files[1])
        self.onet = _load(ONet(), self.weight_files[2])
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.resample = resample
        self.requires_grad_(False)
        self.eval()

    def scales(self, height: int, width: int) -> list[float]:
        """The image pyramid's scales for a `height` x `width` image."""
        scale = 12.0 / self.min_face_size
        side = min(height, width) * scale
        out = []
        while side >= 12:
            out.append(scale)
            scale *= self.factor
            side *= self.factor
        return out

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces in an RGB (H, W, 3) uint8 image: ((N, 5) x1, y1, x2, y2, score; (N, 5, 2) landmarks), best first.

        Boxes may reach past the image border (the face does); callers clip them."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB (H, W, 3) image, got shape {image.shape}")
        h, w = image.shape[:2]
        empty = np.zeros((0, 5)), np.zeros((0, 5, 2))
        img = np.ascontiguousarray(image, dtype=np.float32)

        # Stage 1: P-Net over the pyramid.
        candidates = []
        for scale in self.scales(h, w):
            resized = _resize(img, int(w * scale + 1), int(h * scale + 1), self.resample)
            offsets, probs = self.pnet(_normalise(resized[None]))
            found = self._windows(offsets[0].numpy(), probs[0, 1].numpy(), scale)
            if len(found):
                candidates.append(found[nms(found[:, :4], found[:, 4], 0.5)])
        if not candidates:
            return empty
        boxes = np.concatenate(candidates)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        widths = (boxes[:, 2] - boxes[:, 0])[:, None]
        heights = (boxes[:, 3] - boxes[:, 1])[:, None]
        refined = boxes[:, :4] + boxes[:, 5:9] * np.concatenate([widths, heights, widths, heights], axis=1)
        boxes = _square(np.concatenate([refined, boxes[:, 4:5]], axis=1))

        # Stage 2: R-Net on 24 x 24 crops.
        offsets, probs = self.rnet(_crops(img, boxes, 24, self.resample))
        score = probs[:, 1].numpy()
        keep = score > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        offsets = offsets.numpy()[keep]
        if not len(boxes):
            return empty
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_regress(boxes[pick], offsets[pick]))

        # Stage 3: O-Net on 48 x 48 crops, with landmarks.
        offsets, points, probs = self.onet(_crops(img, boxes, 48, self.resample))
        score = probs[:, 1].numpy()
        keep = score > self.thresholds[2]
        if not keep.any():
            return empty
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        offsets, points = offsets.numpy()[keep], points.numpy()[keep]
        bw = boxes[:, 2:3] - boxes[:, 0:1] + 1
        bh = boxes[:, 3:4] - boxes[:, 1:2] + 1
        landmarks = np.stack([bw * points[:, :5] + boxes[:, 0:1] - 1, bh * points[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, offsets)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, mode="min", offset=1.0)
        return boxes[pick], landmarks[pick]

    def _windows(self, offsets: np.ndarray, probs: np.ndarray, scale: float) -> np.ndarray:
        """P-Net's windows scoring >= the first threshold: (N, 9) x1, y1, x2, y2, score, 4 offsets, in image pixels."""
        stride, cell = 2, 12
        ys, xs = np.nonzero(probs >= self.thresholds[0])
        if not len(ys):
            return np.zeros((0, 9))
        corner = np.stack([xs, ys], axis=1).astype(np.float64)
        top_left = np.floor((stride * corner + 1) / scale)
        bottom_right = np.floor((stride * corner + cell) / scale)
        return np.concatenate(
            [top_left, bottom_right, probs[ys, xs, None], offsets[:, ys, xs].T], axis=1
        ).astype(np.float64)
