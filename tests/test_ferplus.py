"""FER+ release-layout reader and the DenseNet-BC-100 FER+ trainer, on a fixture written in the real layout."""

import csv
import json
import os

import numpy as np
import pytest
import torch

from memobert.data.ferplus import FERPLUS_COLUMNS, read_ferplus
from memobert.encoders.densenet import DenseNetFER, densenet_bc_100
from memobert.encoders.ferplus_training import (
    augment,
    classification_metrics,
    soft_cross_entropy,
    train_ferplus,
    train_step,
)

# (Usage, Image name, 8 emotion votes, unknown, NF); the FER2013 'emotion' column is the original 7-class label.
ROWS = [
    ("Training", "fer0000000.png", [4, 0, 0, 1, 3, 2, 0, 0], 0, 0),
    ("Training", "fer0000001.png", [6, 0, 1, 1, 0, 0, 0, 0], 2, 0),
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0], 0, 10),  # dropped by FER+ (empty Image name): not a face
    ("Training", "fer0000003.png", [0, 10, 0, 0, 0, 0, 0, 0], 0, 0),
    ("Training", "fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0], 7, 3),  # no emotion vote: dropped
    ("Training", "fer0000005.png", [0, 0, 8, 0, 0, 0, 2, 0], 0, 0),
    ("PublicTest", "fer0028709.png", [0, 9, 0, 0, 0, 0, 0, 1], 0, 0),
    ("PublicTest", "fer0028710.png", [10, 0, 0, 0, 0, 0, 0, 0], 0, 0),
    ("PrivateTest", "fer0032298.png", [0, 0, 0, 5, 5, 0, 0, 0], 0, 0),
    ("PrivateTest", "fer0032299.png", [1, 0, 0, 0, 0, 0, 0, 9], 0, 0),
]


def write_ferplus(folder, rows=ROWS, seed=0, pixels_override=None, trailing_blank=False):
    """Writes fer2013.csv + fer2013new.csv exactly as the releases lay them out."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "fer2013.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, (usage, *_rest) in enumerate(rows):
            pixels = " ".join(str(v) for v in rng.integers(0, 256, 48 * 48))
            if pixels_override and i in pixels_override:
                pixels = pixels_override[i]
            w.writerow([int(rng.integers(0, 7)), pixels, usage])
        if trailing_blank:
            f.write("\n")
    with open(os.path.join(folder, "fer2013new.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FERPLUS_COLUMNS)
        for usage, name, votes, unknown, nf in rows:
            w.writerow([usage, name, *votes, unknown, nf])
    return folder


@pytest.fixture
def ferplus_dir(tmp_path):
    return write_ferplus(tmp_path / "ferplus")


def test_header_matches_the_release():
    with_header = ",".join(FERPLUS_COLUMNS)
    assert with_header == ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
                           "unknown,NF")


def test_reader_splits_targets_and_drops(ferplus_dir):
    data = read_ferplus(ferplus_dir)
    train, val, test = data["Training"], data["PublicTest"], data["PrivateTest"]
    assert (len(train), len(val), len(test)) == (4, 2, 2)
    assert data.dropped.no_image_name == 1 and data.dropped.no_emotion_votes == 1
    assert train.images.shape == (4, 48, 48) and train.images.dtype == np.uint8
    assert train.image_names == ["fer0000000.png", "fer0000001.png", "fer0000003.png", "fer0000005.png"]
    assert train.rows.tolist() == [1, 2, 4, 6]
    np.testing.assert_allclose(train.targets.sum(1), 1.0, rtol=1e-6)
    # unknown / NF votes are excluded from the distribution
    np.testing.assert_allclose(train.targets[1], np.array([6, 0, 1, 1, 0, 0, 0, 0]) / 8, rtol=1e-6)
    np.testing.assert_allclose(train.targets[0], np.array([4, 0, 0, 1, 3, 2, 0, 0]) / 10, rtol=1e-6)
    assert train.labels.tolist() == [0, 0, 1, 2]
    assert test.labels.tolist() == [3, 7]  # a 5/5 tie goes to the first class in FER+ order (sadness)
    # Pixels are the fer2013.csv row of the same position
    with open(os.path.join(ferplus_dir, "fer2013.csv")) as f:
        row4 = list(csv.reader(f))[4]  # header + data rows 1..3 -> data row 4 = fer0000003
    np.testing.assert_array_equal(train.images[2].ravel(), np.array(row4[1].split(), dtype=np.uint8))


def test_reader_selected_splits_and_blank_lines(tmp_path):
    folder = write_ferplus(tmp_path / "d", trailing_blank=True)
    data = read_ferplus(folder, splits=["PublicTest"])
    assert list(data.splits) == ["PublicTest"] and len(data["PublicTest"]) == 2
    with pytest.raises(KeyError, match="Training"):
        data["Training"]
    with pytest.raises(ValueError, match="Unknown FER\\+ split"):
        read_ferplus(folder, splits=["Validation"])


@pytest.mark.parametrize(
    "mutate, file, message",
    [
        (dict(pixels_override={3: "1 2 3"}), "fer2013.csv", r"line 5: 'pixels' has 3 values"),
        (dict(pixels_override={0: " ".join(["300"] * 2304)}), "fer2013.csv", r"line 2: 'pixels' values must be 0..255"),
        (dict(pixels_override={1: " ".join(["x"] * 2304)}), "fer2013.csv", r"line 3: 'pixels' holds a non-integer"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, mutate, file, message):
    folder = write_ferplus(tmp_path / "bad", **mutate)
    with pytest.raises(ValueError, match=message) as err:
        read_ferplus(folder)
    assert file in str(err.value)


def test_reader_error_cases(tmp_path):
    # A bad vote count
    rows = list(ROWS)
    folder = write_ferplus(tmp_path / "votes", rows=rows)
    path = os.path.join(folder, "fer2013new.csv")
    text = open(path).read().replace("Training,fer0000001.png,6,", "Training,fer0000001.png,six,")
    open(path, "w").write(text)
    with pytest.raises(ValueError, match=r"fer2013new.csv, line 3: column 'neutral'.*'six'"):
        read_ferplus(folder)
    # Usage out of step between the two files
    rows = list(ROWS)
    rows[7] = ("PrivateTest",) + tuple(rows[7][1:])
    folder = write_ferplus(tmp_path / "step", rows=rows)
    text = open(os.path.join(folder, "fer2013.csv")).read().splitlines()
    text[8] = text[8].rsplit(",", 1)[0] + ",PublicTest"
    open(os.path.join(folder, "fer2013.csv"), "w").write("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"line 9: Usage 'PrivateTest' differs from 'PublicTest'"):
        read_ferplus(folder)
    # Different row counts
    folder = write_ferplus(tmp_path / "count")
    lines = open(os.path.join(folder, "fer2013new.csv")).read().splitlines()
    open(os.path.join(folder, "fer2013new.csv"), "w").write("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"fer2013new.csv ends at data row 9 .*same rows in the same order"):
        read_ferplus(folder)
    folder = write_ferplus(tmp_path / "count2")
    lines = open(os.path.join(folder, "fer2013.csv")).read().splitlines()
    open(os.path.join(folder, "fer2013.csv"), "w").write("\n".join(lines[:3]) + "\n")
    with pytest.raises(ValueError, match=r"fer2013.csv ends at data row 2 but .*fer2013new.csv has more rows"):
        read_ferplus(folder)
    # Missing file / column
    with pytest.raises(FileNotFoundError, match="fer2013.csv not found"):
        read_ferplus(tmp_path / "nowhere")
    folder = write_ferplus(tmp_path / "cols")
    lines = open(os.path.join(folder, "fer2013.csv")).read().splitlines()
    lines[0] = "emotion,pixels,Split"
    open(os.path.join(folder, "fer2013.csv"), "w").write("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"fer2013.csv: header .* lacks columns \['Usage'\]"):
        read_ferplus(folder)
    # Unknown Usage value
    rows = list(ROWS)
    rows[0] = ("Validation",) + tuple(rows[0][1:])
    folder = write_ferplus(tmp_path / "usage", rows=rows)
    with pytest.raises(ValueError, match=r"fer2013.csv, line 2: Usage 'Validation'"):
        read_ferplus(folder)


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
