"""One list of video endings: a folder of .mpg (MPEG program stream) and .ts (MPEG transport stream) videos is read,
with their sidecar transcripts, and their windows decode from the container's own time origin."""

from __future__ import annotations

import numpy as np
import pytest

from memobert.demo.media import demo_face, write_media
from memobert.preprocessing.decode import VIDEO_EXTENSIONS, MediaReader, probe
from memobert.preprocessing.pipeline import collect_items, merge_manifests, run_pipeline
from memobert.preprocessing.transcripts import Utterance, find_sidecar_transcript, write_srt

FPS, RATE = 25.0, 24000


def talking_clip(path, seconds: float = 3.0):
    """The demo face, its mouth opening while a 220 Hz voice with a syllable envelope sounds, and an .srt beside it."""
    frames = []
    for k in range(int(seconds * FPS)):
        canvas = np.full((240, 320, 3), 90, np.uint8)
        face = demo_face(mouth_open=0.8 * abs(np.sin(np.pi * 4 * k / FPS)))
        canvas[30:30 + face.shape[0], 70:70 + face.shape[1]] = face
        frames.append(canvas)
    t = np.arange(int(seconds * RATE)) / RATE
    voice = (0.3 * np.sin(2 * np.pi * 220 * t) * np.abs(np.sin(np.pi * 4 * t))).astype(np.float32)
    write_media(path, frames=frames, fps=FPS, audio=voice, sample_rate=RATE)
    write_srt([Utterance(str(path), "u0", 0, 0.2, 1.4, "hello there"), Utterance(str(path), "u1", 1, 1.5, 2.8, "fine")],
              path.with_suffix(".srt"))
    return path


@pytest.mark.parametrize("suffix", [".mpg", ".ts"])
def test_mpeg_program_and_transport_streams_decode_from_their_time_origin(tmp_path, suffix):
    assert suffix in VIDEO_EXTENSIONS
    frames = [np.full((48, 64, 3), 4 * k, np.uint8) for k in range(50)]  # gray level = 4 x frame index
    path = write_media(tmp_path / f"numbered{suffix}", frames=frames, fps=FPS,
                       audio=np.full(2 * RATE, 0.25, np.float32), sample_rate=RATE)
    info = probe(path)
    assert info.start_time > 0  # MPEG timestamps do not start at 0 ...
    window = MediaReader(path, sample_rate=16000, fps=10.0).window(1.0, 1.6)  # ... a single-GOP file seeks badly
    assert window.frames.shape[0] == 6 and window.audio.shape == (9600,)
    shown = [float(f.mean()) / 4 for f in window.frames]  # the frame on screen at 1.0, 1.1, ... s (25 fps)
    assert all(abs(index - 25 * t) <= 3 for index, t in zip(shown, window.frame_times)), shown


def test_a_folder_of_mpg_and_ts_videos_becomes_rows(tmp_path, pipeline):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("talk.mpg", "talk2.ts"):
        talking_clip(folder / name)
    (folder / "notes.txt").write_text("not a video")
    items = collect_items(folder)
    assert sorted(item.video.rsplit("/", 1)[-1] for item in items) == ["talk.mpg", "talk2.ts"]
    assert all(find_sidecar_transcript(item.video) is not None for item in items)
    summary = run_pipeline(folder, tmp_path / "corpus", pipeline=pipeline, progress=False)
    assert summary["processed"] == 2 and summary["rows"] == 4
    manifest = (merge_manifests(tmp_path / "corpus")).read_text().splitlines()
    assert sum(",ok," in line for line in manifest) == 4
