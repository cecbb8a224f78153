"""
MEmoBERT's pretraining objectives: a registry of tasks (WWMLM, SpanMVFR, SpanMVFC-KL, SpanMAFR), their maskers, the
collator that builds one task's batch, and the schedule that picks the task of each optimizer update.

    collator = PretrainingCollator(tokenizer, model.config, seed=1234)
    schedule = TaskSchedule(seed=1234)                       # WWMLM 2 : the others 1
    task = collator.task(schedule.task_for_update(step))
    batch = collator(rows, task)
    loss = task.loss(model(**batch))                          # == model(**batch).loss

A new task is one file: subclass `PretrainingTask` (or `FrameSpanTask`), decorate it with `@register_task`, import it.
"""

from .base import (
    MODALITIES,
    TASKS,
    FrameSpanTask,
    PaddedBatch,
    PretrainingTask,
    available_tasks,
    compute_task_loss,
    get_task,
    get_task_class,
    register_task,
)
from .masking import (
    REPLACEMENT_MODES,
    SpanMasking,
    SpanMaskingOutput,
    SpecialTokenIds,
    WholeWordMasking,
    WholeWordMaskingOutput,
)

# The built-in tasks register themselves on import.
from .span_mafr import SpanMaskedAcousticFrameRegressionTask
from .span_mvfc_kl import SpanMaskedVisualFrameClassificationTask
from .span_mvfr import SpanMaskedVisualFrameRegressionTask
from .wwmlm import WholeWordMLMTask

from .collator import PretrainingCollator  # noqa: E402  (after the tasks: it builds them by name)
from .schedule import DEFAULT_TASK_RATIOS, TaskSchedule  # noqa: E402

__all__ = [
    "MODALITIES",
    "TASKS",
    "REPLACEMENT_MODES",
    "DEFAULT_TASK_RATIOS",
    "PretrainingTask",
    "FrameSpanTask",
    "PaddedBatch",
    "register_task",
    "get_task",
    "get_task_class",
    "available_tasks",
    "compute_task_loss",
    "SpecialTokenIds",
    "WholeWordMasking",
    "WholeWordMaskingOutput",
    "SpanMasking",
    "SpanMaskingOutput",
    "WholeWordMLMTask",
    "SpanMaskedVisualFrameRegressionTask",
    "SpanMaskedVisualFrameClassificationTask",
    "SpanMaskedAcousticFrameRegressionTask",
    "PretrainingCollator",
    "TaskSchedule",
]
