"""PNG plots of training runs and of evaluation results."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss_curves(history: dict, path: str | Path, title: str = "MEmoBERT pretraining") -> Path:
    """
    One panel per task: training loss (solid) and held-out loss (dots) against the update.
    `history` = {"train": [{"step", "loss/<task>", ...}], "eval": [{"step", "loss/<task>", ...}]}.
    """
    tasks = sorted({k[5:] for record in history.get("train", []) + history.get("eval", []) for k in record if k.startswith("loss/")})
    if not tasks:
        raise ValueError("The history holds no losses to plot.")
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        key = f"loss/{task}"
        for split, style in (("train", "-"), ("eval", "o--")):
            points = [(r["step"], r[key]) for r in history.get(split, []) if key in r]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, label="held-out" if split == "eval" else "train")
        ax.set_title(task)
        ax.set_xlabel("update")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion_matrix(
    confusion,
    class_names: list[str] | tuple[str, ...],
    path: str | Path,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """
    A confusion-matrix PNG: rows = true class, columns = predicted class. With `normalize`, each row is divided by its
    count (recall per class on the diagonal; a class with no example keeps a row of zeros); cells show the values.
    """
    matrix = np.asarray(confusion, dtype=float)
    n = len(class_names)
    if matrix.shape != (n, n):
        raise ValueError(f"confusion has shape {matrix.shape}, expected ({n}, {n}) for classes {list(class_names)}.")
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = 1.2 + 0.9 * n
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(matrix.max(), 1.0))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = (1.0 if normalize else max(matrix.max(), 1.0)) / 2
    for i in range(n):
        for j in range(n):
            text = f"{matrix[i, j]:.2f}" if normalize else f"{int(round(matrix[i, j]))}"
            ax.text(j, i, text, ha="center", va="center", color="white" if matrix[i, j] > threshold else "black")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
