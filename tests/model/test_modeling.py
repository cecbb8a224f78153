"""The MEmoBERT model in Hugging Face conventions: BERT equivalence, padding, modality subsets, heads, contracts (the
processor: test_processor.py)."""

import itertools
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForPreTraining,
    BertModel,
)

from memobert import (
    MEmoBertConfig,
    MEmoBertForPreTraining,
    MEmoBertForPrompt,
    MEmoBertForSequenceClassification,
    MEmoBertModel,
)

from tests.support.models import tiny_config_kwargs

MODALITIES = ("text", "visual", "acoustic")


def make_inputs(config: MEmoBertConfig, batch=3, text_len=7, visual_len=5, acoustic_len=9, seed=0, pad=True):
    """Random inputs with ragged real lengths per sample (right padding) in every segment."""
    g = torch.Generator().manual_seed(seed)
    inputs = {
        "input_ids": torch.randint(1000, 2000, (batch, text_len), generator=g),
        "attention_mask": torch.ones(batch, text_len, dtype=torch.long),
        "visual_feats": torch.randn(batch, visual_len, config.visual_dim, generator=g),
        "visual_mask": torch.ones(batch, visual_len, dtype=torch.long),
        "acoustic_feats": torch.randn(batch, acoustic_len, config.acoustic_dim, generator=g),
        "acoustic_mask": torch.ones(batch, acoustic_len, dtype=torch.long),
    }
    if pad:
        for row in range(1, batch):
            inputs["attention_mask"][row, text_len - row :] = 0
            inputs["input_ids"][row, text_len - row :] = 0
            inputs["visual_mask"][row, visual_len - row :] = 0
            inputs["acoustic_mask"][row, acoustic_len - 2 * row :] = 0
    return inputs


def subset(inputs: dict, modalities) -> dict:
    keys = {
        "text": ("input_ids", "attention_mask"),
        "visual": ("visual_feats", "visual_mask"),
        "acoustic": ("acoustic_feats", "acoustic_mask"),
    }
    return {k: inputs[k] for m in modalities for k in keys[m]}


@pytest.fixture
def tiny_bert_dir(tmp_path):
    """A tiny random BERT with MLM + NSP heads saved like a hub checkpoint (safetensors)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    BertForPreTraining(config).save_pretrained(tmp_path / "tiny-bert")
    return str(tmp_path / "tiny-bert")


# ---------------------------------------------------------------------------------------------------------------------
# BERT equivalence
# ---------------------------------------------------------------------------------------------------------------------


def assert_text_only_equals_bert(path: str, tokenizer) -> None:
    memobert = MEmoBertModel.from_bert(path).eval()
    bert = BertModel.from_pretrained(path).eval()
    batch = tokenizer(
        ["I can't believe you did that!", "fine.", "well, what do you want me to say about it?"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        ours = memobert(**batch).last_hidden_state
        theirs = bert(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert ours.shape == theirs.shape
    assert (ours - theirs)[real].abs().max().item() <= 1e-5


def test_from_bert_matches_bert_on_real_minilm_weights(minilm_path, tokenizer):
    assert_text_only_equals_bert(minilm_path, tokenizer)


def test_from_bert_matches_bert_on_tiny_random_bert(tiny_bert_dir, tokenizer):
    assert_text_only_equals_bert(tiny_bert_dir, tokenizer)


def test_from_bert_loads_the_mlm_head_and_ties_it(tiny_bert_dir):
    bert = BertForPreTraining.from_pretrained(tiny_bert_dir)
    model = MEmoBertForPreTraining.from_bert(tiny_bert_dir, visual_dim=6, acoustic_dim=5)
    ours, theirs = model.cls.predictions, bert.cls.predictions
    torch.testing.assert_close(ours.transform.dense.weight, theirs.transform.dense.weight)
    torch.testing.assert_close(ours.bias, theirs.bias)
    assert ours.decoder.weight is model.memobert.embeddings.word_embeddings.weight
    torch.testing.assert_close(model.memobert.pooler.dense.weight, bert.bert.pooler.dense.weight)
    assert model.config.visual_dim == 6 and model.config.hidden_size == 32


def test_from_bert_sets_verbalizer_from_the_checkpoint_tokenizer(minilm_path, tokenizer):
    model = MEmoBertForPrompt.from_bert(minilm_path)
    assert model.config.label_token_ids == tokenizer.convert_tokens_to_ids(["anger", "happy", "neutral", "sad"])
    assert model.config.mask_token_id == tokenizer.mask_token_id


# ---------------------------------------------------------------------------------------------------------------------
# Padding and modality subsets
# ---------------------------------------------------------------------------------------------------------------------


def test_padding_does_not_change_real_positions(tiny_config):
    torch.manual_seed(0)
    model = MEmoBertModel(tiny_config).eval()
    base = make_inputs(tiny_config, batch=2, pad=True)
    padded = {}
    extra = {"input_ids": 4, "visual_feats": 3, "acoustic_feats": 5}
    for key, value in base.items():
        grow = extra.get(key) or extra.get(key.replace("attention_mask", "input_ids").replace("_mask", "_feats"))
        pad_shape = list(value.shape)
        pad_shape[1] = grow
        filler = torch.randn(pad_shape) * 100 if value.is_floating_point() else torch.full(pad_shape, 7)
        if key.endswith("mask"):
            filler = torch.zeros(pad_shape, dtype=value.dtype)
        padded[key] = torch.cat([value, filler.to(value.dtype)], dim=1)
    with torch.no_grad():
        a = model(**base)
        b = model(**padded)
    for name, mask_key in (("text", "attention_mask"), ("visual", "visual_mask"), ("acoustic", "acoustic_mask")):
        real = base[mask_key].bool()
        short = getattr(a, f"{name}_hidden_state")
        long = getattr(b, f"{name}_hidden_state")[:, : short.shape[1]]
        assert (short - long)[real].abs().max().item() <= 1e-5, name
    torch.testing.assert_close(a.pooler_output, b.pooler_output, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "modalities", [c for r in (1, 2, 3) for c in itertools.combinations(MODALITIES, r)], ids="+".join
)
def test_every_modality_subset_is_a_valid_input(tiny_config, modalities):
    model = MEmoBertModel(tiny_config).eval()
    inputs = subset(make_inputs(tiny_config), modalities)
    with torch.no_grad():
        out = model(**inputs)
    lengths = {"text": 7, "visual": 5, "acoustic": 9}
    assert out.last_hidden_state.shape == (3, sum(lengths[m] for m in modalities), tiny_config.hidden_size)
    assert out.pooler_output.shape == (3, tiny_config.hidden_size)
    assert torch.isfinite(out.last_hidden_state).all()
    for m in MODALITIES:
        assert (getattr(out, f"{m}_hidden_state") is None) == (m not in modalities)


def test_a_sample_missing_a_modality_equals_that_sample_alone_without_it(tiny_config):
    model = MEmoBertModel(tiny_config).eval()
    inputs = make_inputs(tiny_config, batch=2, pad=False)
    inputs["visual_mask"][0] = 0  # sample 0 has no face at all
    with torch.no_grad():
        mixed = model(**inputs)
        alone = model(**{k: v[:1] for k, v in subset(inputs, ("text", "acoustic")).items()})
    torch.testing.assert_close(mixed.text_hidden_state[:1], alone.text_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed.acoustic_hidden_state[:1], alone.acoustic_hidden_state, atol=1e-5, rtol=0)


def test_masked_frames_get_the_learned_mask_vector(tiny_config):
    model = MEmoBertModel(tiny_config).eval()
    inputs = make_inputs(tiny_config, batch=1, pad=False)
    masked = torch.zeros(1, 5, dtype=torch.bool)
    masked[0, 2] = True
    other = dict(inputs, visual_feats=inputs["visual_feats"].clone())
    other["visual_feats"][0, 2] = 1e3  # what a masked frame held does not matter
    with torch.no_grad():
        a = model(**inputs, visual_bool_masked_pos=masked).last_hidden_state
        b = model(**other, visual_bool_masked_pos=masked).last_hidden_state
        c = model(**other).last_hidden_state
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-3


def test_attention_goes_through_torch_sdpa(tiny_config, monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    model = MEmoBertModel(tiny_config).eval()
    model(**make_inputs(tiny_config))
    assert len(calls) == tiny_config.num_hidden_layers


def test_too_many_frames_is_a_clear_error(tiny_config):
    model = MEmoBertModel(tiny_config)
    with pytest.raises(ValueError, match="max_visual_length"):
        model(visual_feats=torch.randn(1, tiny_config.max_visual_length + 1, tiny_config.visual_dim))
    with pytest.raises(ValueError, match="visual_dim"):
        model(visual_feats=torch.randn(1, 3, tiny_config.visual_dim + 1))
    with pytest.raises(ValueError, match="at least one"):
        model()


# ---------------------------------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------------------------------


def test_pretraining_heads_are_tied(tiny_config):
    model = MEmoBertForPreTraining(tiny_config)
    assert model.cls.predictions.decoder.weight is model.memobert.embeddings.word_embeddings.weight
    inputs = make_inputs(tiny_config, batch=2, pad=False)
    masked = torch.zeros(2, 5, dtype=torch.bool)
    masked[:, 1:3] = True
    out = model(**inputs, visual_bool_masked_pos=masked, visual_targets=inputs["visual_feats"])
    out.losses["span_mvfr"].backward()
    # The regression decoder is the transposed input projection: it receives gradient through the head too.
    assert model.memobert.visual_embeddings.projection.weight.grad is not None
    assert out.predictions["span_mvfr"].shape == (4, tiny_config.visual_dim)
    assert out.loss is out.losses["span_mvfr"] or torch.equal(out.loss, out.losses["span_mvfr"])


def test_prompt_logits_are_the_mask_logits_of_the_label_words(tiny_config):
    torch.manual_seed(0)
    model = MEmoBertForPrompt(tiny_config).eval()
    ids = torch.tensor([[101, 1045, 2572, 103, 1012, 102], [101, 103, 1012, 102, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
        hidden = model.memobert(input_ids=ids, attention_mask=mask).text_hidden_state
        full = model.cls(hidden)
    expected = torch.stack([full[0, 3], full[1, 1]])[:, tiny_config.label_token_ids]
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=0)


def test_verbalizer_ignores_a_huge_logit_on_a_non_label_word(tiny_config):
    torch.manual_seed(0)
    model = MEmoBertForPrompt(tiny_config).eval()
    ids = torch.tensor([[101, 1045, 2572, 103, 1012, 102]] * 2)
    with torch.no_grad():
        before = model(input_ids=ids).logits.argmax(-1)
        model.cls.predictions.bias[2054] = 1e6  # "what": not a label word
        after = model(input_ids=ids).logits.argmax(-1)
        # Nudge one label word: the prediction follows it, so the test can fail.
        model.cls.predictions.bias[tiny_config.label_token_ids[2]] = 1e4
        nudged = model(input_ids=ids).logits.argmax(-1)
    assert torch.equal(before, after)
    assert nudged.tolist() == [2, 2]


def test_prompt_losses(tiny_config):
    model = MEmoBertForPrompt(tiny_config).eval()
    ids = torch.tensor([[101, 1045, 2572, 103, 1012, 102]])
    labels = torch.tensor([1])
    out = model(input_ids=ids, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    model.config.prompt_loss = "vocabulary"
    vocab = model(input_ids=ids, labels=labels)
    assert vocab.loss > out.loss  # the whole vocabulary competes for the [MASK]
    with pytest.raises(ValueError, match="exactly one"):
        model(input_ids=torch.tensor([[101, 1045, 102]]))


def test_multi_piece_label_word_is_an_error_naming_it(tiny_config, tokenizer):
    model = MEmoBertForPrompt(tiny_config)
    with pytest.raises(ValueError, match="grumpiness"):
        model.set_label_words(["anger", "grumpiness"], tokenizer)
    model.set_label_words(["angry", "happy"], tokenizer)
    assert model.config.label_token_ids == tokenizer.convert_tokens_to_ids(["angry", "happy"])
    assert model.config.id2label == {0: "angry", 1: "happy"}


def test_sequence_classification_head(tiny_config):
    model = MEmoBertForSequenceClassification(tiny_config)
    head = model.classifier
    assert (head.dense.in_features, head.dense.out_features) == (32, 64)
    assert head.out_proj.out_features == 4 == tiny_config.num_labels  # one class per label word
    inputs = make_inputs(tiny_config)
    out = model(**inputs, labels=torch.tensor([0, 1, 3]))
    assert out.logits.shape == (3, 4) and out.loss.ndim == 0
    out.loss.backward()
    assert model.memobert.acoustic_embeddings.projection.weight.grad is not None


# ---------------------------------------------------------------------------------------------------------------------
# Hugging Face contracts
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_class", [MEmoBertModel, MEmoBertForPreTraining, MEmoBertForPrompt, MEmoBertForSequenceClassification]
)
def test_save_and_load_round_trip_in_safetensors(tiny_config, tmp_path, model_class):
    torch.manual_seed(0)
    model = model_class(tiny_config).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not any(name.endswith(".bin") for name in os.listdir(tmp_path))
    loaded = model_class.from_pretrained(tmp_path).eval()
    inputs = make_inputs(tiny_config)
    if model_class is MEmoBertForPrompt:
        inputs["input_ids"][:, 2] = tiny_config.mask_token_id
    with torch.no_grad():
        a, b = model(**inputs), loaded(**inputs)
    key = "last_hidden_state" if model_class is MEmoBertModel else "logits"
    key = "prediction_logits" if model_class is MEmoBertForPreTraining else key
    torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)
    if hasattr(loaded, "cls"):
        assert loaded.cls.predictions.decoder.weight is loaded.memobert.embeddings.word_embeddings.weight


def test_auto_classes_resolve_memobert(tiny_config, tmp_path):
    MEmoBertForPreTraining(tiny_config).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MEmoBertConfig)
    assert AutoConfig.for_model("memobert").__class__ is MEmoBertConfig
    assert isinstance(AutoModel.from_pretrained(tmp_path), MEmoBertModel)
    assert isinstance(AutoModelForPreTraining.from_pretrained(tmp_path), MEmoBertForPreTraining)
    assert isinstance(AutoModelForSequenceClassification.from_pretrained(tmp_path), MEmoBertForSequenceClassification)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config):
    torch.manual_seed(0)
    model = MEmoBertForSequenceClassification(tiny_config).train()
    inputs = make_inputs(tiny_config)
    labels = torch.tensor([0, 1, 2])

    def grads():
        model.zero_grad()
        model(**inputs, labels=labels).loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = grads()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.memobert.encoder.layer)
    checkpointed = grads()
    assert len(plain) == len(checkpointed)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_resize_token_embeddings_keeps_the_mlm_decoder_tied(tiny_config):
    model = MEmoBertForPreTraining(tiny_config)
    new_size = tiny_config.vocab_size + 3
    model.resize_token_embeddings(new_size)
    decoder = model.get_output_embeddings()
    assert decoder.weight is model.memobert.embeddings.word_embeddings.weight
    assert decoder.weight.shape[0] == new_size == model.config.vocab_size
    assert model.cls.predictions.bias.shape[0] == new_size
    out = model(input_ids=torch.tensor([[101, new_size - 1, 102]]))
    assert out.prediction_logits.shape[-1] == new_size


def test_the_config_checks_what_it_is_given():
    with pytest.raises(ValueError, match="face_class_names"):
        MEmoBertConfig(num_face_classes=7, face_class_names=list("abc"))
    with pytest.raises(ValueError, match="prompt_template"):
        MEmoBertConfig(prompt_template="i am [MASK]")
    config = MEmoBertConfig(**tiny_config_kwargs(num_face_classes=7, face_class_names=list("abcdefg")))
    assert config.to_dict()["face_class_names"] == list("abcdefg")


def test_mean_pooling_averages_every_real_position_and_ignores_padding(tiny_config):
    tiny_config.classifier_pooling = "mean"
    torch.manual_seed(0)
    model = MEmoBertModel(tiny_config).eval()
    inputs = make_inputs(tiny_config, batch=2, pad=True)
    with torch.no_grad():
        out = model(**inputs)
        mask = out.attention_mask.unsqueeze(-1)
        mean = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
        expected = model.pooler.activation(model.pooler.dense(mean))
    torch.testing.assert_close(out.pooler_output, expected, atol=1e-6, rtol=0)
    cls_model = MEmoBertModel(MEmoBertConfig(**{**tiny_config.to_dict(), "classifier_pooling": "cls"})).eval()
    cls_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(cls_model(**inputs).pooler_output, out.pooler_output)
    with pytest.raises(ValueError, match="classifier_pooling"):
        MEmoBertConfig(classifier_pooling="max")
