"""VAD backends (`make_vad`): silero (default) and webrtc on real speech padded with silence and noise, their options,
provenance and errors, and the thread count that importing silero_vad would change.

Real speech: `clone-test.wav` and `beckett.wav` shipped in the moonshine-voice wheel (a dev dependency; found without
importing the package). True speech region: the clip with its own leading/trailing silence trimmed by energy."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from memobert.backends import (
    MissingBackendError,
    backend,
    default_backend,
    file_sha256,
    make_backend,
)
from memobert.preprocessing.vad import (
    SileroVad,
    VadResult,
    WebRtcVad,
    make_vad,
    mask_segments,
    resample_audio,
    silero_model_file,
    speech_mask,
)
from tests.support.speech import RATE, shipped_speech

PAD = 2.0  # seconds of quiet before and after the clip


def padded(name: str, snr_db: float | None, seed: int = 0):
    """(audio, true speech region, loud frames, padding) per 10 ms frame: the clip between `PAD` s of quiet, with white
    noise at `snr_db` over everything (None: a -70 dBFS dither)."""
    clip = shipped_speech(name)
    clip = clip[: len(clip) // 160 * 160]
    db = 10 * np.log10(np.maximum(np.square(clip.reshape(-1, 160), dtype=np.float64).mean(axis=1), 1e-20))
    runs = mask_segments(db > db.max() - 30, 10, min_speech=0.05)
    region = np.zeros(len(db), bool)
    region[round(runs[0][0] * 100) : round(runs[-1][1] * 100)] = True
    n_pad = int(PAD * 100)
    audio = np.concatenate([np.zeros(n_pad * 160, np.float32), clip, np.zeros(n_pad * 160, np.float32)])
    truth = np.concatenate([np.zeros(n_pad, bool), region, np.zeros(n_pad, bool)])
    loud = np.concatenate([np.zeros(n_pad, bool), db > db.max() - 20, np.zeros(n_pad, bool)])
    padding = np.concatenate([np.ones(n_pad, bool), np.zeros(len(db), bool), np.ones(n_pad, bool)])
    speech_power = np.mean(np.square(clip.reshape(-1, 160)[region]))
    level = 10 ** (-70 / 20) if snr_db is None else np.sqrt(speech_power / 10 ** (snr_db / 10))
    noise = np.random.default_rng(seed).standard_normal(len(audio)).astype(np.float32)
    return np.clip(audio + level * noise, -1, 1).astype(np.float32), truth, loud, padding


def scores(vad, audio, truth, loud, padding) -> dict[str, float]:
    """Precision, recall, loud-frame recall and padding false alarms on 10 ms frames (0.1 s collar at the edges)."""
    said = vad.speech_mask(audio, RATE).at(np.arange(len(truth)) * 0.01, 0.01)
    keep = np.ones(len(truth), bool)
    for edge in np.flatnonzero(np.diff(truth.astype(np.int8))) + 1:
        keep[edge - 10 : edge + 10] = False
    t, s = truth[keep], said[keep]
    return {"precision": (t & s).sum() / max(s.sum(), 1), "recall": (t & s).sum() / t.sum(),
            "loud_recall": said[loud].mean(), "false_alarm": said[padding & keep].mean()}


@pytest.fixture(scope="module")
def silero():
    return make_vad("silero")


def test_auto_is_silero_with_the_fastest_bundled_model(silero):
    assert default_backend("vad") == "silero"
    assert isinstance(make_vad(), SileroVad) and isinstance(make_backend("vad"), SileroVad)
    assert silero.model == "sequence" and silero.model_file.name == "silero_vad_16k_sequence.onnx"
    assert backend("vad", "silero").priority > backend("vad", "webrtc").priority


@pytest.mark.parametrize("snr_db", [None, 10.0])
def test_silero_finds_real_speech_padded_with_silence_and_noise(silero, snr_db):
    for name in ("clone-test.wav", "beckett.wav"):
        s = scores(silero, *padded(name, snr_db))
        assert s["precision"] >= 0.97, (name, s)
        assert s["false_alarm"] <= 0.02, (name, s)
        assert s["loud_recall"] >= 0.9, (name, s)  # beckett breathes loudly in its pauses
        # beckett's region holds five pauses of 0.6-0.9 s, which silero rightly leaves out
        assert s["recall"] >= (0.9 if name == "clone-test.wav" else 0.45), (name, s)


def test_webrtc_finds_clean_speech_but_calls_noise_speech(silero):
    clean = padded("clone-test.wav", None)
    for aggressiveness in range(4):
        s = scores(make_vad("webrtc", aggressiveness=aggressiveness), *clean)
        assert s["precision"] >= 0.8 and s["loud_recall"] >= 0.95, (aggressiveness, s)
    noisy = padded("clone-test.wav", 10.0)
    lenient = scores(make_vad("webrtc", aggressiveness=0), *noisy)
    assert lenient["false_alarm"] >= 0.5  # at 10 dB SNR the lenient setting calls most of the noise speech
    assert scores(silero, *noisy)["false_alarm"] <= lenient["false_alarm"] - 0.4


def test_silero_result_api(silero):
    audio, truth, _, _ = padded("clone-test.wav", None)
    result = silero.speech_mask(audio, RATE, start=5.0)
    assert isinstance(result, VadResult) and result.frame_ms == 32 and result.start == 5.0
    assert result.mask.shape == result.probability.shape == (int(np.ceil(len(audio) / 512)),)
    assert result.mask.dtype == bool and 0 <= result.probability.min() and result.probability.max() <= 1
    assert result.probability[result.mask].mean() > 0.5 > result.probability[~result.mask].mean()
    segments = result.segments(min_silence=0.5)
    first_true, last_true = np.flatnonzero(truth)[[0, -1]] * 0.01 + 5.0
    assert segments[0][0] == pytest.approx(first_true, abs=0.3) and segments[-1][1] == pytest.approx(last_true, abs=0.4)
    frame_times = 5.0 + np.arange(0, len(audio) / RATE, 0.1)
    on_frames = result.at(frame_times)
    assert not on_frames[:10].any() and on_frames[int((first_true - 5.0 + 1.0) * 10)]
    np.testing.assert_allclose(silero.speech_probability(audio, RATE), result.probability)


def test_silero_runs_the_same_network_three_ways(silero):
    audio = padded("clone-test.wav", 20.0)[0]
    reference = silero.speech_mask(audio, RATE)
    for model in ("onnx", "jit"):
        other = make_vad("silero", model=model).speech_mask(audio, RATE)
        np.testing.assert_allclose(other.probability, reference.probability, atol=1e-4)
        assert (other.mask == reference.mask).mean() >= 0.99


def test_other_sample_rates_are_resampled(silero):
    audio, truth, loud, padding = padded("clone-test.wav", None)
    at_16k = silero.speech_mask(audio, RATE)
    for rate in (8000, 44100, 48000):
        again = silero.speech_mask(resample_audio(audio, RATE, rate), rate)
        assert abs(len(again.mask) - len(at_16k.mask)) <= 1
        n = min(len(again.mask), len(at_16k.mask))
        assert (again.mask[:n] == at_16k.mask[:n]).mean() >= 0.95, rate
    webrtc = make_vad("webrtc", aggressiveness=3)
    at_22k = resample_audio(audio, RATE, 22050)  # not a webrtcvad rate: resampled to 16 kHz
    resampled = webrtc.speech_mask(at_22k, 22050)
    np.testing.assert_array_equal(resampled.mask, speech_mask(resample_audio(at_22k, 22050, RATE), RATE,
                                                              aggressiveness=3).mask)
    native = webrtc.speech_mask(audio, RATE)
    n = min(len(native.mask), len(resampled.mask))
    assert (native.mask[:n] == resampled.mask[:n]).mean() >= 0.9


def test_silero_options_change_the_mask_and_are_checked(silero):
    audio = padded("beckett.wav", None)[0]
    strict = make_vad("silero", threshold=0.9, min_speech_ms=500)
    bridged = make_vad("silero", min_silence_ms=1500)
    assert strict.speech_mask(audio, RATE).mask.sum() < silero.speech_mask(audio, RATE).mask.sum()
    assert len(bridged.speech_mask(audio, RATE).segments()) < len(silero.speech_mask(audio, RATE).segments())
    assert silero.speech_mask(np.zeros(0, np.float32), RATE).mask.shape == (0,)
    assert not silero.speech_mask(np.zeros(RATE, np.float32), RATE).mask.any()
    for bad in ({"threshold": 1.5}, {"threshold": 0.5, "neg_threshold": 0.7}, {"min_silence_ms": -1},
                {"model": "tflite"}):
        with pytest.raises(ValueError):
            make_vad("silero", **bad)
    with pytest.raises(ValueError, match="mono"):
        silero.speech_mask(np.zeros((2, RATE), np.float32), RATE)
    with pytest.raises(ValueError, match="aggressiveness"):
        make_vad("webrtc", aggressiveness=5)


def test_make_vad_takes_each_backends_own_options():
    # a config's settings for both backends at once: each takes its own
    options = {"aggressiveness": 3, "frame_ms": 20, "threshold": 0.6, "min_speech_ms": 200}
    webrtc, silero = make_vad("webrtc", **options), make_vad("silero", **options)
    assert isinstance(webrtc, WebRtcVad) and (webrtc.aggressiveness, webrtc.frame_ms) == (3, 20)
    assert (silero.threshold, silero.min_speech_ms) == (0.6, 200)
    with pytest.raises(TypeError, match="thresold"):
        make_vad("silero", thresold=0.6)
    with pytest.raises(ValueError, match="unknown vad backend"):
        make_vad("pyannote")


def test_provenance(silero):
    record = silero.provenance()
    json.dumps(record)
    assert record["backend"] == "silero" and record["package"] == "silero-vad" and record["version"] == "6.2.3"
    assert record["weights"] == [{"file": "silero_vad_16k_sequence.onnx",
                                  "sha256": file_sha256(silero_model_file("sequence"))}]
    assert {"threshold": 0.5, "neg_threshold": 0.35, "min_speech_ms": 250, "min_silence_ms": 100,
            "speech_pad_ms": 30, "sample_rate": 16000, "frame_ms": 32, "model": "sequence"}.items() <= record.items()
    web = make_vad("webrtc", aggressiveness=1, frame_ms=10).provenance()
    json.dumps(web)
    assert web["backend"] == "webrtc" and web["package"] == "webrtcvad-wheels" and web["version"]
    assert (web["aggressiveness"], web["frame_ms"], web["weights"]) == (1, 10, [])


def test_importing_silero_keeps_the_callers_thread_count():
    """In a fresh process: building the silero backend leaves torch's 3 threads; a plain import of silero_vad's model
    module (what the backend guards against) drops them to 1."""
    code = (
        "import importlib, numpy as np, torch\n"
        "torch.set_num_threads(3)\n"
        "from memobert.preprocessing.vad import make_vad\n"
        "for model in ('sequence', 'jit'):\n"
        "    make_vad('silero', model=model).speech_mask(np.zeros(16000, np.float32), 16000)\n"
        "    print(torch.get_num_threads())\n"
        "import silero_vad.model\n"
        "importlib.reload(silero_vad.model)\n"
        "print(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["3", "3", "1"]


def test_missing_silero_falls_back_to_webrtc_and_names_pip(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def without_silero(name, *args, **kwargs):
        return None if name.split(".")[0] == "silero_vad" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_silero)
    assert default_backend("vad") == "webrtc"
    assert isinstance(make_vad(), WebRtcVad)
    with pytest.raises(MissingBackendError, match=r"pip install silero-vad==6\.2\.3"):
        make_vad("silero")
    with pytest.raises(MissingBackendError, match="pip install silero-vad"):
        silero_model_file()
