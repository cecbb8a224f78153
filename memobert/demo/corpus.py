"""The built-in demo corpus: demo media (`memobert.demo.media`) run through the preprocessing pipeline, cached."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

DEMO_CLIPS = 48
DEMO_SEED = 0
# Bump when the pipeline's output changes for the same settings, so that cached demo corpora are rebuilt.
CORPUS_VERSION = 4  # 4: the session column
# What the demo media need: their faces are a real photo, but their voices are synthetic (harmonic tones with a
# syllable envelope) and their open mouths drawn ellipses. Silero, trained on human speech, rightly does not call
# those tones speech (webrtcvad's energy and spectrum test does), and the lip-synchrony rule, tuned on real talking
# faces (benchmarks/front_end_speaker.py), is not meant for drawn mouths (the pixel rule was made for them).
DEMO_MEDIA = {"vad": "webrtc", "speaker_rule": "pixels"}
# The demo corpus: the demo media through the stand-in front end (Haar faces, no landmarks) that made the README's
# demo figures, so that they stay reproducible; the neural front end is measured on real media instead
# (benchmarks/front_end.py).
DEMO_PIPELINE = {**DEMO_MEDIA, "face_detector": "haar", "landmarks": "none"}


def build_demo_corpus(cache_dir: str | Path, num_clips: int = DEMO_CLIPS, seed: int = DEMO_SEED,
                      progress: bool = True) -> Path:
    """
    The folder of the demo corpus (Parquet shards + manifest), made on first use and reused afterwards: the media
    and the corpus live under `cache_dir/<key>`, where the key names the generator settings; an interrupted build
    resumes where it stopped.
    """
    from ..preprocessing.pipeline import SPEED_ONLY_SETTINGS, PipelineConfig, merge_manifests, run_pipeline
    from .media import make_demo_media

    config = PipelineConfig(**DEMO_PIPELINE)
    # Settings of speed and memory only leave the rows unchanged: they do not name the cache.
    settings = {k: v for k, v in vars(config).items() if k not in SPEED_ONLY_SETTINGS}
    key = hashlib.blake2b(json.dumps([CORPUS_VERSION, num_clips, seed, settings], sort_keys=True, default=str).encode(),
                          digest_size=4).hexdigest()
    root = Path(cache_dir).expanduser() / f"clips{num_clips}-seed{seed}-{key}"
    corpus, media = root / "corpus", root / "media"
    done = root / "complete.json"
    if done.is_file():
        return corpus
    if not (media / "manifest.csv").is_file():
        make_demo_media(media, num_clips=num_clips, seed=seed)
    summary = run_pipeline(media / "manifest.csv", corpus, config, progress=progress)
    merge_manifests(corpus)
    done.write_text(json.dumps({"num_clips": num_clips, "seed": seed, "summary": summary}, indent=1))
    return corpus
