"""Face detection behind one small interface, a registry of backends, and an IoU tracker.

A backend is anything with `name` and `detect(frame) -> list[FaceBox]` (frame: RGB (H, W, 3) or gray (H, W) uint8).
Built in:
- "haar": OpenCV's frontal-face Haar cascade (opencv-python-headless < 5); works from a plain pip install.
- "mtcnn": facenet-pytorch's MTCNN (boxes, probabilities and 5 landmarks), used when facenet_pytorch imports.
`make_face_detector("auto")` picks MTCNN when it is importable, else Haar. `register_face_detector` adds others.

`track_faces` links per-frame detections into tracks by IoU (greedy, best overlap first), bridging gaps of up to
`max_gap` frames.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "FaceBox",
    "FaceDetector",
    "HaarFaceDetector",
    "MTCNNFaceDetector",
    "FaceTrack",
    "IoUTracker",
    "register_face_detector",
    "make_face_detector",
    "available_face_detectors",
    "detect_faces",
    "track_faces",
    "iou",
]


@dataclass(frozen=True)
class FaceBox:
    """A face in pixel coordinates [x1, x2) x [y1, y2) with a confidence in [0, 1] and optional (K, 2) landmarks."""

    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float = 1.0
    landmarks: np.ndarray | None = field(default=None, compare=False)

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0

    def as_array(self) -> np.ndarray:
        return np.array([self.x1, self.y1, self.x2, self.y2], dtype=np.float64)

    def clip(self, width: int, height: int) -> FaceBox:
        """The box limited to a frame of `width` x `height`."""
        return FaceBox(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
            self.confidence,
            self.landmarks,
        )

    def scaled(self, factor: float) -> FaceBox:
        lm = None if self.landmarks is None else self.landmarks * factor
        return FaceBox(self.x1 * factor, self.y1 * factor, self.x2 * factor, self.y2 * factor, self.confidence, lm)


def iou(a: FaceBox | np.ndarray, b: FaceBox | np.ndarray) -> float:
    """Intersection over union of two boxes."""
    a = a.as_array() if isinstance(a, FaceBox) else np.asarray(a, dtype=np.float64)
    b = b.as_array() if isinstance(b, FaceBox) else np.asarray(b, dtype=np.float64)
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@runtime_checkable
class FaceDetector(Protocol):
    """What the pipeline needs of a face detector."""

    name: str

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        """Faces in one RGB (H, W, 3) or gray (H, W) uint8 frame, most confident first."""
        ...


def _to_gray(frame: np.ndarray) -> np.ndarray:
    import cv2  # noqa: PLC0415

    frame = np.asarray(frame)
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected an RGB (H, W, 3) or gray (H, W) frame, got shape {frame.shape}")


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade.

    `min_size`: smallest face as a fraction of the frame's shorter side. `max_side`: frames are scaled down to this
    longer side before detection (boxes are mapped back), which bounds the cost on large videos. `confidence` is the
    cascade's last-stage weight squashed to [0, 1) by 1 - exp(-w / 2): monotone, not a probability.
    """

    name = "haar"

    def __init__(
        self,
        cascade_path: str | None = None,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.12,
        max_side: int | None = 480,
        min_confidence: float = 0.0,
    ):
        import cv2  # noqa: PLC0415

        if not hasattr(cv2, "CascadeClassifier"):
            raise ImportError(
                "this OpenCV has no CascadeClassifier (OpenCV 5 dropped it): install opencv-python-headless<5"
            )
        if cascade_path is None:
            cascade_path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade_path = cascade_path
        self._cascade = cv2.CascadeClassifier(cascade_path)
        if self._cascade.empty():
            raise FileNotFoundError(
                f"cannot load the Haar cascade {cascade_path!r}; reinstall opencv-python-headless<5 or pass a valid "
                "cascade_path"
            )
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side
        self.min_confidence = min_confidence

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        import cv2  # noqa: PLC0415

        gray = _to_gray(frame)
        h, w = gray.shape
        factor = 1.0
        if self.max_side is not None and max(h, w) > self.max_side:
            factor = self.max_side / max(h, w)
            gray = cv2.resize(
                gray, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA
            )
        side = max(8, int(self.min_size * min(gray.shape)))
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
            outputRejectLevels=True,
        )
        faces = []
        for (x, y, bw, bh), weight in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            conf = 1.0 - math.exp(-max(float(weight), 0.0) / 2.0)
            if conf < self.min_confidence:
                continue
            faces.append(FaceBox(float(x), float(y), float(x + bw), float(y + bh), conf).scaled(1.0 / factor))
        return sorted(faces, key=lambda f: -f.confidence)


class MTCNNFaceDetector:
    """facenet-pytorch's MTCNN: boxes, probabilities and 5 landmarks (eyes, nose, mouth corners) per face.

    facenet-pytorch pins old torch/torchvision/numpy; it works installed with `pip install --no-deps facenet-pytorch`
    beside a torchvision that matches your torch."""

    name = "mtcnn"

    def __init__(self, *, device: str = "cpu", min_confidence: float = 0.9, min_face_size: int = 20, **kwargs):
        try:
            from facenet_pytorch import MTCNN  # noqa: PLC0415
        except ImportError as e:
            raise ImportError(
                "the 'mtcnn' face detector needs facenet-pytorch: `pip install --no-deps facenet-pytorch` (plus a "
                "torchvision matching your torch), or use make_face_detector('haar')"
            ) from e
        self._mtcnn = MTCNN(keep_all=True, device=device, min_face_size=min_face_size, **kwargs)
        self.min_confidence = min_confidence

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        boxes, probs, landmarks = self._mtcnn.detect(frame, landmarks=True)
        if boxes is None:
            return []
        faces = [
            FaceBox(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(p), np.asarray(lm, dtype=np.float64))
            for b, p, lm in zip(boxes, probs, landmarks)
            if p is not None and p >= self.min_confidence
        ]
        return sorted(faces, key=lambda f: -f.confidence)


# -- registry --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Backend:
    factory: Callable[..., FaceDetector]
    available: Callable[[], bool]
    priority: int  # higher wins for "auto"


_REGISTRY: dict[str, _Backend] = {}


def register_face_detector(
    name: str,
    factory: Callable[..., FaceDetector],
    *,
    available: Callable[[], bool] = lambda: True,
    priority: int = 0,
) -> None:
    """Register a backend under `name`; `available()` says whether it can be built here, `priority` ranks it for
    "auto" (Haar 0, MTCNN 10)."""
    _REGISTRY[name] = _Backend(factory, available, priority)


def _module_available(module: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(module) is not None


register_face_detector("haar", HaarFaceDetector, priority=0)
register_face_detector("mtcnn", MTCNNFaceDetector, available=_module_available("facenet_pytorch"), priority=10)


def available_face_detectors() -> list[str]:
    """Registered backends that can be built here, best first."""
    names = [n for n, b in _REGISTRY.items() if b.available()]
    return sorted(names, key=lambda n: -_REGISTRY[n].priority)


def make_face_detector(name: str = "auto", **kwargs) -> FaceDetector:
    """Build the backend `name` ("auto": the best available one) with backend-specific keyword arguments."""
    if name == "auto":
        candidates = available_face_detectors()
        if not candidates:
            raise RuntimeError("no face detector backend is available; install opencv-python-headless<5")
        name = candidates[0]
    if name not in _REGISTRY:
        raise ValueError(f"unknown face detector {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name].factory(**kwargs)


def detect_faces(frames: Sequence[np.ndarray] | np.ndarray, detector: FaceDetector) -> list[list[FaceBox]]:
    """Run `detector` on every frame."""
    return [detector.detect(frame) for frame in frames]


# -- tracking --------------------------------------------------------------------------------------------------------


@dataclass
class FaceTrack:
    """One face followed over frames: `frames[i]` is a frame index where `boxes[i]` was detected (increasing)."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[FaceBox] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def __len__(self) -> int:
        return len(self.frames)

    def coverage(self, num_frames: int) -> float:
        """Fraction of the `num_frames` frames on which the face was detected."""
        return len(set(self.frames)) / num_frames if num_frames else 0.0

    def mean_confidence(self) -> float:
        return float(np.mean([b.confidence for b in self.boxes])) if self.boxes else 0.0

    def dense_boxes(self, num_frames: int, *, interpolate: bool = True) -> np.ndarray:
        """(num_frames, 4) boxes x1, y1, x2, y2 per frame: detected, linearly interpolated inside gaps
        (`interpolate`), NaN before the first and after the last detection."""
        out = np.full((num_frames, 4), np.nan)
        frames = np.asarray(self.frames)
        boxes = np.stack([b.as_array() for b in self.boxes]) if self.boxes else np.zeros((0, 4))
        keep = frames < num_frames
        frames, boxes = frames[keep], boxes[keep]
        if len(frames) == 0:
            return out
        if interpolate:
            span = np.arange(frames[0], frames[-1] + 1)
            for j in range(4):
                out[span, j] = np.interp(span, frames, boxes[:, j])
        else:
            out[frames] = boxes
        return out

    def box_at(self, frame: int) -> FaceBox | None:
        """The detected box on `frame`, if any."""
        try:
            return self.boxes[self.frames.index(frame)]
        except ValueError:
            return None


class IoUTracker:
    """Greedy IoU tracker: each frame's detections extend the open track they overlap most (IoU >= `min_iou`); a
    track not extended for more than `max_gap` frames is closed; unmatched detections open new tracks."""

    def __init__(self, *, min_iou: float = 0.3, max_gap: int = 5):
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        self.min_iou = min_iou
        self.max_gap = max_gap
        self.tracks: list[FaceTrack] = []
        self._next_id = 0

    def update(self, frame: int, boxes: Sequence[FaceBox]) -> list[int]:
        """Add the detections of `frame` (frames must come in increasing order); returns their track ids."""
        open_tracks = [t for t in self.tracks if frame - t.last <= self.max_gap + 1 and t.last < frame]
        pairs = sorted(
            ((iou(t.boxes[-1], b), ti, bi) for ti, t in enumerate(open_tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.min_iou:
                break
            if ti in used_tracks or bi in assigned:
                continue
            assigned[bi] = ti
            used_tracks.add(ti)
        ids = []
        for bi, box in enumerate(boxes):
            if bi in assigned:
                track = open_tracks[assigned[bi]]
            else:
                track = FaceTrack(self._next_id)
                self._next_id += 1
                self.tracks.append(track)
            track.frames.append(frame)
            track.boxes.append(box)
            ids.append(track.track_id)
        return ids


def track_faces(detections: Sequence[Sequence[FaceBox]], *, min_iou: float = 0.3, max_gap: int = 5) -> list[FaceTrack]:
    """Link per-frame detections (`detections[i]`: the faces of frame i) into tracks, longest first."""
    tracker = IoUTracker(min_iou=min_iou, max_gap=max_gap)
    for frame, boxes in enumerate(detections):
        tracker.update(frame, boxes)
    return sorted(tracker.tracks, key=lambda t: (-len(t), t.track_id))
