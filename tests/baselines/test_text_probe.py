"""The text anchor (`text_probe`): frozen mean-pooled MiniLM sentence embeddings + logistic regression with C chosen
on the validation rows; and the validated probe it shares with the eGeMAPS anchor, on hand-made feature matrices."""

import numpy as np
import pytest
import torch

from memobert.baselines import BASELINES, ValidatedProbe, build_baseline

ANGRY = ["i am furious about the {}", "the {} makes me so angry", "i hate this {}, it is infuriating",
         "how dare you break my {}, i am livid"]
HAPPY = ["i love the {}, what a joy", "the {} makes me so happy", "what a wonderful {}, i am delighted",
         "this {} is great, i feel cheerful"]
TRAIN_NOUNS, VALIDATION_NOUNS, TEST_NOUNS = ["car", "phone", "letter"], ["garden", "song"], ["house", "dinner", "game"]


def sentences(nouns):
    texts = [t.format(n) for n in nouns for t in ANGRY] + [t.format(n) for n in nouns for t in HAPPY]
    return texts, np.repeat([0, 1], len(texts) // 2)


def as_batches(texts, labels=None, size=5):
    out = []
    for start in range(0, len(texts), size):
        batch = {"texts": texts[start:start + size]}
        if labels is not None:
            batch["labels"] = torch.tensor(labels[start:start + size])
        out.append(batch)
    return out


def test_registered_as_a_classical_text_system_that_selects_on_validation():
    spec = BASELINES["text_probe"]
    assert spec.kind == "classical" and spec.selects_on_validation and spec.extra_keys == ("texts",)
    model = build_baseline("text_probe", num_classes=4)
    assert model.config.modalities == ("text",) and model.config.text_model == "minilm"
    with pytest.raises(ValueError, match="text only"):
        build_baseline("text_probe", modalities=("acoustic",))
    with pytest.raises(ValueError, match="C > 0"):
        build_baseline("text_probe", c_grid=(0.0,))


def test_frozen_minilm_embeddings_separate_real_sentences_by_emotion(minilm_path):
    model = build_baseline("text_probe", num_classes=2, text_model=minilm_path, c_grid=(0.01, 1.0))
    model.fit(as_batches(*sentences(TRAIN_NOUNS)), as_batches(*sentences(VALIDATION_NOUNS)))
    assert [p["C"] for p in model.search] == [0.01, 1.0]
    assert model.selected["validation"]["uar"] == max(p["validation"]["uar"] for p in model.search)
    assert model.selection_note().startswith("best validation UAR over C (2 logistic regressions fitted")
    texts, labels = sentences(TEST_NOUNS)  # nouns never seen in training or validation
    assert model.evaluate(as_batches(texts, labels))["uar"] >= 0.9


def test_embeddings_are_frozen_mean_pooled_cached_and_zero_for_empty_text(minilm_path):
    from transformers import AutoModel, AutoTokenizer

    model = build_baseline("text_probe", text_model=minilm_path)
    vectors = model.embed(["i am sad", "", "i am sad"])
    assert vectors.shape == (3, 384) and not vectors[1].any()
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert list(model._cache) == ["i am sad"]  # each distinct string encoded once
    tokenizer, encoder = AutoTokenizer.from_pretrained(minilm_path), AutoModel.from_pretrained(minilm_path).eval()
    with torch.no_grad():
        hidden = encoder(**tokenizer(["i am sad"], return_tensors="pt")).last_hidden_state
    np.testing.assert_allclose(vectors[0], hidden[0].mean(0).numpy(), atol=1e-5)
    assert not model._embedder.model.training  # frozen: eval mode (no dropout), encoded under no_grad


def test_the_validated_probe_keeps_the_best_validation_point_and_never_looks_at_test_rows():
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    def make(point):
        return LogisticRegression() if point["kind"] == "logistic" else DummyClassifier(strategy="most_frequent")

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    x = rng.standard_normal((60, 3)) + 4.0 * y[:, None]
    probe = ValidatedProbe(make, [{"kind": "constant"}, {"kind": "logistic"}], {"kind": "constant"}, 2)
    probe.fit_features(x, y, x[::2], y[::2])
    assert probe.selected["kind"] == "logistic" and probe.selected["validation"]["uar"] == 1.0
    assert [p["kind"] for p in probe.search] == ["constant", "logistic"]
    assert probe.search[0]["validation"]["uar"] == 0.5
    # a validation fold on which the constant is as good as anything: the earliest point wins the tie
    probe.fit_features(x, y, x[:5], y[:5])
    assert probe.selected["kind"] == "constant"
    # without validation rows: the default point only; the scaler holds the training rows' statistics
    probe.fit_features(x, y)
    assert probe.search == [{"kind": "constant"}] and probe.selection_note("kind").startswith("none (no validation")
    np.testing.assert_allclose(probe.scaler.mean_, x.mean(0))
    with pytest.raises(ValueError, match="single class"):
        probe.fit_features(x[:10], y[:10])
    with pytest.raises(ValueError, match="non-empty grid"):
        ValidatedProbe(make, [], {"kind": "constant"}, 2)
