"""Which task each optimizer update trains: drawn by ratio, deterministic from (seed, update step)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .base import available_tasks

DEFAULT_TASK_RATIOS: dict[str, float] = {"wwmlm": 2.0, "span_mvfr": 1.0, "span_mvfc_kl": 1.0, "span_mafr": 1.0}


class TaskSchedule:
    """
    Draws one task per optimizer update with probability proportional to its ratio (default WWMLM 2 : SpanMVFR 1 :
    SpanMVFC-KL 1 : SpanMAFR 1). The draw of update `step` depends on `(seed, step)` only — a fresh
    `numpy.random.Generator` seeded with both — so every rank picks the same task, all gradient-accumulation
    micro-batches of an update share it, and a run resumed at step k continues the same sequence.

    Args:
        ratios: task name -> relative weight (>= 0; a task of weight 0 is never drawn). Names must be registered.
        seed: the run's seed.
    """

    def __init__(self, ratios: Mapping[str, float] | None = None, seed: int = 1234):
        ratios = dict(DEFAULT_TASK_RATIOS if ratios is None else ratios)
        unknown = sorted(set(ratios) - set(available_tasks()))
        if unknown:
            raise ValueError(f"Task ratios name unknown tasks {unknown}; the registered tasks are {available_tasks()}.")
        negative = {name: r for name, r in ratios.items() if not r >= 0}
        if negative:
            raise ValueError(f"Task ratios must be >= 0, got {negative}.")
        if not sum(ratios.values()) > 0:
            raise ValueError(f"At least one task ratio must be positive, got {ratios}.")
        if seed < 0:
            raise ValueError(f"The schedule seed must be >= 0, got {seed}.")
        # Sorted names: the draw does not depend on the order the ratios were written in.
        self.task_names = tuple(sorted(name for name, r in ratios.items() if r > 0))
        weights = np.array([ratios[name] for name in self.task_names], dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self._cumulative = np.cumsum(self.probabilities)
        self.seed = int(seed)

    def task_for_update(self, step: int) -> str:
        """The task of optimizer update `step` (0-based)."""
        if step < 0:
            raise ValueError(f"Update step must be >= 0, got {step}.")
        draw = np.random.default_rng([self.seed, int(step)]).random()
        index = int(np.searchsorted(self._cumulative, draw, side="right"))
        return self.task_names[min(index, len(self.task_names) - 1)]

    def task_for_micro_batch(self, micro_step: int, accumulation_steps: int) -> str:
        """The task of micro-batch `micro_step` when each update accumulates `accumulation_steps` micro-batches."""
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}.")
        return self.task_for_update(micro_step // accumulation_steps)

    def tasks_for_updates(self, start: int, stop: int) -> list[str]:
        """The tasks of updates `start .. stop - 1`."""
        return [self.task_for_update(step) for step in range(start, stop)]

    def __repr__(self) -> str:
        ratios = dict(zip(self.task_names, np.round(self.probabilities, 4).tolist()))
        return f"TaskSchedule(probabilities={ratios}, seed={self.seed})"


__all__ = ["TaskSchedule", "DEFAULT_TASK_RATIOS"]
