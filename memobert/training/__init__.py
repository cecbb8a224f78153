"""The pretraining loop (`pretrain`) and what both loops share: arguments, the optimizer, batches to the device.
The downstream runner is `memobert.downstream`."""

from .arguments import ConfigError, OptimizerArguments, PretrainArguments, parse_pretrain_arguments
from .pretrain import pretrain

__all__ = ["ConfigError", "OptimizerArguments", "PretrainArguments", "parse_pretrain_arguments", "pretrain"]
