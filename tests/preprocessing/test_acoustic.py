"""Acoustic extractors: a tiny random wav2vec2 / HuBERT saved and loaded by path (the hub code path; the `w2v_*`
fixtures of conftest.py), and log-mel."""

import numpy as np
import pytest
from transformers import HubertConfig, HubertModel

from memobert.preprocessing.acoustic import (
    AcousticExtractor,
    HFSpeechExtractor,
    LogMelExtractor,
    make_acoustic_extractor,
    mean_pool_frames,
)
from tests.support.models import TINY_SPEECH, save_speech_model

SR = 16_000
def _waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def test_shapes_one_second(w2v_layer_norm):
    ext = HFSpeechExtractor(w2v_layer_norm, device="cpu")
    assert isinstance(ext, AcousticExtractor) and ext.feature_dim == 32
    assert ext.output_lengths([SR]).tolist() == [49]  # ~50 frames of 20 ms
    (feats,) = ext.extract(_waves([SR]))
    assert feats.shape == (17, 32) and feats.dtype == np.float32  # ceil(49 / 3) pooled frames of 60 ms
    assert ext.frame_seconds == pytest.approx(0.06)


def test_pooling_is_a_non_overlapping_mean(w2v_layer_norm):
    ext = HFSpeechExtractor(w2v_layer_norm, device="cpu", pool=1)
    pooled = HFSpeechExtractor(w2v_layer_norm, device="cpu", pool=3)
    wave = _waves([SR])
    raw, (out,) = ext.extract(wave)[0], pooled.extract(wave)
    assert raw.shape == (49, 32)
    np.testing.assert_allclose(out[0], raw[:3].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[-1], raw[48:].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean_pool_frames(np.arange(7.0)[:, None], 3)[:, 0], [1, 4, 6])


def test_batching_equals_one_at_a_time(w2v_layer_norm):
    waves = _waves([SR, 12_000, 15_500, 300, 8_000, 16_500])
    batched = HFSpeechExtractor(w2v_layer_norm, device="cpu", batch_size=4, max_padding=0.9)
    single = HFSpeechExtractor(w2v_layer_norm, device="cpu", batch_size=1)
    assert batched.use_attention_mask
    a, b = batched.extract(waves), single.extract(waves)
    assert [x.shape[0] for x in a] == [17, 13, 16, 0, 8, 17]
    for x, y in zip(a, b):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)


def test_group_norm_models_batch_equal_lengths_only(w2v_group_norm):
    ext = HFSpeechExtractor(w2v_group_norm, device="cpu", batch_size=8)
    assert not ext.use_attention_mask and ext.max_padding == 0.0
    waves = _waves([SR, 12_000, SR, 12_000])
    assert sorted(map(sorted, ext._batches(np.array([len(w) for w in waves])))) == [[0, 2], [1, 3]]
    single = HFSpeechExtractor(w2v_group_norm, device="cpu", batch_size=1)
    for x, y in zip(ext.extract(waves), single.extract(waves)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)


def test_ten_second_cap(w2v_group_norm):
    ext = HFSpeechExtractor(w2v_group_norm, device="cpu")
    long = _waves([12 * SR])[0]
    capped, exact = ext.extract([long, long[: 10 * SR]])
    assert capped.shape == exact.shape == (167, 32)  # 499 frames -> 167 pooled
    np.testing.assert_allclose(capped, exact, rtol=1e-5, atol=1e-5)
    short = HFSpeechExtractor(w2v_group_norm, device="cpu", max_seconds=2.0)
    assert short.extract([long])[0].shape == (33, 32)


def test_layer_selection_and_errors(w2v_layer_norm):
    wave = _waves([SR])
    last = HFSpeechExtractor(w2v_layer_norm, device="cpu").extract(wave)[0]
    first = HFSpeechExtractor(w2v_layer_norm, device="cpu", layer=1).extract(wave)[0]
    also_last = HFSpeechExtractor(w2v_layer_norm, device="cpu", layer=2).extract(wave)[0]
    assert first.shape == last.shape and not np.allclose(first, last)
    np.testing.assert_allclose(also_last, last, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="layer 5 is out of range"):
        HFSpeechExtractor(w2v_layer_norm, device="cpu", layer=5)
    ext = HFSpeechExtractor(w2v_layer_norm, device="cpu")
    with pytest.raises(ValueError, match="1-D mono"):
        ext.extract([np.zeros((2, SR), np.float32)])
    with pytest.raises(ValueError, match="float audio"):
        ext.extract([np.zeros(SR, np.int16)])
    with pytest.raises(ValueError, match="list of 1-D waves"):
        ext.extract(np.zeros(SR, np.float32))
    assert ext.extract([]) == []
    with pytest.raises(OSError, match="save_pretrained"):
        HFSpeechExtractor("/nonexistent/speech-model", device="cpu")


def test_hubert_by_path(tmp_path):
    folder = save_speech_model(HubertModel, HubertConfig(**TINY_SPEECH), tmp_path / "hubert", False)
    ext = make_acoustic_extractor(folder, device="cpu")
    assert isinstance(ext, HFSpeechExtractor) and type(ext.model).__name__ == "HubertModel"
    assert ext.extract(_waves([SR]))[0].shape == (17, 32)


def test_log_mel():
    ext = make_acoustic_extractor("log_mel")
    assert isinstance(ext, LogMelExtractor) and ext.feature_dim == 80
    assert ext.frame_seconds == pytest.approx(0.06)
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    feats, short, long = ext.extract([tone, np.zeros(100, np.float32), np.tile(tone, 12)])
    assert feats.shape == (17, 80) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert short.shape == (0, 80)
    assert long.shape == (167, 80)  # capped at 10 s, same frame count as wav2vec2
    # A 1 kHz tone puts its energy in one mel band, far above the silence floor elsewhere (raw log energies)
    raw = LogMelExtractor(normalize="none").extract([tone])[0]
    band = raw.mean(0)
    assert band.max() - np.median(band) > 5
    np.testing.assert_allclose(ext.extract([tone])[0], feats)
    # The default fixed map keeps loudness: a quieter copy has lower features; it is about unit scale
    quiet = ext.extract([0.1 * tone])[0]
    assert quiet.max() < feats.max() - 0.5 and -4 < feats.min() and feats.max() < 4
    np.testing.assert_allclose(feats, (LogMelExtractor(normalize="none", fmax=None).extract([tone])[0].clip(np.log(1e-6)) + 6) / 4, atol=1e-4)
    # Per utterance: each mel bin has zero mean and unit variance (or is constant -> 0)
    speechlike = tone * (1 + np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    normalised = LogMelExtractor(normalize="utterance").extract([speechlike])[0]
    np.testing.assert_allclose(normalised.mean(0), 0, atol=1e-4)
    assert np.all((np.abs(normalised.std(0) - 1) < 1e-2) | (normalised.std(0) < 1e-2))
