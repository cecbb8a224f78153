"""Pretraining objectives: registry, collator, losses against hand computations, and the task schedule."""

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from memobert import MEmoBertConfig, MEmoBertForPreTraining
from memobert.modeling_memobert import PRETRAINING_HEADS
from memobert.objectives import (
    TASKS,
    PaddedBatch,
    PretrainingCollator,
    PretrainingTask,
    SpecialTokenIds,
    TaskSchedule,
    WholeWordMLMHead,
    available_tasks,
    compute_task_loss,
    get_task,
    register_task,
)
from tests.support.models import objectives_config as make_config

TASK_NAMES = ("wwmlm", "span_mafr", "span_mvfr", "span_mvfc_kl")
# What a batch may hold: the model's inputs and the targets its heads read (plus the Mockingjay target positions).
FORWARD_ARGS = (set(inspect.signature(MEmoBertForPreTraining.forward).parameters) - {"self", "targets"}) | {
    "labels", "visual_targets", "acoustic_targets", "face_soft_labels", "visual_target_pos", "acoustic_target_pos"
}
TARGET_KEYS = {"labels", "visual_targets", "acoustic_targets", "face_soft_labels"}


def make_rows(text_lengths, visual_lengths, acoustic_lengths, config, seed=0, vocab=(1000, 20000)):
    """Corpus rows as the schema stores them (float16 frames); each word is 1-3 pieces."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (n_text, n_vis, n_ac) in enumerate(zip(text_lengths, visual_lengths, acoustic_lengths)):
        word_ids, word = [], 0
        while len(word_ids) < n_text:
            word_ids += [word] * int(rng.integers(1, 4))
            word += 1
        logits = rng.normal(size=(n_vis, config.num_face_classes)) * 2
        soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        rows.append(
            {
                "utterance_id": f"utt{i}",
                "input_ids": rng.integers(*vocab, size=n_text).tolist(),
                "word_ids": word_ids[:n_text],
                "visual_feats": rng.normal(size=(n_vis, config.visual_dim)).astype(np.float16),
                "face_soft_labels": soft.astype(np.float16),
                "acoustic_feats": rng.normal(size=(n_ac, config.acoustic_dim)).astype(np.float16),
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------------------


def test_registry_holds_the_four_tasks_with_their_heads_and_losses():
    assert set(TASK_NAMES) <= set(available_tasks())
    model = MEmoBertForPreTraining(make_config())
    assert list(model.heads) == ["wwmlm", "span_mvfr", "span_mafr", "span_mvfc_kl"]
    for name in TASK_NAMES:
        task = get_task(name)
        assert task.name == name and task.head(model) is model.heads[name]
        assert isinstance(model.heads[name], task.head_class)
    assert not list(model.heads["wwmlm"].parameters())  # WWMLM predicts through BERT's MLM head, model.cls
    assert get_task("span_mvfr").masker.ratio == 0.2 and get_task("span_mafr").masker.ratio == 0.15
    assert get_task("span_mafr", replacement="mockingjay", allow_overlap=True).masker.allow_overlap
    with pytest.raises(KeyError, match="registered tasks are"):
        get_task("itm")


def test_a_new_task_is_one_class_and_a_register_call(collator, config):
    @register_task
    class FirstWordTask(PretrainingTask):
        """Predict the first word piece only (a toy task)."""

        name = "first_piece"
        modality = "text"
        head_class = WholeWordMLMHead

        def build_batch(self, padded, special_token_ids, generator=None):
            batch = padded.model_inputs()
            labels = torch.full_like(padded.input_ids, -100)
            labels[:, 1] = padded.input_ids[:, 1]
            batch["input_ids"] = padded.input_ids.clone()
            batch["input_ids"][:, 1] = special_token_ids.mask_token_id
            batch["labels"] = labels
            return batch

    try:
        rows = make_rows([4, 6], [0, 0], [3, 0], config)
        batch = PretrainingCollator(collator.special_token_ids, config, tasks=["first_piece", "wwmlm"])(
            rows, "first_piece"
        )
        assert (batch["labels"] != -100).sum() == 2
        model = MEmoBertForPreTraining(MEmoBertConfig.from_dict({**config.to_dict(), "pretraining_tasks": ["first_piece"]}))
        loss = compute_task_loss(model, batch, "first_piece")
        assert torch.isfinite(loss)
        with pytest.raises(ValueError, match="already registered"):

            @register_task
            class Clash(FirstWordTask):
                name = "wwmlm"

    finally:
        TASKS.pop("first_piece", None)
        PRETRAINING_HEADS.pop("first_piece", None)
    assert "first_piece" not in available_tasks()


def test_task_loss_fails_clearly_on_another_tasks_batch(collator, config):
    rows = make_rows([5], [6], [6], config)
    output = MEmoBertForPreTraining(config)(**collator(rows, "span_mvfr"))
    with pytest.raises(ValueError, match="no loss of task 'wwmlm'"):
        get_task("wwmlm").loss(output)


# ----------------------------------------------------------------------------------------------------------------------
# Collator
# ----------------------------------------------------------------------------------------------------------------------

rows_strategy = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 45), st.integers(0, 70)), min_size=1, max_size=5
)


@settings(max_examples=25, deadline=None)
@given(shapes=rows_strategy, task_name=st.sampled_from(TASK_NAMES), seed=st.integers(0, 2**31 - 1))
def test_collated_batches_pad_truncate_and_mask_only_what_they_should(tokenizer, shapes, task_name, seed):
    config = make_config()
    collator = PretrainingCollator(tokenizer, config, seed=seed)
    text, visual, acoustic = (list(x) for x in zip(*shapes))
    rows = make_rows(text, visual, acoustic, config, seed=seed)
    batch = collator(rows, task_name)
    padded = collator.pad(rows, include=("text", "visual", "acoustic"), face_soft_labels=True)

    assert set(batch) <= FORWARD_ARGS
    assert set(batch) & TARGET_KEYS == set(get_task(task_name).target_names)
    # Text: [CLS] first (max_text_length - 2) pieces [SEP], padding after; left out when no row has text.
    if any(text) or task_name == "wwmlm":
        ids, attention = padded.input_ids, padded.attention_mask
        for row, n in enumerate(text):
            kept = min(n, config.max_text_length - 2)
            expected = [101, *rows[row]["input_ids"][:kept], 102] if n else []
            assert ids[row, : len(expected)].tolist() == expected
            assert attention[row].sum() == len(expected) and (ids[row, len(expected) :] == 0).all()
    else:
        assert "input_ids" not in batch
    # Frames: the first max_*_length frames of each row, in float32, then zero padding.
    for name, lengths, limit in (
        ("visual", visual, config.max_visual_length),
        ("acoustic", acoustic, config.max_acoustic_length),
    ):
        if not any(lengths) and get_task(task_name).modality != name:
            assert f"{name}_feats" not in batch
            continue
        feats, mask = getattr(padded, f"{name}_feats"), getattr(padded, f"{name}_mask")
        for row, n in enumerate(lengths):
            kept = min(n, limit)
            assert mask[row].sum() == kept
            original = torch.from_numpy(rows[row][f"{name}_feats"][:kept].astype(np.float32))
            assert torch.equal(feats[row, :kept], original)
            assert (feats[row, kept:] == 0).all()

    # Masking: only the task's modality changes, only at its masked positions, never in padding or specials.
    task = get_task(task_name)
    for modality, key in (("text", "input_ids"), ("visual", "visual_feats"), ("acoustic", "acoustic_feats")):
        if key in batch and modality != task.modality:
            assert torch.equal(batch[key], getattr(padded, key))
    if task_name == "wwmlm":
        selected = batch["labels"] != -100
        assert not selected[padded.word_ids < 0].any()
        assert torch.equal(batch["input_ids"][~selected], padded.input_ids[~selected])
        assert torch.equal(batch["labels"][selected], padded.input_ids[selected])
        assert torch.equal(selected.any(dim=1), torch.tensor([n > 0 for n in text]))
    else:
        modality = task.modality
        masked = batch[f"{modality}_bool_masked_pos"]
        real = getattr(padded, f"{modality}_mask").bool()
        assert not masked[~real].any()
        assert torch.equal(masked.any(dim=1), real.any(dim=1))  # at least one frame per row with frames
        inputs, originals = batch[f"{modality}_feats"], getattr(padded, f"{modality}_feats")
        assert torch.equal(inputs[~masked], originals[~masked]) and (inputs[masked] == 0).all()
        target_key = task.target_names[0]
        source = padded.face_soft_labels if target_key == "face_soft_labels" else originals
        assert torch.equal(batch[target_key][masked], source[masked])
        assert (batch[target_key][~masked] == 0).all()


def test_an_mlm_batch_without_faces_and_a_visual_task_without_any_frames(collator, config):
    rows = make_rows([6, 4], [0, 0], [5, 0], config)
    mlm = collator(rows, "wwmlm")
    assert "visual_feats" not in mlm and "acoustic_feats" in mlm

    model = MEmoBertForPreTraining(config)
    for task_name in ("span_mvfr", "span_mvfc_kl"):
        batch = collator(rows, task_name)
        assert batch["visual_feats"].shape == (2, 1, config.visual_dim) and not batch["visual_mask"].any()
        assert not batch["visual_bool_masked_pos"].any()
        output = model(**batch)
        loss = get_task(task_name).loss(output)
        assert loss.item() == 0.0
        loss.backward()  # a valid graph: every head gets a (zero) gradient, so all ranks stay in step
        assert torch.count_nonzero(get_task(task_name).head(model).transform.dense.weight.grad) == 0
        model.zero_grad()

    no_text = make_rows([0, 0], [4, 5], [0, 0], config)
    batch = collator(no_text, "wwmlm")
    assert batch["input_ids"].shape == (2, 1) and (batch["labels"] == -100).all()
    assert model(**batch).losses["wwmlm"].item() == 0.0
    assert "input_ids" not in collator(no_text, "span_mvfr")


def test_rows_from_a_datasets_corpus_in_numpy_format(collator, config):
    datasets = pytest.importorskip("datasets")
    from memobert.data.schema import corpus_features

    rows = make_rows([5, 0], [3, 0], [0, 7], config)
    meta = dict(source="s.mp4", start=0.0, end=1.0, text="x", speaker_score=0.5, speaker="", label="", session="")
    corpus = datasets.Dataset.from_list(
        [{**meta, **row} for row in rows],
        features=corpus_features(config.visual_dim, config.acoustic_dim, config.num_face_classes),
    )
    for fmt in ("numpy", None):
        batch = collator(list(corpus.with_format(fmt)), "span_mvfc_kl")
        assert batch["visual_mask"].sum() == 3 and batch["acoustic_mask"].sum() == 7
        assert torch.equal(batch["input_ids"][0, 1:6], torch.tensor(rows[0]["input_ids"]))


def test_float16_rows_pad_exactly_as_their_float32_copies(collator, config):
    rows = make_rows([5, 0, 9], [3, 0, 12], [0, 7, 30], config, seed=2)  # float16 frames, as stored
    as_float32 = [{k: v.astype(np.float32) if isinstance(v, np.ndarray) else v for k, v in row.items()} for row in rows]
    mixed = [rows[0], as_float32[1], rows[2]]
    reference = collator.pad(as_float32, face_soft_labels=True)
    for variant in (rows, mixed):
        padded = collator.pad(variant, face_soft_labels=True)
        for name in ("visual_feats", "face_soft_labels", "acoustic_feats"):
            value, expected = getattr(padded, name), getattr(reference, name)
            assert value.dtype == torch.float32 and torch.equal(value, expected), name
            assert torch.equal(value.view(torch.int32), expected.view(torch.int32))  # bit for bit


def test_collator_errors_name_the_row_and_the_fix(tokenizer, collator, config):
    rows = make_rows([3], [4], [2], config)
    with pytest.raises(ValueError, match=r"'utt0'.*config.visual_dim"):
        collator([dict(rows[0], visual_feats=np.zeros((4, config.visual_dim + 1)))], "wwmlm")
    with pytest.raises(ValueError, match=r"'utt0'.*word_ids"):
        collator([dict(rows[0], word_ids=[0])], "wwmlm")
    with pytest.raises(ValueError, match=r"'utt0'.*face_soft_labels"):
        collator([dict(rows[0], face_soft_labels=None)], "span_mvfc_kl")
    collator([dict(rows[0], face_soft_labels=None)], "span_mvfr")  # only the KL task needs soft labels
    with pytest.raises(ValueError, match="mask_token_id"):
        PretrainingCollator(tokenizer, make_config(mask_token_id=4))
    with pytest.raises(KeyError, match="built with"):
        PretrainingCollator(tokenizer, config, tasks=["wwmlm"])(rows, "span_mvfr")


def test_a_seeded_collator_repeats_its_masks(tokenizer, config):
    rows = make_rows([12, 20, 7], [30, 12, 0], [40, 9, 64], config)
    for task_name in TASK_NAMES:
        a = PretrainingCollator(tokenizer, config, seed=7)(rows, task_name)
        b = PretrainingCollator(tokenizer, config, seed=7)(rows, task_name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    collator = PretrainingCollator(tokenizer, config, seed=7)
    first, second = collator(rows, "span_mafr"), collator(rows, "span_mafr")
    assert not torch.equal(first["acoustic_bool_masked_pos"], second["acoustic_bool_masked_pos"])


def test_mockingjay_batches_predict_frames_that_get_no_mask_vector(tokenizer, config):
    collator = PretrainingCollator(
        tokenizer, config, tasks=[get_task("span_mafr", ratio=0.5, replacement="mockingjay")], seed=0
    )
    rows = make_rows([3] * 8, [0] * 8, [60] * 8, config)
    batch = collator(rows, "span_mafr")
    target, by_vector = batch["acoustic_target_pos"], batch["acoustic_bool_masked_pos"]
    assert (by_vector & ~target).sum() == 0 and (target & ~by_vector).sum() > 0
    output = MEmoBertForPreTraining(config)(**batch)
    assert output.predictions["span_mafr"].shape[0] == target.sum()


# ----------------------------------------------------------------------------------------------------------------------
# Losses against hand computations
# ----------------------------------------------------------------------------------------------------------------------


def test_each_loss_equals_a_hand_computation(collator, config):
    torch.manual_seed(0)
    model = MEmoBertForPreTraining(config).eval()
    rows = make_rows([7, 3, 0], [5, 0, 4], [6, 8, 0], config, seed=1)
    text_len = 9  # [CLS] 7 pieces [SEP]
    visual_len, acoustic_len = 5, 8

    def transform(head, hidden):  # Linear -> GELU -> LayerNorm, written out
        t = head.transform
        h = F.gelu(hidden @ t.dense.weight.T + t.dense.bias)
        return F.layer_norm(h, (h.shape[-1],), t.LayerNorm.weight, t.LayerNorm.bias, t.LayerNorm.eps)

    for task_name in TASK_NAMES:
        task = get_task(task_name)
        batch = collator(rows, task)
        with torch.no_grad():
            output = model(**batch, output_hidden_states=True)
        last = output.hidden_states[-1]
        text, visual, acoustic = torch.split(last, [text_len, visual_len, acoustic_len], dim=1)
        if task_name == "wwmlm":
            selected = batch["labels"] != -100
            logits = transform(model.cls.predictions, text[selected])
            logits = logits @ model.memobert.embeddings.word_embeddings.weight.T + model.cls.predictions.bias
            targets = batch["labels"][selected]
            hand = (logits.logsumexp(-1) - logits[torch.arange(len(targets)), targets]).mean()
        elif task_name in ("span_mvfr", "span_mafr"):
            modality, hidden = ("visual", visual) if task_name == "span_mvfr" else ("acoustic", acoustic)
            masked = batch[f"{modality}_bool_masked_pos"]
            head = model.heads[task_name]
            projection = getattr(model.memobert, f"{modality}_embeddings").projection
            predictions = transform(head, hidden[masked]) @ projection.weight + head.bias
            originals = [
                torch.from_numpy(rows[r][f"{modality}_feats"][c].astype(np.float32))
                for r, c in masked.nonzero().tolist()
            ]
            hand = ((predictions - torch.stack(originals)) ** 2).mean()
        else:
            masked = batch["visual_bool_masked_pos"]
            head = model.heads["span_mvfc_kl"]
            log_q = F.log_softmax(transform(head, visual[masked]) @ head.decoder.weight.T + head.decoder.bias, -1)
            p = torch.stack(
                [torch.from_numpy(rows[r]["face_soft_labels"][c].astype(np.float32)) for r, c in masked.nonzero().tolist()]
            )
            hand = (p * (p.log() - log_q)).sum() / masked.sum()
        loss = task.loss(output)
        torch.testing.assert_close(loss, hand, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(output.loss, loss)  # the batch carries this task's targets only
        assert loss > 0


# ----------------------------------------------------------------------------------------------------------------------
# Schedule
# ----------------------------------------------------------------------------------------------------------------------


def test_two_ranks_draw_the_same_tasks_and_a_resume_continues_them():
    rank0, rank1 = TaskSchedule(seed=1234), TaskSchedule(seed=1234)
    sequence = rank0.tasks_for_updates(0, 2000)
    assert rank1.tasks_for_updates(0, 2000) == sequence
    resumed = TaskSchedule(seed=1234)
    assert resumed.tasks_for_updates(700, 2000) == sequence[700:]
    # Independent of call history: asking in any order gives the same answers.
    order = np.random.default_rng(0).permutation(2000)
    assert [rank1.task_for_update(int(s)) for s in order] == [sequence[s] for s in order]
    # Ratio order in the mapping does not matter; another seed gives another sequence.
    reordered = TaskSchedule({"span_mafr": 1, "span_mvfc_kl": 1, "span_mvfr": 1, "wwmlm": 2}, seed=1234)
    assert reordered.tasks_for_updates(0, 2000) == sequence
    assert TaskSchedule(seed=1235).tasks_for_updates(0, 2000) != sequence


def test_schedule_follows_the_ratios_and_shares_a_task_across_accumulation():
    schedule = TaskSchedule(seed=0)
    counts = {name: 0 for name in TASK_NAMES}
    for name in schedule.tasks_for_updates(0, 10000):
        counts[name] += 1
    assert abs(counts["wwmlm"] / 10000 - 0.4) < 0.02
    for name in ("span_mvfr", "span_mvfc_kl", "span_mafr"):
        assert abs(counts[name] / 10000 - 0.2) < 0.02
    micro = [schedule.task_for_micro_batch(m, accumulation_steps=4) for m in range(400)]
    assert all(len(set(micro[i : i + 4])) == 1 for i in range(0, 400, 4))
    assert micro[::4] == schedule.tasks_for_updates(0, 100)

    only_text = TaskSchedule({"wwmlm": 1, "span_mvfr": 0}, seed=0)
    assert set(only_text.tasks_for_updates(0, 200)) == {"wwmlm"}
    with pytest.raises(ValueError, match="unknown tasks"):
        TaskSchedule({"itm": 1})
    with pytest.raises(ValueError, match=">= 0"):
        TaskSchedule({"wwmlm": -1})


def test_padded_batch_model_inputs_leave_out_absent_modalities():
    batch = PaddedBatch(acoustic_feats=torch.zeros(2, 3, 5), acoustic_mask=torch.ones(2, 3))
    assert set(batch.model_inputs()) == {"acoustic_feats", "acoustic_mask"}


def test_special_ids_without_a_tokenizer(config):
    ids = SpecialTokenIds(cls_token_id=101, sep_token_id=102, pad_token_id=0, mask_token_id=103, vocab_size=30522)
    rows = make_rows([4], [0], [0], config)
    batch = PretrainingCollator(ids, config, seed=0)(rows, "wwmlm")
    assert batch["input_ids"][0, 0] == 101 and batch["input_ids"][0, 5] == 102


def test_a_face_encoder_without_expression_classes_pads_empty_soft_labels(tokenizer):
    """An `hf:` image encoder has no expression classes: rows hold (frames, 0) soft labels and the frame tasks run;
    pretraining refuses span_mvfc_kl, which would have nothing to predict (tests/training/test_pretrain.py)."""
    config = make_config(num_face_classes=0)
    collator = PretrainingCollator(tokenizer, config, seed=0)
    rows = make_rows([5, 0], [7, 3], [9, 4], config)
    padded = collator.pad(rows, include=("visual",), face_soft_labels=True)
    assert padded.face_soft_labels.shape == (2, 7, 0) and padded.visual_mask.sum().item() == 10
    model = MEmoBertForPreTraining(config)
    out = model(**collator(rows, "span_mvfr"))
    assert torch.isfinite(out.loss) and out.loss > 0
