"""`memobert predict` with several videos: each video's output name is decided once, up front, and never shared (the
same video twice, two spellings of one path, stems differing only by case); a video whose results cannot be written
is a recorded failure and the others are still written; a --transcript count that fits neither way is a usage error.
The recognizer is a stand-in: these are the command's own duties, not the model's."""

from __future__ import annotations

import pytest

from memobert import inference
from memobert.cli import _output_names
from memobert.cli import main as memobert_main
from memobert.inference import VideoEmotions


def test_output_names_are_the_stems_made_distinct():
    assert _output_names(["a/x.mp4", "b/x.mp4", "x.mp4", "x.mp4"]) == ["x", "x-2", "x-3", "x-4"]
    assert _output_names(["a.mp4", "./a.mp4", "A.mp4"]) == ["a", "a-2", "A-3"]
    assert _output_names(["x.mp4", "x.mp4", "x-2.mp4"]) == ["x", "x-3", "x-2"]  # a real x-2 keeps its name
    assert _output_names(["talk.mp4", "other/clip.mkv"]) == ["talk", "clip"]  # no collision: plain stems


class _FakeRecognizer:
    """predict_many as the CLI calls it: one ok result per video, in order, no utterances."""

    def predict_many(self, videos, transcripts=None, *, progress=True):
        return [VideoEmotions(str(v), [], duration=1.0) for v in videos]


@pytest.fixture()
def fake_recognizer(monkeypatch):
    monkeypatch.setattr(inference.EmotionRecognizer, "from_pretrained",
                        classmethod(lambda cls, *args, **kwargs: _FakeRecognizer()))


def test_several_videos_never_overwrite_each_other(fake_recognizer, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    memobert_main(["predict", "a/x.mp4", "b/x.mp4", "x.mp4", "./x.mp4", "X.mp4", "--model", "m", "--output",
                   str(out), "--no-progress"])
    assert sorted(p.name for p in out.iterdir()) == ["X-5.csv", "x-2.csv", "x-3.csv", "x-4.csv", "x.csv"]
    printed = capsys.readouterr().out
    assert f"./x.mp4: 0 utterances -> {out / 'x-4.csv'}" in printed


def test_a_write_error_of_one_video_is_recorded_and_the_others_are_written(fake_recognizer, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "x-2.csv").mkdir(parents=True)  # the second video's file cannot be written
    with pytest.raises(SystemExit) as exit_info:
        memobert_main(["predict", "a/x.mp4", "b/x.mp4", "c/y.mp4", "--model", "m", "--output", str(out),
                       "--no-progress"])
    assert "1 of 3 videos failed" in str(exit_info.value.code) and "b/x.mp4" in str(exit_info.value.code)
    assert "b/x.mp4: failed: writing its results" in capsys.readouterr().err
    assert (out / "x.csv").is_file() and (out / "y.csv").is_file()


@pytest.mark.parametrize("videos, transcripts", [(["a.mp4"], ["a.srt", "b.srt"]),
                                                  (["a.mp4", "b.mp4", "c.mp4"], ["a.srt", "b.srt"])])
def test_a_transcript_count_that_fits_no_video_count_is_a_usage_error(videos, transcripts, tmp_path, capsys):
    options = [word for t in transcripts for word in ("--transcript", t)]
    with pytest.raises(SystemExit) as exit_info:
        memobert_main(["predict", *videos, *options, "--model", "m", "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{len(transcripts)} --transcript for {len(videos)} video(s)" in err and "one --transcript per video" in err
