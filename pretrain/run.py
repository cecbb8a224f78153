"""Pretrain MEmoBERT: `accelerate launch pretrain/run.py [--config pretrain/configs/base.yaml] [--option value ...]`.

With no arguments: the demo recipe (pretrain/configs/demo.yaml) on the built-in demo corpus, on whatever
`accelerate` gives (one CPU here). Every option of the config can be overridden on the command line; see --help.
"""

import sys
from pathlib import Path

from memobert.training import ConfigError, parse_pretrain_arguments, pretrain

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not {"-h", "--help"} & set(argv):
        argv = ["--config", str(DEFAULT_CONFIG), *argv]
    try:
        args = parse_pretrain_arguments(argv)
    except ConfigError as error:
        sys.exit(f"error: {error}")
    pretrain(args)


if __name__ == "__main__":
    main()
