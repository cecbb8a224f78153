"""The Accelerate loops shared by pretraining and downstream training."""

from .arguments import ConfigError, PretrainArguments, parse_pretrain_arguments
from .pretrain import pretrain

__all__ = ["ConfigError", "PretrainArguments", "parse_pretrain_arguments", "pretrain"]
