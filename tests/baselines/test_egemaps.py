"""The eGeMAPS + SVM anchor (`egemaps_svm`) on hand-made feature matrices: perfect on separable features, kernel and C
chosen on the validation rows only, the scaler fitted on the training rows only, the pooling of frames, the config,
and the openSMILE extractor that makes its features (`egemaps` acoustic backend) on real speech."""

import json

import numpy as np
import pytest
import torch

from memobert.baselines import BASELINES, EgemapsSVMConfig, build_baseline, pool_frames

DIM = 88


def separable(n_per_class=12, classes=4, dim=DIM, seed=0, offset=0.0):
    """(N, dim) features whose class is a +6 shift on features 10·class .. 10·class + 9 (plus unit noise on all),
    and the labels: separable by a wide margin."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.standard_normal((len(y), dim)) + offset
    for k in range(10):
        x[np.arange(len(y)), 10 * y + k] += 6.0
    return x, y


def as_batches(x, y=None, size=7, frames=1):
    """Corpus-like batches: each utterance's vector as `frames` identical acoustic frames (one: an egemaps corpus)."""
    out = []
    for start in range(0, len(x), size):
        chunk = torch.tensor(x[start:start + size], dtype=torch.float32)
        batch = {"acoustic_feats": chunk[:, None].expand(-1, frames, -1).contiguous(),
                 "acoustic_mask": torch.ones(len(chunk), frames, dtype=torch.long)}
        if y is not None:
            batch["labels"] = torch.tensor(y[start:start + size])
        out.append(batch)
    return out


def xor(n=80, seed=0):
    """2-D points labelled by the sign product: only the rbf kernel separates them."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    x = x[np.abs(x).min(1) > 0.15]
    return x, (np.sign(x[:, 0]) * np.sign(x[:, 1]) > 0).astype(np.int64)


def test_registered_as_a_classical_system_that_selects_on_validation():
    spec = BASELINES["egemaps_svm"]
    assert spec.kind == "classical" and spec.selects_on_validation and spec.extra_keys == ()
    model = build_baseline("egemaps_svm", num_classes=4)
    assert all(callable(getattr(model, name)) for name in ("fit", "predict", "evaluate", "selection_note"))
    assert model.config.modalities == ("acoustic",) and model.config.pooling == "mean"


def test_separable_features_give_perfect_uar():
    model = build_baseline("egemaps_svm", num_classes=4)
    x, y = separable(seed=0)
    xv, yv = separable(n_per_class=5, seed=1)
    xt, yt = separable(n_per_class=6, seed=2)
    model.fit(as_batches(x, y), as_batches(xv, yv))
    assert model.evaluate(as_batches(xt, yt))["uar"] == 1.0
    np.testing.assert_array_equal(model.predict(as_batches(xt)), yt)
    # every kernel x C pair was fitted on the training rows and scored on the validation rows
    assert [(p["kernel"], p["C"]) for p in model.search] == [(k, c) for k in ("linear", "rbf")
                                                             for c in (0.01, 0.1, 1.0, 10.0, 100.0)]
    assert model.selected["validation"]["uar"] == max(p["validation"]["uar"] for p in model.search) == 1.0
    assert model.selection_note().startswith("best validation UAR over kernel x C (10 SVMs")


def test_the_choice_follows_the_validation_labels_and_never_the_test_labels():
    x, y = xor(seed=0)
    xv, yv = xor(seed=1)
    xt, yt = xor(seed=2)
    config = {"num_classes": 2, "acoustic_dim": 2}

    model = build_baseline("egemaps_svm", config).fit(as_batches(x, y), as_batches(xv, yv))
    assert model.selected["kernel"] == "rbf"  # XOR: no linear SVM gets there
    linear = [p["validation"]["uar"] for p in model.search if p["kernel"] == "linear"]
    assert model.selected["validation"]["uar"] > max(linear)

    # validation labels drawn by a linear SVM instead: a linear pair reproduces them and comes first in the grid
    probe = build_baseline("egemaps_svm", config, kernels=["linear"], c_grid=[100.0])
    probe.fit(as_batches(x, y), as_batches(xv, yv))
    relabelled = probe.predict(as_batches(xv))
    assert len(np.unique(relabelled)) == 2
    other = build_baseline("egemaps_svm", config).fit(as_batches(x, y), as_batches(xv, relabelled))
    assert other.selected["kernel"] == "linear" and other.selected["validation"]["uar"] == 1.0
    np.testing.assert_array_equal(other.predict(as_batches(xv)), relabelled)

    # the test rows' labels reach neither fit nor the choice: two labellings, the same model and predictions
    runs = []
    for test_labels in (yt, 1 - yt):
        fitted = build_baseline("egemaps_svm", config).fit(as_batches(x, y), as_batches(xv, yv))
        metrics = fitted.evaluate(as_batches(xt, test_labels))
        runs.append((fitted.selected["kernel"], fitted.selected["C"], fitted.predict(as_batches(xt)), metrics["uar"]))
    assert runs[0][:2] == runs[1][:2]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert runs[0][3] == pytest.approx(1 - runs[1][3])  # only the score moves, against the flipped labels


def test_the_scaler_is_fitted_on_the_training_rows_only():
    x, y = separable(seed=0)
    xv, yv = separable(n_per_class=5, seed=1, offset=50.0)  # far from the training rows
    model = build_baseline("egemaps_svm", num_classes=4).fit(as_batches(x, y), as_batches(xv, yv))
    scaler = model.model.scaler
    np.testing.assert_allclose(scaler.mean_, x.mean(0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(scaler.scale_, x.std(0), rtol=1e-5, atol=1e-5)
    assert scaler.n_samples_seen_ == len(x)
    before = (scaler.mean_.copy(), scaler.scale_.copy())
    model.predict(as_batches(xv + 100.0))  # predicting refits nothing
    np.testing.assert_array_equal(before[0], model.model.scaler.mean_)
    np.testing.assert_array_equal(before[1], model.model.scaler.scale_)


def test_without_validation_rows_it_fits_the_defaults():
    x, y = separable(seed=0)
    model = build_baseline("egemaps_svm", num_classes=4, default_kernel="linear", default_c=0.1)
    model.fit(as_batches(x, y))
    assert [(p["kernel"], p["C"]) for p in model.search] == [("linear", 0.1)]
    assert model.selection_note() == "none (no validation rows: the defaults, kernel linear, C 0.1)"


def test_pooling_over_real_frames_only():
    feats = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [99.0, 99.0]],
                          [[5.0, 5.0], [0.0, 0.0], [0.0, 0.0]],
                          [[7.0, 7.0], [7.0, 7.0], [7.0, 7.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(pool_frames(feats, mask, "mean"), [[2, 4], [5, 5], [0, 0]])
    np.testing.assert_allclose(pool_frames(feats, mask, "mean_std"), [[2, 4, 1, 2], [5, 5, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(pool_frames(feats, None, "mean")[2], [7, 7])
    with pytest.raises(ValueError, match="pooling"):
        pool_frames(feats, mask, "max")


def test_mean_std_pooling_is_the_linear_probe_on_many_frames():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    frames = rng.standard_normal((len(y), 9, 5))
    frames[np.arange(len(y)), :, y] *= 4.0  # the class is the spread of one feature: the mean alone hides it
    mask = torch.ones(len(y), 9, dtype=torch.long)
    batches = [{"acoustic_feats": torch.tensor(frames, dtype=torch.float32), "acoustic_mask": mask,
                "labels": torch.tensor(y)}]
    config = {"num_classes": 4, "acoustic_dim": 5}
    with_std = build_baseline("egemaps_svm", config, pooling="mean_std").fit(batches, batches)
    assert with_std.features(batches)[0].shape == (len(y), 10)
    assert with_std.evaluate(batches)["uar"] == 1.0
    with pytest.raises(ValueError, match="acoustic_dim is 88"):
        build_baseline("egemaps_svm", num_classes=4).fit(batches)


def test_config_checks():
    for bad, match in (({"pooling": "max"}, "pooling"), ({"kernels": ["poly"]}, "kernels"), ({"c_grid": []}, "c_grid"),
                       ({"c_grid": [0.0]}, "c_grid"), ({"modalities": ["text", "acoustic"]}, "acoustic frames only"),
                       ({"class_weight": "auto"}, "class_weight")):
        with pytest.raises(ValueError, match=match):
            EgemapsSVMConfig(**bad)
    config = BASELINES["egemaps_svm"].make_config({"c_grid": [1, 10], "kernels": ["rbf"]})
    assert config.c_grid == (1.0, 10.0) and config.kernels == ("rbf",)
    assert json.loads(json.dumps(config.to_dict()))["c_grid"] == [1.0, 10.0]


# -- the openSMILE extractor that makes an egemaps corpus --------------------------------------------------------------


@pytest.fixture(scope="module")
def egemaps():
    pytest.importorskip("opensmile", reason="openSMILE is not installed: pip install opensmile==2.6.0")
    from memobert.preprocessing.acoustic import make_acoustic_extractor

    return make_acoustic_extractor("egemaps")


def test_egemaps_extractor_on_real_speech(egemaps):
    from memobert import backends
    from memobert.preprocessing.acoustic import EgemapsExtractor, parse_acoustic_name
    from tests.support.speech import shipped_speech

    speech = [shipped_speech("beckett.wav"), shipped_speech("two_cities.wav")[:3 * 16000]]
    first = egemaps.extract(speech)
    assert [f.shape for f in first] == [(1, 88), (1, 88)] and all(f.dtype == np.float32 for f in first)
    assert all(np.isfinite(f).all() for f in first)
    assert not np.allclose(first[0], first[1])  # two voices, two texts: different functionals
    names = egemaps.feature_names
    assert len(names) == 88 and names[0] == "F0semitoneFrom27.5Hz_sma3nz_amean"
    f0_mean = first[0][0, 0]
    assert 10.0 < f0_mean < 60.0  # a speaking voice, in semitones above 27.5 Hz (about 50 - 800 Hz)
    # deterministic, and an utterance's functionals do not depend on what it is extracted with
    again = egemaps.extract(speech[::-1])[::-1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(make_acoustic_extractor_again().extract(speech[:1])[0], first[0])
    # too short for openSMILE's analysis: no frame, like the other extractors
    assert egemaps.extract([speech[0][:400], np.zeros(0, np.float32)])[0].shape == (0, 88)
    # name, registry, provenance
    assert parse_acoustic_name("egemaps") == parse_acoustic_name("eGeMAPSv02") == ("egemaps", None)
    assert isinstance(egemaps, EgemapsExtractor)
    assert backends.default_backend("acoustic") == "log_mel" and not backends.backend("acoustic", "egemaps").auto
    record = egemaps.provenance()
    assert json.loads(json.dumps(record)) == record
    assert record["backend"] == "egemaps" and record["package"] == "opensmile" and record["version"] == "2.6.0"
    assert (record["feature_set"], record["feature_level"], record["feature_dim"]) == ("eGeMAPSv02", "Functionals", 88)
    assert record["frame_seconds"] is None and record["frames_per_utterance"] == 1


def make_acoustic_extractor_again():
    from memobert.preprocessing.acoustic import make_acoustic_extractor

    # the pipeline's common options are accepted (openSMILE runs on the CPU, one utterance at a time)
    return make_acoustic_extractor("egemaps", max_seconds=10.0, layer=-1, device="cpu", batch_size=4)


def test_egemaps_extractor_options(egemaps):
    from memobert.preprocessing.acoustic import make_acoustic_extractor

    with pytest.raises(ValueError, match="layer -1"):
        make_acoustic_extractor("egemaps", layer=3)
    with pytest.raises(ValueError, match="unknown openSMILE feature set"):
        make_acoustic_extractor("egemaps", feature_set="nope")
    capped = make_acoustic_extractor("egemaps", max_seconds=0.5)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(32000)).astype(np.float32)
    np.testing.assert_array_equal(capped.extract([wave])[0], capped.extract([wave[:8000]])[0])


def test_missing_opensmile_names_the_pip_command(monkeypatch):
    import dataclasses

    from memobert import backends
    from memobert.preprocessing.acoustic import make_acoustic_extractor

    entry = backends.backend("acoustic", "egemaps")
    monkeypatch.setitem(backends._REGISTRY["acoustic"], "egemaps", dataclasses.replace(entry, available=lambda: False))
    with pytest.raises(backends.MissingBackendError, match="pip install opensmile==2.6.0"):
        make_acoustic_extractor("egemaps")
