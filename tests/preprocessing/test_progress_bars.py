"""`memobert preprocess` shows its own progress bar only, and `--no-progress` shows none (no `datasets` bars either)."""

from __future__ import annotations

import numpy as np

from memobert.cli import main
from memobert.demo.media import write_media
from memobert.preprocessing.transcripts import Utterance, write_srt


def small_video(folder):
    folder.mkdir()
    path = folder / "clip.mp4"
    t = np.arange(2 * 16000) / 16000
    write_media(path, frames=[np.full((48, 64, 3), 90, np.uint8)] * 20, fps=10.0,
                audio=(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sample_rate=16000)
    write_srt([Utterance(str(path), "clip_0000", 0, 0.1, 1.6, "hello there")], folder / "clip.srt")
    return folder


def bars(stderr: str) -> list[str]:
    """The names of the tqdm bars written to stderr ("name: 100%|...")."""
    lines = stderr.replace("\r", "\n").splitlines()
    return sorted({line.split(":", 1)[0].strip() for line in lines if "%|" in line})


def test_no_progress_means_no_bar_and_with_progress_only_ours(tmp_path, capsys):
    videos = small_video(tmp_path / "videos")
    quiet = tmp_path / "quiet"
    main(["preprocess", "--input", str(videos), "--output", str(quiet), "--no-progress", "--vad", "webrtc"])  # synthetic
    captured = capsys.readouterr()
    assert bars(captured.err) == [] and "Creating parquet" not in captured.err + captured.out
    assert "1 rows" in captured.out

    main(["preprocess", "--input", str(videos), "--output", str(tmp_path / "shown"), "--vad", "webrtc"])
    captured = capsys.readouterr()
    assert bars(captured.err) == ["videos (shard 1/1)"], captured.err
    assert (tmp_path / "shown" / "manifest.csv").read_text().count(",ok,") == 1
