"""The downstream recipe's levers that make every modality count: modality dropout (training batches in the sub-cases
of the corpus' modalities), the frame embedders' own learning rate, mean pooling; and class-balanced sampling for an
imbalanced corpus."""

import numpy as np
import pytest
import torch

from memobert.downstream import run_downstream
from memobert.downstream.batching import BatchBuilder, ModalityDropout, proper_subcases, training_batches
from memobert.downstream.corpus import load_downstream_corpus
from memobert.training.optimization import build_optimizer
from tests.support.corpora import corpus_rows, only_run, tiny_args, write_corpus


def test_proper_subcases_are_every_non_empty_proper_subset_in_lva_order():
    assert proper_subcases("LVA") == ["L", "V", "A", "LV", "LA", "VA"]
    assert proper_subcases("LA") == ["L", "A"]
    assert proper_subcases("A") == []


def test_modality_dropout_draws_subcases_at_its_rate_and_is_seeded():
    never = ModalityDropout("LVA", 0.0, seed=3)
    assert {never() for _ in range(50)} == {"LVA"}
    draw = ModalityDropout("LVA", 0.5, seed=3)
    cases = [draw() for _ in range(2000)]
    assert abs(cases.count("LVA") / len(cases) - 0.5) < 0.05
    assert set(cases) == {"LVA", *proper_subcases("LVA")}
    again = ModalityDropout("LVA", 0.5, seed=3)
    assert [again() for _ in range(2000)] == cases
    assert {ModalityDropout("A", 1.0, seed=0)() for _ in range(10)} == {"A"}  # one modality: nothing to drop


def test_the_corpus_knows_which_modalities_it_holds(tmp_path, tokenizer, downstream):
    from memobert.data import schema
    from memobert.data.labels import EmotionLabels

    labels = EmotionLabels(["anger", "happiness", "neutral", "sadness"])
    assert load_downstream_corpus(downstream["corpus"], labels).modalities == "LVA"
    rows = corpus_rows(tokenizer)
    for row in rows:  # speech only, as in EmoDB without its sentences: no text, no faces
        row[schema.TEXT], row[schema.INPUT_IDS], row[schema.WORD_IDS] = "", [], []
        row[schema.VISUAL_FEATS] = np.zeros((0, 6), np.float16)
        row[schema.FACE_SOFT_LABELS] = np.zeros((0, 8), np.float16)
    write_corpus(tmp_path / "speech", rows)
    assert load_downstream_corpus(tmp_path / "speech", labels).modalities == "A"


def test_class_balanced_training_batches_draw_every_class_equally_often_and_are_seeded():
    rows = np.arange(100, 1100)  # corpus row numbers: 700 of class 0, 200 of class 1, 100 of class 2
    labels = np.repeat([0, 1, 2], [700, 200, 100])
    of_row = dict(zip(rows.tolist(), labels.tolist()))
    drawn = np.concatenate([next(batches) for batches in [training_batches(rows, 50, 7, labels=labels)]
                            for _ in range(120)])
    shares = np.bincount([of_row[r] for r in drawn.tolist()], minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.03)
    again = training_batches(rows, 50, 7, labels=labels)
    np.testing.assert_array_equal(np.concatenate([next(again) for _ in range(120)]), drawn)
    plain = np.concatenate([b for _, b in zip(range(20), training_batches(rows, 50, 7))])
    assert sorted(plain.tolist()) == rows.tolist()  # without labels: one shuffled pass over the rows
    with pytest.raises(ValueError, match="3 labels for 1000 rows"):
        next(training_batches(rows, 50, 7, labels=labels[:3]))


def test_the_runner_samples_class_balanced_on_request(downstream, tmp_path, monkeypatch):
    from memobert.downstream import runner

    given = []

    def recording(rows, batch_size, seed, rank=0, world_size=1, labels=None):
        given.append((np.asarray(rows).copy(), None if labels is None else np.asarray(labels).copy()))
        return training_batches(rows, batch_size, seed, rank, world_size, labels)

    monkeypatch.setattr(runner, "training_batches", recording)
    for balanced in (True, False):
        run_downstream(tiny_args(downstream, tmp_path / str(balanced), setting="direct", max_steps=2,
                                 class_balanced_sampling=balanced, evaluate_at_start=False, modality_cases=["LVA"]))
    (rows, labels), (_, plain) = given
    from memobert.data.labels import EmotionLabels

    corpus = load_downstream_corpus(downstream["corpus"], EmotionLabels(["anger", "happiness", "neutral", "sadness"]))
    assert plain is None and labels is not None and only_run(tmp_path / "True", "direct")["steps_trained"] == 2
    np.testing.assert_array_equal(labels, corpus.labels[rows])  # each training row's own class


@pytest.mark.parametrize("setting", ["finetune", "prompt"])
def test_training_batches_take_the_subcases_with_modality_dropout(downstream, tmp_path, monkeypatch, setting):
    seen = []
    original = BatchBuilder.__call__

    def recording(self, rows, case="LVA", row_ids=False):
        if not row_ids:  # training batches (predictions ask for row ids)
            seen.append(case)
        return original(self, rows, case, row_ids)

    monkeypatch.setattr(BatchBuilder, "__call__", recording)
    args = tiny_args(downstream, tmp_path / "out", setting=setting, modality_dropout=1.0, max_steps=12,
                     evaluate_at_start=False, modality_cases=["A", "LVA"])
    run_downstream(args)
    assert len(seen) == 12 and set(seen) <= set(proper_subcases("LVA")) and len(set(seen)) > 2
    assert only_run(tmp_path / "out", setting)["steps_trained"] == 12
    seen.clear()
    run_downstream(tiny_args(downstream, tmp_path / "full", setting=setting, max_steps=4, evaluate_at_start=False))
    assert seen == ["LVA"] * 4


def test_a_model_trained_and_selected_in_its_own_case(downstream, tmp_path, monkeypatch):
    from memobert.training import ConfigError

    training, predicted = [], []
    original = BatchBuilder.__call__

    def recording(self, rows, case="LVA", row_ids=False):
        (predicted if row_ids else training).append(case)
        return original(self, rows, case, row_ids)

    monkeypatch.setattr(BatchBuilder, "__call__", recording)
    args = tiny_args(downstream, tmp_path / "out", setting="finetune", train_modalities="A", max_steps=6,
                     eval_steps=3, modality_cases=["A", "LA", "LVA"])
    run_downstream(args)
    run = only_run(tmp_path / "out", "finetune-A")  # its own run name beside the full-input model's
    assert training == ["A"] * 6 and run["train_case"] == "A"
    assert "best validation UAR (A)" in run["selection"]
    assert len(run["validation_curve"]) == 3  # at the start and every 3 updates, in A; then each test case once
    assert predicted.index("LA") == predicted.count("A") > predicted.count("LA") == predicted.count("LVA")
    assert list(run["test"]) == ["A", "LA", "LVA"]

    training.clear()
    run_downstream(tiny_args(downstream, tmp_path / "dropout", setting="direct", train_modalities="AL",
                             modality_dropout=1.0, max_steps=10, evaluate_at_start=False, modality_cases=["A"]))
    assert set(training) == {"L", "A"}  # the sub-cases of LA only

    with pytest.raises(ConfigError, match="train_modalities 'AX'"):
        tiny_args(downstream, tmp_path / "bad", train_modalities="AX").validate()


def test_a_training_case_the_corpus_cannot_give_is_refused(downstream, tmp_path, tokenizer):
    from memobert.data import schema
    from memobert.training import ConfigError

    rows = corpus_rows(tokenizer)
    for row in rows:  # speech only
        row[schema.TEXT], row[schema.INPUT_IDS], row[schema.WORD_IDS] = "", [], []
        row[schema.VISUAL_FEATS] = np.zeros((0, 6), np.float16)
        row[schema.FACE_SOFT_LABELS] = np.zeros((0, 8), np.float16)
    write_corpus(tmp_path / "speech", rows)
    args = tiny_args({**downstream, "corpus": tmp_path / "speech"}, tmp_path / "out", setting="direct",
                     train_modalities="LV")
    with pytest.raises(ConfigError, match="the corpus has none of them \\(it has A\\)"):
        run_downstream(args)


def test_bad_recipe_values_are_reported(downstream, tmp_path):
    from memobert.training import ConfigError

    args = tiny_args(downstream, tmp_path, modality_dropout=1.5, embedder_learning_rate=0.0, classifier_pooling="max")
    with pytest.raises(ConfigError) as error:
        args.validate()
    for name in ("modality_dropout", "embedder_learning_rate", "classifier_pooling"):
        assert name in str(error.value)


def test_the_embedders_and_classifier_get_their_own_learning_rate(tiny_config):
    from memobert import MEmoBertForSequenceClassification
    from memobert.downstream import DownstreamArguments

    model = MEmoBertForSequenceClassification(tiny_config)
    args = DownstreamArguments(weight_decay=0.01)
    plain = build_optimizer(model, args, 1e-4, torch.device("cpu"))
    assert {group["lr"] for group in plain.param_groups} == {1e-4} and len(plain.param_groups) == 2
    split = build_optimizer(model, args, 1e-4, torch.device("cpu"), embedder_learning_rate=1e-3)
    rate = {id(p): group["lr"] for group in split.param_groups for p in group["params"]}
    decay = {id(p): group["weight_decay"] for group in split.param_groups for p in group["params"]}
    for name, param in model.named_parameters():
        fast = name.startswith(("memobert.visual_embeddings.", "memobert.acoustic_embeddings.", "classifier."))
        assert rate[id(param)] == (1e-3 if fast else 1e-4), name
        assert decay[id(param)] == (0.0 if param.ndim < 2 or "norm" in name.lower() else 0.01), name
    assert sum(len(g["params"]) for g in split.param_groups) == len(list(model.parameters()))


def test_mean_pooling_reaches_the_finetune_classifier(downstream, tmp_path):
    from memobert import MEmoBertForSequenceClassification

    args = tiny_args(downstream, tmp_path, setting="finetune", classifier_pooling="mean", max_steps=2,
                     save_models=True, modality_cases=["LVA"])
    run_downstream(args)
    (folder,) = (tmp_path / "finetune" / "models").iterdir()
    assert MEmoBertForSequenceClassification.from_pretrained(folder).config.classifier_pooling == "mean"
