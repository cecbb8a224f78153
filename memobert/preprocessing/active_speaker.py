"""Active speaker: which face track speaks during an utterance window, from mouth movement against voice activity.

Mouth signal per track (frames of the window at a fixed rate, boxes of the track interpolated inside detection gaps):
- default: motion energy of the mouth region. The box is stabilised (median face size of the track, running-median
  centre), the mouth region (lower part of the box, `ActiveSpeakerConfig.mouth_region`; or around the mouth corners
  when the detector gives 5 landmarks) is cut, resized to a fixed patch, made zero-mean, and the motion of frame t is
  the mean absolute change of that patch from frame t-1 (intensities in 0..1). Frame t "moves" when its motion exceeds
  `motion_threshold`.
- with 68-point landmarks (inner lips 60-67): the inner-lip gap (normalised by the box height); frame t moves when the
  gap changes by more than `lip_motion_threshold`, and the mouth is open when the gap exceeds the upper lip's thickness
  (the original's mouth-open count).

Rule (the original's three counts, made absolute so that a score can be stored and thresholded):
- per track, over the frames it covers: `n_move` frames that move, `n_sync` frames that move while the VAD says speech
  (the original's motion/voice overlap), `n_open` open-mouth frames (landmarks only);
- speech frames: the VAD mask at the frame times, widened by `speech_margin` frames on each side (lips open before
  the voice starts and close after it stops);
- score = TPR - FPR, with TPR = n_sync / speech frames and FPR = moving silent frames / (silent frames +
  `silence_prior`): how much more the mouth moves during speech than during silence, in [-1, 1]. The prior (pseudo
  still silent frames) keeps one or two silent frames at the window's edges from deciding; with no silent frame the
  score is the TPR. A still face scores ~0; a face that moves all the time scores lower the more silence the window
  holds;
- candidates: tracks covering >= `min_coverage` of the frames with n_sync > 0 (as in the original, a track with a zero
  count is rejected; with landmarks n_open must be > 0 too); the best score wins, ties broken by the mean motion
  during speech;
- no speaker (with a reason) when there is no track, no track covers `min_coverage`, the VAD finds no speech in the
  window, no candidate is left, or the best score is below `min_score`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .faces import FaceBox, FaceDetector, FaceTrack, detect_faces, make_face_detector, track_faces

__all__ = [
    "ActiveSpeakerConfig",
    "TrackScore",
    "ActiveSpeakerResult",
    "MouthSignal",
    "mouth_signal",
    "score_track",
    "select_speaker",
    "find_active_speaker",
]


@dataclass
class ActiveSpeakerConfig:
    """Settings of the active-speaker rule (see the module docstring)."""

    min_coverage: float = 0.2  # a track must be detected on this fraction of the window's frames
    min_score: float = 0.2  # below this best score there is no speaker
    motion_threshold: float = 0.02  # mean absolute patch change (0..1 intensities) that counts as mouth motion
    lip_motion_threshold: float = 0.02  # inner-lip gap change (fraction of the box height), landmark mode
    mouth_region: tuple[float, float, float, float] = (0.22, 0.78, 0.62, 0.98)  # x0, x1, y0, y1 in box fractions
    patch_size: tuple[int, int] = (32, 16)  # width, height of the resized mouth patch
    smooth_window: int = 5  # running median over this many frames for the box centre
    speech_margin: int = 1  # frames next to speech count as speech (lips move before and after the voice)
    silence_prior: float = 5.0  # pseudo-frames of still silence in the FPR, so that a few silent frames cannot rule
    min_iou: float = 0.3  # tracker: IoU to continue a track
    max_gap: int = 5  # tracker: frames a track may miss


@dataclass
class MouthSignal:
    """Per-frame mouth measurements of one track over a window of T frames (NaN / False where the track is absent)."""

    motion: np.ndarray  # (T,) motion of frame t relative to t-1
    moving: np.ndarray  # (T,) bool
    valid: np.ndarray  # (T,) bool: motion is defined (track present on t and t-1)
    boxes: np.ndarray  # (T, 4) stabilised boxes x1, y1, x2, y2
    mouth_open: np.ndarray | None = None  # (T,) bool, landmark mode only
    mode: str = "motion"  # "motion", "landmarks5" or "landmarks68"


@dataclass
class TrackScore:
    """The counts and the score of one track."""

    track_id: int
    coverage: float
    n_speech: int
    n_silence: int
    n_move: int
    n_sync: int
    n_open: int | None
    tpr: float
    fpr: float
    score: float
    mean_motion_speech: float
    rejected: str | None = None


@dataclass
class ActiveSpeakerResult:
    """The chosen track (None: no speaker, see `reason`), its score and boxes, and every track's counts."""

    track: FaceTrack | None
    score: float  # NaN when there is no speaker
    reason: str | None  # why there is no speaker; None when one was found
    scores: list[TrackScore] = field(default_factory=list)
    boxes: np.ndarray | None = None  # (T, 4) stabilised boxes of the chosen track (NaN where it is absent)
    tracks: list[FaceTrack] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.track is not None

    def face_frames(self) -> np.ndarray:
        """(T,) bool: frames on which the chosen track has a box."""
        if self.boxes is None:
            return np.zeros(0, dtype=bool)
        return ~np.isnan(self.boxes[:, 0])


# -- mouth signal ----------------------------------------------------------------------------------------------------


def _running_nanmedian(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    half = max(0, window // 2)
    valid = ~np.isnan(x)
    for t in np.flatnonzero(valid):
        seg = x[max(0, t - half) : t + half + 1]
        out[t] = np.nanmedian(seg)
    return out


def _stabilised_boxes(track: FaceTrack, num_frames: int, window: int) -> np.ndarray:
    dense = track.dense_boxes(num_frames, interpolate=True)
    detected = np.stack([b.as_array() for f, b in zip(track.frames, track.boxes) if f < num_frames])
    w = float(np.median(detected[:, 2] - detected[:, 0]))
    h = float(np.median(detected[:, 3] - detected[:, 1]))
    cx = _running_nanmedian((dense[:, 0] + dense[:, 2]) / 2.0, window)
    cy = _running_nanmedian((dense[:, 1] + dense[:, 3]) / 2.0, window)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _gray_patch(frame: np.ndarray, x0: float, y0: float, x1: float, y1: float, size: tuple[int, int]) -> np.ndarray:
    import cv2  # noqa: PLC0415

    h, w = frame.shape[:2]
    xa, xb = int(max(0, math.floor(x0))), int(min(w, math.ceil(x1)))
    ya, yb = int(max(0, math.floor(y0))), int(min(h, math.ceil(y1)))
    if xb - xa < 2 or yb - ya < 2:
        return np.full((size[1], size[0]), np.nan, dtype=np.float32)
    crop = frame[ya:yb, xa:xb]
    if crop.ndim == 3:
        crop = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    patch = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return patch - patch.mean()


def _landmarks(track: FaceTrack, num_frames: int) -> tuple[int, dict[int, np.ndarray]]:
    """Landmark count shared by the track's boxes (0 when any box lacks them) and landmarks per frame."""
    per_frame = {f: b.landmarks for f, b in zip(track.frames, track.boxes) if f < num_frames}
    counts = {None if lm is None else np.asarray(lm).shape[0] for lm in per_frame.values()}
    if len(counts) != 1 or None in counts:
        return 0, {}
    return int(next(iter(counts))), {f: np.asarray(lm, dtype=np.float64) for f, lm in per_frame.items()}


def mouth_signal(
    frames: np.ndarray | Sequence[np.ndarray], track: FaceTrack, config: ActiveSpeakerConfig | None = None
) -> MouthSignal:
    """The mouth measurements of `track` over `frames` (RGB or gray uint8, indexed like the track's frames)."""
    cfg = config or ActiveSpeakerConfig()
    T = len(frames)
    boxes = _stabilised_boxes(track, T, cfg.smooth_window)
    present = ~np.isnan(boxes[:, 0])
    n_landmarks, lms = _landmarks(track, T)
    motion = np.full(T, np.nan)
    mouth_open = None

    if n_landmarks >= 68:
        # Inner-lip gap (points 62 top, 66 bottom) and upper-lip thickness (51 to 62), 0-based 68-point layout.
        gap = np.full(T, np.nan)
        is_open = np.zeros(T, dtype=bool)
        for f, lm in lms.items():
            height = max(1e-6, boxes[f, 3] - boxes[f, 1]) if present[f] else 1.0
            g = float(lm[66, 1] - lm[62, 1])
            gap[f] = g / height
            is_open[f] = g > float(lm[62, 1] - lm[51, 1])
        gap_i = gap.copy()
        known = ~np.isnan(gap)
        if known.sum() >= 2:
            span = np.arange(np.flatnonzero(known)[0], np.flatnonzero(known)[-1] + 1)
            gap_i[span] = np.interp(span, np.flatnonzero(known), gap[known])
        motion[1:] = np.abs(np.diff(gap_i))
        valid = ~np.isnan(motion)
        moving = valid & (np.nan_to_num(motion) > cfg.lip_motion_threshold)
        return MouthSignal(motion, moving, valid, boxes, is_open, "landmarks68")

    mode = "motion"
    prev = None
    for t in range(T):
        if not present[t]:
            prev = None
            continue
        x1b, y1b, x2b, y2b = boxes[t]
        bw, bh = x2b - x1b, y2b - y1b
        if n_landmarks == 5 and t in lms:
            # MTCNN order: left eye, right eye, nose, left mouth corner, right mouth corner.
            (lx, ly), (rx, ry) = lms[t][3], lms[t][4]
            my = (ly + ry) / 2.0
            region = (min(lx, rx) - 0.12 * bw, my - 0.14 * bh, max(lx, rx) + 0.12 * bw, my + 0.18 * bh)
            mode = "landmarks5"
        else:
            fx0, fx1, fy0, fy1 = cfg.mouth_region
            region = (x1b + fx0 * bw, y1b + fy0 * bh, x1b + fx1 * bw, y1b + fy1 * bh)
        patch = _gray_patch(np.asarray(frames[t]), *region, cfg.patch_size)
        if prev is not None and not np.isnan(patch).any() and not np.isnan(prev).any():
            motion[t] = float(np.mean(np.abs(patch - prev)))
        prev = patch
    valid = ~np.isnan(motion)
    moving = valid & (np.nan_to_num(motion) > cfg.motion_threshold)
    return MouthSignal(motion, moving, valid, boxes, mouth_open, mode)


# -- scoring ---------------------------------------------------------------------------------------------------------


def _dilate(mask: np.ndarray, margin: int) -> np.ndarray:
    out = mask.copy()
    for k in range(1, max(0, margin) + 1):
        out[k:] |= mask[:-k]
        out[:-k] |= mask[k:]
    return out


def score_track(
    frames: np.ndarray | Sequence[np.ndarray],
    track: FaceTrack,
    speech: np.ndarray,
    config: ActiveSpeakerConfig | None = None,
) -> tuple[TrackScore, MouthSignal]:
    """Counts, TPR/FPR and score of one track against `speech` (bool per frame, e.g. `VadResult.at(frame_times)`)."""
    cfg = config or ActiveSpeakerConfig()
    T = len(frames)
    speech = np.asarray(speech, dtype=bool)
    if speech.shape != (T,):
        raise ValueError(f"speech must have one value per frame: shape ({T},), got {speech.shape}")
    speech = _dilate(speech, cfg.speech_margin)
    signal = mouth_signal(frames, track, cfg)
    v = signal.valid
    sp, si = v & speech, v & ~speech
    n_speech, n_silence = int(sp.sum()), int(si.sum())
    n_move = int(signal.moving.sum())
    n_sync = int((signal.moving & sp).sum())
    n_open = int(signal.mouth_open[v].sum()) if signal.mouth_open is not None else None
    tpr = n_sync / n_speech if n_speech else 0.0
    fpr = int((signal.moving & si).sum()) / (n_silence + cfg.silence_prior) if n_silence + cfg.silence_prior else 0.0
    mean_speech = float(np.mean(signal.motion[sp])) if n_speech else 0.0
    coverage = track.coverage(T)
    rejected = None
    if coverage < cfg.min_coverage:
        rejected = f"detected on {coverage:.0%} of the frames (< {cfg.min_coverage:.0%})"
    elif n_speech == 0:
        rejected = "present on no speech frame"
    elif n_sync == 0:
        rejected = "mouth never moves during speech"
    elif n_open == 0:
        rejected = "mouth never open"
    score = TrackScore(
        track.track_id,
        coverage,
        n_speech,
        n_silence,
        n_move,
        n_sync,
        n_open,
        tpr,
        fpr,
        tpr - fpr,
        mean_speech,
        rejected,
    )
    return score, signal


def select_speaker(
    frames: np.ndarray | Sequence[np.ndarray],
    tracks: Sequence[FaceTrack],
    speech: np.ndarray,
    config: ActiveSpeakerConfig | None = None,
) -> ActiveSpeakerResult:
    """Apply the rule of the module docstring to face `tracks` over `frames` with the per-frame `speech` mask."""
    cfg = config or ActiveSpeakerConfig()
    T = len(frames)
    tracks = list(tracks)
    if not tracks:
        return ActiveSpeakerResult(None, math.nan, "no face detected", tracks=tracks)
    best_coverage = max(t.coverage(T) for t in tracks)
    if best_coverage < cfg.min_coverage:
        return ActiveSpeakerResult(
            None,
            math.nan,
            f"no face track covers {cfg.min_coverage:.0%} of the frames (longest: {best_coverage:.0%})",
            tracks=tracks,
        )
    if not np.asarray(speech, dtype=bool).any():
        return ActiveSpeakerResult(None, math.nan, "no voice activity in the window", tracks=tracks)
    scored = [score_track(frames, t, speech, cfg) for t in tracks if t.coverage(T) >= cfg.min_coverage]
    scores = [s for s, _ in scored]
    candidates = [
        (s, sig, t)
        for (s, sig), t in zip(scored, [t for t in tracks if t.coverage(T) >= cfg.min_coverage])
        if s.rejected is None
    ]
    if not candidates:
        return ActiveSpeakerResult(
            None,
            math.nan,
            "no face moves its mouth during speech ("
            + "; ".join(f"track {s.track_id}: {s.rejected}" for s in scores)
            + ")",
            scores,
            tracks=tracks,
        )
    best, signal, track = max(candidates, key=lambda c: (c[0].score, c[0].mean_motion_speech))
    if best.score < cfg.min_score:
        return ActiveSpeakerResult(
            None,
            math.nan,
            f"best face track scores {best.score:.2f} < min_score {cfg.min_score:.2f}",
            scores,
            tracks=tracks,
        )
    return ActiveSpeakerResult(track, float(best.score), None, scores, signal.boxes, tracks)


def find_active_speaker(
    frames: np.ndarray | Sequence[np.ndarray],
    speech: np.ndarray,
    detector: FaceDetector | str | None = None,
    config: ActiveSpeakerConfig | None = None,
    *,
    detections: Sequence[Sequence[FaceBox]] | None = None,
) -> ActiveSpeakerResult:
    """Detect faces (or use `detections`), track them and pick the active speaker of the window."""
    cfg = config or ActiveSpeakerConfig()
    if detections is None:
        if detector is None or isinstance(detector, str):
            detector = make_face_detector(detector or "auto")
        detections = detect_faces(frames, detector)
    if len(detections) != len(frames):
        raise ValueError(f"got detections for {len(detections)} frames but {len(frames)} frames")
    tracks = track_faces(detections, min_iou=cfg.min_iou, max_gap=cfg.max_gap)
    return select_speaker(frames, tracks, speech, cfg)
