"""One definition of each concept: the copies that used to drift apart are now references to one place."""

from __future__ import annotations

from dataclasses import fields

from memobert import MEmoBertConfig
from memobert.baselines import common as baselines_common
from memobert.data import labels, schema
from memobert.demo.media import DEMO_LABELS
from memobert.downstream import DownstreamArguments
from memobert.objectives import DEFAULT_TASK_RATIOS, MODALITIES
from memobert.preprocessing import decode, pipeline, transcripts
from memobert.processing_memobert import PROCESSOR_FIELDS
from memobert.training import PretrainArguments


def test_the_maximum_lengths_are_the_model_configs():
    config, pretraining, downstream = MEmoBertConfig(), PretrainArguments(), DownstreamArguments()
    for name in ("max_text_length", "max_visual_length", "max_acoustic_length"):
        assert getattr(pretraining, name) == getattr(config, name)
    assert downstream.max_text_length == downstream.max_prompt_text_length == config.max_prompt_text_length
    assert set(PROCESSOR_FIELDS) <= {f for f in config.to_dict()}


def test_the_task_mix_label_words_and_modalities_have_one_home():
    assert PretrainArguments().task_mix == DEFAULT_TASK_RATIOS
    assert MEmoBertConfig().label_words == list(labels.DEFAULT_LABEL_WORDS) == list(DEMO_LABELS)
    assert labels.DEFAULT_LABEL_WORDS == tuple(labels.LABEL_WORDS[c] for c in labels.EMOTION_CLASSES)
    assert MODALITIES is schema.MODALITIES and baselines_common.MODALITIES is schema.MODALITIES


def test_video_endings_are_one_list():
    assert transcripts.VIDEO_EXTENSIONS is decode.VIDEO_EXTENSIONS
    assert pipeline.is_video_file is decode.is_video_file
    assert {".mpg", ".ts", ".mp4", ".mkv", ".flv"} <= set(decode.VIDEO_EXTENSIONS)


def test_pipeline_options_are_one_dataclass():
    """Every command that runs the pipeline takes its options from `PipelineConfig` (memobert.cli adds them)."""
    from memobert.cli import PIPELINE_HELP

    assert set(PIPELINE_HELP) == {f.name for f in fields(pipeline.PipelineConfig)}
