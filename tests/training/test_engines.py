"""Sharded engines, run for real on CPUs: FSDP2 (torch `fully_shard` over gloo, through Accelerate's FSDP2 code path)
and DeepSpeed ZeRO-2 (DeepSpeed's CPU accelerator), against plain data parallel on the same tiny pretraining.

Accelerate 1.15 sets up FSDP and DeepSpeed on accelerators only (`AcceleratorState`: the FSDP branch is for MULTI_GPU
and its kin; with ACCELERATE_USE_CPU=1 FSDP is dropped for plain DDP over gloo, and without it every process of a CPU
machine is process 0 of 1). torch's FSDP2 itself runs on CPUs over gloo, so the FSDP test launches
`pretrain/configs/accelerate_fsdp.yaml` with ACCELERATE_USE_CPU=1 and switches Accelerate's state from MULTI_CPU to
FSDP right after `Accelerator()` (the one thing a GPU machine does differently); everything after that is
Accelerate's and the loop's own FSDP2 path: `fully_shard` per MEmoBertLayer, sharded optimizer, `clip_grad_norm_` over
DTensors, `save_state`, the gathered full state dict, `save_pretrained`.
"""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from memobert.training import ConfigError, pretrain
from tests.support import REPO
from tests.training.test_pretrain import tiny_args

CONFIGS = REPO / "pretrain" / "configs"
FSDP_CONFIG = CONFIGS / "accelerate_fsdp.yaml"
ZERO2_CONFIG = CONFIGS / "accelerate_deepspeed_zero2.yaml"

# Run under `accelerate launch` with ACCELERATE_USE_CPU=1: Accelerate's FSDP state on a CPU machine (see above), then
# pretraining; each rank records what FSDP2 made of the model.
FSDP_ON_CPU = '''
import json, os, sys
import accelerate, accelerate.accelerator
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

original_init = accelerate.Accelerator.__init__
def init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    assert self.state.distributed_type == DistributedType.MULTI_CPU, self.state.distributed_type
    self.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables the launcher sets
    self.state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP
accelerate.Accelerator.__init__ = init

original_prepare = accelerate.accelerator.fsdp2_prepare_model
def prepare(accelerator, model):
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor
    model = original_prepare(accelerator, model)
    report = {"fsdp_modules": sorted(n or "<root>" for n, m in model.named_modules() if isinstance(m, FSDPModule)),
              "sharded": all(isinstance(p, DTensor) for p in model.parameters()),
              "local_numel": sum(p.to_local().numel() for p in model.parameters()),
              "numel": sum(p.numel() for p in model.parameters())}
    with open(os.path.join(os.environ["FSDP_REPORT_DIR"], f"rank{accelerator.process_index}.json"), "w") as f:
        json.dump(report, f)
    return model
accelerate.accelerator.fsdp2_prepare_model = prepare

from memobert.training import PretrainArguments, pretrain
with open(sys.argv[1], encoding="utf-8") as handle:
    pretrain(PretrainArguments(**json.load(handle)))
'''


SCRIPT = REPO / "tests" / "scripts" / "distributed_pretrain.py"  # one pretraining run from a JSON arguments file


def launch(accelerate_args: list[str], script: Path, args, tmp_path: Path, name: str, **env):
    arguments = tmp_path / f"{name}.json"
    arguments.write_text(json.dumps(asdict(args)))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", "0", "--num_machines", "1",
               "--dynamo_backend", "no", *accelerate_args, str(script), str(arguments)]
    environment = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **env)
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=400)


def losses(history: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in history["train"] + history["eval"]]


def loaded_weights(folder: Path) -> dict[str, torch.Tensor]:
    from memobert.modeling_memobert import MEmoBertForPreTraining

    model = MEmoBertForPreTraining.from_pretrained(folder)
    assert model.cls.predictions.decoder.weight is model.memobert.embeddings.word_embeddings.weight
    assert model.cls.predictions.bias is model.cls.predictions.decoder.bias
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.skipif(torch.cuda.is_available(), reason="emulates FSDP on CPUs; a GPU machine runs the config as it is")
def test_fsdp2_on_two_cpu_processes_trains_exactly_as_data_parallel_and_saves_a_loadable_model(tiny_corpus, tmp_path):
    pytest.importorskip("torch.distributed.fsdp", reason="this torch has no FSDP2")
    script = tmp_path / "fsdp_on_cpu.py"
    script.write_text(FSDP_ON_CPU)
    reports = tmp_path / "reports"
    reports.mkdir()
    common = dict(max_steps=4, eval_steps=2, save_steps=0)
    fsdp = launch(["--config_file", str(FSDP_CONFIG), "--num_processes", "2", "--mixed_precision", "no"], script,
                  tiny_args(tiny_corpus, tmp_path / "fsdp", **{**common, "save_steps": 2}), tmp_path, "fsdp",
                  ACCELERATE_USE_CPU="1", FSDP_REPORT_DIR=str(reports))
    assert fsdp.returncode == 0, fsdp.stderr[-4000:]
    ddp = launch(["--multi_gpu", "--num_processes", "2", "--mixed_precision", "no"],
                 SCRIPT, tiny_args(tiny_corpus, tmp_path / "ddp", **common),
                 tmp_path, "ddp", ACCELERATE_USE_CPU="1")
    assert ddp.returncode == 0, ddp.stderr[-4000:]

    # FSDP2 really sharded the model: one unit per layer, the tied word embeddings + MLM decoder, and the root.
    for rank in (0, 1):
        report = json.loads((reports / f"rank{rank}.json").read_text())
        assert report["sharded"] and report["local_numel"] < 0.6 * report["numel"], report
        assert report["fsdp_modules"] == ["<root>", "cls.predictions.decoder", "memobert.embeddings.word_embeddings",
                                          "memobert.encoder.layer.0", "memobert.encoder.layer.1"], report

    sharded = json.loads((tmp_path / "fsdp" / "metrics.json").read_text())
    replicated = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert sharded["processes"] == 2
    first, second = sharded["parameter_fingerprints"]
    assert first == second
    # The schedule steps once per update (not once per process): the rate peaks at update 2 and ends at 0.
    assert [r["lr"] for r in sharded["history"]["train"]] == [pytest.approx(1e-3), 0.0]
    for ours, theirs in zip(losses(sharded["history"]), losses(replicated["history"]), strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], rel=1e-6), key
    assert (tmp_path / "fsdp" / "checkpoints" / "step_2" / "trainer_state.json").is_file()  # sharded save_state

    ours, theirs = loaded_weights(tmp_path / "fsdp"), loaded_weights(tmp_path / "ddp")
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-6, msg=name)

    # Resuming from the sharded step-2 checkpoint (saved before two of the four heads had a gradient) ends exactly
    # where the uninterrupted run ended.
    (tmp_path / "resumed" / "checkpoints").mkdir(parents=True)
    os.symlink(tmp_path / "fsdp" / "checkpoints" / "step_2", tmp_path / "resumed" / "checkpoints" / "step_2")
    resumed = launch(["--config_file", str(FSDP_CONFIG), "--num_processes", "2", "--mixed_precision", "no"], script,
                     tiny_args(tiny_corpus, tmp_path / "resumed", **{**common, "resume_from_checkpoint": "latest"}),
                     tmp_path, "resumed", ACCELERATE_USE_CPU="1", FSDP_REPORT_DIR=str(reports))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "Resumed from" in resumed.stdout
    again = loaded_weights(tmp_path / "resumed")
    for name in ours:
        assert torch.equal(ours[name], again[name]), name
    resumed_history = json.loads((tmp_path / "resumed" / "metrics.json").read_text())["history"]
    assert losses(resumed_history) == losses(sharded["history"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the config runs")
def test_a_gpu_engine_config_launched_on_cpus_is_refused_not_run_once_per_process(tiny_corpus, tmp_path):
    """Without ACCELERATE_USE_CPU, Accelerate makes each launched process a single-process run on a CPU machine: they
    would each train on every row and write the same output_dir. The loop refuses and says how to launch on CPUs."""
    result = launch(["--config_file", str(FSDP_CONFIG), "--num_processes", "2", "--mixed_precision", "no"],
                    SCRIPT, tiny_args(tiny_corpus, tmp_path / "out", max_steps=2, eval_steps=0, save_steps=0), tmp_path,
                    "args")
    assert result.returncode != 0
    assert "Launched as 2 processes, but Accelerate set up 1" in result.stderr
    assert "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu" in result.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


# -- DeepSpeed ---------------------------------------------------------------------------------------------------------


def zero2_plugin():
    """The DeepSpeedPlugin that `accelerate launch --config_file accelerate_deepspeed_zero2.yaml` gives a process."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin

    cluster = load_config_from_file(str(ZERO2_CONFIG))
    assert cluster.distributed_type == "DEEPSPEED" and cluster.mixed_precision == "bf16"
    return DeepSpeedPlugin(**cluster.deepspeed_config)


def test_the_zero2_config_parses_into_deepspeed_and_takes_its_auto_values_from_the_run(tmp_path):
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (DS_BUILD_OPS=0 pip install deepspeed)")
    from accelerate.utils import DistributedType
    from deepspeed.runtime.config import DeepSpeedConfig

    from memobert.training.pretrain import fill_deepspeed_config

    plugin = zero2_plugin()
    config = plugin.deepspeed_config
    assert plugin.zero_stage == 2 and config["zero_optimization"]["stage"] == 2
    assert config["zero_optimization"]["offload_optimizer"]["device"] == "none"
    assert config["train_micro_batch_size_per_gpu"] == "auto" and config["gradient_clipping"] == "auto"

    def accelerator(plugin, processes=1):
        return SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, num_processes=processes,
                               state=SimpleNamespace(deepspeed_plugin=plugin))

    args = tiny_args(tmp_path, tmp_path / "out", per_device_train_batch_size=6, max_grad_norm=2.5)
    fill_deepspeed_config(accelerator(plugin), args)
    assert (config["train_micro_batch_size_per_gpu"], config["gradient_accumulation_steps"],
            config["gradient_clipping"], config["train_batch_size"]) == (6, 1, 2.5, 6)
    parsed = DeepSpeedConfig(dict(config, bf16={"enabled": False}, fp16={"enabled": False}))  # DeepSpeed's own checks
    assert parsed.zero_optimization_stage == 2 and parsed.train_batch_size == 6 and parsed.gradient_clipping == 2.5

    eight = zero2_plugin()
    fill_deepspeed_config(accelerator(eight, processes=8), tiny_args(tmp_path, tmp_path / "out"))
    assert eight.deepspeed_config["train_batch_size"] == 4 * 8

    with pytest.raises(ConfigError, match="gradient_accumulation_steps 2 with DeepSpeed"):
        fill_deepspeed_config(accelerator(zero2_plugin()),
                              tiny_args(tmp_path, tmp_path / "o", gradient_accumulation_steps=2))
    clashing = zero2_plugin()
    clashing.deepspeed_config["gradient_clipping"] = 1.0
    with pytest.raises(ConfigError, match=r"gradient_clipping 1.0 \(the run's 5.0\)"):
        fill_deepspeed_config(accelerator(clashing), tiny_args(tmp_path, tmp_path / "o"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="compares with a CPU run")
def test_zero2_on_one_cpu_process_pretrains_as_the_plain_loop(tiny_corpus, tmp_path):
    """The whole loop through DeepSpeed's engine (its backward and step, clipping, the scheduler it steps, the state
    dict, save_pretrained) on DeepSpeed's CPU accelerator. One process: with more, Accelerate 1.15 calls each CPU
    process process 0 of 1 (refused by the loop). One task, no weight decay: ZeRO's flat gradient buffers give idle
    parameters a zero gradient instead of none, so AdamW would still move them (momentum, decay) where torch skips."""
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (DS_BUILD_OPS=0 pip install deepspeed)")
    recipe = dict(tasks=["wwmlm"], task_ratios=[1.0], weight_decay=0.0, max_steps=4, eval_steps=2, save_steps=2)
    result = launch(["--config_file", str(ZERO2_CONFIG), "--num_processes", "1", "--mixed_precision", "no"],
                    SCRIPT, tiny_args(tiny_corpus, tmp_path / "zero2", **recipe),
                    tmp_path, "zero2")
    assert result.returncode == 0, result.stderr[-4000:]
    plain = pretrain(tiny_args(tiny_corpus, tmp_path / "plain", **recipe))

    zero2 = json.loads((tmp_path / "zero2" / "metrics.json").read_text())
    for ours, theirs in zip(losses(zero2["history"]), losses(plain["history"]), strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], rel=1e-6), key
    assert (tmp_path / "zero2" / "checkpoints" / "step_2" / "trainer_state.json").is_file()
    ours, theirs = loaded_weights(tmp_path / "zero2"), loaded_weights(tmp_path / "plain")
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-6, msg=name)
