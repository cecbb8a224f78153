"""Stage 1 (PyAV window decoding) and stage 2 (webrtcvad speech mask)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memobert.preprocessing.decode import MediaError, MediaReader, decode_audio, decode_frames, decode_window, probe
from memobert.preprocessing.vad import mask_segments, mask_to_frame_times, rms_dbfs, speech_fraction, speech_mask
from tests.support.media import frame_index, tone, truncated_copy, write_test_media


# -- decoding ----------------------------------------------------------------------------------------------------------


def test_window_shapes_and_types(demo_media):
    _, clips = demo_media
    u = clips[0].utterances[1]
    w = decode_window(clips[0].video, u.start, u.end)
    n = math.ceil((u.end - u.start) * 10 - 1e-9)
    assert w.audio.dtype == np.float32 and w.audio.shape == (round((u.end - u.start) * 16000),)
    assert np.abs(w.audio).max() <= 1.0
    assert w.frames.dtype == np.uint8 and w.frames.shape == (n, clips[0].height, clips[0].width, 3)
    np.testing.assert_allclose(w.frame_times, u.start + np.arange(n) / 10)
    gray = decode_frames(clips[0].video, u.start, u.end, fps=5, gray=True, max_size=160)[0]
    assert gray.shape == (math.ceil((u.end - u.start) * 5 - 1e-9), 120, 160)
    assert decode_audio(clips[0].video, u.start, u.end, sample_rate=8000).shape == (round((u.end - u.start) * 8000),)


def test_frames_are_the_ones_shown_at_each_time(numbered):
    # Frame k of the source is shown over [k / 25, (k + 1) / 25); sampled at 10 fps from 1.03 s, we must get the frame
    # on screen at each sample time, whichever key frame the seek lands on.
    frames, times = decode_frames(numbered, 1.03, 2.53, fps=10)
    assert len(frames) == 15
    assert [frame_index(f) for f in frames] == [int(math.floor(t * 25 + 1e-6)) % 64 for t in times]
    # The last frames of the file and a window that reaches past the end (clipped).
    frames, times = decode_frames(numbered, 3.5, 10.0, fps=10)
    assert len(frames) == 5 and times[-1] == pytest.approx(3.9)
    assert frame_index(frames[-1]) == int(3.9 * 25) % 64


def test_audio_is_resampled_and_aligned(tmp_path):
    # Silence with a 440 Hz burst over [1.0, 1.5) s at 24 kHz.
    audio = np.zeros(3 * 24000, np.float32)
    audio[24000:36000] = tone(0.5)
    path = write_test_media(tmp_path / "burst.mp4", seconds=3.0, audio=audio)
    a = decode_audio(path, 0.8, 1.8)
    assert a.shape == (16000,)
    env = np.abs(a) > 0.1
    onset, offset = np.flatnonzero(env)[[0, -1]] / 16000
    assert onset == pytest.approx(0.2, abs=0.01) and offset == pytest.approx(0.7, abs=0.01)
    spectrum = np.abs(np.fft.rfft(a[int(0.25 * 16000) : int(0.65 * 16000)]))
    assert np.fft.rfftfreq(int(0.4 * 16000), 1 / 16000)[np.argmax(spectrum)] == pytest.approx(440, abs=5)


def test_reader_serves_windows_in_any_order(demo_media):
    _, clips = demo_media
    clip = clips[1]
    windows = [(u.start, u.end) for u in clip.utterances]
    fresh = [decode_window(clip.video, s, e) for s, e in windows]
    with MediaReader(clip.video) as reader:
        again = [reader.window(s, e) for s, e in reversed(windows)][::-1]
    for a, b in zip(fresh, again):
        np.testing.assert_array_equal(a.audio, b.audio)
        np.testing.assert_array_equal(a.frames, b.frames)


def test_decoding_is_streaming(tmp_path, monkeypatch):
    """A window deep inside a long file decodes only from the key frame before it, not the whole file."""
    import av

    path = write_test_media(tmp_path / "long.mp4", seconds=40.0, fps=10.0)  # key frame every 2 s
    decoded = {"video": 0, "audio": 0}
    real_open = av.open

    class CountingContainer:
        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def decode(self, *streams):
            for frame in self._container.decode(*streams):
                decoded[streams[0].type] += 1
                yield frame

    monkeypatch.setattr(av, "open", lambda *a, **k: CountingContainer(real_open(*a, **k)))
    w = decode_window(path, 30.0, 31.5)
    assert len(w.frames) == 15 and len(w.audio) == 24000
    assert 0 < decoded["video"] <= (2.0 + 1.5 + 0.5) * 10  # at most one GOP before the window
    assert 0 < decoded["audio"] <= (1.5 + 0.5) * 24000 / 1024  # AAC frames of 1024 samples


def test_probe(numbered):
    info = probe(numbered)
    assert info.has_audio and info.has_video and info.fps == 25.0 and info.sample_rate == 24000
    assert info.duration == pytest.approx(4.0, abs=0.1) and (info.width, info.height) == (64, 48)


def test_error_truncated_and_corrupt(tmp_path, numbered):
    # moov at the end (PyAV's default): a truncated file cannot even be opened.
    cut = truncated_copy(numbered, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(MediaError) as err:
        decode_window(cut, 0.0, 1.0)
    assert err.value.code == MediaError.CORRUPT and str(cut) in str(err.value) and "re-encode" in str(err.value)
    # moov at the front: the head still decodes, a window in the lost part is reported as truncated.
    fast = write_test_media(tmp_path / "fast.mp4", seconds=10.0, fps=10.0, faststart=True)
    cut_fast = truncated_copy(fast, tmp_path / "cut_fast.mp4", 0.5)
    assert decode_window(cut_fast, 0.5, 1.5).frames.shape[0] == 10
    with pytest.raises(MediaError) as err:
        decode_window(cut_fast, 8.0, 9.0)
    assert err.value.code == MediaError.TRUNCATED and "truncated" in err.value.reason
    with pytest.raises(MediaError) as err:
        decode_window(cut_fast, 8.0, 9.0, audio=False)
    assert err.value.code == MediaError.TRUNCATED
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as err:
        probe(tmp_path / "noise.mp4")
    assert err.value.code == MediaError.CORRUPT
    with pytest.raises(MediaError) as err:
        probe(tmp_path / "missing.mp4")
    assert err.value.code == MediaError.NOT_FOUND


def test_error_missing_streams(tmp_path):
    audio_only = write_test_media(tmp_path / "audio_only.mp4", seconds=2.0, video=False)
    video_only = write_test_media(tmp_path / "video_only.mp4", seconds=2.0, audio=False)
    assert decode_window(audio_only, 0.5, 1.5, video=False).audio.shape == (16000,)
    with pytest.raises(MediaError) as err:
        decode_window(audio_only, 0.5, 1.5)
    assert err.value.code == MediaError.NO_VIDEO and "audio_only.mp4: has no video stream" in str(err.value)
    assert decode_window(video_only, 0.5, 1.5, audio=False).frames.shape[0] == 10
    with pytest.raises(MediaError) as err:
        decode_window(video_only, 0.5, 1.5)
    assert err.value.code == MediaError.NO_AUDIO and "video_only.mp4" in str(err.value)


def test_error_windows(numbered):
    for start, end in [(5.0, 6.0), (4.0, 4.5)]:
        with pytest.raises(MediaError) as err:
            decode_window(numbered, start, end)
        assert err.value.code == MediaError.OUTSIDE and "after the end of the media" in err.value.reason
    with pytest.raises(MediaError) as err:
        decode_window(numbered, 3.5, 4.5, clip_to_media=False)
    assert err.value.code == MediaError.OUTSIDE
    for start, end in [(-1.0, 1.0), (2.0, 2.0), (2.0, 1.0), (float("nan"), 1.0)]:
        with pytest.raises(MediaError) as err:
            decode_window(numbered, start, end)
        assert err.value.code == MediaError.BAD_WINDOW
    w = decode_window(numbered, 3.5, 4.5)  # clipped to the media
    assert w.end == pytest.approx(4.0, abs=0.05) and len(w.audio) == round((w.end - 3.5) * 16000)
    assert {MediaError.OUTSIDE, MediaError.BAD_WINDOW, MediaError.TRUNCATED} <= set(MediaError.CODES)


# -- voice activity ----------------------------------------------------------------------------------------------------


def _voice_truth(clip, times):
    truth = np.zeros(len(times), dtype=bool)
    for u in clip.utterances:
        truth |= (times >= u.voice_start) & (times < u.voice_end)
    return truth


def test_vad_marks_the_voiced_spans_of_the_demo(demo_media):
    _, clips = demo_media
    for clip in clips:
        info = probe(clip.video)
        audio = decode_audio(clip.video, 0.0, info.duration)
        vad = speech_mask(audio, 16000, aggressiveness=2, frame_ms=30)
        centres = (np.arange(len(vad.mask)) + 0.5) * vad.frame_s
        truth = _voice_truth(clip, centres)
        assert (vad.mask == truth).mean() >= 0.9
        assert vad.mask[truth].mean() >= 0.95  # voiced frames found
        assert vad.mask[~truth].mean() <= 0.15  # silence mostly left out (webrtcvad hangs on ~90 ms)
        segments = vad.segments(min_speech=0.3, min_silence=0.3)
        assert len(segments) == len(clip.utterances)
        for (s, e), u in zip(segments, clip.utterances):
            assert s == pytest.approx(u.voice_start, abs=0.1) and e == pytest.approx(u.voice_end, abs=0.25)


def test_vad_on_a_window_resampled_to_frames(demo_media):
    _, clips = demo_media
    clip = clips[0]
    u = clip.utterances[0]
    w = decode_window(clip.video, u.start - 0.3, u.end + 0.3)
    vad = speech_mask(w.audio, 16000, frame_ms=20, start=w.start)
    speech = vad.at(w.frame_times)
    truth = (w.frame_times + 0.05 >= u.voice_start) & (w.frame_times + 0.05 < u.voice_end)
    assert speech.shape == w.frame_times.shape and (speech == truth).mean() >= 0.85
    assert not speech[:2].any() and speech[len(speech) // 2]


def test_vad_silence_options_and_errors():
    silence = np.zeros(16000, np.float32)
    assert not speech_mask(silence).mask.any()
    assert speech_mask(silence).mask.shape == (33,)  # 1 s / 30 ms, partial frame dropped
    assert speech_mask(silence, frame_ms=10).mask.shape == (100,)
    assert speech_mask((silence * 32767).astype(np.int16), 8000, frame_ms=20).mask.shape == (100,)
    assert rms_dbfs(silence) == float("-inf") and rms_dbfs(np.full(10, 0.5)) == pytest.approx(-6.02, abs=0.01)
    with pytest.raises(ValueError, match="sample rate"):
        speech_mask(silence, 22050)
    with pytest.raises(ValueError, match="10, 20 or 30"):
        speech_mask(silence, frame_ms=25)
    with pytest.raises(ValueError, match="aggressiveness"):
        speech_mask(silence, aggressiveness=4)
    with pytest.raises(ValueError, match="mono"):
        speech_mask(np.zeros((2, 16000), np.float32))


def test_vad_aggressiveness_is_monotone_on_demo(demo_media):
    _, clips = demo_media
    audio = decode_audio(clips[0].video, 0.0, probe(clips[0].video).duration)
    ratios = [speech_mask(audio, aggressiveness=a).speech_ratio for a in range(4)]
    assert ratios == sorted(ratios, reverse=True)


def test_mask_resampling_helpers():
    mask = np.array([0, 0, 1, 1, 1, 0, 0, 1, 0, 0], dtype=bool)  # 10 ms frames from t = 1.0
    times = 1.0 + np.array([0.0, 0.02, 0.04, 0.06, 0.08])
    np.testing.assert_allclose(speech_fraction(mask, 10, times, start=1.0, frame_duration=0.02), [0, 1, 0.5, 0.5, 0])
    np.testing.assert_array_equal(mask_to_frame_times(mask, 10, times, start=1.0), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(mask_to_frame_times(mask, 10, times, start=1.0, threshold=0.75), [0, 1, 0, 0, 0])
    assert mask_to_frame_times(mask, 10, 1.5 + times[:2], start=1.0).tolist() == [False, False]  # past the mask
    assert mask_segments(mask, 10, start=1.0) == [pytest.approx((1.02, 1.05)), pytest.approx((1.07, 1.08))]
    assert mask_segments(mask, 10, start=1.0, min_silence=0.03) == [pytest.approx((1.02, 1.08))]
    assert mask_segments(mask, 10, min_speech=0.02) == [pytest.approx((0.02, 0.05))]
