"""The DenseNet-BC-100 FER+ trainer on a FER+ release written in the real layout (`ferplus_dir`)."""

import json
import os

import numpy as np
import pytest
import torch

from memobert.data.ferplus import read_ferplus
from memobert.encoders.densenet import DenseNetFER, densenet_bc_100
from memobert.encoders.ferplus_training import (
    augment,
    classification_metrics,
    soft_cross_entropy,
    train_ferplus,
    train_step,
)


def test_classification_metrics():
    m = classification_metrics(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), 8)
    assert m["wa"] == pytest.approx(0.75)
    assert m["uar"] == pytest.approx((2 / 3 + 1) / 2)  # only the classes present count


def test_augment_identity_and_shapes():
    x = torch.rand(5, 1, 64, 64)
    same = augment(x, torch.Generator().manual_seed(0), max_shift=0, max_rotation_deg=0, flip=False)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.isfinite(out).all()
    # A shift-only warp moves pixels by whole pixels (pad-and-crop)
    g = torch.Generator().manual_seed(3)
    shifted = augment(x, g, max_rotation_deg=0, flip=False)
    assert not torch.allclose(shifted, x)


def test_densenet_trains_one_step_on_the_fixture(ferplus_dir):
    torch.manual_seed(0)
    data = read_ferplus(ferplus_dir, splits=["Training"])["Training"]
    model = densenet_bc_100()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.nn.functional.interpolate(torch.from_numpy(data.images)[:, None].float() / 255, size=64,
                                        mode="bilinear", align_corners=False)
    loss = train_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), x, torch.from_numpy(data.targets))
    assert np.isfinite(loss) and loss > 0
    after = model.state_dict()
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert not torch.equal(before["conv0.weight"], after["conv0.weight"])
    _, logits = model.eval()(x)
    assert soft_cross_entropy(logits, torch.from_numpy(data.targets)).isfinite()


def test_train_ferplus_end_to_end(ferplus_dir, tmp_path):
    out = tmp_path / "run"
    metrics = train_ferplus(ferplus_dir, out, epochs=1, batch_size=64, progress=False, device="cpu")
    assert metrics["num_train"] == 4 and metrics["best_epoch"] == 1
    assert np.isfinite(metrics["history"][0]["train_loss"])
    for split in ("val", "test"):
        assert 0.0 <= metrics[split]["wa"] <= 1.0 and 0.0 <= metrics[split]["uar"] <= 1.0 and metrics[split]["n"] == 2
    assert metrics["dropped_rows"] == {"no_image_name": 1, "no_emotion_votes": 1}
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["best_epoch"] == 1 and saved["test"]["n"] == 2
    model = DenseNetFER.load(out / "best.safetensors")
    assert model.feature_dim == 342 and os.path.isfile(out / "last.safetensors")
    # Untrained weights differ from the trained checkpoint (the trainer really stepped)
    torch.manual_seed(0)
    fresh = densenet_bc_100()
    assert not torch.equal(fresh.state_dict()["classifier.weight"], model.state_dict()["classifier.weight"])
