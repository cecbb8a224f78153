"""The pretraining loop: configs, resume, two real processes, the saved model (on the `tiny_corpus` of conftest.py)."""

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from memobert import MEmoBertForPrompt
from memobert.data import schema
from memobert.data.synthetic import write_random_corpus
from memobert.training import ConfigError, PretrainArguments, parse_pretrain_arguments, pretrain
from memobert.training.corpus import (
    ArrowRows,
    LengthLimits,
    MapStyleBatches,
    StreamPosition,
    is_held_out,
    length_grouped_batches,
    load_pretrain_corpus,
    padding_efficiency,
)
from tests.support import REPO


def tiny_args(corpus: Path, output_dir: Path, **overrides) -> PretrainArguments:
    values = dict(
        model_name_or_path="none",
        tokenizer_name="minilm",
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        corpus=str(corpus),
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        max_steps=8,
        warmup_steps=2,
        learning_rate=1e-3,
        logging_steps=2,
        eval_steps=4,
        save_steps=4,
        eval_fraction=0.1,
        report_to="none",
        progress_bar=False,
    )
    values.update(overrides)
    return PretrainArguments(**values)


def training_ids(corpus: Path, fraction: float = 0.1) -> list[str]:
    import datasets

    ids = datasets.load_dataset("parquet", data_dir=str(corpus), split="train")[schema.UTTERANCE_ID]
    return sorted(u for u in ids if not is_held_out(u, fraction))


# -- configuration ---------------------------------------------------------------------------------------------------


def test_a_bad_config_fails_at_once_with_one_message(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse_pretrain_arguments(
            ["--tasks", "wwmlm", "mlm_typo", "--task_ratios", "1", "--max_steps", "0", "--corpus", str(tmp_path / "nope")]
        )
    message = str(error.value)
    for expected in ("mlm_typo", "task_ratios has 1 values for 2 tasks", "max_steps must be >= 1", "does not exist"):
        assert expected in message
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1e-4\nlerning_rate: 3\n")
    with pytest.raises(ConfigError, match="lerning_rate"):
        parse_pretrain_arguments(["--config", str(bad)])
    result = subprocess.run(
        [sys.executable, str(REPO / "pretrain" / "run.py"), "--mixed_precision", "fp8"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "mixed_precision must be" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_then_command_line_overrides(tmp_path):
    args = parse_pretrain_arguments(
        ["--config", str(REPO / "pretrain" / "configs" / "base.yaml"), "--max_steps", "7", "--corpus", str(tmp_path)]
    )
    assert args.max_steps == 7 and args.learning_rate == 5e-5 and args.warmup_steps == 4000
    assert args.task_mix == {"wwmlm": 2.0, "span_mvfr": 1.0, "span_mvfc_kl": 1.0, "span_mafr": 1.0}
    assert (args.adam_beta1, args.adam_beta2, args.max_grad_norm, args.overlength) == (0.9, 0.98, 5.0, "drop")
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps * 8 == 640


# -- batching --------------------------------------------------------------------------------------------------------


def test_length_grouping_covers_every_row_once_and_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = np.stack([rng.integers(5, 31, 2000), rng.integers(0, 37, 2000), rng.integers(10, 65, 2000)], axis=1)
    grouped = length_grouped_batches(lengths, 32, seed=1, epoch=0, group_by_length=True)
    plain = length_grouped_batches(lengths, 32, seed=1, epoch=0, group_by_length=False)
    assert sorted(np.concatenate(grouped).tolist()) == list(range(2000))
    assert padding_efficiency([lengths[b] for b in grouped]) > padding_efficiency([lengths[b] for b in plain]) + 0.1
    again = length_grouped_batches(lengths, 32, seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(grouped, again))  # a function of (seed, epoch) only


def test_arrow_rows_read_what_datasets_reads_and_the_loader_batches_are_identical(tmp_path):
    import pickle

    import datasets

    from memobert import MEmoBertConfig
    from memobert.objectives import MODALITIES, PretrainingCollator, SpecialTokenIds

    write_random_corpus(tmp_path, 90, rows_per_shard=25, seed=5, visual_dim=6, acoustic_dim=5, missing_face_rate=0.3)
    corpus = load_pretrain_corpus(tmp_path, LengthLimits(30, 36, 64), eval_fraction=0.2, max_eval_samples=5)
    rows = ArrowRows(corpus.train)
    assert len(rows) == len(corpus.train) and corpus.train._indices is not None  # a selection of the shards
    order = list(range(len(rows)))[::-1]
    for ours, theirs in zip(pickle.loads(pickle.dumps(rows)).__getitems__(order), corpus.train.__getitems__(order)):
        assert list(ours) == list(theirs)
        for column, expected in theirs.items():
            value = ours[column]
            if isinstance(expected, np.ndarray) and expected.ndim:
                assert value.shape == expected.shape, column  # (0, dim) for a row without faces
                assert value.dtype in (np.float16, np.int32) and not value.flags.writeable  # stored dtype, no copy
                np.testing.assert_array_equal(value.astype(expected.dtype), expected)
            elif isinstance(expected, np.floating) and np.isnan(expected):
                assert np.isnan(value)
            else:
                assert value == expected, column
    assert rows[3][schema.UTTERANCE_ID] == corpus.train[3][schema.UTTERANCE_ID]
    assert rows[-1][schema.UTTERANCE_ID] == corpus.train[len(rows) - 1][schema.UTTERANCE_ID]
    with pytest.raises(IndexError):
        rows.__getitems__([len(rows)])

    # Nulls, strings and scalars of a table not written by the corpus writer.
    table = ArrowRows(datasets.Dataset.from_dict({"ids": [[1, 2], None, []], "text": ["é", None, ""],
                                                  "x": [0.5, 1.5, 2.5]}))
    got = table.__getitems__([0, 1, 2])
    assert got[0]["ids"].tolist() == [1, 2] and got[1]["ids"] is None and len(got[2]["ids"]) == 0
    assert [r["text"] for r in got] == ["é", None, ""] and [float(r["x"]) for r in got] == [0.5, 1.5, 2.5]

    config = MEmoBertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            visual_dim=6, acoustic_dim=5)
    collator = PretrainingCollator(
        SpecialTokenIds(cls_token_id=101, sep_token_id=102, pad_token_id=0, mask_token_id=103, vocab_size=30522), config
    )

    def pad_rows(batch_rows):  # as the pretraining loop does
        return [str(r[schema.UTTERANCE_ID]) for r in batch_rows], collator.pad(batch_rows, include=MODALITIES,
                                                                                  face_soft_labels=True)

    def batches(arrow_rows: bool, workers: int = 0):
        loader = MapStyleBatches(corpus.train, corpus.train_lengths, pad_rows, 8, seed=1, num_workers=workers,
                                 arrow_rows=arrow_rows)
        stream = loader.iterate(StreamPosition())
        return [next(stream) for _ in range(12)]  # past the end of the first epoch

    for (ids, ours), (their_ids, theirs) in zip(batches(True, workers=1), batches(False)):
        assert ids == their_ids
        for name, value in vars(theirs).items():
            mine = getattr(ours, name)
            assert (value is None and mine is None) or (mine.dtype == value.dtype and torch.equal(mine, value)), name


# -- the loop --------------------------------------------------------------------------------------------------------


def test_resume_continues_exactly(tiny_corpus, tmp_path):
    straight = pretrain(tiny_args(tiny_corpus, tmp_path / "run"))
    final = load_file(tmp_path / "run" / "model.safetensors")
    checkpoint = tmp_path / "run" / "checkpoints" / "step_4"
    assert (checkpoint / "trainer_state.json").is_file()

    # A fresh run that picks up the step-4 checkpoint must end where the uninterrupted run ended.
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    os.symlink(checkpoint, resumed_dir / "checkpoints" / "step_4")
    resumed = pretrain(tiny_args(tiny_corpus, resumed_dir, resume_from_checkpoint="latest"))
    again = load_file(resumed_dir / "model.safetensors")
    assert final.keys() == again.keys()
    for name in final:
        assert torch.equal(final[name], again[name]), name
    def losses(history):
        return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in history["train"]]

    assert losses(resumed["history"]) == losses(straight["history"])  # the same losses, logged the same way
    assert resumed["eval"] == straight["eval"]


def test_batches_masked_in_loader_workers_train_exactly_as_in_the_main_process(tiny_corpus, tmp_path):
    """Padding and masking run in the DataLoader workers (`make_batch`): with 2 workers and gradient accumulation the
    run ends with the same weights as with none, so each micro-batch got its update's task and masks."""
    finals = []
    for workers in (0, 2):
        output = tmp_path / f"workers{workers}"
        pretrain(tiny_args(tiny_corpus, output, dataloader_num_workers=workers, gradient_accumulation_steps=2,
                           max_steps=4, eval_steps=0, save_steps=0))
        finals.append(load_file(output / "model.safetensors"))
    assert finals[0].keys() == finals[1].keys()
    for name in finals[0]:
        assert torch.equal(finals[0][name], finals[1][name]), name


def test_loader_batches_keep_float16_frames_that_widen_to_exactly_the_float32_batch():
    """The loop's batches carry float16 frames (as stored) and are widened on the device: the values the model sees
    are exactly those of the float32 path, for every task (Mockingjay replacement included)."""
    from memobert import MEmoBertConfig
    from memobert.data.synthetic import random_corpus_rows
    from memobert.objectives import MODALITIES, PretrainingCollator, SpecialTokenIds, TaskSchedule
    from memobert.training.pretrain import MicroBatchBuilder, masking_generator, to_device

    config = MEmoBertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, visual_dim=6, acoustic_dim=5, mask_token_id=3)
    special = SpecialTokenIds(pad_token_id=0, cls_token_id=1, sep_token_id=2, mask_token_id=3, vocab_size=64)
    rows = random_corpus_rows(6, seed=2, visual_dim=6, acoustic_dim=5, token_range=(5, 60))
    assert rows[0][schema.ACOUSTIC_FEATS].dtype == np.float16
    for replacement in ("mask_vector", "mockingjay"):
        tasks = {"wwmlm": {}, "span_mafr": {"replacement": replacement}, "span_mvfr": {"replacement": replacement},
                 "span_mvfc_kl": {"replacement": replacement}}
        collator = PretrainingCollator(special, config, tasks=tasks, seed=0)
        schedule = TaskSchedule({name: 1 for name in tasks}, seed=0)
        builder = MicroBatchBuilder(collator, schedule, seed=0, accumulation=1, rank=0)
        for number in range(8):
            item = builder(rows, number)
            assert any(v.dtype == torch.float16 for v in item["batch"].values())
            task = collator.task(schedule.task_for_update(number))
            padded = collator.pad(rows, include=MODALITIES, face_soft_labels=True)
            expected = task.build_batch(padded, collator.special_token_ids, masking_generator(0, number, 0, 0))
            widened = to_device(item["batch"], torch.device("cpu"))
            assert widened.keys() == expected.keys()
            for key in expected:
                assert widened[key].dtype == expected[key].dtype and torch.equal(widened[key], expected[key]), key


def test_the_saved_model_loads_for_prompting(tiny_corpus, tmp_path):
    metrics = pretrain(tiny_args(tiny_corpus, tmp_path, save_steps=0, max_steps=4, eval_steps=0))
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 4
    assert set(metrics["last_train"]) >= {"step", "lr", "samples_per_s"}
    model = MEmoBertForPrompt.from_pretrained(tmp_path)
    assert model.config.visual_dim == 6 and model.config.acoustic_dim == 5
    assert model.config.label_token_ids == [4963, 3407, 8699, 6517]
    assert (tmp_path / "tokenizer.json").is_file()
    # The model card (memobert.model_card; its content is tested in tests/test_model_card.py).
    from huggingface_hub import metadata_load

    card = metadata_load(tmp_path / "README.md")
    assert card["library_name"] == "memobert" and "pretraining" in card["tags"] and "base_model" not in card
    assert "| updates | 4 |" in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize("streaming", [False, True], ids=["map-style", "streaming"])
def test_two_processes_train_in_sync_and_see_every_sample_once_per_epoch(tiny_corpus, tmp_path, streaming):
    args = tiny_args(
        tiny_corpus, tmp_path / "out", max_steps=9, save_steps=0, eval_steps=0, log_sample_ids=True, streaming=streaming
    )
    arguments = tmp_path / "args.json"
    arguments.write_text(json.dumps(asdict(args)))
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "tests" / "scripts" / "distributed_pretrain.py"), str(arguments),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["processes"] == 2
    first, second = metrics["parameter_fingerprints"]
    assert first == second  # both replicas hold the same parameters at the end

    seen = {0: Counter(), 1: Counter()}
    for rank in (0, 1):
        lines = (tmp_path / "out" / "sample_ids" / f"rank{rank}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert len(records) == 9  # each rank trained every update
        for record in records:
            seen[record["epoch"]].update({(rank, u) for u in record["ids"]} and record["ids"])
    expected = training_ids(tiny_corpus)
    assert sorted(seen[0].elements()) == expected  # the first epoch: every training row exactly once, over both ranks


def test_a_corpus_without_face_classes_pretrains_the_frame_tasks_and_refuses_span_mvfc_kl(tmp_path):
    """Corpora made with an `hf:` image encoder have no expression classes (num_face_classes 0)."""
    from memobert.data.synthetic import write_random_corpus
    from memobert.training.arguments import ConfigError

    corpus = tmp_path / "corpus"
    write_random_corpus(corpus, 24, rows_per_shard=24, seed=1, visual_dim=6, acoustic_dim=5, num_face_classes=0)
    with pytest.raises(ConfigError, match="span_mvfc_kl has nothing to predict.*--tasks wwmlm span_mvfr span_mafr"):
        pretrain(tiny_args(corpus, tmp_path / "refused"))
    metrics = pretrain(tiny_args(corpus, tmp_path / "run", tasks=["wwmlm", "span_mvfr", "span_mafr"],
                                 task_ratios=[2, 1, 1], max_steps=2, eval_steps=2, save_steps=10))
    assert metrics["last_train"]["step"] == 2
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["num_face_classes"] == 0 and "span_mvfc_kl" not in config["pretraining_tasks"]
