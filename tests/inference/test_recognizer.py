"""`memobert.EmotionRecognizer` on the demo clips: per-utterance fields, the modalities the model got, several videos
with one failing, the ONNX backend as a drop-in, and `memobert predict --plot`."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from memobert import EmotionRecognizer, UtteranceEmotion, VideoEmotions
from memobert.cli import main as memobert_main
from memobert.evaluation.plots import plot_emotion_timeline
from memobert.inference import predict_video
from memobert.preprocessing.pipeline import read_audio_file
from tests.support.models import LABEL_WORDS


@pytest.fixture(scope="module")
def recognizer(model_dir, keep_every_pipeline) -> EmotionRecognizer:
    return EmotionRecognizer.from_pretrained(model_dir, pipeline=keep_every_pipeline)


@pytest.fixture(scope="module")
def faceless(demo_clips, tmp_path_factory) -> Path:
    """The first demo clip's sound and transcript over black frames: every utterance is heard, no face is seen."""
    from memobert.demo.media import write_media

    clip = demo_clips[0]
    folder = tmp_path_factory.mktemp("faceless")
    audio = read_audio_file(clip.video, clip.sample_rate)
    frames = [np.zeros((clip.height, clip.width, 3), np.uint8)] * int(round(clip.duration * 5))
    video = write_media(folder / "faceless.mp4", frames=frames, fps=5.0, audio=audio, sample_rate=clip.sample_rate)
    shutil.copy(clip.srt, folder / "faceless.srt")
    return Path(video)


def test_every_utterance_of_a_demo_clip_with_its_fields(recognizer, clip):
    results = recognizer(clip.video)  # the sidecar .srt
    truth = {u.utterance_id: u for u in clip.utterances}
    assert [r.utterance_id for r in results] == [u.utterance_id for u in clip.utterances]
    for r in results:
        u = truth[r.utterance_id]
        assert isinstance(r, UtteranceEmotion) and r.status == "ok" and r.predicted
        assert r.text == u.text and r.speaker == ""  # an .srt names no speaker
        assert r.start == pytest.approx(u.start, abs=1e-3) and r.end == pytest.approx(u.end, abs=1e-3)
        assert list(r.probabilities) == LABEL_WORDS == recognizer.label_words
        assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.emotion == max(r.probabilities, key=r.probabilities.get)
        # Both faces are on screen, one speaks: the active speaker is found, with the score of the pixel rule.
        assert r.modalities == ("text", "visual", "acoustic")
        assert r.visual_frames > 0 and r.acoustic_frames > 0
        assert r.speaker_rule == "pixels" and r.speaker_score is not None and 0.0 < r.speaker_score <= 1.0
    assert json.loads(json.dumps(results[0].to_dict()))["modalities"] == ["text", "visual", "acoustic"]


def test_the_speaker_of_a_csv_manifest(recognizer, demo_media, clip):
    results = recognizer(clip.video, demo_media[0] / "manifest.csv")  # the demo's video,start,end,text,speaker,label
    assert [r.speaker for r in results] == [u.speaker for u in clip.utterances]
    assert all(r.speaker for r in results)


def test_predict_video_is_the_recognizer_as_dicts(recognizer, model_dir, keep_every_pipeline, clip):
    as_dicts = predict_video(clip.video, model_dir, pipeline=keep_every_pipeline)
    assert as_dicts == [r.to_dict() for r in recognizer(clip.video)]


def test_batch_size_changes_nothing_but_speed(recognizer, clip):
    one = recognizer(clip.video, batch_size=1)
    all_ = recognizer(clip.video, batch_size=64)
    for a, b in zip(one, all_):
        assert a.emotion == b.emotion
        np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5)


def test_an_utterance_without_a_face_reaches_the_model_without_visual(recognizer, faceless):
    results = recognizer(faceless)
    assert results and all(r.status == "ok" and r.predicted for r in results)
    for r in results:
        assert r.modalities == ("text", "acoustic")
        assert r.visual_frames == 0 and r.speaker_score is None
        assert "kept without face frames" in r.reason


def test_several_videos_one_failing_is_recorded_and_the_others_go_on(recognizer, demo_clips, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    shutil.copy(demo_clips[0].srt, tmp_path / "broken.srt")
    videos = [demo_clips[0].video, tmp_path / "missing.mp4", broken, demo_clips[1].video]
    results = recognizer(videos, progress=False)  # a list: predict_many
    assert [type(r) for r in results] == [VideoEmotions] * 4
    assert [r.status for r in results] == ["ok", "failed", "failed", "ok"]
    assert "does not exist" in results[1].reason and not results[1].utterances
    assert str(broken) in results[2].reason and not results[2].utterances
    for result, clip in ((results[0], demo_clips[0]), (results[3], demo_clips[1])):
        assert result.ok and result.reason == "" and result.duration == pytest.approx(clip.duration, abs=0.2)
        assert [u.utterance_id for u in result.utterances] == [u.utterance_id for u in clip.utterances]
        assert all(u.predicted for u in result.utterances)
    with pytest.raises(ValueError, match="one transcript per video"):
        recognizer.predict_many(videos, [demo_clips[0].srt], progress=False)
    with pytest.raises(ValueError, match="CSV manifest"):
        recognizer.predict_many(videos[:2], demo_clips[0].srt, progress=False)


def test_an_unexpected_error_keeps_its_traceback(recognizer, monkeypatch):
    """A bad input's error is its reason; any other error keeps its traceback in `detail` too."""

    def predict(video, transcript=None, *, batch_size=None):
        if str(video) == "bad-input.mp4":
            raise ValueError("bad-input.mp4: no transcript")
        raise KeyError("speaker_score")  # a fault of the code, not of the input

    monkeypatch.setattr(recognizer, "predict", predict)
    bad_input, fault = recognizer.predict_many(["bad-input.mp4", "fault.mp4"], progress=False)
    assert (bad_input.status, bad_input.reason, bad_input.detail) == ("failed", "bad-input.mp4: no transcript", "")
    assert fault.status == "failed" and fault.reason == "KeyError: 'speaker_score'"
    assert fault.detail.startswith("Traceback (most recent call last):")
    assert "in predict" in fault.detail and fault.detail.rstrip().endswith("KeyError: 'speaker_score'")


def test_a_skipped_utterance_is_reported_without_prediction(model_dir, tmp_path, demo_clips):
    from memobert.demo.corpus import DEMO_MEDIA
    from memobert.preprocessing.pipeline import Pipeline, PipelineConfig

    clip = demo_clips[0]
    windows = sorted(u.end - u.start for u in clip.utterances)
    assert windows[0] < windows[-1]
    threshold = (windows[0] + windows[-1]) / 2  # the shortest utterance is skipped, the longest kept
    strict = Pipeline(PipelineConfig.keep_every_utterance(min_duration=threshold, **DEMO_MEDIA))
    results = EmotionRecognizer.from_pretrained(model_dir, pipeline=strict)(clip.video)
    skipped = [r for r in results if r.status == "skipped"]
    kept = [r for r in results if r.status == "ok"]
    assert skipped and kept and len(results) == len(clip.utterances)
    for r in skipped:
        assert r.reason and r.emotion == "" and r.probabilities == {} and r.modalities == ()
    png = plot_emotion_timeline(results, tmp_path / "skipped.png", duration=clip.duration)
    assert png.stat().st_size > 0


def test_bad_backend_and_missing_onnx_file_are_clear_errors(model_dir, keep_every_pipeline):
    with pytest.raises(ValueError, match="backend must be one of"):
        EmotionRecognizer.from_pretrained(model_dir, backend="tensorrt", pipeline=keep_every_pipeline)
    with pytest.raises(FileNotFoundError) as error:
        EmotionRecognizer.from_pretrained(model_dir, backend="onnx", pipeline=keep_every_pipeline)
    assert "model.onnx" in str(error.value) and "memobert export-onnx" in str(error.value)


def test_the_onnx_backend_gives_the_torch_probabilities(recognizer, model_dir, keep_every_pipeline, demo_clips,
                                                        faceless, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    onnx_export = pytest.importorskip("memobert.onnx_export")
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    onnx_export.export_onnx(folder, folder / "model.onnx")
    onnx = EmotionRecognizer.from_pretrained(folder, backend="onnx", pipeline=keep_every_pipeline)
    assert onnx.backend == "onnx" and onnx.label_words == recognizer.label_words
    for video in (demo_clips[0].video, faceless):  # every modality; text + acoustic only
        expected, got = recognizer(video), onnx(video)
        assert [r.utterance_id for r in got] == [r.utterance_id for r in expected]
        for a, b in zip(expected, got):
            assert a.modalities == b.modalities and a.emotion == b.emotion
            np.testing.assert_allclose(list(b.probabilities.values()), list(a.probabilities.values()), atol=1e-4)


def read_png(path: Path):
    from PIL import Image

    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def test_predict_command_plots_the_timeline(model_dir, clip, tmp_path, capsys):
    out, png = tmp_path / "out.csv", tmp_path / "plots" / "timeline.png"
    memobert_main(["predict", str(clip.video), "--model", str(model_dir), "--output", str(out), "--plot", str(png),
                   "--vad", "webrtc", "--speaker-rule", "pixels", "--fps", "5"])
    printed = capsys.readouterr().out
    assert str(out) in printed and str(png) in printed
    width, height = read_png(png)
    assert width >= 600 and height >= 200
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["utterance_id"] for r in rows] == [u.utterance_id for u in clip.utterances]
    assert all(r["modalities"] == "text+visual+acoustic" and 0 < float(r["speaker_score"]) <= 1 for r in rows)


def test_predict_command_on_several_videos(model_dir, demo_clips, tmp_path, capsys):
    out, plots = tmp_path / "out", tmp_path / "plots"
    videos = [str(demo_clips[0].video), str(tmp_path / "missing.mp4"), str(demo_clips[1].video)]
    with pytest.raises(SystemExit) as exit_info:
        memobert_main(["predict", *videos, "--model", str(model_dir), "--output", str(out), "--format", "json",
                       "--plot", str(plots), "--no-progress", "--vad", "webrtc", "--speaker-rule", "pixels",
                       "--fps", "5"])
    assert "1 of 3 videos failed" in str(exit_info.value.code) and "missing.mp4" in str(exit_info.value.code)
    captured = capsys.readouterr()
    assert "missing.mp4: failed: " in captured.err and "does not exist" in captured.err
    for clip in (demo_clips[0], demo_clips[1]):
        stem = Path(clip.video).stem
        predictions = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
        assert [p["utterance_id"] for p in predictions] == [u.utterance_id for u in clip.utterances]
        read_png(plots / f"{stem}.png")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{Path(v).stem}.json" for v in videos[::2])

    with pytest.raises(SystemExit) as exit_info:  # several videos need a folder to write to
        memobert_main(["predict", *videos[::2], "--model", str(model_dir)])
    assert exit_info.value.code == 2 and "--output FOLDER" in capsys.readouterr().err


def test_predict_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        memobert_main(["predict", "--help"])
    text = capsys.readouterr().out
    for option in ("--transcript", "--model", "--backend", "--output", "--format", "--plot", "--batch-size",
                   "--no-progress", "--fps", "--face-extractor"):
        assert option in text
    assert "{torch,onnx}" in text


def test_the_timeline_plot_of_dicts_and_of_results(tmp_path):
    results = [
        {"utterance_id": "a", "start": 0.2, "end": 1.8, "text": "I cannot believe you did that to me again",
         "emotion": "anger", "probabilities": {"anger": 0.7, "happy": 0.1, "neutral": 0.1, "sad": 0.1}, "status": "ok"},
        UtteranceEmotion("b", 2.0, 2.6, "hm", "", "", {}, "skipped", "too short", 0, 0),
        UtteranceEmotion("c", 3.0, 5.5, "fine then", "", "neutral",
                         {"anger": 0.1, "happy": 0.2, "neutral": 0.6, "sad": 0.1}, "ok", "", 3, 4, 0.8, "pixels",
                         ("text", "visual", "acoustic")),
        {"utterance_id": "", "start": None, "end": None, "text": "", "emotion": "", "probabilities": {},
         "status": "failed"},  # no times: left out
    ]
    width, height = read_png(plot_emotion_timeline(results, tmp_path / "t.png", duration=6.0))
    assert width > height > 0
    read_png(plot_emotion_timeline([], tmp_path / "empty.png"))
    assert not math.isnan(results[2].speaker_score)
