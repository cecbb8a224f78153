"""Downstream emotion classification on speaker-independent folds: the paper's settings (direct, bert_direct,
finetune, prompt) and the registered baselines, trained, selected on validation UAR and tested in every modality case.

One module per job: `arguments` (the options), `corpus` (the labelled rows), `batching` (rows -> batches),
`systems` (what is trained: a MEmoBERT setting or a baseline), `runner` (the loop, top to bottom), `classical` (the
fit-once path), `results` (the run folder and results.md). Folds come from `memobert.data.folds`, metrics from
`memobert.evaluation`.

    from memobert.downstream import parse_downstream_arguments, run_downstream
    run_downstream(parse_downstream_arguments(["--config", "prompt_tuning/configs/demo.yaml"]))
"""

from .arguments import (
    MODALITY_CASES,
    PAPER_DEFAULTS,
    SETTINGS,
    DownstreamArguments,
    canonical_case,
    downstream_argument_parser,
    load_downstream_config,
    parse_downstream_arguments,
)
from .batching import BatchBuilder, training_batches
from .corpus import DownstreamCorpus, load_downstream_corpus
from .results import collect_runs, write_results
from .runner import predict, run_downstream, train_and_test
from .systems import System, build_memobert, build_processor, build_system, frame_lengths, resolve_baseline_config

__all__ = [
    "DownstreamArguments",
    "DownstreamCorpus",
    "BatchBuilder",
    "System",
    "MODALITY_CASES",
    "PAPER_DEFAULTS",
    "SETTINGS",
    "build_system",
    "build_memobert",
    "build_processor",
    "frame_lengths",
    "canonical_case",
    "collect_runs",
    "downstream_argument_parser",
    "load_downstream_config",
    "load_downstream_corpus",
    "parse_downstream_arguments",
    "predict",
    "resolve_baseline_config",
    "run_downstream",
    "train_and_test",
    "training_batches",
    "write_results",
]
