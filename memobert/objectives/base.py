"""What a pretraining task is (masker + head + loss), the frame-span task family, and the registry of tasks by name.

A task is one class in one file: its `build_batch` masks a padded batch and adds the targets, its `head_class` (a
`MEmoBertPreTrainingHead`) predicts them and computes the loss inside `MEmoBertForPreTraining`. `@register_task`
makes the task buildable by name and registers its head with the model, so a model whose
`config.pretraining_tasks` names the task holds its head as `model.heads[task.name]` without any edit to the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ..configuration_memobert import MEmoBertConfig
from ..data.schema import MODALITIES
from ..modeling_memobert import (
    MEmoBertForPreTraining,
    MEmoBertForPreTrainingOutput,
    MEmoBertModelOutput,
    MEmoBertPredictionHeadTransform,
    MEmoBertPreTrainingHead,
    MEmoBertPreTrainingHeadOutput,
    register_pretraining_head,
)
from .masking import SpanMasking, SpecialTokenIds


@dataclass
class PaddedBatch:
    """
    Corpus rows as right-padded tensors, before any masking. A modality is None when the batch left it out (no row
    has it and the task does not need it); a row without it is all padding in its segment.

    input_ids / attention_mask / word_ids: `(batch, text_len)`, `[CLS] pieces [SEP]`, word_ids -1 at special tokens
        and padding. visual_feats `(batch, visual_len, visual_dim)`, visual_mask `(batch, visual_len)`,
        face_soft_labels `(batch, visual_len, num_face_classes)` (only when a task asked for them).
        acoustic_feats `(batch, acoustic_len, acoustic_dim)`, acoustic_mask `(batch, acoustic_len)`.
    """

    input_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    word_ids: torch.Tensor | None = None
    visual_feats: torch.Tensor | None = None
    visual_mask: torch.Tensor | None = None
    face_soft_labels: torch.Tensor | None = None
    acoustic_feats: torch.Tensor | None = None
    acoustic_mask: torch.Tensor | None = None

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The unmasked inputs of `MEmoBertForPreTraining.forward` for the modalities present."""
        inputs: dict[str, torch.Tensor] = {}
        if self.input_ids is not None:
            inputs.update(
                input_ids=self.input_ids,
                attention_mask=self.attention_mask,
                token_type_ids=torch.zeros_like(self.input_ids),
            )
        if self.visual_feats is not None:
            inputs.update(visual_feats=self.visual_feats, visual_mask=self.visual_mask)
        if self.acoustic_feats is not None:
            inputs.update(acoustic_feats=self.acoustic_feats, acoustic_mask=self.acoustic_mask)
        return inputs


def mean_or_zero(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """`total / count`, 0 (not NaN) when nothing was masked, without a host sync."""
    return total / count.clamp(min=1)


class PretrainingTask(ABC):
    """
    One self-supervised task: the modality it masks, its masker (run in the collator), its head (`head_class`, built
    by the model from its config) and, inside the head, its loss.

    A batch built for a task holds that task's targets only (`head_class.target_names`), so `model(**batch).loss` is
    the task's loss; `task.loss(output)` reads it from `output.losses[task.name]` and fails clearly when the batch
    was built for another task.
    """

    name: ClassVar[str]
    modality: ClassVar[str]  # the modality it masks: "text", "visual" or "acoustic"
    head_class: ClassVar[type[MEmoBertPreTrainingHead]]  # built as model.heads[name] by head_class(config)
    needs_face_soft_labels: ClassVar[bool] = False

    @property
    def target_names(self) -> tuple[str, ...]:
        """The batch keys holding this task's targets (those its head reads)."""
        return self.head_class.target_names

    @abstractmethod
    def build_batch(
        self, padded: PaddedBatch, special_token_ids: SpecialTokenIds, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Masks `padded` and returns the keyword arguments of `MEmoBertForPreTraining.forward` for this task."""

    def head(self, model: MEmoBertForPreTraining) -> nn.Module:
        """The model's head of this task."""
        if self.name not in model.heads:
            raise KeyError(f"The model has no head for task {self.name!r}; its config.pretraining_tasks are "
                           f"{list(model.config.pretraining_tasks)}.")
        return model.heads[self.name]

    def loss(self, output: MEmoBertForPreTrainingOutput) -> torch.Tensor:
        """This task's loss from the model output."""
        value = (output.losses or {}).get(self.name)
        if value is None:
            raise ValueError(
                f"The model output has no loss of task {self.name!r}: the batch held none of its targets "
                f"{list(self.target_names)}. Build the batch with PretrainingCollator(...)(rows, {self.name!r})."
            )
        return value

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"


# ----------------------------------------------------------------------------------------------------------------------
# The frame-span family: SpanMVFR, SpanMAFR (regression head) and SpanMVFC-KL
# ----------------------------------------------------------------------------------------------------------------------


def masked_frames(inputs: dict, outputs: MEmoBertModelOutput, modality: str) -> torch.Tensor:
    """`(batch, len)` bool: the frames of `modality` whose targets are predicted (the target positions when the
    batch gives them, else the masked positions), real frames only."""
    positions = inputs.get(f"{modality}_target_pos")
    if positions is None:
        positions = inputs.get(f"{modality}_bool_masked_pos")
    hidden = getattr(outputs, f"{modality}_hidden_state")
    if hidden is None or positions is None:
        raise ValueError(
            f"{modality} targets need {modality}_feats and {modality}_bool_masked_pos (the frames to predict)."
        )
    mask = inputs.get(f"{modality}_mask")
    return positions if mask is None else positions & mask.bool()


class FrameRegressionHead(MEmoBertPreTrainingHead):
    """Regresses the original features of the masked frames of one modality: Linear-GELU-LayerNorm, then a linear map
    whose weight is the modality's input projection, transposed (tied), with its own bias; MSE at those frames."""

    modality: ClassVar[str]

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.transform = MEmoBertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(getattr(config, f"{self.modality}_dim")))

    def init_weights(self, config: MEmoBertConfig) -> None:
        init.zeros_(self.bias)

    def forward(self, model, outputs, inputs) -> MEmoBertPreTrainingHeadOutput:
        masked = masked_frames(inputs, outputs, self.modality)
        hidden = getattr(outputs, f"{self.modality}_hidden_state")[masked]
        projection = getattr(model.memobert, f"{self.modality}_embeddings").projection.weight  # (hidden, dim)
        predictions = F.linear(self.transform(hidden), projection.t(), self.bias)
        targets = inputs[self.target_names[0]][masked]
        total = F.mse_loss(predictions.float(), targets.float(), reduction="sum")
        return MEmoBertPreTrainingHeadOutput(mean_or_zero(total, masked.sum() * predictions.shape[-1]), predictions)


class FrameSpanTask(PretrainingTask):
    """A task that span-masks one frame modality (`modality` is "visual" or "acoustic") and predicts its frames."""

    default_ratio: ClassVar[float]

    def __init__(
        self,
        ratio: float | None = None,
        span_length: int = 3,
        allow_overlap: bool = False,
        replacement: str = "mask_vector",
        masker: SpanMasking | None = None,
    ):
        if masker is not None and (ratio is not None or span_length != 3 or allow_overlap or replacement != "mask_vector"):
            raise ValueError(f"Give {type(self).__name__} either a masker or the masking options, not both.")
        self.masker = masker or SpanMasking(
            ratio=self.default_ratio if ratio is None else ratio,
            span_length=span_length,
            allow_overlap=allow_overlap,
            replacement=replacement,
        )

    @abstractmethod
    def targets(self, padded: PaddedBatch, target_pos: torch.Tensor) -> dict[str, torch.Tensor]:
        """The target tensors of this task, zero outside `target_pos`."""

    def build_batch(
        self, padded: PaddedBatch, special_token_ids: SpecialTokenIds, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        feats = getattr(padded, f"{self.modality}_feats")
        frame_mask = getattr(padded, f"{self.modality}_mask")
        if feats is None:
            raise ValueError(
                f"Task {self.name!r} needs {self.modality} frames in the batch; PretrainingCollator always gives them "
                "(all padding when no row has any)."
            )
        masked = self.masker(feats, frame_mask, generator)
        batch = padded.model_inputs()
        batch[f"{self.modality}_feats"] = masked.feats
        batch[f"{self.modality}_bool_masked_pos"] = masked.bool_masked_pos
        if self.masker.replacement != "mask_vector":
            # The predicted frames include some that keep (or swap) their features and get no mask vector.
            batch[f"{self.modality}_target_pos"] = masked.target_pos
        batch.update(self.targets(padded, masked.target_pos))
        return batch


class FrameRegressionTask(FrameSpanTask):
    """A frame-span task whose head regresses the masked frames (`head_class`: a `FrameRegressionHead`): its target
    is the unmasked features at the predicted frames."""

    def targets(self, padded: PaddedBatch, target_pos: torch.Tensor) -> dict[str, torch.Tensor]:
        (name,) = self.head_class.target_names
        return {name: zero_outside(getattr(padded, f"{self.modality}_feats"), target_pos)}


def zero_outside(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """`values` (batch, len, dim) kept at `positions` (batch, len) and zero elsewhere."""
    # Copies the few selected frames into zeros: far faster on the CPU than a broadcast masked_fill.
    out = torch.zeros_like(values)
    index = positions.nonzero(as_tuple=True)  # integer indices: faster than boolean-mask indexing on the CPU
    out[index] = values[index]
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------------------

TASKS: dict[str, type[PretrainingTask]] = {}


def register_task(task_class: type[PretrainingTask]) -> type[PretrainingTask]:
    """Class decorator: makes `task_class` buildable by its `name` (`get_task(name, **options)`) and registers its
    head with the model (`MEmoBertForPreTraining` builds it when `config.pretraining_tasks` names the task)."""
    name = getattr(task_class, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{task_class.__name__} needs a class attribute `name` (a non-empty string) to be registered.")
    if name in TASKS and TASKS[name] is not task_class:
        raise ValueError(
            f"A pretraining task named {name!r} is already registered ({TASKS[name].__name__}); choose another name."
        )
    for attribute in ("modality", "head_class"):
        if not hasattr(task_class, attribute):
            raise ValueError(f"{task_class.__name__} must set the class attribute {attribute!r} to be registered.")
    if task_class.modality not in MODALITIES:
        raise ValueError(f"{task_class.__name__}.modality is {task_class.modality!r}; use one of {MODALITIES}.")
    head = task_class.head_class
    if not (isinstance(head, type) and issubclass(head, MEmoBertPreTrainingHead)) or not head.target_names:
        raise ValueError(f"{task_class.__name__}.head_class must be a MEmoBertPreTrainingHead subclass that names its "
                         "target_names (the batch keys holding the task's targets).")
    register_pretraining_head(name, head)
    TASKS[name] = task_class
    return task_class


def get_task_class(name: str) -> type[PretrainingTask]:
    """The registered task class called `name`."""
    if name not in TASKS:
        raise KeyError(f"Unknown pretraining task {name!r}; the registered tasks are {sorted(TASKS)}.")
    return TASKS[name]


def get_task(name: str, **options) -> PretrainingTask:
    """A task by name, built with its options (e.g. `get_task("span_mvfr", replacement="mockingjay")`)."""
    return get_task_class(name)(**options)


def available_tasks() -> list[str]:
    """The names of the registered tasks, sorted."""
    return sorted(TASKS)


def compute_task_loss(
    model: MEmoBertForPreTraining, batch: dict[str, torch.Tensor], task: PretrainingTask | str
) -> torch.Tensor:
    """Runs `model` on a batch built for `task` and returns that task's loss."""
    task = get_task(task) if isinstance(task, str) else task
    return task.loss(model(**batch, return_dict=True))
