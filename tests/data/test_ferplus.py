"""FER+ release-layout reader on a fixture written in the real layout (`ferplus_dir`, `write_ferplus`)."""

import csv
import os

import numpy as np
import pytest

from memobert.data.ferplus import FERPLUS_COLUMNS, read_ferplus
from tests.support.releases import FERPLUS_ROWS, write_ferplus


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
    rows = list(FERPLUS_ROWS)
    folder = write_ferplus(tmp_path / "votes", rows=rows)
    path = os.path.join(folder, "fer2013new.csv")
    text = open(path).read().replace("Training,fer0000001.png,6,", "Training,fer0000001.png,six,")
    open(path, "w").write(text)
    with pytest.raises(ValueError, match=r"fer2013new.csv, line 3: column 'neutral'.*'six'"):
        read_ferplus(folder)
    # Usage out of step between the two files
    rows = list(FERPLUS_ROWS)
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
    rows = list(FERPLUS_ROWS)
    rows[0] = ("Validation",) + tuple(rows[0][1:])
    folder = write_ferplus(tmp_path / "usage", rows=rows)
    with pytest.raises(ValueError, match=r"fer2013.csv, line 2: Usage 'Validation'"):
        read_ferplus(folder)
