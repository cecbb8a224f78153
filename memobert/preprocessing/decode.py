"""Decode one time window of a media file with PyAV: audio -> 16 kHz mono float32, frames -> uint8 at a fixed rate.

Streaming: each call seeks to the window (the key frame before it for video) and decodes only up to its end, so the
memory used depends on the window, never on the length of the file. A `MediaReader` probes a file once and serves many
windows of it (each with a fresh demuxer and decoder, so a window's output never depends on the ones before);
`decode_window` is the one-shot form.

Every failure is a `MediaError` whose `code` is one of `MediaError.CODES` and whose message names the file and the fix.
"""

from __future__ import annotations

import contextlib
import math
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import av
import numpy as np

__all__ = [
    "VIDEO_EXTENSIONS",
    "is_video_file",
    "MediaError",
    "MediaInfo",
    "DecodedWindow",
    "MediaReader",
    "probe",
    "decode_window",
    "decode_audio",
    "decode_frames",
]

# File endings read as videos, everywhere: folder inputs, sidecar transcripts, embedded subtitles.
VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".wmv", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".3gp",
    ".ogv", ".vob",
)


def is_video_file(path: str | PathLike) -> bool:
    """Whether `path` ends like a video (`VIDEO_EXTENSIONS`, any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


_EPS = 1e-6
# A stream that stops more than this before the end it declares (inside the window) is called truncated.
_TRUNCATION_SLACK = 0.25
_AUDIO_PREROLL = 0.2  # seconds decoded before an audio window and dropped
_SEEK_SLACK = 0.1  # a first decoded audio frame later than this after the window's start means the seek overshot


class MediaError(Exception):
    """A media file cannot give what was asked. `code` is short and stable (for manifests), `reason` is for people."""

    NOT_FOUND = "not_found"
    CORRUPT = "corrupt"
    TRUNCATED = "truncated"
    NO_AUDIO = "no_audio_stream"
    NO_VIDEO = "no_video_stream"
    OUTSIDE = "window_outside_media"
    BAD_WINDOW = "bad_window"
    CODES = (NOT_FOUND, CORRUPT, TRUNCATED, NO_AUDIO, NO_VIDEO, OUTSIDE, BAD_WINDOW)

    def __init__(self, path: str | PathLike, code: str, reason: str):
        self.path = str(path)
        self.code = code
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class MediaInfo:
    """What a container holds (from its header; nothing is decoded)."""

    path: str
    duration: float | None  # seconds; None when the container does not say
    has_audio: bool
    has_video: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    num_subtitle_streams: int = 0
    # Where the container's timestamps start (seconds): 0 for most files, not for MPEG-TS/PS. Window times count from
    # here (as players and subtitle files do).
    start_time: float = 0.0


@dataclass
class DecodedWindow:
    """The decoded window [start, end) (end clipped to the media's duration)."""

    path: str
    start: float
    end: float
    sample_rate: int
    fps: float
    audio: np.ndarray | None = None  # (samples,) float32 mono in [-1, 1]
    frames: np.ndarray | None = None  # (T, H, W, 3) RGB or (T, H, W) gray, uint8
    frame_times: np.ndarray | None = None  # (T,) seconds from the start of the file, one per frame

    @property
    def duration(self) -> float:
        return self.end - self.start


def _open(path: str | PathLike):
    p = Path(path)
    if not p.is_file():
        raise MediaError(path, MediaError.NOT_FOUND, "file not found; check the path in the input list or manifest")
    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as e:
        raise MediaError(
            path,
            MediaError.CORRUPT,
            f"cannot be opened as media ({e.__class__.__name__}: {getattr(e, 'strerror', None) or e}); the file is "
            "corrupt, truncated or not a media file: re-download or re-encode it",
        ) from e


def _info(container, path: str) -> MediaInfo:
    audio = container.streams.audio[0] if container.streams.audio else None
    video = container.streams.video[0] if container.streams.video else None
    duration = None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / av.time_base
    else:
        ends = [
            float(s.duration * s.time_base)
            for s in (audio, video)
            if s is not None and s.duration is not None and s.time_base is not None
        ]
        duration = max(ends) if ends else None
    fps = None
    if video is not None:
        rate = video.average_rate or video.base_rate or video.guessed_rate
        fps = float(rate) if rate else None
    return MediaInfo(
        path=path,
        duration=duration,
        has_audio=audio is not None,
        has_video=video is not None,
        width=video.codec_context.width if video is not None else None,
        height=video.codec_context.height if video is not None else None,
        fps=fps,
        sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        channels=audio.codec_context.channels if audio is not None else None,
        num_subtitle_streams=len(container.streams.subtitles),
        start_time=container.start_time / av.time_base if container.start_time is not None else 0.0,
    )


def probe(path: str | PathLike) -> MediaInfo:
    """Read the container header of `path` (raises `MediaError` when it cannot be opened)."""
    container = _open(path)
    try:
        return _info(container, str(path))
    finally:
        container.close()


class MediaReader:
    """A media file (probed once) that serves decoded windows; usable as a context manager.

    Each window is decoded by a fresh demuxer and decoder, so that its samples and pixels do not depend on the
    windows decoded before (identical output after a resume); memory holds one window at a time.

    `sample_rate`: audio output rate (mono float32). `fps`: frame sampling rate; frame k of a window is the last video
    frame shown at `start + k / fps` (sample and hold). `gray`: frames as (H, W) instead of RGB (H, W, 3).
    `max_size`: when set, frames are scaled down (aspect kept) so that their longer side is at most this many pixels.
    `clip_to_media`: a window reaching past the end of the media is cut at the end (True) or refused (False).
    """

    def __init__(
        self,
        path: str | PathLike,
        *,
        sample_rate: int = 16000,
        fps: float = 10.0,
        gray: bool = False,
        max_size: int | None = None,
        clip_to_media: bool = True,
    ):
        if sample_rate <= 0 or fps <= 0:
            raise ValueError(f"sample_rate and fps must be positive, got {sample_rate} and {fps}")
        self.path = str(path)
        self.sample_rate = int(sample_rate)
        self.fps = float(fps)
        self.gray = gray
        self.max_size = max_size
        self.clip_to_media = clip_to_media
        container = _open(path)
        try:
            self.info = _info(container, self.path)
        finally:
            container.close()
        self.origin = self.info.start_time

    # -- context manager -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Nothing stays open between windows; kept so that the reader works as a context manager."""

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- window checks ---------------------------------------------------------------------------------------------
    def check_window(self, start: float, end: float) -> tuple[float, float]:
        """Validate [start, end) against the media and return it, clipped to the duration when allowed."""
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
            raise MediaError(
                self.path,
                MediaError.BAD_WINDOW,
                f"invalid window [{start}, {end}): need 0 <= start < end (seconds); fix the transcript times",
            )
        duration = self.info.duration
        if duration is not None:
            if start >= duration - _EPS:
                raise MediaError(
                    self.path,
                    MediaError.OUTSIDE,
                    f"window [{start:.3f}, {end:.3f}) s starts after the end of the media ({duration:.3f} s); the "
                    "transcript does not belong to this file or its times are off",
                )
            if end > duration + _EPS:
                if not self.clip_to_media:
                    raise MediaError(
                        self.path,
                        MediaError.OUTSIDE,
                        f"window [{start:.3f}, {end:.3f}) s ends after the end of the media ({duration:.3f} s); "
                        "fix the transcript times or allow clipping (clip_to_media=True)",
                    )
                end = duration
        return float(start), float(end)

    # -- audio -----------------------------------------------------------------------------------------------------
    def audio(self, start: float, end: float) -> np.ndarray:
        """Mono float32 samples of [start, end) at `sample_rate` (length round((end - start) * rate))."""
        start, end = self.check_window(start, end)
        if not self.info.has_audio:
            raise MediaError(
                self.path, MediaError.NO_AUDIO, "has no audio stream; use a file with sound or skip the acoustic part"
            )
        with self._session() as container:
            return self._audio(container, start, end)

    def _audio(self, container, start: float, end: float) -> np.ndarray:
        stream = container.streams.audio[0]
        sr = self.sample_rate
        n_out = int(round((end - start) * sr))
        # Seek a little before the window: the frames in between warm the decoder up (AAC overlaps frames) and are
        # dropped; the resampler starts on the first frame kept.
        chunks, t0, last = _seek_or_from_start(
            lambda seek_to: self._decode_audio(container, stream, start, end, seek_to), start - _AUDIO_PREROLL,
            lambda result: result[1] is not None and result[1] <= max(start, self._stream_start(stream)) + _SEEK_SLACK,
            lambda e: MediaError(self.path, MediaError.CORRUPT,
                                 f"audio decoding failed in [{start:.3f}, {end:.3f}) s: {e}; re-encode it"),
        )
        if t0 is None:
            raise self._nothing_decoded("audio", start, end)
        self._check_not_truncated("audio", last, stream, start, end)
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        offset = int(round((start - t0) * sr))
        if offset < 0:  # the stream starts after the window does: the missing head is silence
            samples = np.concatenate([np.zeros(-offset, np.float32), samples])
            offset = 0
        samples = samples[offset : offset + n_out]
        if len(samples) < n_out:  # the stream ends a little early (codec padding, rounding): pad with silence
            samples = np.concatenate([samples, np.zeros(n_out - len(samples), np.float32)])
        return np.ascontiguousarray(samples, dtype=np.float32)

    def _decode_audio(self, container, stream, start: float, end: float, seek_to: float | None):
        """(resampled chunks, time of the first kept frame or None, end of the last frame) of [start, end), decoding
        from `seek_to` (None: the start of the stream)."""
        resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
        chunks: list[np.ndarray] = []
        t0: float | None = None
        last = -math.inf
        with self._positioned(container, stream, seek_to) as (container, stream):
            for frame in container.decode(stream):
                if frame.sample_rate <= 0 or frame.samples == 0:
                    continue
                if frame.pts is not None and frame.time_base is not None:
                    ft = float(frame.pts * frame.time_base) - self.origin
                else:  # no timestamp: the frame follows the previous one
                    ft = last if math.isfinite(last) else max(0.0, start - _AUDIO_PREROLL)
                if ft + frame.samples / frame.sample_rate <= start - _AUDIO_PREROLL / 2:
                    last = ft + frame.samples / frame.sample_rate
                    continue
                if ft >= end:
                    break
                if t0 is None:
                    t0 = ft
                last = ft + frame.samples / frame.sample_rate
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        if t0 is not None:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        return chunks, t0, last

    # -- video -----------------------------------------------------------------------------------------------------
    def _convert(self, frame) -> np.ndarray:
        fmt = "gray" if self.gray else "rgb24"
        if self.max_size is not None and max(frame.width, frame.height) > self.max_size:
            scale = self.max_size / max(frame.width, frame.height)
            w = max(2, int(round(frame.width * scale)))
            h = max(2, int(round(frame.height * scale)))
            return frame.reformat(width=w, height=h, format=fmt).to_ndarray()
        return frame.to_ndarray(format=fmt)

    def frames(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Frames of [start, end) at `fps` and their times: ((T, H, W[, 3]) uint8, (T,) float64 seconds).

        T is ceil((end - start) * fps), fewer only when the video stream itself ends inside the window."""
        start, end = self.check_window(start, end)
        if not self.info.has_video:
            raise MediaError(
                self.path, MediaError.NO_VIDEO, "has no video stream; use a video file or skip the visual part"
            )
        with self._session() as container:
            return self._frames(container, start, end)

    def _frames(self, container, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        stream = container.streams.video[0]
        n = max(1, int(math.ceil((end - start) * self.fps - 1e-9)))
        targets = start + np.arange(n, dtype=np.float64) / self.fps
        frame_period = 1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / self.fps
        out, prev, prev_arr, prev_t, k, _ = _seek_or_from_start(
            lambda seek_to: self._decode_frames(container, stream, targets, frame_period, seek_to), start,
            lambda result: result[5] is not None
            and result[5] <= max(start, self._stream_start(stream)) + frame_period + _EPS,
            lambda e: MediaError(self.path, MediaError.CORRUPT,
                                 f"video decoding failed in [{start:.3f}, {end:.3f}) s: {e}; re-encode it"),
        )
        # End of stream: the last frame stays on screen for one frame period.
        while k < n and prev is not None and targets[k] < prev_t + frame_period + _EPS:
            if prev_arr is None:
                prev_arr = self._convert(prev)
            out.append(prev_arr)
            k += 1
        if not out:
            raise self._nothing_decoded("video frame", start, end)
        if k < n:
            self._check_not_truncated("video", prev_t + frame_period, stream, start, end)
        return np.stack(out), targets[: len(out)]

    def _nothing_decoded(self, what: str, start: float, end: float) -> MediaError:
        """The error of a window in which nothing of `what` decoded: past the end, or a truncated file."""
        if self.info.duration is None:
            return MediaError(self.path, MediaError.OUTSIDE, f"no {what} in [{start:.3f}, {end:.3f}) s: the window "
                              "is probably past the end of the media")
        return MediaError(self.path, MediaError.TRUNCATED, f"no {what} could be decoded in [{start:.3f}, {end:.3f}) s "
                          f"although the header says the media lasts {self.info.duration} s; the file is probably "
                          "truncated")

    def _check_not_truncated(self, what: str, until: float, stream, start: float, end: float) -> None:
        """Raises when the `what` stream stops (at `until`) well before the window's end and the end it declares."""
        declared = self._stream_end(stream)
        if until < min(end, declared) - _TRUNCATION_SLACK:
            raise MediaError(self.path, MediaError.TRUNCATED, f"{what} stops at {until:.3f} s inside the window "
                             f"[{start:.3f}, {end:.3f}) s although the stream declares {declared:.3f} s; the file is "
                             "probably truncated")

    def _decode_frames(self, container, stream, targets: np.ndarray, frame_period: float, seek_to: float | None):
        """Sample-and-hold frames at `targets` decoding from `seek_to` (None: the start of the stream): (frames,
        the last decoded frame, its array, its time, frames filled, time of the first decoded frame or None)."""
        n, start = len(targets), float(targets[0])
        out: list[np.ndarray] = []
        prev = prev_arr = None
        prev_t = -math.inf
        first_t = None
        k = 0
        with self._positioned(container, stream, seek_to) as (container, stream):
            for frame in container.decode(stream):
                if frame.pts is not None:
                    t = float(frame.pts * frame.time_base) - self.origin
                else:  # no timestamp: assume a constant rate after the previous frame
                    t = prev_t + frame_period if math.isfinite(prev_t) else start
                if first_t is None:
                    first_t = t
                while k < n and targets[k] < t - _EPS:
                    if prev is None:  # the window starts before the first frame: show the first one
                        prev, prev_t = frame, t
                    if prev_arr is None:
                        prev_arr = self._convert(prev)
                    out.append(prev_arr)
                    k += 1
                if k >= n:
                    break
                if prev is not frame:
                    prev, prev_arr, prev_t = frame, None, t
        return out, prev, prev_arr, prev_t, k, first_t

    def window(self, start: float, end: float, *, audio: bool = True, video: bool = True) -> DecodedWindow:
        """Decode the audio and/or frames of [start, end)."""
        start, end = self.check_window(start, end)
        result = DecodedWindow(self.path, start, end, self.sample_rate, self.fps)
        if audio:
            result.audio = self.audio(start, end)
        if video:
            result.frames, result.frame_times = self.frames(start, end)
        return result

    @contextlib.contextmanager
    def _positioned(self, container, stream, seek_to: float | None):
        """`container` and `stream` positioned at `seek_to` (window time), or, for None, the start of the stream: a
        freshly opened demuxer, never a seek (FLV without an index, e.g. CREMA-D's, refuses every seek)."""
        if seek_to is not None:
            _seek(container, stream, seek_to + self.origin)
            yield container, stream
            return
        fresh = _open(self.path)
        try:
            yield fresh, fresh.streams[stream.index]
        finally:
            fresh.close()

    def _stream_start(self, stream) -> float:
        """Where `stream` starts, in window time (seconds from the container's start)."""
        if stream.start_time is None or stream.time_base is None:
            return 0.0
        return float(stream.start_time * stream.time_base) - self.origin

    def _stream_end(self, stream) -> float:
        """Where `stream` says it ends (its own duration, else the container's; inf when unknown), in window time."""
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            return self._stream_start(stream) + float(stream.duration * stream.time_base)
        return self.info.duration if self.info.duration is not None else math.inf

    @contextmanager
    def _session(self):
        # A fresh demuxer and decoder per window: the output of a window must not depend on what was decoded before
        # (FFmpeg's AAC decoder, for one, carries noise-generator state from frame to frame). Opening costs ~2 ms.
        container = _open(self.path)
        try:
            yield container
        finally:
            container.close()


def _seek_or_from_start(decode, seek_to: float, landed, corrupt):
    """`decode(seek_to)`, redone from the start of the stream (`decode(None)`) when the seek did not land at the window
    (`landed(result)` false: the first frame decoded after it lies past the window's start, or none was decoded) or
    decoding after it failed: containers without a seek index (MPEG-TS, MPEG-PS) seek to a key frame after the time
    asked, or into the middle of an audio packet. When the redo fails too, a decoding error is `corrupt(error)` and
    an empty first result stands (a truncated file)."""
    try:
        result, error = decode(seek_to), None
    except av.error.FFmpegError as e:
        result, error = None, e
    if result is not None and landed(result):
        return result
    try:
        return decode(None)
    except av.error.FFmpegError as e:
        if result is None:
            raise corrupt(error or e) from (error or e)
        return result


def _seek(container, stream, t: float) -> None:
    """Seek to the key frame at or before t; decoding then runs forward to t."""
    if stream.time_base is None:
        container.seek(int(max(0.0, t) * av.time_base))
        return
    container.seek(int(max(0.0, t) / stream.time_base), stream=stream, backward=True, any_frame=False)


def decode_window(
    path: str | PathLike,
    start: float,
    end: float,
    *,
    sample_rate: int = 16000,
    fps: float = 10.0,
    gray: bool = False,
    max_size: int | None = None,
    audio: bool = True,
    video: bool = True,
    clip_to_media: bool = True,
) -> DecodedWindow:
    """Decode [start, end) of `path`: audio (mono float32 at `sample_rate`) and frames at `fps`."""
    with MediaReader(
        path, sample_rate=sample_rate, fps=fps, gray=gray, max_size=max_size, clip_to_media=clip_to_media
    ) as reader:
        return reader.window(start, end, audio=audio, video=video)


def decode_audio(path: str | PathLike, start: float, end: float, *, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 audio of [start, end) of `path` at `sample_rate`."""
    with MediaReader(path, sample_rate=sample_rate) as reader:
        return reader.audio(start, end)


def decode_frames(
    path: str | PathLike,
    start: float,
    end: float,
    *,
    fps: float = 10.0,
    gray: bool = False,
    max_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames of [start, end) of `path` at `fps` and their times in seconds."""
    with MediaReader(path, fps=fps, gray=gray, max_size=max_size) as reader:
        return reader.frames(start, end)
