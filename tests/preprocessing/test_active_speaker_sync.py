"""The lip-synchrony active-speaker rule: the synchrony score and its lag, the voice envelope, the choice between
the landmark and pixel rules, and the rule end to end with FaceMesh on frames of two real-photo faces that both move
their mouths while only one is heard."""

from __future__ import annotations

import numpy as np
import pytest

from memobert import backends as registry
from memobert.demo.media import demo_face
from memobert.preprocessing.active_speaker import (
    ActiveSpeakerConfig,
    audio_envelope,
    find_active_speaker,
    select_speaker,
    sync_score,
)
from memobert.preprocessing.faces import FaceBox, track_faces

HAS_FACEMESH = registry.backend("landmarks", "facemesh").is_available()
FPS, SR = 10.0, 16000


def syllables(rng: np.random.Generator, T: int, start: int, stop: int) -> np.ndarray:
    """(T,) mouth opening 0..1: runs of 1-3 open frames with closed frames between them inside [start, stop)."""
    out = np.zeros(T)
    t = start
    while t < stop:
        run = int(rng.integers(1, 4))
        out[t : min(stop, t + run)] = rng.uniform(0.5, 1.0)
        t += run + int(rng.integers(1, 3))
    return out


def voice(opening: np.ndarray, rng: np.random.Generator, delay_frames: int = 0) -> np.ndarray:
    """Voiced audio (harmonics of 140 Hz up to 4.2 kHz) whose loudness follows `opening`, `delay_frames` later,
    over faint noise. Frame k's loudness is centred on its time k / FPS."""
    n = int(len(opening) / FPS * SR)
    t = np.arange(n) / SR
    level = np.roll(opening, delay_frames)[np.clip(np.round(t * FPS).astype(int), 0, len(opening) - 1)]
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 31))
    return (0.3 * level * tone + 0.002 * rng.standard_normal(n)).astype(np.float32)


class FakeLandmarker:
    """A landmark backend that returns a given opening per face, recognised by its box's left edge."""

    name = "fake"

    def __init__(self, by_x: dict[float, np.ndarray]):
        self.by_x = by_x
        self.calls = 0

    def lip_opening(self, frames, boxes):
        self.calls += 1
        x = float(np.nanmedian(boxes[:, 0]))
        opening = next(v for k, v in self.by_x.items() if abs(k - x) < 5).astype(float).copy()
        opening[np.isnan(boxes[:, 0])] = np.nan
        return opening


def two_faces(T: int) -> list[list[FaceBox]]:
    return [[FaceBox(10, 10, 110, 110, 0.9), FaceBox(200, 10, 300, 110, 0.9)] for _ in range(T)]


def mouth_pixels(left: np.ndarray | None, right: np.ndarray | None) -> np.ndarray:
    """Frames of the two faces of `two_faces` whose mouth regions turn white while the opening is > 0 (None: still)."""
    frames = np.full((len(left if left is not None else right), 120, 320, 3), 100, np.uint8)
    for x, opening in ((10, left), (200, right)):
        if opening is not None:
            for t, value in enumerate(opening):
                frames[t, 75:100, x + 25 : x + 75] = 255 if value > 0 else 0
    return frames


# -- the score ---------------------------------------------------------------------------------------------------------


def test_sync_score_finds_the_lag():
    rng = np.random.default_rng(0)
    T = 40
    opening = syllables(rng, T, 5, 35)
    score, corr, lag = sync_score(opening + 0.02 * rng.standard_normal(T), opening)
    assert lag == 0 and corr > 0.95 and score == pytest.approx(corr)
    for shift in (1, 2, -1, -2):  # the voice comes `shift` frames after (before) the lips
        score, corr, lag = sync_score(opening, np.roll(opening, shift), max_lag=2)
        assert lag == shift and corr > 0.9 and score == pytest.approx(corr - 0.1 * abs(shift))
    # Beyond max_lag the match is lost; an unrelated mouth scores low.
    assert sync_score(opening, np.roll(opening, 4), max_lag=2)[0] < 0.5
    other = syllables(np.random.default_rng(1), T, 0, T)
    assert sync_score(other, opening)[0] < 0.4
    # A still mouth correlates 0; too few frames with landmarks: NaN and no lag.
    assert sync_score(np.full(T, 0.1), opening)[1] == 0.0
    few = np.full(T, np.nan)
    few[:4] = opening[:4]
    score, corr, lag = sync_score(few, opening, min_frames=6)
    assert np.isnan(score) and lag is None
    with pytest.raises(ValueError, match="same shape"):
        sync_score(opening, opening[:-1])


def test_audio_envelope_follows_the_voice_in_its_band():
    rng = np.random.default_rng(0)
    T = 30
    opening = np.zeros(T)
    opening[10:20] = 1.0
    audio = voice(opening, rng)
    times = 5.0 + np.arange(T) / FPS  # the window starts 5 s into the video
    env = audio_envelope(audio, SR, times, start=5.0)
    assert env.shape == (T,)
    assert env[12:18].min() > env[:8].max() + 30  # speech tens of dB above the noise
    assert env.min() >= env.max() - 40.0 - 1e-9  # the 40 dB floor
    # Without frame times the frames are spread over the audio; the result is the same for this even grid.
    np.testing.assert_allclose(audio_envelope(audio, SR, num_frames=T), env, atol=1e-6)
    # A hum or a low vowel formant outside the band (1.5-4 kHz) counts far less than a tone inside it.
    t = np.arange(SR) / SR
    hum, tone = 0.3 * np.sin(2 * np.pi * 500 * t), 0.3 * np.sin(2 * np.pi * 2500 * t)
    mixed = np.concatenate([hum, tone]).astype(np.float32)
    env = audio_envelope(mixed, SR, np.array([0.5, 1.5]), floor_db=100)
    assert env[1] > env[0] + 20
    with pytest.raises(ValueError, match="mono"):
        audio_envelope(np.zeros((2, 100)), SR, np.zeros(1))


# -- the rule ----------------------------------------------------------------------------------------------------------


def test_the_synchronised_face_wins_over_one_that_moves_out_of_sync():
    rng = np.random.default_rng(3)
    T = 40
    speaker = syllables(rng, T, 6, 34)
    other = syllables(np.random.default_rng(4), T, 0, T)  # moves all the time, also during the voice
    speech = np.zeros(T, bool)
    speech[6:34] = True
    for left_speaks in (True, False):
        openings = {10.0: speaker if left_speaks else other, 200.0: other if left_speaks else speaker}
        frames = mouth_pixels(openings[10.0], openings[200.0])  # both mouths move during the voice
        for delay in (0, 1, 2):  # the voice 0-2 frames after the lips
            audio = voice(speaker, rng, delay)
            lm = FakeLandmarker(openings)
            r = find_active_speaker(frames, speech, detections=two_faces(T), audio=audio, sample_rate=SR,
                                    frame_times=np.arange(T) / FPS, landmarker=lm)
            assert r.found and r.rule == "landmarks" and lm.calls == 2
            assert r.boxes[0, 0] == pytest.approx(10 if left_speaks else 200)
            chosen = next(s for s in r.scores if s.track_id == r.track.track_id)
            loser = next(s for s in r.scores if s.track_id != r.track.track_id)
            assert chosen.rule == "landmarks" and chosen.lag == delay and chosen.sync > 0.7
            assert r.score == pytest.approx(chosen.score) and chosen.score > loser.score + 0.3
            assert r.score >= ActiveSpeakerConfig().min_sync_score
            assert not np.isnan(chosen.pixel_score) and chosen.landmark_fraction == 1.0
            np.testing.assert_allclose(r.lip_opening, openings[10.0 if left_speaks else 200.0])
    # Without the audio the VAD mask is the reference (here a third of the window is silent, so it is used).
    r = find_active_speaker(frames, speech, detections=two_faces(T), landmarker=FakeLandmarker(openings))
    assert r.rule == "landmarks" and r.boxes[0, 0] == pytest.approx(200)


def test_fallback_to_pixels_and_no_speaker_rules():
    rng = np.random.default_rng(5)
    T = 30
    speaker, other = syllables(rng, T, 5, 25), syllables(rng, T, 0, T)
    speech = np.zeros(T, bool)
    speech[5:25] = True
    frames = mouth_pixels(speaker, other)  # both mouths move, the other's also in silence
    audio = voice(speaker, rng)
    kwargs = {"audio": audio, "sample_rate": SR, "frame_times": np.arange(T) / FPS}
    openings = {10.0: speaker, 200.0: other}

    # Only one mouth moves (the other face is still): the pixel rule is unambiguous, no landmark is computed.
    lm = FakeLandmarker(openings)
    r = find_active_speaker(mouth_pixels(speaker, None), speech, detections=two_faces(T), landmarker=lm, **kwargs)
    assert r.found and r.rule == "pixels" and "unambiguous" in r.rule_note and lm.calls == 0
    assert r.boxes[0, 0] == pytest.approx(10)

    # No landmark backend: pixels, and the note says why.
    r = find_active_speaker(frames, speech, detections=two_faces(T), landmarker=_none(), **kwargs)
    assert r.found and r.rule == "pixels" and "none" in r.rule_note and r.boxes[0, 0] == pytest.approx(10)
    assert all(s.rule == "pixels" and s.score == s.pixel_score for s in r.scores)
    # Landmarks missing on most frames of one face: pixels for the whole window.
    sparse = other.copy()
    sparse[::3] = np.nan
    sparse[1::3] = np.nan
    r = find_active_speaker(frames, speech, detections=two_faces(T),
                            landmarker=FakeLandmarker({10.0: speaker, 200.0: sparse}), **kwargs)
    assert r.rule == "pixels" and "lip landmarks on 3" in r.rule_note
    # A single face: the pixel rule decides and no landmark is computed.
    lm = FakeLandmarker(openings)
    single = [[faces[0]] for faces in two_faces(T)]
    r = find_active_speaker(frames, speech, detections=single, landmarker=lm, **kwargs)
    assert r.rule == "pixels" and lm.calls == 0 and "landmarks_min_tracks" in r.rule_note
    # ... unless asked: landmarks_min_tracks=1, or rule="landmarks".
    for config in (ActiveSpeakerConfig(landmarks_min_tracks=1), ActiveSpeakerConfig(rule="landmarks")):
        r = find_active_speaker(frames, speech, config=config, detections=single, landmarker=lm, **kwargs)
        assert r.rule == "landmarks" and r.found
    # No audio and speech on (almost) every frame: the mask says nothing about the lips, pixels decide.
    busy = np.ones(T, bool)
    busy[0] = False
    r = find_active_speaker(frames, busy, detections=two_faces(T), landmarker=FakeLandmarker(openings))
    assert r.rule == "pixels" and "mask_min_fraction" in r.rule_note
    # rule="pixels" never asks for landmarks.
    lm = FakeLandmarker(openings)
    r = find_active_speaker(frames, speech, config=ActiveSpeakerConfig(rule="pixels"), detections=two_faces(T),
                            landmarker=lm, **kwargs)
    assert r.rule == "pixels" and lm.calls == 0 and r.boxes[0, 0] == pytest.approx(10)

    # Forced landmarks: faces without landmarks or with a still mouth are rejected with the reason.
    still = {10.0: np.full(T, 0.05), 200.0: np.full(T, np.nan)}
    r = find_active_speaker(frames, speech, config=ActiveSpeakerConfig(rule="landmarks"), detections=two_faces(T),
                            landmarker=FakeLandmarker(still), **kwargs)
    assert not r.found and r.rule == "landmarks" and r.reason.startswith("no face moves its mouth during speech")
    assert sorted(s.rejected for s in r.scores) == ["lip landmarks on 0% of its frames (< 50%)",
                                                    "mouth never moves during speech"]
    # Two faces moving out of sync with the voice: below min_sync_score, no speaker.
    unrelated = {10.0: syllables(np.random.default_rng(8), T, 0, T), 200.0: other}
    r = find_active_speaker(frames, speech, config=ActiveSpeakerConfig(min_sync_score=0.6), detections=two_faces(T),
                            landmarker=FakeLandmarker(unrelated), **kwargs)
    assert not r.found and r.rule == "landmarks" and "< min_sync_score 0.60 (landmarks)" in r.reason
    # Decided before any rule: no rule recorded.
    r = select_speaker(frames, track_faces(two_faces(T)), np.zeros(T, bool), landmarker=FakeLandmarker(openings))
    assert r.reason == "no voice activity in the window" and r.rule is None
    with pytest.raises(ValueError, match="unknown active-speaker rule 'lips'"):
        ActiveSpeakerConfig(rule="lips")


def _none():
    from memobert.preprocessing.landmarks import make_landmarker

    return make_landmarker("none")


@pytest.mark.skipif(not HAS_FACEMESH, reason="mediapipe (FaceMesh) is not installed")
def test_facemesh_synchrony_on_two_real_photo_faces():
    """Two demo faces (the astronaut photo with closed lips painted on) side by side; both mouths open and close,
    only one in time with the voice. FaceMesh's lip opening picks the heard face on either side."""
    rng = np.random.default_rng(11)
    T = 36
    heard = syllables(rng, T, 6, 30)
    seen = syllables(np.random.default_rng(12), T, 2, 34)
    speech = heard > 0
    for t in range(1, T - 1):  # the VAD bridges the short closures between syllables
        speech[t] |= heard[t - 1] > 0 and heard[t + 1] > 0
    h, w = demo_face().shape[:2]
    for heard_left in (True, False):
        left, right = (heard, seen) if heard_left else (seen, heard)
        frames = np.full((T, h + 40, 2 * w + 60, 3), 110, np.uint8)
        for t in range(T):
            frames[t, 20 : 20 + h, 20 : 20 + w] = demo_face("neutral", mouth_open=left[t])
            frames[t, 20 : 20 + h, 40 + w : 40 + 2 * w] = demo_face("neutral", mouth_open=right[t], mirror=True)
        detections = [[FaceBox(20, 20, 20 + w, 20 + h, 0.9), FaceBox(40 + w, 20, 40 + 2 * w, 20 + h, 0.9)]] * T
        r = find_active_speaker(frames, speech, detections=detections, audio=voice(heard, rng), sample_rate=SR,
                                frame_times=np.arange(T) / FPS)
        assert r.found and r.rule == "landmarks" and r.rule_note == "facemesh lip synchrony"
        assert r.boxes[0, 0] == pytest.approx(20 if heard_left else 40 + w)
        assert all(s.landmark_fraction == 1.0 for s in r.scores)
        chosen = next(s for s in r.scores if s.track_id == r.track.track_id)
        loser = next(s for s in r.scores if s.track_id != r.track.track_id)
        assert chosen.sync > 0.6 and chosen.lag == 0 and chosen.score > loser.score + 0.2
        # The measured opening follows the drawn one.
        assert np.corrcoef(r.lip_opening, heard)[0, 1] > 0.9
