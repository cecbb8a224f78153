"""The Accelerate loops: pretraining (`pretrain`) and downstream emotion classification (`run_downstream`)."""

from .arguments import ConfigError, PretrainArguments, parse_pretrain_arguments
from .downstream import DownstreamArguments, parse_downstream_arguments, run_downstream
from .pretrain import pretrain

__all__ = [
    "ConfigError",
    "PretrainArguments",
    "parse_pretrain_arguments",
    "pretrain",
    "DownstreamArguments",
    "parse_downstream_arguments",
    "run_downstream",
]
