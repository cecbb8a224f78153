"""Media + transcripts -> a sharded MEmoBERT corpus (same as `memobert preprocess`; see --help).

    python preprocessing/run.py --input videos/ --output corpus/
    accelerate launch preprocessing/run.py --input videos/ --output corpus/   # one shard per process and device
"""

from memobert.cli import preprocess_main

if __name__ == "__main__":
    preprocess_main()
