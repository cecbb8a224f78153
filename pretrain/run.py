"""Pretrain MEmoBERT (same as `memobert pretrain`; see --help).

    accelerate launch pretrain/run.py                                         # the demo recipe on the demo corpus
    accelerate launch pretrain/run.py --config pretrain/configs/base.yaml --corpus corpus/   # the paper's recipe

Options come from the dataclass defaults (the demo recipe), then `--config FILE.yaml|json`, then the command line.
"""

from memobert.cli import pretrain_main

if __name__ == "__main__":
    pretrain_main()
