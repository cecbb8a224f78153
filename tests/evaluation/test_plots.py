"""The confusion-matrix PNG."""

import pytest

from memobert.evaluation.plots import plot_confusion_matrix


def test_confusion_png_written(tmp_path):
    path = plot_confusion_matrix([[5, 1, 0, 0], [2, 3, 0, 0], [0, 0, 4, 1], [0, 0, 0, 0]],
                                 ["anger", "happiness", "neutral", "sadness"], tmp_path / "out" / "confusion.png")
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    raw = plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], tmp_path / "raw.png", normalize=False, title="counts")
    assert raw.stat().st_size > 0
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "bad.png")
