"""Videos without a transcript get one by ASR: the pipeline cuts the recognised speech into utterances, writes them as
SRT beside the corpus (a rerun reads that file, so a corrected transcript is used), and `predict` works on such a
video too. Real speech: `beckett.wav` of the moonshine-voice wheel (a dev dependency) under a real face photo."""

import csv
from pathlib import Path

import pytest

from memobert.data.corpus import find_shards, load_shards
from memobert.preprocessing.pipeline import (
    Pipeline,
    PipelineConfig,
    WorkItem,
    item_id_for,
    merge_manifests,
    run_pipeline,
)
from memobert.preprocessing.transcripts import Utterance, read_srt, write_srt
from tests.support.speech import BECKETT, word_error_rate


def manifest(folder):
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_video_without_transcript_is_transcribed_cut_and_written_as_srt(keep_every_pipeline, talk, tmp_path):
    out = tmp_path / "corpus"
    summary = run_pipeline(talk, out, pipeline=keep_every_pipeline, progress=False)
    merge_manifests(out)
    srt = out / "transcripts" / f"{item_id_for(str(talk))}.srt"
    assert srt.is_file() and summary["rows"] >= 1
    utterances = read_srt(srt, str(talk), min_duration=None).utterances
    assert word_error_rate(BECKETT, " ".join(u.text for u in utterances)) <= 0.15
    assert utterances[0].start >= 0.7 and all(u.duration <= 10.0 for u in utterances)
    rows = load_shards(find_shards(out))
    assert sorted(rows["text"]) == sorted(u.text for u in utterances)
    records = manifest(out)
    assert {r["status"] for r in records} == {"ok"}
    assert all(r["reason"].startswith("text by ASR: transcripts/") for r in records), records


def test_a_corrected_transcript_is_read_instead_of_transcribing_again(keep_every_pipeline, talk, tmp_path,
                                                                      monkeypatch):
    out = tmp_path / "corpus"
    srt = out / "transcripts" / f"{item_id_for(str(talk))}.srt"
    srt.parent.mkdir(parents=True)
    write_srt([Utterance(str(talk), "fixed_0", 0, 1.0, 6.0, "Ever tried, ever failed.")], srt)
    monkeypatch.setattr("memobert.preprocessing.pipeline.transcribe_video",
                        lambda *args, **kwargs: pytest.fail("ASR ran again"))
    run_pipeline(talk, out, pipeline=keep_every_pipeline, progress=False)
    assert list(load_shards(find_shards(out))["text"]) == ["Ever tried, ever failed."]


def test_transcribe_never_keeps_the_old_error(talk):
    never = Pipeline(PipelineConfig.keep_every_utterance(transcribe="never"))
    rows, records = never.process(WorkItem("talk", str(talk)))
    assert rows == [] and records[0]["status"] == "failed"
    assert "has no embedded subtitle stream" in records[0]["reason"] and "--transcribe" in records[0]["reason"]
    with pytest.raises(ValueError, match="transcribe must be auto, always or never"):
        PipelineConfig(transcribe="sometimes").validate()


def test_transcribe_always_ignores_the_sidecar_subtitles(talk, tmp_path):
    import shutil

    from memobert.demo.corpus import DEMO_MEDIA

    video = Path(shutil.copy(talk, tmp_path / "talk.mp4"))
    write_srt([Utterance(str(video), "wrong_0", 0, 1.0, 6.0, "a transcript that is wrong")], video.with_suffix(".srt"))
    always = Pipeline(PipelineConfig.keep_every_utterance(transcribe="always", **DEMO_MEDIA))
    rows, records = always.process(WorkItem("talk", str(video)))
    assert rows and all(r["status"] == "ok" and r["reason"].startswith("text by ASR") for r in records)
    assert word_error_rate(BECKETT, " ".join(row["text"] for row in rows)) <= 0.15
