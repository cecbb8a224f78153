"""
MEmoBERT's pretraining objectives: a registry of tasks (WWMLM, SpanMVFR, SpanMVFC-KL, SpanMAFR), their maskers, the
collator that builds one task's batch, and the schedule that picks the task of each optimizer update.

    collator = PretrainingCollator(tokenizer, model.config, seed=1234)
    schedule = TaskSchedule(seed=1234)                       # WWMLM 2 : the others 1
    task = collator.task(schedule.task_for_update(step))
    batch = collator(rows, task)
    loss = task.loss(model(**batch))                          # == model(**batch).loss

A new task is one file: a head (`MEmoBertPreTrainingHead` subclass: its target names, its forward and loss) and a
task (`PretrainingTask` or `FrameSpanTask` subclass: its modality, masker and `head_class`) decorated with
`@register_task`. Import the file, put the task's name in `config.pretraining_tasks` (pretraining does it for the
tasks it trains) and the model holds the head as `model.heads[name]`; nothing else changes.
"""

from .base import (
    MODALITIES,
    TASKS,
    FrameRegressionHead,
    FrameRegressionTask,
    FrameSpanTask,
    PaddedBatch,
    PretrainingTask,
    available_tasks,
    compute_task_loss,
    get_task,
    get_task_class,
    mean_or_zero,
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

# The built-in tasks register themselves (and their heads) on import.
from .span_mafr import AcousticFrameRegressionHead, SpanMaskedAcousticFrameRegressionTask
from .span_mvfc_kl import FaceExpressionHead, SpanMaskedVisualFrameClassificationTask
from .span_mvfr import SpanMaskedVisualFrameRegressionTask, VisualFrameRegressionHead
from .wwmlm import WholeWordMLMHead, WholeWordMLMTask

from .collator import PretrainingCollator  # noqa: E402  (after the tasks: it builds them by name)
from .schedule import DEFAULT_TASK_RATIOS, TaskSchedule  # noqa: E402

__all__ = [
    "MODALITIES",
    "TASKS",
    "REPLACEMENT_MODES",
    "DEFAULT_TASK_RATIOS",
    "PretrainingTask",
    "FrameSpanTask",
    "FrameRegressionHead",
    "FrameRegressionTask",
    "PaddedBatch",
    "mean_or_zero",
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
    "WholeWordMLMHead",
    "SpanMaskedVisualFrameRegressionTask",
    "VisualFrameRegressionHead",
    "SpanMaskedVisualFrameClassificationTask",
    "FaceExpressionHead",
    "SpanMaskedAcousticFrameRegressionTask",
    "AcousticFrameRegressionHead",
    "PretrainingCollator",
    "TaskSchedule",
]
