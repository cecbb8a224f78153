"""Fixtures of the preprocessing tests, built once per session: the pipeline of the default config (models loaded once)
and the corpus of one run of it over the demo media; the IEMOCAP / MSP-IMPROV releases made of demo clips and their
corpora (through `keep_every_pipeline`, tests/conftest.py); small media files; the Haar detector; tiny speech models.

The session's folders are read-only: a test that writes runs into its own `tmp_path`."""

from pathlib import Path

import pytest
from transformers import Wav2Vec2Config, Wav2Vec2Model

from memobert.demo.corpus import DEMO_MEDIA
from memobert.preprocessing.pipeline import Pipeline, PipelineConfig, merge_manifests, run_pipeline
from tests.support.media import write_test_media
from tests.support.models import TINY_SPEECH, save_speech_model
from tests.support.releases import write_demo_iemocap, write_demo_msp_improv


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    """The pipeline of the default config (BlazeFace, FaceMesh, ...) with what the demo media need (`DEMO_MEDIA`:
    webrtc for their synthetic voices, the pixel rule for their drawn mouths)."""
    return Pipeline(PipelineConfig(**DEMO_MEDIA))


@pytest.fixture(scope="session")
def demo_corpus(pipeline, demo_media, tmp_path_factory) -> Path:
    """The corpus folder (shards, items, manifest.csv, corpus.json) of `pipeline` run once over the demo media."""
    folder, _ = demo_media
    out = tmp_path_factory.mktemp("demo_corpus")
    run_pipeline(folder / "manifest.csv", out, pipeline=pipeline, progress=False)
    merge_manifests(out)
    return out


@pytest.fixture(scope="session")
def iemocap_release(demo_clips, tmp_path_factory):
    """(root, expected rows, (missing utterance, its wav)) of `write_demo_iemocap`: two dialogs of demo clips."""
    return write_demo_iemocap(tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release", demo_clips)


@pytest.fixture(scope="session")
def iemocap_corpus(iemocap_release, keep_every_pipeline, tmp_path_factory):
    """(folder, summary) of `build_iemocap_corpus` over `iemocap_release`."""
    from memobert.preprocessing.releases import build_iemocap_corpus

    root, _, _ = iemocap_release
    out = tmp_path_factory.mktemp("iemocap_corpus")
    summary = build_iemocap_corpus(root.parent, out, pipeline=keep_every_pipeline, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def msp_improv_release(demo_clips, tmp_path_factory):
    """(root, expected rows, (missing utterance, its wav)) of `write_demo_msp_improv`: utterances of demo clip 0."""
    return write_demo_msp_improv(tmp_path_factory.mktemp("msp") / "MSP-IMPROV", demo_clips[0])


@pytest.fixture(scope="session")
def numbered(tmp_path_factory):
    """4 s, 25 fps numbered frames (key frame every 2 s) and a 440 Hz tone at 24 kHz."""
    return write_test_media(tmp_path_factory.mktemp("media") / "numbered.mp4", seconds=4.0, fps=25.0)


@pytest.fixture(scope="session")
def haar():
    from memobert.preprocessing.faces import make_face_detector

    return make_face_detector("haar")


@pytest.fixture(scope="session")
def w2v_layer_norm(tmp_path_factory):
    """Like wav2vec2-large-lv60: layer-norm conv stack, takes an attention mask."""
    config = Wav2Vec2Config(feat_extract_norm="layer", do_stable_layer_norm=True, **TINY_SPEECH)
    return save_speech_model(Wav2Vec2Model, config, tmp_path_factory.mktemp("w2v_layer"), True)


@pytest.fixture(scope="session")
def w2v_group_norm(tmp_path_factory):
    """Like wav2vec2-base: group-norm first conv, no attention mask."""
    config = Wav2Vec2Config(feat_extract_norm="group", **TINY_SPEECH)
    return save_speech_model(Wav2Vec2Model, config, tmp_path_factory.mktemp("w2v_group"), False)
