"""The pretraining loop's trackers, run for real: TensorBoard event files and a wandb offline run are written by a tiny
pretraining and read back with each tool's own reader (on the `tiny_corpus` of conftest.py).

Each test skips when its package is missing (setup.cfg's dev extra installs both for CI)."""

import glob
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import asdict

import pytest

from memobert.training import pretrain
from memobert.training.pretrain import _trackers
from tests.support import REPO
from tests.training.test_pretrain import tiny_args

TASKS = ["wwmlm", "span_mvfr", "span_mvfc_kl", "span_mafr"]


def expected_series(history: dict) -> dict[str, dict[int, float]]:
    """What the loop logged, by tracker key and step, as metrics.json records it."""
    series: dict[str, dict[int, float]] = {}
    for record in history["train"]:
        for key, value in record.items():
            if key != "step":
                series.setdefault(key, {})[record["step"]] = value
    for record in history["eval"]:
        for key, value in record.items():
            if key != "step":
                series.setdefault(f"eval/{key}", {})[record["step"]] = value
    return series


def test_tensorboard_event_files_hold_every_logged_scalar(tiny_corpus, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert _trackers("auto") == ["tensorboard"]  # `auto` picks TensorBoard when it is installed
    output = tmp_path / "run"
    metrics = pretrain(tiny_args(tiny_corpus, output, report_to="tensorboard", max_steps=6, logging_steps=2,
                                 eval_steps=3, save_steps=0))
    assert glob.glob(str(output / "memobert-pretrain" / "events.out.tfevents.*")), sorted(os.listdir(output))

    events = EventAccumulator(str(output / "memobert-pretrain"), size_guidance={"scalars": 0})
    events.Reload()
    expected = expected_series(metrics["history"])
    assert set(events.Tags()["scalars"]) == set(expected)
    # Every objective has its held-out loss at the start, at each evaluation and at the end; the training losses are
    # those of the tasks drawn in each logging interval.
    assert {f"eval/loss/{t}" for t in TASKS} <= set(expected) and "lr" in expected
    for task in TASKS:
        assert sorted(expected[f"eval/loss/{task}"]) == [0, 3, 6]
    assert sorted(expected["lr"]) == [2, 4, 6]
    assert any(key.startswith("loss/") for key in expected)
    for tag, by_step in expected.items():
        logged = {event.step: event.value for event in events.Scalars(tag)}
        assert sorted(logged) == sorted(by_step), tag
        for step, value in by_step.items():
            assert math.isfinite(logged[step]), (tag, step)
            assert logged[step] == pytest.approx(value, rel=1e-6, abs=1e-9), (tag, step)  # float32 in the event file
    # The schedule as the run's arguments give it: warm-up to the peak over 2 updates, then linear decay to 0.
    lr = {event.step: event.value for event in events.Scalars("lr")}
    assert lr[2] == pytest.approx(1e-3) and lr[4] == pytest.approx(1e-3 * 2 / 4) and lr[6] == 0.0

    hparams = glob.glob(str(output / "memobert-pretrain" / "*" / "hparams.yml"))
    assert hparams and "learning_rate: 0.001" in open(hparams[0], encoding="utf-8").read()


# -- wandb -------------------------------------------------------------------------------------------------------------


def wandb_records(path: str) -> list:
    """The records of an offline run's `.wandb` file (wandb's protobuf `Record`s in the LevelDB log format wandb
    documents): with wandb's own `DataStore` where this wandb still ships it (<= 0.29), else read here the same way."""
    from wandb.proto import wandb_internal_pb2

    chunks = []
    try:
        from wandb.sdk.internal.datastore import DataStore
    except ImportError:
        chunks = _leveldb_log_chunks(path)
    else:
        store = DataStore()
        store.open_for_scan(path)
        while (data := store.scan_data()) is not None:
            chunks.append(data)
    records = []
    for data in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        records.append(record)
    return records


def _leveldb_log_chunks(path: str) -> list[bytes]:
    """`:W&B` header (magic 0xBEE1, version 0), then 32 KiB blocks of records: crc32 (of type + data, seeded per
    type), length, type (1 full, 2 first, 3 middle, 4 last), data; a block's tail shorter than a header is zeros."""
    block, header = 32768, 7
    with open(path, "rb") as handle:
        blob = handle.read()
    ident, magic, version = struct.unpack("<4sHB", blob[:header])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path} is not a wandb transaction log"
    seeds = {kind: zlib.crc32(bytes([kind])) for kind in (1, 2, 3, 4)}
    chunks, pending, offset = [], b"", header
    while offset < len(blob):
        if block - offset % block < header:
            offset += block - offset % block
            continue
        checksum, length, kind = struct.unpack("<IHB", blob[offset : offset + header])
        data = blob[offset + header : offset + header + length]
        assert zlib.crc32(data, seeds[kind]) & 0xFFFFFFFF == checksum, f"{path}: corrupt record at byte {offset}"
        offset += header + length
        if kind == 1:
            chunks.append(data)
        else:
            pending = (pending if kind != 2 else b"") + data
            if kind == 4:
                chunks.append(pending)
    return chunks


def test_wandb_offline_run_holds_the_config_and_every_logged_value(tiny_corpus, tmp_path):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install wandb)")
    args = tiny_args(tiny_corpus, tmp_path / "run", report_to="wandb", max_steps=4, logging_steps=2, eval_steps=2,
                     save_steps=0)
    arguments = tmp_path / "args.json"
    arguments.write_text(json.dumps(asdict(args)))
    wandb_home = tmp_path / "wandb-home"
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(wandb_home / "config"), WANDB_CACHE_DIR=str(wandb_home / "cache"),
               WANDB_DATA_DIR=str(wandb_home / "data"), WANDB_DISABLE_CODE="true", WANDB_API_KEY="",
               HF_HUB_OFFLINE="1")
    # A process of its own: wandb starts a service process and keeps global state.
    script = REPO / "tests" / "scripts" / "distributed_pretrain.py"
    result = subprocess.run([sys.executable, str(script), str(arguments)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())

    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert len(runs) == 1, os.listdir(tmp_path / "wandb") if (tmp_path / "wandb").is_dir() else tmp_path
    logs = glob.glob(os.path.join(runs[0], "run-*.wandb"))
    assert len(logs) == 1
    records = wandb_records(logs[0])
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "run" in kinds and "exit" in kinds  # the run started and finished cleanly

    run = next(r.run for r in records if r.HasField("run"))
    assert run.project == "memobert-pretrain"
    config = {}
    for record in records:
        updates = record.config.update if record.HasField("config") else []
        if record.HasField("run"):
            updates = list(record.run.config.update)
        for item in updates:
            config[item.key] = json.loads(item.value_json)
    expected_config = {"learning_rate": 1e-3, "max_steps": 4, "per_device_train_batch_size": 4, "report_to": "wandb",
                       "seed": args.seed, "tasks": str(args.tasks)}
    for key, value in expected_config.items():
        assert config.get(key) == value, (key, config.get(key))

    history: dict[int, dict] = {}
    for record in records:
        if record.HasField("history"):
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history[row["_step"]] = row
    assert sorted(history) == [0, 2, 4]
    for key, by_step in expected_series(metrics["history"]).items():
        for step, value in by_step.items():
            assert math.isfinite(history[step][key]), (key, step)
            assert history[step][key] == pytest.approx(value, rel=1e-9), (key, step)

    summaries = [r.summary for r in records if r.HasField("summary")]
    final = {}
    for summary in summaries:
        final.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in summary.update})
    assert final["_step"] == 4 and final["lr"] == 0.0
    assert final["eval/loss/wwmlm"] == pytest.approx(metrics["eval"][-1]["loss/wwmlm"], rel=1e-9)
