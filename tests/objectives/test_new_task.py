"""A fifth pretraining task, defined here and nowhere else: its masker, head and loss in one class pair; it
pretrains through the real loop, saves and loads, with no edit to the model's code."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memobert import MEmoBertForPreTraining
from memobert.data.synthetic import write_random_corpus
from memobert.modeling_memobert import PRETRAINING_HEADS, MEmoBertPreTrainingHead, MEmoBertPreTrainingHeadOutput
from memobert.objectives import TASKS, PretrainingTask, register_task
from memobert.training import PretrainArguments, pretrain


class AcousticPresenceHead(MEmoBertPreTrainingHead):
    """Predicts, from the [CLS] state, whether the utterance has speech frames (binary cross-entropy)."""

    target_names = ("has_speech",)

    def __init__(self, config):
        super().__init__()
        self.classifier = nn.Linear(config.hidden_size, 1)

    def forward(self, model, outputs, inputs):
        logits = self.classifier(outputs.text_hidden_state[:, 0]).squeeze(-1)
        return MEmoBertPreTrainingHeadOutput(F.binary_cross_entropy_with_logits(logits, inputs["has_speech"]), logits)


class AcousticPresenceTask(PretrainingTask):
    """Drops the speech of every other row; the head tells which rows still have it."""

    name = "toy_speech_presence"
    modality = "acoustic"
    head_class = AcousticPresenceHead

    def build_batch(self, padded, special_token_ids, generator=None):
        batch = padded.model_inputs()
        keep = torch.arange(len(padded.acoustic_mask)) % 2 == 0
        batch["acoustic_mask"] = padded.acoustic_mask * keep[:, None]
        batch["has_speech"] = (batch["acoustic_mask"].sum(1) > 0).float()
        return batch


@pytest.fixture
def toy_task():
    register_task(AcousticPresenceTask)
    yield AcousticPresenceTask
    TASKS.pop(AcousticPresenceTask.name)
    PRETRAINING_HEADS.pop(AcousticPresenceTask.name)


def test_a_task_defined_in_a_test_file_pretrains_saves_and_loads(toy_task, tmp_path):
    corpus = tmp_path / "corpus"
    write_random_corpus(corpus, 24, seed=1, visual_dim=6, acoustic_dim=5)
    out = tmp_path / "model"
    args = PretrainArguments(
        model_name_or_path="none", tokenizer_name="minilm", hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, corpus=str(corpus), output_dir=str(out), tasks=["wwmlm", toy_task.name],
        task_ratios=[0.0, 1.0], max_steps=2, per_device_train_batch_size=4, logging_steps=1, eval_steps=0,
        save_steps=0, warmup_steps=0, learning_rate=1e-3, report_to="none", progress_bar=False,
    )
    metrics = pretrain(args)
    assert [record[f"loss/{toy_task.name}"] > 0 for record in metrics["history"]["train"]] == [True, True]
    assert all(f"loss/{toy_task.name}" in record for record in metrics["eval"])

    config = json.loads((out / "config.json").read_text())
    assert config["pretraining_tasks"] == ["wwmlm", toy_task.name]
    loaded = MEmoBertForPreTraining.from_pretrained(out)
    head = loaded.heads[toy_task.name]
    assert isinstance(head, AcousticPresenceHead)
    trained = {k: v for k, v in loaded.state_dict().items() if k.startswith(f"heads.{toy_task.name}.")}
    assert set(trained) == {f"heads.{toy_task.name}.classifier.weight", f"heads.{toy_task.name}.classifier.bias"}
    fresh = MEmoBertForPreTraining(loaded.config)
    assert not torch.equal(fresh.heads[toy_task.name].classifier.weight, head.classifier.weight)  # the saved weights


def test_a_model_naming_an_unregistered_task_says_what_to_import(tmp_path):
    from memobert import MEmoBertConfig

    with pytest.raises(KeyError, match="no pretraining head of that name is registered.*Import the module"):
        MEmoBertForPreTraining(MEmoBertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                              intermediate_size=32, pretraining_tasks=["wwmlm", "nowhere"]))


def test_targets_no_head_reads_are_an_error(toy_task):
    from memobert import MEmoBertConfig

    model = MEmoBertForPreTraining(MEmoBertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                  intermediate_size=32, pretraining_tasks=["wwmlm"]))
    with pytest.raises(ValueError, match=r"No pretraining head reads the targets \['has_speech'\]"):
        model(input_ids=torch.tensor([[101, 2000, 102]]), has_speech=torch.ones(1))
