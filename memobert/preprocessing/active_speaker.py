"""Active speaker: which face track speaks during an utterance window, from the mouth against the voice.

Two rules, chosen by `ActiveSpeakerConfig.rule` ("auto", "landmarks" or "pixels"); `ActiveSpeakerResult.rule` says
which one decided and `rule_note` why (the pipeline records both).

Common to both: the boxes of a track over the window's frames (detections at a fixed frame rate, interpolated inside
gaps) are stabilised (median face size of the track, running-median centre). No speaker (with a reason, and
`rule` None) when there is no track, no track covers `min_coverage` of the frames, or the VAD finds no speech in the
window. Candidates are the tracks covering >= `min_coverage` of the frames.

Media without sound (`speech` None: a video-only file such as RAVDESS's `02-` clips or MEAD's, with no utterance
audio beside it): nothing to synchronise with, so rule "only_face" takes the one candidate track, its score the
fraction of the frames it covers; with several candidates there is no speaker (no sound to tell which one speaks).

Rule "landmarks" (lip synchrony):
- lip opening per frame: FaceMesh's inner-lip gap over the mouth width (`memobert.preprocessing.landmarks`, a crop
  around the stabilised box), NaN where it finds no face;
- voice reference per frame: the log energy of the 1.5-4 kHz band (`envelope_band`, the F2-F3 region; 40 dB floor) in
  one frame period centred on each frame time (`audio_envelope`) when the audio is given, else the VAD speech mask.
  That band collapses when the lips close while the low band (voicing, F1) carries on: on the composites of the
  benchmark cut to the voice, the speaker's synchrony is 0.54 against 0.34 with 0.3-3.4 kHz and 0.28 with 0.3-1 kHz
  (distractors ~0.3 in each);
- score = `sync_score`: the Pearson correlation of opening and reference over the frames with landmarks, maximised
  over lags of -`sync_max_lag`..`sync_max_lag` frames (the lips may lead or trail the voice), minus `sync_lag_penalty`
  per frame of lag (a shifted match must beat the aligned one clearly);
- a candidate is rejected when it has lip landmarks on < `min_landmark_fraction` of its frames, fewer than
  `sync_min_frames` frames to correlate, no speech frame, or a mouth that never moves during speech (opening range <
  `lip_min_range`); the best score wins (ties: the wider opening range during speech); below `min_sync_score` there
  is no speaker.

Rule "pixels" (today's motion rule, unchanged):
- mouth signal: motion energy of the mouth region. The mouth region (lower part of the box,
  `ActiveSpeakerConfig.mouth_region`; around the mouth corners when the detector gives MTCNN's 5 landmarks, around
  the mouth centre with BlazeFace's 6 keypoints) is cut, resized to a fixed patch, made zero-mean, and the motion of
  frame t is the mean absolute change of that patch from frame t-1 (intensities in 0..1). Frame t "moves" when its
  motion exceeds `motion_threshold`. With 68-point detector landmarks (inner lips 60-67): the inner-lip gap
  (normalised by the box height); frame t moves when the gap changes by more than `lip_motion_threshold`, and the
  mouth is open when the gap exceeds the upper lip's thickness (the original's mouth-open count);
- per track: `n_move` frames that move, `n_sync` frames that move while the VAD says speech, `n_open` open-mouth
  frames (68 points only); speech frames are the VAD mask widened by `speech_margin` frames on each side;
- score = TPR - FPR, with TPR = n_sync / speech frames and FPR = moving silent frames / (silent frames +
  `silence_prior`), in [-1, 1]: how much more the mouth moves during speech than during silence;
- candidates with n_sync > 0 (and n_open > 0 with 68 points); the best score wins, ties broken by the mean motion
  during speech; below `min_score` there is no speaker.

"auto" (default) takes "landmarks" when all of these hold, else "pixels": a landmark backend is installed (not
"none"); at least `landmarks_min_tracks` (2) candidate tracks compete and as many pass the pixel rule's candidate
test (their mouths move during speech: with a single face, or a single moving mouth, the pixel rule is unambiguous
and costs nothing; this keeps the landmark cost, 3-4 ms CPU a frame per face, to the windows where it matters); the
voice reference varies over the window (the audio is given, or, without it, speech and silence each cover >=
`mask_min_fraction` of the frames: a mask that is speech almost throughout says nothing about the lips); and every
candidate has lip landmarks on >= `min_landmark_fraction` of its frames (a profile or occluded face cannot be
compared by its lips).

Measured (`benchmarks/front_end_speaker.py`: 348 two-speaker composites of real talking faces, CREMA-D targets with
their audio beside another CREMA-D or a MEAD face that also talks, 10 fps, BlazeFace + Silero VAD): utterances
right 98.3 % with landmarks against 94.3 % with pixels; against the same actor saying the same sentence 90 % against
70 %; windows cut to the voice (no silence, ~11 frames) 86.8 % against 74.1 %; the VAD mask instead of the audio
envelope 94.5 %; audio 100 ms late 93.7 %. `sync_lag_penalty` 0.1 (0.05 lost 6 of the 60 same-sentence pairs:
another face whose sentence starts a frame later then matches by shifting) and `min_sync_score` 0.3 (the heard face
scored >= 0.64 on every composite, a MEAD face that talks but is not heard >= 0.3 on 10 % of them) come from the
same composites.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .faces import (
    FaceBox,
    FaceDetector,
    FaceTrack,
    detect_faces,
    make_face_detector,
    track_faces,
)

__all__ = [
    "RULES",
    "ActiveSpeakerConfig",
    "ActiveSpeakerResult",
    "MouthSignal",
    "TrackScore",
    "audio_envelope",
    "find_active_speaker",
    "mouth_signal",
    "score_track",
    "select_speaker",
    "sync_score",
]

RULES = ("auto", "landmarks", "pixels")


@dataclass
class ActiveSpeakerConfig:
    """Settings of the active-speaker rules (see the module docstring)."""

    rule: str = "auto"  # "auto", "landmarks" (lip synchrony) or "pixels" (mouth-region motion)
    landmarks: str = "auto"  # landmark backend (memobert.preprocessing.landmarks): "auto", "facemesh", "none"
    min_coverage: float = 0.2  # a track must be detected on this fraction of the window's frames
    min_score: float = 0.2  # pixels: below this best score there is no speaker
    motion_threshold: float = 0.02  # mean absolute patch change (0..1 intensities) that counts as mouth motion
    lip_motion_threshold: float = 0.02  # inner-lip gap change (fraction of the box height), 68-point mode
    mouth_region: tuple[float, float, float, float] = (0.22, 0.78, 0.62, 0.98)  # x0, x1, y0, y1 in box fractions
    patch_size: tuple[int, int] = (32, 16)  # width, height of the resized mouth patch
    smooth_window: int = 5  # running median over this many frames for the box centre
    speech_margin: int = 1  # frames next to speech count as speech (lips move before and after the voice)
    silence_prior: float = 5.0  # pseudo-frames of still silence in the FPR, so that a few silent frames cannot rule
    min_iou: float = 0.3  # tracker: IoU to continue a track
    max_gap: int = 5  # tracker: frames a track may miss
    # Lip synchrony (rule "landmarks").
    min_sync_score: float = 0.3  # below this best synchrony there is no speaker
    sync_max_lag: int = 2  # lags of -k..k frames are tried
    sync_lag_penalty: float = 0.1  # subtracted from the correlation per frame of lag
    sync_min_frames: int = 6  # frames with landmarks needed to correlate
    lip_min_range: float = 0.03  # opening range (max - min) during speech below which the mouth "never moves"
    min_landmark_fraction: float = 0.5  # a track needs landmarks on this fraction of its frames
    landmarks_min_tracks: int = 2  # "auto": tracks (with moving mouths) needed to use landmarks (1: always)
    envelope_band: tuple[float, float] = (1500.0, 4000.0)  # Hz, the band of the voice reference (F2-F3)
    envelope_floor_db: float = 40.0  # the reference's dynamic range below its maximum
    mask_min_fraction: float = 0.25  # "auto" without audio: speech and silence must each cover this many frames

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"unknown active-speaker rule {self.rule!r}; rules: {', '.join(RULES)}")
        if self.sync_max_lag < 0:
            raise ValueError(f"sync_max_lag must be >= 0, got {self.sync_max_lag}")


@dataclass
class MouthSignal:
    """Per-frame mouth measurements of one track over a window of T frames (NaN / False where the track is absent)."""

    motion: np.ndarray  # (T,) motion of frame t relative to t-1
    moving: np.ndarray  # (T,) bool
    valid: np.ndarray  # (T,) bool: motion is defined (track present on t and t-1)
    boxes: np.ndarray  # (T, 4) stabilised boxes x1, y1, x2, y2
    mouth_open: np.ndarray | None = None  # (T,) bool, 68-point mode only
    mode: str = "motion"  # "motion", "landmarks5", "landmarks6" or "landmarks68"


@dataclass
class TrackScore:
    """The counts and the score of one track. `score` is the score of the rule that decided (`rule`):
    TPR - FPR for "pixels", the lag-penalised lip synchrony for "landmarks"; `pixel_score` is always TPR - FPR."""

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
    rule: str = "pixels"
    pixel_score: float = math.nan
    sync: float = math.nan  # correlation of lip opening and voice at the best lag (landmarks)
    lag: int | None = None  # frames by which the lips lead the voice at the best lag (landmarks)
    landmark_fraction: float | None = None  # fraction of the track's frames with lip landmarks
    opening_range: float = math.nan  # max - min lip opening during speech (landmarks)


@dataclass
class ActiveSpeakerResult:
    """The chosen track (None: no speaker, see `reason`), its score and boxes, and every track's counts."""

    track: FaceTrack | None
    score: float  # NaN when there is no speaker
    reason: str | None  # why there is no speaker; None when one was found
    scores: list[TrackScore] = field(default_factory=list)
    boxes: np.ndarray | None = None  # (T, 4) stabilised boxes of the chosen track (NaN where it is absent)
    tracks: list[FaceTrack] = field(default_factory=list)
    rule: str | None = None  # "landmarks", "pixels" or "only_face" (no sound): the rule that decided (None: before any)
    rule_note: str | None = None  # why "auto" took that rule
    lip_opening: np.ndarray | None = None  # (T,) lip opening of the chosen track (rule "landmarks")

    @property
    def found(self) -> bool:
        return self.track is not None

    def face_frames(self) -> np.ndarray:
        """(T,) bool: frames on which the chosen track has a box."""
        if self.boxes is None:
            return np.zeros(0, dtype=bool)
        return ~np.isnan(self.boxes[:, 0])


# -- mouth signal (pixels) -------------------------------------------------------------------------------------------


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
    import cv2

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
        elif n_landmarks == 6 and t in lms:
            # BlazeFace order: right eye, left eye, nose tip, mouth centre, right ear, left ear.
            mx, my = lms[t][3]
            region = (mx - 0.28 * bw, my - 0.14 * bh, mx + 0.28 * bw, my + 0.18 * bh)
            mode = "landmarks6"
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


# -- scoring (pixels) ------------------------------------------------------------------------------------------------


def _dilate(mask: np.ndarray, margin: int) -> np.ndarray:
    out = mask.copy()
    for k in range(1, max(0, margin) + 1):
        out[k:] |= mask[:-k]
        out[:-k] |= mask[k:]
    return out


def _check_speech(speech: np.ndarray, num_frames: int) -> np.ndarray:
    speech = np.asarray(speech, dtype=bool)
    if speech.shape != (num_frames,):
        raise ValueError(f"speech must have one value per frame: shape ({num_frames},), got {speech.shape}")
    return speech


def score_track(
    frames: np.ndarray | Sequence[np.ndarray],
    track: FaceTrack,
    speech: np.ndarray,
    config: ActiveSpeakerConfig | None = None,
) -> tuple[TrackScore, MouthSignal]:
    """Counts, TPR/FPR and pixel score of one track against `speech` (bool per frame, e.g.
    `VadResult.at(frame_times)`)."""
    cfg = config or ActiveSpeakerConfig()
    T = len(frames)
    speech = _dilate(_check_speech(speech, T), cfg.speech_margin)
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
        pixel_score=tpr - fpr,
    )
    return score, signal


# -- lip synchrony (landmarks) ---------------------------------------------------------------------------------------


def audio_envelope(
    audio: np.ndarray,
    sample_rate: int,
    frame_times: np.ndarray | None = None,
    *,
    num_frames: int | None = None,
    start: float = 0.0,
    window: float | None = None,
    band: tuple[float, float] = (1500.0, 4000.0),
    floor_db: float = 40.0,
) -> np.ndarray:
    """(T,) log energy (dB) of the `band` of mono `audio` in a `window` (default: one frame period) centred on each
    frame time, floored `floor_db` below its maximum. `frame_times`: seconds on the clock where the audio's first
    sample is at `start` (None: `num_frames` frames spread evenly over the audio)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {audio.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    if frame_times is None:
        if num_frames is None:
            raise ValueError("give frame_times or num_frames")
        frame_times = start + np.arange(num_frames) * (len(audio) / sample_rate / max(num_frames, 1))
    times = np.asarray(frame_times, dtype=np.float64) - start
    T = len(times)
    if T == 0:
        return np.zeros(0)
    if window is None:
        window = float(np.median(np.diff(times))) if T >= 2 else 0.1
    length = max(16, round(window * sample_rate))
    first = np.round(times * sample_rate - length / 2.0).astype(np.int64)
    index = first[:, None] + np.arange(length)[None, :]
    inside = (index >= 0) & (index < len(audio))
    segments = np.where(inside, audio[np.clip(index, 0, max(len(audio) - 1, 0))] if len(audio) else 0.0, 0.0)
    spectrum = np.abs(np.fft.rfft(segments * np.hanning(length)[None, :], axis=1)) ** 2
    freqs = np.fft.rfftfreq(length, 1.0 / sample_rate)
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    energy = spectrum[:, in_band].sum(axis=1) / length
    level = 10.0 * np.log10(energy + 1e-12)
    return np.maximum(level, level.max() - floor_db)


def sync_score(
    opening: np.ndarray,
    reference: np.ndarray,
    *,
    max_lag: int = 2,
    lag_penalty: float = 0.1,
    min_frames: int = 6,
) -> tuple[float, float, int | None]:
    """(score, correlation, lag) of the best lag in -max_lag..max_lag: the Pearson correlation of `opening[t]` and
    `reference[t + lag]` over the frames where both are finite (at least `min_frames`), minus `lag_penalty` * |lag|.
    A positive lag means the lips lead the voice. NaN, NaN, None when no lag has enough frames; a constant signal
    correlates 0."""
    x = np.asarray(opening, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"opening and reference must have the same shape, got {x.shape} and {y.shape}")
    T = len(x)
    best: tuple[float, float, int | None] = (math.nan, math.nan, None)
    for lag in range(-max_lag, max_lag + 1):
        a, b = (x[: T - lag], y[lag:]) if lag >= 0 else (x[-lag:], y[: T + lag])
        keep = np.isfinite(a) & np.isfinite(b)
        if keep.sum() < max(2, min_frames):
            continue
        a, b = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
        norm = math.sqrt(float(a @ a) * float(b @ b))
        corr = float(a @ b) / norm if norm > 1e-12 else 0.0
        value = corr - lag_penalty * abs(lag)
        if best[2] is None or value > best[0]:
            best = (value, corr, lag)
    return best


_SHARED_LANDMARKERS: dict[tuple[str, int], object] = {}


def _shared_landmarker(name: str):
    """One landmark backend per name and process (built on first use; a forked worker builds its own)."""
    key = (name, os.getpid())
    if key not in _SHARED_LANDMARKERS:
        from .landmarks import make_landmarker

        _SHARED_LANDMARKERS[key] = make_landmarker(name)
    return _SHARED_LANDMARKERS[key]


def _sync_track_score(
    pixel: TrackScore,
    opening: np.ndarray,
    present: np.ndarray,
    speech: np.ndarray,
    reference: np.ndarray,
    cfg: ActiveSpeakerConfig,
) -> TrackScore:
    """The landmark-rule score of one track (its pixel counts kept)."""
    known = np.isfinite(opening) & present
    fraction = float(known.sum() / max(1, present.sum()))
    score, corr, lag = sync_score(
        np.where(present, opening, np.nan), reference,
        max_lag=cfg.sync_max_lag, lag_penalty=cfg.sync_lag_penalty, min_frames=cfg.sync_min_frames,
    )
    during = opening[known & _dilate(speech, cfg.speech_margin)]
    spread = float(during.max() - during.min()) if len(during) else math.nan
    rejected = pixel.rejected if pixel.rejected and pixel.rejected.startswith("detected on") else None
    if rejected is None:
        if fraction < cfg.min_landmark_fraction:
            rejected = f"lip landmarks on {fraction:.0%} of its frames (< {cfg.min_landmark_fraction:.0%})"
        elif pixel.n_speech == 0 or not len(during):
            rejected = "present on no speech frame"
        elif lag is None:
            rejected = f"fewer than {cfg.sync_min_frames} frames with lip landmarks"
        elif spread < cfg.lip_min_range:
            rejected = "mouth never moves during speech"
    return TrackScore(
        pixel.track_id, pixel.coverage, pixel.n_speech, pixel.n_silence, pixel.n_move, pixel.n_sync, pixel.n_open,
        pixel.tpr, pixel.fpr, score, pixel.mean_motion_speech, rejected, rule="landmarks", pixel_score=pixel.score,
        sync=corr, lag=lag, landmark_fraction=fraction, opening_range=spread,
    )


# -- selection -------------------------------------------------------------------------------------------------------


def select_speaker(
    frames: np.ndarray | Sequence[np.ndarray],
    tracks: Sequence[FaceTrack],
    speech: np.ndarray | None,
    config: ActiveSpeakerConfig | None = None,
    *,
    envelope: np.ndarray | None = None,
    landmarker=None,
) -> ActiveSpeakerResult:
    """Apply the rules of the module docstring to face `tracks` over `frames` with the per-frame `speech` mask (None:
    the media has no sound, rule "only_face").
    `envelope`: the (T,) voice reference of the landmark rule (`audio_envelope`; None: the speech mask).
    `landmarker`: a landmark backend (None: `config.landmarks`, built once per process)."""
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
    if speech is None:  # no sound at all: only a lone face can be the speaker
        covering = [t for t in tracks if t.coverage(T) >= cfg.min_coverage]
        if len(covering) > 1:
            return ActiveSpeakerResult(None, math.nan, f"{len(covering)} faces and no sound to tell which one speaks",
                                       tracks=tracks, rule="only_face")
        track = covering[0]
        return ActiveSpeakerResult(track, float(track.coverage(T)), None, tracks=tracks, rule="only_face",
                                   rule_note="the media has no sound: the only face",
                                   boxes=_stabilised_boxes(track, T, cfg.smooth_window))
    speech = _check_speech(speech, T)
    if not speech.any():
        return ActiveSpeakerResult(None, math.nan, "no voice activity in the window", tracks=tracks)
    covering = [t for t in tracks if t.coverage(T) >= cfg.min_coverage]
    scored = [score_track(frames, t, speech, cfg) for t in covering]

    rule, note, openings = "pixels", "rule=pixels", {}
    if cfg.rule != "pixels":
        rule, note, openings = _landmark_rule(frames, covering, scored, speech, envelope, landmarker, cfg)

    if rule == "landmarks":
        reference = speech.astype(np.float64) if envelope is None else np.asarray(envelope, dtype=np.float64)
        scores = [
            _sync_track_score(s, openings[t.track_id], ~np.isnan(sig.boxes[:, 0]), speech, reference, cfg)
            for (s, sig), t in zip(scored, covering)
        ]
        minimum, minimum_name = cfg.min_sync_score, "min_sync_score"
        tie = lambda s: s.opening_range
    else:
        scores = [s for s, _ in scored]
        minimum, minimum_name = cfg.min_score, "min_score"
        tie = lambda s: s.mean_motion_speech
    done = {"scores": scores, "tracks": tracks, "rule": rule, "rule_note": note}
    candidates = [(s, sig, t) for s, (_, sig), t in zip(scores, scored, covering) if s.rejected is None]
    if not candidates:
        reasons = "; ".join(f"track {s.track_id}: {s.rejected}" for s in scores)
        return ActiveSpeakerResult(None, math.nan, f"no face moves its mouth during speech ({reasons})", **done)
    best, signal, track = max(candidates, key=lambda c: (c[0].score, tie(c[0])))
    if best.score < minimum:
        return ActiveSpeakerResult(
            None, math.nan, f"best face track scores {best.score:.2f} < {minimum_name} {minimum:.2f} ({rule})", **done
        )
    return ActiveSpeakerResult(track, float(best.score), None, boxes=signal.boxes,
                               lip_opening=openings.get(track.track_id), **done)


def _landmark_rule(
    frames, covering: list[FaceTrack], scored, speech: np.ndarray, envelope, landmarker, cfg: ActiveSpeakerConfig
) -> tuple[str, str, dict[int, np.ndarray]]:
    """("landmarks" or "pixels", why, lip opening per track id) for rule "auto" / "landmarks"."""
    forced = cfg.rule == "landmarks"
    if not forced and len(covering) < cfg.landmarks_min_tracks:
        return "pixels", f"{len(covering)} face track(s) < landmarks_min_tracks {cfg.landmarks_min_tracks}", {}
    moving = sum(pixel.rejected is None for pixel, _ in scored)
    if not forced and moving < cfg.landmarks_min_tracks:
        return "pixels", (f"{moving} face track(s) move their mouth during speech < landmarks_min_tracks "
                          f"{cfg.landmarks_min_tracks}: the pixel rule is unambiguous"), {}
    reference = speech if envelope is None else np.asarray(envelope, dtype=np.float64)
    if envelope is not None and reference.shape != speech.shape:
        raise ValueError(f"envelope must have one value per frame: shape {speech.shape}, got {reference.shape}")
    if not forced and envelope is None:
        minority = min(float(speech.mean()), 1.0 - float(speech.mean()))
        if minority < cfg.mask_min_fraction:
            return "pixels", (f"no audio envelope and the speech mask is {speech.mean():.0%} speech (its minority "
                              f"< mask_min_fraction {cfg.mask_min_fraction:.0%})"), {}
    elif not forced and np.nanstd(reference) < 1e-9:
        return "pixels", "the audio envelope is constant over the window", {}
    if landmarker is None:
        try:
            landmarker = _shared_landmarker(cfg.landmarks)
        except ImportError as error:  # MissingBackendError included: a broken install
            if forced:
                raise
            return "pixels", f"the landmark backend {cfg.landmarks!r} cannot be built: {error}", {}
    if not forced and landmarker.name == "none":
        return "pixels", "no landmark backend installed (landmarks: none)", {}
    openings = {t.track_id: landmarker.lip_opening(frames, sig.boxes) for t, (_, sig) in zip(covering, scored)}
    if not forced:
        for t, (_, sig) in zip(covering, scored):
            present = ~np.isnan(sig.boxes[:, 0])
            fraction = float((np.isfinite(openings[t.track_id]) & present).sum() / max(1, present.sum()))
            if fraction < cfg.min_landmark_fraction:
                return "pixels", (f"lip landmarks on {fraction:.0%} of track {t.track_id}'s frames "
                                  f"(< {cfg.min_landmark_fraction:.0%})"), openings
    return "landmarks", f"{landmarker.name} lip synchrony" + (" (rule=landmarks)" if forced else ""), openings


def find_active_speaker(
    frames: np.ndarray | Sequence[np.ndarray],
    speech: np.ndarray | None,
    detector: FaceDetector | str | None = None,
    config: ActiveSpeakerConfig | None = None,
    *,
    detections: Sequence[Sequence[FaceBox]] | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    frame_times: np.ndarray | None = None,
    audio_start: float = 0.0,
    landmarker=None,
) -> ActiveSpeakerResult:
    """Detect faces (or use `detections`), track them and pick the active speaker of the window (`speech`: the
    per-frame VAD mask; None when the media has no sound).

    `audio` (mono, `sample_rate`; its first sample at `audio_start` on the clock of `frame_times`, e.g. a
    `DecodedWindow`'s audio, sample_rate, start and frame_times) gives the landmark rule its voice envelope; without
    it the rule correlates the lips with the `speech` mask. `landmarker`: a landmark backend (None: built from
    `config.landmarks` once per process)."""
    cfg = config or ActiveSpeakerConfig()
    if detections is None:
        if detector is None or isinstance(detector, str):
            detector = make_face_detector(detector or "auto")
        detections = detect_faces(frames, detector)
    if len(detections) != len(frames):
        raise ValueError(f"got detections for {len(detections)} frames but {len(frames)} frames")
    tracks = track_faces(detections, min_iou=cfg.min_iou, max_gap=cfg.max_gap)
    envelope = None
    if audio is not None and len(frames) and len(audio):
        envelope = audio_envelope(audio, sample_rate, frame_times, num_frames=len(frames), start=audio_start,
                                  band=cfg.envelope_band, floor_db=cfg.envelope_floor_db)
    return select_speaker(frames, tracks, speech, cfg, envelope=envelope, landmarker=landmarker)
