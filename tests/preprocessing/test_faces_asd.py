"""Stage 3 (face detection backends, registry, IoU tracking) and stage 4 (active speaker)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memobert import backends as backends_module
from memobert.preprocessing.active_speaker import (
    ActiveSpeakerConfig,
    find_active_speaker,
    mouth_signal,
    score_track,
    select_speaker,
)
from memobert.preprocessing.decode import MediaReader, decode_frames
from memobert.preprocessing.faces import (
    FaceBox,
    FaceDetector,
    FaceTrack,
    HaarFaceDetector,
    IoUTracker,
    available_face_detectors,
    detect_faces,
    iou,
    make_face_detector,
    register_face_detector,
    track_faces,
)
from memobert.preprocessing.mtcnn import mtcnn_weights_available
from memobert.preprocessing.vad import speech_mask

HAS_MTCNN = mtcnn_weights_available()  # facenet-pytorch's weight files (the package itself is never imported)


# -- detection -----------------------------------------------------------------------------------------------------


def test_haar_detects_the_two_demo_faces(demo_media, haar):
    _, clips = demo_media
    total, two = 0, 0  # over every demo clip (short clips: a single clip has too few frames for a 95 % rate)
    for clip in clips:
        frames, _ = decode_frames(clip.video, 0.0, clip.duration, fps=4)
        found = detect_faces(frames, haar)
        total += len(frames)
        for boxes in (f for f in found if len(f) == 2):
            two += 1
            left, right = sorted(boxes, key=lambda b: b.x1)
            assert left.center[0] < clip.width / 2 < right.center[0]
            for b in boxes:
                assert 0.2 * clip.height < b.height < 0.6 * clip.height and 0 < b.confidence < 1
    assert two >= 0.95 * total
    assert isinstance(haar, FaceDetector) and haar.name == "haar"
    # Gray frames work too, and a large frame is scaled down for detection with boxes mapped back.
    frames, _ = decode_frames(clips[0].video, 0.0, clips[0].duration, fps=4)
    assert len(haar.detect(frames[0].mean(axis=2).astype(np.uint8))) == 2
    big = np.repeat(np.repeat(frames[0], 3, axis=0), 3, axis=1)
    boxes_big = sorted(HaarFaceDetector(max_side=480).detect(big), key=lambda b: b.x1)
    boxes_small = sorted(haar.detect(frames[0]), key=lambda b: b.x1)
    assert len(boxes_big) == 2
    for a, b in zip(boxes_big, boxes_small):
        assert iou(a.scaled(1 / 3), b) > 0.6


def test_haar_finds_nothing_on_a_blank_frame(haar):
    assert haar.detect(np.full((120, 160, 3), 127, np.uint8)) == []
    with pytest.raises(ValueError, match="RGB"):
        haar.detect(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match="cascade"):
        HaarFaceDetector("/nonexistent/cascade.xml")


def test_registry_and_auto_selection(monkeypatch):
    assert "haar" in available_face_detectors()
    assert isinstance(make_face_detector("haar", min_neighbors=3), HaarFaceDetector)
    with pytest.raises(ValueError, match="unknown face detector 'nope'; registered: .*haar.*mtcnn"):
        make_face_detector("nope")
    assert available_face_detectors()[0] == backends_module.default_backend("face_detector")
    # "auto" follows availability: a private copy of the registry, with every backend but Haar made absent.
    registry = dict(backends_module._REGISTRY["face_detector"])
    monkeypatch.setitem(backends_module._REGISTRY, "face_detector", registry)
    for name, entry in list(registry.items()):
        if name != "haar":
            registry[name] = dataclasses.replace(entry, available=lambda: False)
    assert isinstance(make_face_detector("auto"), HaarFaceDetector)

    class Fake:
        name = "fake"

        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def detect(self, frame):
            return [FaceBox(0, 0, 10, 10, 0.9)]

    register_face_detector("fake", Fake, priority=5)
    detector = make_face_detector("auto", x=1)
    assert detector.name == "fake" and detector.kwargs == {"x": 1} and isinstance(detector, FaceDetector)
    assert available_face_detectors()[:2] == ["fake", "haar"]


@pytest.mark.skipif(HAS_MTCNN, reason="facenet-pytorch's MTCNN weights are installed")
def test_mtcnn_without_facenet_says_how_to_install():
    with pytest.raises(ImportError, match="pip install --no-deps facenet-pytorch"):
        make_face_detector("mtcnn")


@pytest.mark.skipif(not HAS_MTCNN, reason="facenet-pytorch's MTCNN weights not found (optional)")
def test_mtcnn_detects_the_demo_faces(demo_media):
    _, clips = demo_media
    frames, _ = decode_frames(clips[0].video, 1.0, 1.5)
    faces = make_face_detector("mtcnn").detect(frames[0])
    assert len(faces) == 2 and all(f.landmarks is not None and f.landmarks.shape == (5, 2) for f in faces)


# -- tracking ------------------------------------------------------------------------------------------------------


def _box(x, y, size=20.0, conf=0.9):
    return FaceBox(x, y, x + size, y + size, conf)


def test_iou_and_box_helpers():
    a, b = _box(0, 0, 10), _box(5, 0, 10)
    assert iou(a, b) == pytest.approx(50 / 150)
    assert iou(a, _box(20, 20, 5)) == 0.0
    assert a.area == 100 and a.center == (5.0, 5.0)
    assert FaceBox(-5, -5, 50, 50).clip(40, 30).as_array().tolist() == [0, 0, 40, 30]


def test_tracker_links_faces_and_bridges_gaps():
    detections = []
    for t in range(20):
        frame = [_box(10 + t, 10)]  # face A drifts right
        if t not in (5, 6, 7) and t < 15:
            frame.append(_box(100, 10 + 0.5 * t))  # face B: a 3-frame gap, then gone
        detections.append(frame[::-1] if t % 2 else frame)  # detector order must not matter
    tracks = track_faces(detections, min_iou=0.3, max_gap=5)
    assert len(tracks) == 2
    a, b = tracks
    assert a.frames == list(range(20)) and len(b) == 12
    assert a.coverage(20) == 1.0 and b.coverage(20) == pytest.approx(0.6)
    dense = b.dense_boxes(20)
    assert np.isnan(dense[15:]).all() and not np.isnan(dense[:15]).any()
    assert dense[6, 1] == pytest.approx(13.0)  # interpolated inside the gap
    assert b.box_at(6) is None and b.box_at(4) is not None
    # A gap longer than max_gap splits the track.
    assert len(track_faces(detections, max_gap=2)) == 3
    # min_iou decides whether a jump continues a track.
    jumpy = [[_box(0, 0)], [_box(12, 0)]]  # IoU 8*20 / (800 - 160) = 0.25
    assert len(track_faces(jumpy, min_iou=0.2)) == 1 and len(track_faces(jumpy, min_iou=0.3)) == 2
    tracker = IoUTracker()
    assert tracker.update(0, [_box(0, 0), _box(50, 0)]) == [0, 1]
    assert tracker.update(1, [_box(51, 0), _box(1, 0)]) == [1, 0]
    with pytest.raises(ValueError):
        IoUTracker(min_iou=0)


# -- active speaker ------------------------------------------------------------------------------------------------


def _side(result, width):
    cx = np.nanmean((result.boxes[:, 0] + result.boxes[:, 2]) / 2)
    return "left" if cx < width / 2 else "right"


def test_active_speaker_picks_the_speaking_face_on_demo_utterances(demo_media, haar):
    _, clips = demo_media
    correct, total, scores = 0, 0, []
    for clip in clips:
        with MediaReader(clip.video) as reader:
            for u in clip.utterances:
                w = reader.window(u.start, u.end)
                speech = speech_mask(w.audio, 16000, start=w.start).at(w.frame_times)
                result = find_active_speaker(w.frames, speech, haar)
                total += 1
                if result.found:
                    scores.append(result.score)
                    correct += _side(result, clip.width) == u.speaker_side
                    assert result.reason is None and len(result.scores) == 2
                    assert result.face_frames().mean() >= 0.2
    assert total >= 9
    assert correct / total >= 0.9, f"active speaker right on {correct}/{total} demo utterances"
    assert min(scores) >= ActiveSpeakerConfig().min_score


def test_no_speaker_rules(demo_media, haar):
    _, clips = demo_media
    clip = clips[0]
    u = clip.utterances[0]
    w = MediaReader(clip.video).window(u.start, u.end)
    T = len(w.frames)
    # No voice activity: nobody can be said to speak.
    r = find_active_speaker(w.frames, np.zeros(T, bool), haar)
    assert not r.found and r.reason == "no voice activity in the window" and np.isnan(r.score)
    # No face at all.
    blank = np.full_like(w.frames, 100)
    r = find_active_speaker(blank, np.ones(T, bool), haar)
    assert not r.found and r.reason == "no face detected"
    # Faces on too few frames (< 20 %).
    detections = detect_faces(w.frames, haar)
    sparse = [d if i < int(0.15 * T) else [] for i, d in enumerate(detections)]
    r = find_active_speaker(w.frames, np.ones(T, bool), detections=sparse)
    assert not r.found and r.reason.startswith("no face track covers 20% of the frames")
    # Still faces only (a frozen frame): no mouth moves during speech.
    frozen = np.repeat(w.frames[:1], T, axis=0)
    r = find_active_speaker(frozen, np.ones(T, bool), detections=[detections[0]] * T)
    assert not r.found and r.reason.startswith("no face moves its mouth during speech")
    assert all(s.rejected == "mouth never moves during speech" for s in r.scores)
    # A threshold above every score.
    r = find_active_speaker(
        w.frames, np.ones(T, bool), config=ActiveSpeakerConfig(min_score=1.01), detections=detections
    )
    assert not r.found and "< min_score 1.01" in r.reason
    with pytest.raises(ValueError, match="one value per frame"):
        score_track(w.frames, track_faces(detections)[0], np.ones(T + 1, bool))
    with pytest.raises(ValueError, match="detections for"):
        find_active_speaker(w.frames, np.ones(T, bool), detections=detections[:-1])


def test_motion_during_silence_lowers_the_score():
    """A face that moves all the time loses to one that moves only while the voice is on."""
    rng = np.random.default_rng(0)
    T, H, W = 40, 120, 240
    speech = np.zeros(T, bool)
    speech[10:30] = True
    frames = np.full((T, H, W), 128, np.uint8)
    for t in range(T):
        frames[t, 70:95, 20:100] = rng.integers(0, 255, (25, 80))  # face 1: mouth always moving
        if speech[t]:
            frames[t, 70:95, 140:220] = rng.integers(0, 255, (25, 80))  # face 2: moving with the voice only
    detections = [[FaceBox(10, 10, 110, 100, 0.9), FaceBox(130, 10, 230, 100, 0.9)] for _ in range(T)]
    r = find_active_speaker(frames, speech, detections=detections)
    assert r.found and r.boxes[0, 0] == pytest.approx(130)
    by_id = {s.track_id: s for s in r.scores}
    always, voiced = by_id[0], by_id[1]
    assert always.tpr == 1.0 and voiced.tpr >= 0.9  # (the frame before the voice counts as speech: margin 1)
    assert always.fpr > 0.5 and voiced.fpr == 0.0 and voiced.score > 0.9 > 0.5 > always.score


def test_landmark_modes():
    T = 30
    speech = np.zeros(T, bool)
    speech[5:25] = True
    frames = np.full((T, 100, 200, 3), 120, np.uint8)

    def face(x, gap, n_points):
        lm = np.zeros((n_points, 2))
        if n_points == 68:
            lm[51] = (x + 40, 62)  # upper lip top
            lm[62] = (x + 40, 66)  # inner upper lip
            lm[66] = (x + 40, 66 + gap)  # inner lower lip
        else:
            lm[3], lm[4] = (x + 28, 70), (x + 52, 70)  # mouth corners
        return FaceBox(x, 20, x + 80, 100, 0.99, lm)

    # 68 points: the inner-lip gap of the left face opens and closes during speech; the right one stays shut.
    detections = [[face(0, (6.0 if t % 2 else 1.0) if speech[t] else 0.0, 68), face(110, 0.0, 68)] for t in range(T)]
    r = find_active_speaker(frames, speech, detections=detections)
    assert r.found and r.boxes[0, 0] == pytest.approx(0)
    chosen = next(s for s in r.scores if s.track_id == r.track.track_id)
    assert chosen.n_open and chosen.n_open > 0
    assert mouth_signal(frames, r.track).mode == "landmarks68"
    other = next(s for s in r.scores if s.track_id != r.track.track_id)
    assert other.rejected is not None
    # 5 points: the mouth patch sits between the mouth corners; pixels move there on the right face only.
    frames5 = frames.copy()
    for t in range(T):
        if speech[t]:
            frames5[t, 62:80, 135:165] = 255 if t % 2 else 0
    detections5 = [[face(0, 0, 5), face(110, 0, 5)] for _ in range(T)]
    r5 = find_active_speaker(frames5, speech, detections=detections5)
    assert r5.found and r5.boxes[0, 0] == pytest.approx(110)
    assert mouth_signal(frames5, r5.track).mode == "landmarks5"


def test_select_speaker_without_tracks():
    r = select_speaker(np.zeros((5, 10, 10), np.uint8), [], np.ones(5, bool))
    assert not r.found and r.reason == "no face detected" and r.face_frames().shape == (0,)
    t = FaceTrack(0, [0], [_box(0, 0, 5)])
    r = select_speaker(np.zeros((10, 10, 10), np.uint8), [t], np.ones(10, bool))
    assert r.reason.startswith("no face track covers 20%")


def test_without_sound_the_only_face_is_the_speaker_and_two_faces_are_none():
    frames = np.zeros((10, 60, 120), np.uint8)
    lone = FaceTrack(0, list(range(10)), [_box(0, 0, 20) for _ in range(10)])
    partial = FaceTrack(1, [0], [_box(80, 0, 20)])  # covers 10 % of the frames: not a candidate
    r = select_speaker(frames, [lone, partial], None)
    assert r.found and r.track is lone and r.rule == "only_face" and r.score == 1.0
    assert r.face_frames().all() and r.boxes[0, 0] == pytest.approx(0.0)
    other = FaceTrack(2, list(range(8)), [_box(80, 0, 20) for _ in range(8)])
    r = select_speaker(frames, [lone, other], None)
    assert not r.found and r.reason == "2 faces and no sound to tell which one speaks" and np.isnan(r.score)
    assert not select_speaker(frames, [], None).found  # no face: still "no face detected"
