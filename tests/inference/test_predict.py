"""`memobert predict`: a demo clip through the preprocessing pipeline and a tiny saved MEmoBertForPrompt."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from memobert import MEmoBertConfig, MEmoBertForPrompt, MEmoBertProcessor
from memobert.cli import main as memobert_main
from memobert.inference import predict_video, write_predictions
from memobert.preprocessing.pipeline import Pipeline, PipelineConfig
from memobert.preprocessing.transcripts import read_srt, write_csv_manifest, write_vtt
from tests.support.models import LABEL_WORDS, save_prompt_model, tiny_config_kwargs



def check_predictions(predictions: list[dict], clip) -> None:
    truth = {u.utterance_id: u for u in clip.utterances}
    assert [p["utterance_id"] for p in predictions] == [u.utterance_id for u in clip.utterances]
    for p in predictions:
        u = truth[p["utterance_id"]]
        assert p["status"] == "ok" and p["text"] == u.text
        assert p["start"] == pytest.approx(u.start, abs=1e-3) and p["end"] == pytest.approx(u.end, abs=1e-3)
        assert list(p["probabilities"]) == LABEL_WORDS
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert p["emotion"] == max(p["probabilities"], key=p["probabilities"].get)
        assert p["visual_frames"] > 0 and p["acoustic_frames"] > 0


def test_predict_video_gives_label_word_probabilities_per_utterance(model_dir, keep_every_pipeline, clip, tmp_path):
    predictions = predict_video(clip.video, model_dir, pipeline=keep_every_pipeline)  # the sidecar .srt
    check_predictions(predictions, clip)
    # The utterances' inputs reach the model: different utterances, different probabilities.
    assert len({tuple(np.round(list(p["probabilities"].values()), 6)) for p in predictions}) == len(predictions)

    out = write_predictions(predictions, tmp_path / "out.csv")
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["utterance_id"] for r in rows] == [p["utterance_id"] for p in predictions]
    for row, p in zip(rows, predictions):
        probs = [float(row[f"prob_{w}"]) for w in LABEL_WORDS]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4) and row["emotion"] == p["emotion"]
        assert float(row["start"]) == pytest.approx(p["start"]) and row["text"] == p["text"]
    with pytest.raises(ValueError, match=r"\.csv or a \.json"):
        write_predictions(predictions, tmp_path / "out.txt")


def test_predict_command_with_a_transcript_writes_json(model_dir, demo_clips, tmp_path, capsys):
    clip = demo_clips[1]
    vtt = write_vtt(read_srt(clip.srt, clip.video).utterances, tmp_path / "cues.vtt")
    out = tmp_path / "emotions.json"
    memobert_main(["predict", str(clip.video), "--transcript", str(vtt), "--model", str(model_dir),
                   "--output", str(out), "--fps", "5", "--vad", "webrtc"])  # 5 fps: fewer frames; synthetic voice
    assert str(out) in capsys.readouterr().out
    predictions = json.loads(out.read_text(encoding="utf-8"))
    check_predictions(predictions, clip)


def test_a_csv_transcript_keeps_the_rows_of_the_video(model_dir, keep_every_pipeline, demo_clips, tmp_path):
    clip = demo_clips[0]
    utterances = read_srt(clip.srt, clip.video).utterances
    manifest = write_csv_manifest(utterances[:1], tmp_path / "one.csv")
    predictions = predict_video(clip.video, model_dir, manifest, pipeline=keep_every_pipeline)
    assert [p["utterance_id"] for p in predictions] == [utterances[0].utterance_id]
    with pytest.raises(ValueError, match="no row names the video"):
        predict_video(demo_clips[1].video, model_dir, manifest, pipeline=keep_every_pipeline)


def test_feature_size_mismatch_is_a_clear_error(tmp_path, tokenizer, keep_every_pipeline, clip, capsys):
    wrong = save_prompt_model(tmp_path / "wrong", tokenizer, visual_dim=342, acoustic_dim=768)
    with pytest.raises(ValueError) as error:
        predict_video(clip.video, wrong, pipeline=keep_every_pipeline)
    message = str(error.value)
    for part in ("visual_dim=342", "acoustic_dim=768", "size 128", "size 80", "mini_xception", "log_mel",
                 "--face-extractor", str(wrong)):
        assert part in message
    with pytest.raises(SystemExit) as exit_info:
        memobert_main(["predict", str(clip.video), "--model", str(wrong)])
    assert "visual_dim=342" in str(exit_info.value.code)


def test_bad_inputs_are_clear_errors(model_dir, keep_every_pipeline, demo_clips, tmp_path, tokenizer):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        predict_video(tmp_path / "missing.mp4", model_dir, pipeline=keep_every_pipeline)
    with pytest.raises(FileNotFoundError, match="config.json"):
        predict_video(demo_clips[0].video, tmp_path, pipeline=keep_every_pipeline)
    bare = tmp_path / "bare.mp4"
    bare.write_bytes(Path(demo_clips[0].video).read_bytes())  # no sidecar transcript, no subtitle stream
    never = Pipeline(PipelineConfig.keep_every_utterance(transcribe="never"))
    with pytest.raises(ValueError, match="--transcript"):
        predict_video(bare, model_dir, pipeline=never)
    no_words = tmp_path / "no_words"
    MEmoBertForPrompt(MEmoBertConfig(**tiny_config_kwargs(visual_dim=128, acoustic_dim=80,
                                                          label_token_ids=None))).save_pretrained(no_words)
    MEmoBertProcessor(tokenizer).save_pretrained(str(no_words))
    with pytest.raises(ValueError, match="no label words"):
        predict_video(demo_clips[0].video, no_words, pipeline=keep_every_pipeline)


def test_a_video_without_transcript_is_predicted_from_its_asr_transcript(model_dir, keep_every_pipeline, talk):
    from tests.support.speech import BECKETT, word_error_rate

    predictions = predict_video(talk, model_dir, pipeline=keep_every_pipeline)
    assert predictions and all(p["status"] == "ok" for p in predictions)
    assert word_error_rate(BECKETT, " ".join(p["text"] for p in predictions)) <= 0.15
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in predictions)
    assert all(p["reason"].startswith("text by ASR") for p in predictions)
