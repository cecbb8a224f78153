"""What a pretraining task is, and the registry of tasks by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..modeling_memobert import MEmoBertForPreTraining, MEmoBertForPreTrainingOutput
from .masking import SpanMasking, SpecialTokenIds

MODALITIES = ("text", "visual", "acoustic")


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


class PretrainingTask(ABC):
    """
    One self-supervised task: the modality it masks, its masker (run in the collator), the model head that predicts
    its targets and the model output field that holds its loss.

    A batch built for a task holds that task's targets only, so `model(**batch).loss` is the task's loss;
    `task.loss(output)` reads it from its own field and fails clearly when the batch was built for another task.
    """

    name: ClassVar[str]
    modality: ClassVar[str]  # the modality it masks: "text", "visual" or "acoustic"
    head_name: ClassVar[str]  # attribute of MEmoBertForPreTraining holding the head that predicts the targets
    loss_name: ClassVar[str]  # field of MEmoBertForPreTrainingOutput holding the loss
    target_names: ClassVar[tuple[str, ...]]  # batch keys this task adds for the model's loss
    needs_face_soft_labels: ClassVar[bool] = False

    @abstractmethod
    def build_batch(
        self, padded: PaddedBatch, special_token_ids: SpecialTokenIds, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Masks `padded` and returns the keyword arguments of `MEmoBertForPreTraining.forward` for this task."""

    def head(self, model: MEmoBertForPreTraining) -> nn.Module:
        """The model head that predicts this task's targets."""
        return getattr(model, self.head_name)

    def loss(self, output: MEmoBertForPreTrainingOutput) -> torch.Tensor:
        """This task's loss from the model output."""
        value = getattr(output, self.loss_name, None)
        if value is None:
            raise ValueError(
                f"The model output has no {self.loss_name}: the batch held no targets of task {self.name!r}. Build "
                f"the batch with PretrainingCollator(...)(rows, {self.name!r})."
            )
        return value

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"


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
    """Class decorator: makes `task_class` buildable by its `name` (`get_task(name, **options)`)."""
    name = getattr(task_class, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{task_class.__name__} needs a class attribute `name` (a non-empty string) to be registered.")
    if name in TASKS and TASKS[name] is not task_class:
        raise ValueError(
            f"A pretraining task named {name!r} is already registered ({TASKS[name].__name__}); choose another name."
        )
    for attribute in ("modality", "head_name", "loss_name", "target_names"):
        if not hasattr(task_class, attribute):
            raise ValueError(f"{task_class.__name__} must set the class attribute {attribute!r} to be registered.")
    if task_class.modality not in MODALITIES:
        raise ValueError(f"{task_class.__name__}.modality is {task_class.modality!r}; use one of {MODALITIES}.")
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
