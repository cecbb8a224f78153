"""Train DenseNet-BC-100 on FER+ (soft-label cross-entropy), evaluate WA/UAR, write safetensors checkpoints.

Recipe (MEmoBERT's): Adam lr 1e-3, batch 64, lr halved every 40 epochs; augmentation = pad-and-crop (random shift),
horizontal flip and a small rotation; 48x48 images resized to 64x64; loss = cross-entropy against the normalised
FER+ vote distribution. WA = accuracy against the majority vote, UAR = macro recall over the classes present.

Output folder: `last.safetensors` (after every epoch), `best.safetensors` (best validation WA; the last epoch when
there is no validation split) and `metrics.json` (per-epoch history + the best checkpoint's test metrics).
"""

from __future__ import annotations

import json
import math
import os
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.ferplus import FerPlusSplit, read_ferplus
from .densenet import DenseNetFER, DenseNetFERConfig


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """`(N, h, w)` uint8 -> `(N, size, size)` uint8 (bilinear)."""
    if images.shape[1:] == (size, size):
        return images
    out = np.empty((len(images), size, size), np.uint8)
    for i, image in enumerate(images):
        out[i] = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def augment(
    pixels: torch.Tensor,
    generator: torch.Generator | None = None,
    max_shift: float = 4 / 48,
    max_rotation_deg: float = 10.0,
    flip: bool = True,
) -> torch.Tensor:
    """Random pad-crop shift (zero fill, up to `max_shift` of the side), horizontal flip and rotation, batched.

    `pixels`: `(B, 1, H, W)` float. One affine warp per image (`affine_grid` + `grid_sample`).
    """
    b = pixels.shape[0]
    dev = pixels.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    angle = (rand(b) * 2 - 1) * math.radians(max_rotation_deg)
    size = pixels.shape[-1]
    # Integer-pixel shifts as a pad-and-crop does; grid units span 2 over the image side.
    max_px = int(round(max_shift * size))
    shift = (torch.randint(-max_px, max_px + 1, (b, 2), generator=generator).float().to(dev) * 2 / size)
    sign = torch.where(rand(b) < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=dev)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos * sign, -sin, shift[:, 0]], dim=1), torch.stack([sin * sign, cos, shift[:, 1]], dim=1)],
        dim=1,
    )
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c target_c * log softmax(logits)_c."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def train_step(
    model: DenseNetFER, optimizer: torch.optim.Optimizer, pixels: torch.Tensor, targets: torch.Tensor
) -> float:
    """One optimisation step on `(B, 1, H, W)` pixels in [0, 1] and `(B, C)` soft targets; returns the loss."""
    model.train()
    _, logits = model(pixels)
    loss = soft_cross_entropy(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """WA (accuracy) and UAR (mean recall over the classes present in `y_true`)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return {"wa": float("nan"), "uar": float("nan")}
    recalls = [float((y_pred[y_true == c] == c).mean()) for c in range(num_classes) if (y_true == c).any()]
    return {"wa": float((y_true == y_pred).mean()), "uar": float(np.mean(recalls))}


@torch.inference_mode()
def evaluate(
    model: DenseNetFER, split: FerPlusSplit, device: str | torch.device = "cpu", batch_size: int = 256
) -> dict[str, float]:
    """Loss (soft cross-entropy), WA and UAR of `model` on a FER+ split (majority vote as the label)."""
    model.eval()
    size = model.config.image_size
    images = resize_images(split.images, size)
    preds, losses = [], []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start:start + batch_size]).to(device)[:, None].float() / 255.0
        t = torch.from_numpy(split.targets[start:start + batch_size]).to(device)
        _, logits = model(x)
        losses.append(float(soft_cross_entropy(logits, t)) * len(x))
        preds.append(logits.argmax(dim=-1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros((0,), np.int64)
    metrics = classification_metrics(split.labels, pred, model.config.num_classes)
    metrics["loss"] = sum(losses) / len(images) if len(images) else float("nan")
    metrics["n"] = int(len(images))
    return metrics


def train_ferplus(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    epochs: int = 120,
    batch_size: int = 64,
    lr: float = 1e-3,
    lr_step_epochs: int = 40,
    lr_gamma: float = 0.5,
    val_split: str | None = "PublicTest",
    test_split: str | None = "PrivateTest",
    config: DenseNetFERConfig | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    max_steps_per_epoch: int | None = None,
    progress: bool = True,
) -> dict:
    """Trains DenseNet-BC-100 on the FER+ layout in `data_dir`; writes checkpoints + `metrics.json` to `output_dir`.

    Returns the metrics dict (also in `metrics.json`): `history` (per epoch: train loss, lr, validation metrics),
    `best_epoch`, `val` and `test` (WA/UAR/loss of the best checkpoint), and the checkpoint paths.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}.")
    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    splits = [s for s in ("Training", val_split, test_split) if s]
    data = read_ferplus(data_dir, splits=tuple(dict.fromkeys(splits)))
    train = data["Training"]
    if len(train) == 0:
        raise ValueError(f"{data_dir}: no usable Training rows in the FER+ files (dropped: {data.dropped}).")
    val = data[val_split] if val_split and len(data[val_split]) else None
    test = data[test_split] if test_split and len(data[test_split]) else None

    model = DenseNetFER(config or DenseNetFERConfig()).to(device)
    size = model.config.image_size
    images = torch.from_numpy(resize_images(train.images, size))
    targets = torch.from_numpy(train.targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step_epochs, gamma=lr_gamma)

    last_path = os.path.join(output_dir, "last.safetensors")
    best_path = os.path.join(output_dir, "best.safetensors")
    history: list[dict] = []
    best_wa, best_epoch = -1.0, 0
    steps_per_epoch = math.ceil(len(train) / batch_size)
    if max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps_per_epoch)
    for epoch in range(1, epochs + 1):
        start_time = time.perf_counter()
        order = torch.randperm(len(train), generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"FER+ epoch {epoch}/{epochs}", disable=not progress, leave=False)
        total, seen = 0.0, 0
        for step in bar:
            idx = order[step * batch_size:(step + 1) * batch_size]
            x = images[idx].to(device)[:, None].float() / 255.0
            x = augment(x, generator)
            loss = train_step(model, optimizer, x, targets[idx].to(device))
            if not math.isfinite(loss):
                raise FloatingPointError(f"FER+ training loss became {loss} at epoch {epoch}, step {step + 1}; "
                                         "lower the learning rate.")
            total += loss * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        bar.close()
        record = {"epoch": epoch, "train_loss": total / max(seen, 1), "lr": optimizer.param_groups[0]["lr"]}
        scheduler.step()
        model.save(last_path)
        if val is not None:
            record["val"] = evaluate(model, val, device)
            if record["val"]["wa"] > best_wa:
                best_wa, best_epoch = record["val"]["wa"], epoch
                model.save(best_path)
        else:
            best_epoch = epoch
            model.save(best_path)
        record["seconds"] = time.perf_counter() - start_time
        history.append(record)

    best = DenseNetFER.load(best_path, map_location=device)
    metrics = {
        "history": history,
        "best_epoch": best_epoch,
        "val": evaluate(best, val, device) if val is not None else None,
        "test": evaluate(best, test, device) if test is not None else None,
        "class_names": list(best.config.class_names),
        "dropped_rows": {"no_image_name": data.dropped.no_image_name,
                         "no_emotion_votes": data.dropped.no_emotion_votes},
        "num_train": len(train),
        "checkpoints": {"best": best_path, "last": last_path},
        "hyperparameters": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "lr_step_epochs": lr_step_epochs,
                            "lr_gamma": lr_gamma, "seed": seed},
    }
    tmp = os.path.join(output_dir, f"metrics.json.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, allow_nan=True)
    os.replace(tmp, os.path.join(output_dir, "metrics.json"))
    return metrics
