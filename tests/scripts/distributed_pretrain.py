"""Run by tests under `accelerate launch`: one tiny pretraining run from the JSON arguments file given."""

import json
import sys

from memobert.training import PretrainArguments, pretrain

if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        pretrain(PretrainArguments(**json.load(handle)))
