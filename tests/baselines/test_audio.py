"""Audio baselines: ResNet34 log-mel (statistics pooling, SpecAugment, speaker -> emotion transfer) and the elderly
speech system (YAMNet-style MobileNet + sentence embeddings + scikit-learn). Tiny sizes, one thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memobert.baselines import build_baseline
from memobert.baselines.elderly_speech import (
    YAMNET_LAYERS,
    FusedFeatureClassifier,
    MobileNetV1,
    SegmentAttentionPooling,
    split_segments,
)
from memobert.baselines.resnet_logmel import (
    ReshuffledBatches,
    ResNetTrunk,
    SpecAugment,
    StatisticsPooling,
    train_speaker_then_emotion,
)

TINY_RESNET = dict(acoustic_dim=16, base_channels=4, embedding_dim=16)
TINY_YAMNET = dict(acoustic_dim=16, width=0.125, segment_frames=16, segment_hop=8)


def logmel_batch(size: int = 8, frames: int = 40, seed: int = 0, num_classes: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(size, frames, dtype=torch.long)
    mask[0, 25:] = 0
    return dict(acoustic_feats=torch.randn(size, frames, 16, generator=g), acoustic_mask=mask,
                labels=torch.arange(size) % num_classes)


def train_steps(model: torch.nn.Module, batch: dict, steps: int, lr: float = 1e-2) -> tuple[float, float]:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses[0], losses[-1]


# ----------------------------------------------------------------------------------------------------------------------
# Statistics pooling and SpecAugment
# ----------------------------------------------------------------------------------------------------------------------


def test_statistics_pooling_is_mean_and_std_for_any_length():
    pooling = StatisticsPooling()
    x = torch.randn(3, 5, 11)
    out = pooling(x)
    assert torch.allclose(out, torch.cat([x.mean(-1), x.std(-1, unbiased=False)], -1), atol=1e-6)
    assert pooling(torch.randn(3, 5, 2)).shape == pooling(torch.randn(3, 5, 97)).shape == (3, 10)
    mask = torch.zeros(3, 11, dtype=torch.bool)
    mask[0, :4], mask[1, :11], mask[2, :1] = True, True, True
    masked = pooling(x, mask)
    for row, length in enumerate((4, 11, 1)):
        assert torch.allclose(masked[row], pooling(x[row:row + 1, :, :length])[0], atol=1e-5)


def test_spec_augment_masks_stay_in_bounds_and_are_off_in_eval():
    augment = SpecAugment(freq_masks=2, freq_mask_width=3, time_masks=2, time_mask_width=5)
    lengths = torch.tensor([30, 12, 4, 1])
    g = torch.Generator().manual_seed(0)
    masked_any = False
    for _ in range(50):
        mask = augment.sample_mask(4, 10, 30, lengths, generator=g)
        time_cols = mask.all(1)  # a time mask covers every bin of its frames
        freq_rows = mask.all(2)
        for row, length in enumerate(lengths.tolist()):
            assert not time_cols[row, length:].any()  # never past the real frames
            assert int(time_cols[row].sum()) <= 2 * min(5, length)
            assert int(freq_rows[row].sum()) <= 2 * 3
            only = mask[row] & ~time_cols[row][None] & ~freq_rows[row][:, None]
            assert not only.any()  # every masked cell belongs to a full band or a full span
        masked_any |= bool(mask.any())
    assert masked_any
    spec = torch.randn(4, 10, 30)
    augment.train()
    out = augment(spec, lengths, generator=torch.Generator().manual_seed(1))
    changed = out != spec
    assert torch.all(out[changed] == 0.0)
    augment.eval()
    assert torch.equal(augment(spec, lengths), spec)


# ----------------------------------------------------------------------------------------------------------------------
# ResNet34 log-mel
# ----------------------------------------------------------------------------------------------------------------------


def test_resnet34_layout_and_any_length():
    model = build_baseline("resnet_logmel", dict(TINY_RESNET))
    blocks = [len(stage) for stage in model.trunk.stages]
    assert blocks == [3, 4, 6, 3]
    assert model.trunk.out_channels == 32 and ResNetTrunk.reduced(16) == 2
    model.eval()
    for frames in (3, 17, 64):
        out = model(acoustic_feats=torch.randn(2, frames, 16))
        assert out.logits.shape == (2, 4) and out.embedding.shape == (2, 16)
    with pytest.raises(ValueError, match="mel bins"):
        model(acoustic_feats=torch.randn(2, 10, 8))


def test_resnet_forward_backward_and_overfit():
    torch.manual_seed(0)
    model = build_baseline("resnet_logmel", dict(TINY_RESNET, layers=[1, 1, 1, 1], spec_augment=False))
    batch = logmel_batch()
    out = model(**batch)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    first, last = train_steps(model, batch, 40)
    assert last < 0.1 * first
    model.eval()
    with torch.no_grad():
        assert (model(**batch).logits.argmax(-1) == batch["labels"]).all()


def test_resnet_spec_augment_only_in_training():
    torch.manual_seed(0)
    model = build_baseline("resnet_logmel", dict(TINY_RESNET, layers=[1, 1, 1, 1], freq_mask_width=4,
                                                 time_mask_width=8))
    batch = logmel_batch(4)
    model.eval()
    with torch.no_grad():
        a, b = model(**batch).logits, model(**batch).logits
    assert torch.equal(a, b)
    calls = []
    model.spec_augment.register_forward_hook(lambda module, args, output: calls.append(torch.equal(output, args[0])))
    model.train()
    model(**batch)
    model.eval()
    model(**batch)
    assert calls == [False, True]


def test_transfer_from_speaker_id_to_emotion():
    torch.manual_seed(0)
    model = build_baseline("resnet_logmel", dict(TINY_RESNET, layers=[1, 1, 1, 1], spec_augment=False))
    speakers = [dict(logmel_batch(6, seed=s), labels=torch.tensor([0, 1, 2, 3, 4, 0])) for s in (1, 2)]
    emotions = [logmel_batch(8, seed=3)]
    snapshots = {}

    def snapshot(stage, m):
        snapshots[stage] = ({k: v.clone() for k, v in m.trunk.state_dict().items()}, m.head.out_features)

    result = train_speaker_then_emotion(model, speakers, 5, emotions, 4, speaker_epochs=15, emotion_epochs=25,
                                        lr=1e-2, on_stage_end=snapshot)
    assert snapshots["speaker"][1] == 5 and snapshots["emotion"][1] == 4 and model.head.out_features == 4
    assert result.speaker_losses[-1] < result.speaker_losses[0]
    assert result.emotion_losses[-1] < 0.2 * result.emotion_losses[0]
    # The emotion stage starts from the speaker-trained trunk (then fine-tunes it).
    changed = [k for k, v in snapshots["emotion"][0].items() if not torch.equal(v, snapshots["speaker"][0][k])]
    assert changed
    frozen = build_baseline("resnet_logmel", dict(TINY_RESNET, layers=[1, 1, 1, 1], spec_augment=False))
    result = train_speaker_then_emotion(frozen, speakers, 5, emotions, 4, 2, 2, on_stage_end=snapshot,
                                        freeze_body=True)
    assert all(not p.requires_grad for p in frozen.trunk.parameters())
    assert all(p.requires_grad for p in frozen.head.parameters())


def test_prepare_runs_the_speaker_stage_on_the_given_speakers_then_restores_the_emotion_head(monkeypatch):
    torch.manual_seed(0)
    model = build_baseline("resnet_logmel", dict(TINY_RESNET, layers=[1, 1, 1, 1], speaker_pretraining_epochs=3,
                                                 speaker_pretraining_lr=1e-2))
    assert model.prepare_needs_speakers
    names = ["spk_b", "spk_a", "spk_c", "spk_a", "spk_b", "spk_c"]
    batches = [dict(logmel_batch(6, seed=s), speakers=names) for s in (1, 2)]
    batches[1]["acoustic_mask"][3] = 0  # an utterance without frames is skipped
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    heads, seen_labels = [], []
    replace_head = model.replace_head
    monkeypatch.setattr(model, "replace_head", lambda n: heads.append(n) or replace_head(n))
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda **b: seen_labels.append(b["labels"].clone()) or forward(**b))

    summary = model.prepare(batches)

    assert heads == [3, 4]  # a speaker head over the 3 speakers passed in, then a fresh emotion head
    assert summary["speakers"] == ["spk_a", "spk_b", "spk_c"] and summary["num_speakers"] == 3
    assert summary["utterances"] == 11 and len(summary["speaker_losses"]) == 3
    assert model.head.out_features == model.config.num_classes == 4
    changed = [k for k, v in model.state_dict().items() if k in body and not torch.equal(v, body[k])]
    assert any(k.startswith("trunk.") for k in changed) and any(k.startswith("embedding.") for k in changed)
    labels = torch.cat(seen_labels)  # stage 1 trained on speaker ids, never on the batches' emotion labels
    assert labels.numel() == 3 * 11 and set(labels.tolist()) == {0, 1, 2}
    out = model(**logmel_batch(4))
    assert out.logits.shape == (4, 4)

    with pytest.raises(ValueError, match="needs 'speakers'"):
        model.prepare([logmel_batch(6)])
    with pytest.raises(ValueError, match="at least 2 speakers"):
        model.prepare([dict(logmel_batch(6), speakers=["one"] * 6)])


def test_prepare_does_nothing_without_speaker_pretraining():
    model = build_baseline("resnet_logmel", dict(TINY_RESNET, layers=[1, 1, 1, 1]))
    assert not model.prepare_needs_speakers
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert model.prepare([logmel_batch(6)]) == {"speaker_pretraining_epochs": 0}
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)  # the run's random draws are those of a model without prepare
    with pytest.raises(ValueError, match="speaker_pretraining_epochs"):
        build_baseline("resnet_logmel", dict(TINY_RESNET, speaker_pretraining_epochs=-1))


def test_reshuffled_batches_cover_every_utterance_once_per_pass():
    torch.manual_seed(0)
    feats = [torch.full((n, 3), float(i)) for i, n in enumerate([4, 2, 5, 3, 1])]
    batches = ReshuffledBatches(feats, [0, 1, 2, 0, 1], batch_size=2)
    orders = set()
    for _ in range(5):
        passed = list(batches)
        assert [len(b["labels"]) for b in passed] == [2, 2]  # 5 utterances by 2: the last batch of one is dropped
        ids = []
        for b in passed:
            batch_ids = b["acoustic_feats"][:, 0, 0].long().tolist()
            assert b["acoustic_mask"].sum(1).tolist() == [len(feats[i]) for i in batch_ids]
            assert b["labels"].tolist() == [[0, 1, 2, 0, 1][i] for i in batch_ids]
            ids += batch_ids
        assert len(set(ids)) == 4
        orders.add(tuple(ids))
    assert len(orders) > 1  # a new order at every pass


# ----------------------------------------------------------------------------------------------------------------------
# Elderly speech: YAMNet-style encoder + text embeddings + scikit-learn
# ----------------------------------------------------------------------------------------------------------------------


def test_mobilenet_v1_is_yamnet_shaped():
    net = MobileNetV1(width=1.0)
    assert net.embedding_dim == 1024 and len(net.layers) == len(YAMNET_LAYERS) == 14
    depthwise = net.layers[1][0][0]
    assert depthwise.groups == depthwise.in_channels == 32
    small = MobileNetV1(width=0.125).eval()
    assert small(torch.randn(2, 1, 96, 64)).shape == (2, 128)


def test_segments_and_weighted_sum():
    feats = torch.arange(2 * 20 * 1, dtype=torch.float32).view(2, 20, 1)
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[1, 5:] = 0
    windows, seg_mask = split_segments(feats, mask, size=8, hop=4)
    assert seg_mask.tolist() == [[True, True, True, True], [True, False, False, False]]
    assert torch.equal(windows[0, 1, :, 0], torch.arange(4, 12, dtype=torch.float32))
    assert torch.equal(windows[1, 0, :, 0], torch.tensor([20, 21, 22, 23, 24, 0, 0, 0], dtype=torch.float32))
    embeddings = torch.randn(2, 4, 3)
    pooled, weights = SegmentAttentionPooling(3, "mean")(embeddings, seg_mask)
    assert torch.allclose(pooled[0], embeddings[0].mean(0)) and torch.allclose(pooled[1], embeddings[1, 0])
    pooled, weights = SegmentAttentionPooling(3, "attention")(embeddings, seg_mask)
    assert torch.allclose(weights.sum(1), torch.ones(2)) and weights[1, 1:].eq(0).all()


def test_yamnet_audio_model_forward_backward_overfit():
    torch.manual_seed(0)
    model = build_baseline("yamnet_audio", dict(TINY_YAMNET))
    batch = logmel_batch()
    out = model(**batch)
    assert out.embedding.shape == (8, 128)
    out.loss.backward()
    first, last = train_steps(model, batch, 40)
    assert last < 0.1 * first


def test_fused_feature_classifiers_reach_full_training_accuracy():
    rng = np.random.default_rng(0)
    labels = np.arange(8) % 4
    audio = rng.normal(size=(8, 12)) + labels[:, None]
    text = rng.normal(size=(8, 5))
    for kind in ("svm", "logreg", "random_forest"):
        classifier = FusedFeatureClassifier(kind).fit(audio, text, labels)
        metrics = classifier.evaluate(audio, text, labels, 4)
        assert metrics["uar"] == 1.0 and metrics["wa"] == 1.0
    scaler = classifier.pipeline.steps[0][1]
    assert scaler.mean_.shape == (17,)  # z-normalisation of the fused [audio ‖ text] vector
    with pytest.raises(ValueError, match="classifier"):
        FusedFeatureClassifier("knn")


def test_elderly_speech_end_to_end_with_minilm(minilm_path):
    torch.manual_seed(0)
    system = build_baseline("elderly_speech", dict(TINY_YAMNET, text_model=minilm_path, classifier="logreg",
                                                   audio_train_epochs=2))
    assert system.text_embedder.dim == 384
    texts = ["i am so angry", "what a happy day", "it is a table", "i feel sad", "furious about it",
             "joyful and glad", "the meeting is at noon", "tears and sorrow"]
    full = logmel_batch()
    batches = [dict(acoustic_feats=full["acoustic_feats"][i:i + 4], acoustic_mask=full["acoustic_mask"][i:i + 4],
                    texts=texts[i:i + 4], labels=full["labels"][i:i + 4]) for i in (0, 4)]
    system.fit(batches)
    audio, text, labels = system.features(batches)
    assert audio.shape == (8, 128) and text.shape == (8, 384) and labels.tolist() == full["labels"].tolist()
    assert system.evaluate(batches)["uar"] == 1.0
    assert system.predict(batches).shape == (8,)
    ids_batch = dict(acoustic_feats=full["acoustic_feats"], input_ids=torch.ones(8, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="texts"):
        system.features([ids_batch])
    # With decode_input_ids, word pieces of the same (uncased WordPiece) vocabulary stand in for the strings.
    encoded = system.text_embedder.tokenizer(texts, padding=True, return_tensors="pt")
    system.config.decode_input_ids = True
    _, from_ids, _ = system.features([dict(acoustic_feats=full["acoustic_feats"], input_ids=encoded["input_ids"],
                                           attention_mask=encoded["attention_mask"])])
    assert np.allclose(from_ids, text, atol=1e-5)
