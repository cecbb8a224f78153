"""PNG plots of training runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

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
