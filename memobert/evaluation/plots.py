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
    return save_figure(fig, path)


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
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lays the figure out, writes it as a PNG at `path` (making its folder) and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _field(result, name: str, default=None):
    """A field of a per-utterance result: a mapping (`predict_video`'s dicts) or an object (`UtteranceEmotion`)."""
    if isinstance(result, dict):
        return result.get(name, default)
    return getattr(result, name, default)


def _abbreviate(text: str, limit: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


def plot_emotion_timeline(
    results,
    path: str | Path,
    duration: float | None = None,
    title: str = "Emotion over time",
) -> Path:
    """
    A PNG of a video's label-word probabilities along its time line (seconds): one band per utterance over [start,
    end], stacked by label word (the probabilities sum to 1), with the predicted label, its probability and the
    abbreviated text above it; utterances not predicted (skipped or failed) are grey hatched bands named by their
    status. `results`: per
    utterance, an object or dict with utterance_id, start, end, text, emotion, probabilities ({word: p}) and status
    (`EmotionRecognizer`'s `UtteranceEmotion`s or `predict_video`'s dicts); items without times are left out.
    `duration`: the end of the axis (default: the last utterance's end).
    """
    placed = [r for r in results if _field(r, "start") is not None and _field(r, "end") is not None]
    words = list(dict.fromkeys(w for r in placed for w in (_field(r, "probabilities") or {})))
    last = max((float(_field(r, "end")) for r in placed), default=0.0)
    end = float(duration) if duration is not None and duration > 0 else max(last, 1.0)
    width = float(np.clip(end / 2.0, 8.0, 24.0))
    fig, ax = plt.subplots(figsize=(width, 3.6))
    colors = {w: plt.get_cmap("tab10")(i % 10) for i, w in enumerate(words)}
    points_per_second = width * 72 * 0.85 / end  # the axis' width in points, per second
    for index, r in enumerate(sorted(placed, key=lambda r: float(_field(r, "start")))):
        start, stop = float(_field(r, "start")), float(_field(r, "end"))
        probabilities = _field(r, "probabilities") or {}
        # ~4 pt per character at 7 pt; neighbours' labels are on the other row, so a label may be 1.5 bands wide
        chars = max(3, int(1.5 * (stop - start) * points_per_second / 4.0))
        if probabilities:
            bottom = 0.0
            for word in words:
                p = float(probabilities.get(word, 0.0))
                ax.fill_between([start, stop], bottom, bottom + p, color=colors[word], linewidth=0, step="pre")
                bottom += p
            emotion = str(_field(r, "emotion", "") or "")
            label = f"{emotion} {float(probabilities[emotion]):.2f}" if emotion in probabilities else emotion
            color = "black"
        else:
            ax.fill_between([start, stop], 0.0, 1.0, facecolor="0.88", edgecolor="0.6", hatch="//", linewidth=0.5)
            label = str(_field(r, "status", "") or "not predicted")
            color = "0.45"
        ax.axvline(start, color="white", linewidth=0.8)
        offset = 1.03 if index % 2 == 0 else 1.13  # neighbours alternate, so that short bands' labels do not collide
        ax.text((start + stop) / 2, offset, f"{label}\n{_abbreviate(_field(r, 'text', ''), chars)}",
                ha="center", va="bottom", fontsize=7, color=color, clip_on=False,
                fontweight="bold" if probabilities else "normal", linespacing=1.1)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[w]) for w in words]
    labels = list(words)
    if any(not (_field(r, "probabilities") or {}) for r in placed):
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="0.88", edgecolor="0.6", hatch="//"))
        labels.append("not predicted")
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(0.0, end)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_title(title, pad=46)
    if not placed:
        ax.text(end / 2, 0.5, "no utterance", ha="center", va="center", color="0.45")
    return save_figure(fig, path)
