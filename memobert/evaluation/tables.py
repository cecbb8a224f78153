"""Results tables: WA / UAR / WF1 / F1 as mean ± std over folds and seeds, grouped by setting and modality case.

A row is one run (one fold x one seed): a mapping with the grouping columns (default "setting", "modalities") and
the metrics, either flat (`row["uar"]`) or nested (`row["metrics"]["uar"]`). Values are fractions in [0, 1];
the table shows percentages by default. The std is the sample std (ddof=1); a group of one run shows no std.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .metrics import METRICS

METRIC_TITLES = {"wa": "WA", "uar": "UAR", "wf1": "WF1", "f1": "F1"}
COLUMN_TITLES = {"setting": "Setting", "modalities": "Modalities"}


def _value(row: Mapping, metric: str, index: int) -> float:
    if metric in row:
        return float(row[metric])
    nested = row.get("metrics")
    if isinstance(nested, Mapping) and metric in nested:
        return float(nested[metric])
    raise KeyError(f"Result row {index} has no {metric!r} (neither row[{metric!r}] nor row['metrics'][{metric!r}]).")


def summarize(
    rows: Sequence[Mapping],
    group_by: Sequence[str] = ("setting", "modalities"),
    metrics: Sequence[str] = METRICS,
    over: str = "runs",
    seed_key: str = "seed",
) -> list[dict]:
    """
    One dict per group (first-appearance order): the group columns, `n` (runs), `<metric>_mean`, `<metric>_std`.
    `over="runs"`: mean/std over every fold x seed run; `over="seeds"`: each seed's fold average first, then
    mean/std over seeds (`n` then counts seeds).
    """
    if over not in ("runs", "seeds"):
        raise ValueError(f"over must be 'runs' or 'seeds', got {over!r}.")
    groups: dict[tuple, list[tuple[int, Mapping]]] = {}
    for i, row in enumerate(rows):
        missing = [c for c in group_by if c not in row]
        if missing:
            raise KeyError(f"Result row {i} lacks the grouping column(s) {missing}.")
        groups.setdefault(tuple(row[c] for c in group_by), []).append((i, row))
    summary = []
    for key, members in groups.items():
        values = {m: np.array([_value(row, m, i) for i, row in members]) for m in metrics}
        if over == "seeds":
            seeds: dict = {}
            for position, (i, row) in enumerate(members):
                if seed_key not in row:
                    raise KeyError(f"Result row {i} lacks {seed_key!r}, needed for over='seeds'.")
                seeds.setdefault(row[seed_key], []).append(position)
            values = {m: np.array([v[p].mean() for p in seeds.values()]) for m, v in values.items()}
        n = len(next(iter(values.values()))) if values else len(members)
        entry: dict = dict(zip(group_by, key))
        entry["n"] = n
        for m, v in values.items():
            entry[f"{m}_mean"] = float(v.mean())
            entry[f"{m}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        summary.append(entry)
    return summary


def format_mean_std(mean: float | None, std: float | None = None, *, scale: float = 100.0, digits: int = 2,
                    missing: str = "nan") -> str:
    """A table cell: `mean ± std` scaled (default: in %), the mean alone when `std` is None or NaN, `missing` when
    `mean` is None or NaN."""
    if mean is None or np.isnan(float(mean)):
        return missing
    mean = float(mean) * scale
    if std is None or np.isnan(float(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(std) * scale:.{digits}f}"


def results_table(
    rows: Sequence[Mapping],
    group_by: Sequence[str] = ("setting", "modalities"),
    metrics: Sequence[str] = METRICS,
    percent: bool = True,
    digits: int = 2,
    over: str = "runs",
) -> str:
    """A Markdown table: one line per group, a column per grouping key, `n`, and `mean ± std` per metric."""
    summary = summarize(rows, group_by=group_by, metrics=metrics, over=over)
    scale = 100.0 if percent else 1.0
    header = [COLUMN_TITLES.get(c, c) for c in group_by] + ["n"] + [METRIC_TITLES.get(m, m) for m in metrics]
    rule = ["---"] * len(group_by) + ["---:"] * (1 + len(metrics))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    for entry in summary:
        cells = [str(entry[c]) for c in group_by] + [str(entry["n"])]
        cells += [format_mean_std(entry[f"{m}_mean"], entry[f"{m}_std"], scale=scale, digits=digits) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
