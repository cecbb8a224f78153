"""The preprocessing pipeline end to end: demo media -> corpus, bad inputs, resume after kill -9, shards.

`demo_corpus` (conftest.py) is the corpus of one run of the session's `pipeline` over the demo media; tests that write
run into their own folder and compare with it."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memobert.data import schema
from memobert.demo.corpus import DEMO_MEDIA
from memobert.demo.media import write_media
from memobert.preprocessing.pipeline import PipelineConfig, collect_items, inside, merge_manifests, run_pipeline
from memobert.preprocessing.transcripts import Utterance, write_srt
from tests.support import REPO
from tests.support.corpora import read_corpus
from tests.support.media import numbered_frames, truncated_copy, write_test_media


def read_manifest(folder: Path, timings: bool = False) -> list[dict]:
    with open(folder / "manifest.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows if timings else [{k: v for k, v in r.items() if not k.startswith("seconds_")} for r in rows]


def assert_same_corpus(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        for column in schema.corpus_features(128, 80, 7):
            x, y = a[key][column], b[key][column]
            if isinstance(x, np.ndarray):
                np.testing.assert_array_equal(x, y, err_msg=f"{key} {column}")
            elif isinstance(x, float) and np.isnan(x):
                assert np.isnan(y)
            else:
                assert x == y, (key, column)


def test_demo_clips_become_rows_of_the_documented_shapes(demo_corpus, demo_clips):
    clips = demo_clips
    truth = {u.utterance_id: u for clip in clips for u in clip.utterances}
    rows = read_corpus(demo_corpus)
    assert sorted(rows) == sorted(truth)
    info = json.loads((demo_corpus / "corpus.json").read_text())
    assert (info["visual_dim"], info["acoustic_dim"], info["num_face_classes"]) == (128, 80, 7)
    for utterance_id, row in rows.items():
        seconds = truth[utterance_id].end - truth[utterance_id].start
        assert row[schema.VISUAL_FEATS].shape[1] == 128 and row[schema.FACE_SOFT_LABELS].shape[1] == 7
        assert len(row[schema.VISUAL_FEATS]) == len(row[schema.FACE_SOFT_LABELS]) >= 0.5 * seconds * 10
        np.testing.assert_allclose(row[schema.FACE_SOFT_LABELS].sum(axis=1), 1.0, atol=1e-2)
        assert row[schema.ACOUSTIC_FEATS].shape == (pytest.approx(seconds / 0.06, abs=2), 80)
        assert len(row[schema.INPUT_IDS]) == len(row[schema.WORD_IDS]) > 0
        assert row[schema.LABEL] == truth[utterance_id].label and row[schema.TEXT] == truth[utterance_id].text
        assert 0 < row[schema.SPEAKER_SCORE] <= 1
    manifest = read_manifest(demo_corpus)
    assert {r["status"] for r in manifest} == {"ok"} and len(manifest) == len(rows)


def test_the_corpus_feeds_the_pretraining_collator(demo_corpus, tokenizer):
    from memobert import MEmoBertConfig, MEmoBertForPreTraining
    from memobert.objectives import PretrainingCollator
    from memobert.training.corpus import LengthLimits, load_pretrain_corpus

    corpus = load_pretrain_corpus(demo_corpus, LengthLimits(30, 36, 64), eval_fraction=0.0, max_eval_samples=1)
    assert corpus.sizes["face_class_names"][3] == "happy"
    config = MEmoBertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                            visual_dim=128, acoustic_dim=80, num_face_classes=7,
                            face_class_names=corpus.sizes["face_class_names"])
    collator = PretrainingCollator(tokenizer, config, seed=0)
    rows = [corpus.train[i] for i in range(4)]
    for task in ("wwmlm", "span_mvfr", "span_mvfc_kl", "span_mafr"):
        loss = MEmoBertForPreTraining(config)(**collator(rows, task)).loss
        assert loss.ndim == 0 and np.isfinite(loss.item()) and loss.item() > 0


def srt_for(video: Path, cues: list[tuple[float, float, str]], encoding: str = "utf-8") -> Path:
    path = video.with_suffix(".srt")
    utterances = [Utterance(str(video), f"{video.stem}_{i}", i, s, e, t) for i, (s, e, t) in enumerate(cues)]
    write_srt(utterances, path)
    if encoding != "utf-8":
        path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))
    return path


def test_bad_inputs_are_recorded_with_reasons_and_never_stop_the_run(pipeline, demo_clips, tmp_path):
    clips = demo_clips
    good = tmp_path / "in" / "good.mp4"
    good.parent.mkdir()
    shutil.copy(clips[0].video, good)
    shutil.copy(clips[0].srt, good.with_suffix(".srt"))
    cues = [(0.2, 2.0, "hello there"), (2.0, 3.8, "café au lait")]
    (tmp_path / "in" / "corrupt.mp4").write_bytes(os.urandom(20000))
    srt_for(tmp_path / "in" / "corrupt.mp4", cues)
    truncated_copy(clips[1].video, tmp_path / "in" / "truncated.mp4", 0.3)
    shutil.copy(clips[1].srt, tmp_path / "in" / "truncated.srt")
    srt_for(write_test_media(tmp_path / "in" / "audio_only.mp4", video=False), cues)
    srt_for(write_test_media(tmp_path / "in" / "video_only.mp4", audio=False), cues)
    srt_for(write_test_media(tmp_path / "in" / "no_face.mp4"), cues, encoding="cp1252")  # also non-UTF-8
    silent = write_media(tmp_path / "in" / "silent.mp4", frames=numbered_frames(100), fps=25.0,
                         audio=np.zeros(4 * 24000, np.float32), sample_rate=24000)
    srt_for(silent, cues)
    srt_for(write_test_media(tmp_path / "in" / "outside.mp4"), [(30.0, 32.0, "after the end")])
    write_test_media(tmp_path / "in" / "empty_transcript.mp4")
    (tmp_path / "in" / "empty_transcript.srt").write_text("")
    write_test_media(tmp_path / "in" / "malformed.mp4")
    (tmp_path / "in" / "malformed.srt").write_text("1\nnot a time line\nhello\n\n2\n00:00:00,500 --> 00:00:02,000\nok\n")
    nested = tmp_path / "in" / "a" / ".." / "b"
    nested.mkdir(parents=True)
    srt_for(write_test_media(nested / "..slash..name.mp4"), cues)
    before = set(tmp_path.iterdir())

    out = tmp_path / "out"
    summary = run_pipeline(tmp_path / "in", out, pipeline=pipeline, progress=False)
    merge_manifests(out)
    assert summary["items"] == 11 and summary["processed"] == 11
    assert set(tmp_path.iterdir()) == before | {out}  # nothing written beside the output folder
    for written in out.rglob("*"):
        assert written.resolve().is_relative_to(out.resolve())

    manifest = read_manifest(out)
    by_item: dict[str, list[dict]] = {}
    for record in manifest:
        by_item.setdefault(record["item"].rsplit("-", 1)[0], []).append(record)

    def reasons(item: str) -> str:
        return " | ".join(f"{r['status']}: {r['reason']}" for r in by_item[item])

    assert {r["status"] for r in by_item["good"]} == {"ok"}
    assert "failed" in reasons("corrupt") and "corrupt" in reasons("corrupt")
    assert "failed" in reasons("truncated")
    assert {r["status"] for r in by_item["audio_only"]} == {"ok"} and "no video stream" in reasons("audio_only")
    # a video without sound: no voice activity to keep for pretraining (a labelled corpus keeps it: face rows)
    assert {r["status"] for r in by_item["video_only"]} == {"skipped"} and "no sound" in reasons("video_only")
    assert {r["status"] for r in by_item["no_face"]} == {"ok"} and "kept without face frames" in reasons("no_face")
    assert "silence" in reasons("silent") and {r["status"] for r in by_item["silent"]} == {"skipped"}
    assert "outside" in reasons("outside")
    assert "failed" in reasons("empty_transcript") and "transcript" in reasons("empty_transcript")
    assert "skipped" in reasons("malformed") and "ok" in reasons("malformed")
    odd = [key for key in by_item if key.startswith("slash")]  # "..slash..name.mp4": dots and slashes made safe
    assert len(odd) == 1 and "ok" in reasons(odd[0])

    rows = read_corpus(out)
    no_face = [r for key, r in rows.items() if key.startswith("no_face")]
    assert len(no_face) == 2 and all(len(r[schema.VISUAL_FEATS]) == 0 for r in no_face)
    audio_only = [r for key, r in rows.items() if key.startswith("audio_only")]
    assert len(audio_only) == 2 and all(len(r[schema.ACOUSTIC_FEATS]) > 20 for r in audio_only)
    assert any(r[schema.TEXT] == "café au lait" for r in no_face)  # the cp1252 transcript was decoded
    with pytest.raises(ValueError, match="outside"):
        inside(out, "../escape.json")


def test_resume_after_kill_gives_the_rows_of_an_uninterrupted_run(pipeline, demo_media, demo_corpus, tmp_path):
    folder, _ = demo_media
    out = tmp_path / "out"
    script = (
        "import os, signal, sys\n"
        "from memobert.demo.corpus import DEMO_MEDIA\n"
        "from memobert.preprocessing.pipeline import PipelineConfig, run_pipeline\n"
        "def die(item):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"run_pipeline({str(folder / 'manifest.csv')!r}, {str(out)!r}, progress=False, on_item_done=die, "
        "config=PipelineConfig(**DEMO_MEDIA))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == -9  # killed after its first video
    assert len(list((out / "items").glob("*.json"))) == 1
    (out / "shards" / ".half-written.parquet.tmp-1234").write_bytes(b"PAR1")  # what a kill mid-write leaves

    summary = run_pipeline(folder / "manifest.csv", out, pipeline=pipeline, progress=False)
    merge_manifests(out)
    assert summary["already_done"] == 1 and summary["processed"] == len(collect_items(folder / "manifest.csv")) - 1
    assert not list((out / "shards").glob(".*"))
    assert_same_corpus(read_corpus(out), read_corpus(demo_corpus))
    assert read_manifest(out) == read_manifest(demo_corpus)


def test_shards_split_the_work_and_together_equal_a_single_run(pipeline, demo_media, demo_corpus, tmp_path):
    folder, _ = demo_media
    items = collect_items(folder / "manifest.csv")
    done = [run_pipeline(folder / "manifest.csv", tmp_path, pipeline=pipeline, shard_index=i, num_shards=2,
                         progress=False)["items"] for i in (0, 1)]
    assert sum(done) == len(items) and min(done) >= 1
    merge_manifests(tmp_path)
    assert_same_corpus(read_corpus(tmp_path), read_corpus(demo_corpus))
    assert read_manifest(tmp_path) == read_manifest(demo_corpus)


def test_batch_sizes_and_audio_chunks_change_speed_and_memory_not_rows(demo_media, demo_corpus, tmp_path):
    from memobert.preprocessing.pipeline import release_free_memory

    folder, _ = demo_media
    # Several face batches per utterance; audio one by one.
    config = PipelineConfig(face_batch_size=3, acoustic_chunk=1, **DEMO_MEDIA)
    run_pipeline(folder / "manifest.csv", tmp_path, config=config, progress=False)
    merge_manifests(tmp_path)
    ours, reference = read_corpus(tmp_path), read_corpus(demo_corpus)
    assert sorted(ours) == sorted(reference)
    for key in reference:
        for column, expected in reference[key].items():
            if isinstance(expected, np.ndarray) and expected.dtype.kind == "f":
                np.testing.assert_allclose(ours[key][column], expected, rtol=2e-3, atol=1e-3, err_msg=column)
            elif isinstance(expected, np.ndarray):
                np.testing.assert_array_equal(ours[key][column], expected, err_msg=column)
    assert read_manifest(tmp_path) == read_manifest(demo_corpus)
    release_free_memory()  # safe to call anywhere (a no-op off glibc)
    with pytest.raises(ValueError, match="acoustic_chunk must be >= 1"):
        PipelineConfig(acoustic_chunk=0).validate()


def test_the_command_line_runs_and_explains_its_options(tmp_path):
    help_text = subprocess.run([sys.executable, str(REPO / "preprocessing" / "run.py"), "--help"],
                               capture_output=True, text=True, timeout=120).stdout
    for option in ("--input", "--shard-index", "--face-detector", "--acoustic-extractor", "--no-speaker",
                   "--face-batch-size", "--acoustic-batch-size", "--acoustic-chunk"):
        assert option in help_text
    result = subprocess.run([sys.executable, str(REPO / "preprocessing" / "run.py"), "--input",
                             str(tmp_path / "missing"), "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "does not exist" in result.stderr and "Traceback" not in result.stderr
