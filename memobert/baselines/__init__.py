"""The other published systems MEmoBERT is compared with, runnable on the same corpus, folds and metrics.

Registry: `BASELINES[name]` is a `BaselineSpec`; `BASELINES[name](config)` (or `build_baseline(name, config,
**overrides)`) builds the system from its config dataclass, a mapping (a parsed YAML file of the shipped
`memobert/baselines/configs/`, found by name with `baseline_config_path`) or None (the defaults).

The interface a runner relies on (all of it declared on the spec; a runner never names a baseline)
--------------------------------------------------------------------------------------------------
- `spec.config_for_task(source, BaselineTask(...))`: the config from a file / mapping / None with the task filled
  in: the class count, the corpus' frame sizes and the tokenizer's vocabulary, plus what the system takes from the
  task (`spec.task_fields`: UniMSE's label words, face_eeg's class names) and how it adapts to the runner's
  tokenizer (`spec.for_tokenizer`: UniMSE's T5 built from a config reads the corpus' word pieces).
- `spec.kind`: "neural" or "classical".
  Neural: an `nn.Module` whose `forward(**batch)` takes the keys of `MEmoBertProcessor`'s batches, any subset of
  `input_ids`, `attention_mask` `(B, L)`, `visual_feats` `(B, Tv, Dv)`, `visual_mask` `(B, Tv)`, `acoustic_feats`
  `(B, Ta, Da)`, `acoustic_mask` `(B, Ta)`, `labels` `(B,)`, ignores keys it does not use, and returns a
  `BaselineOutput` (or a subclass) with `loss` (when `labels` are given) and `logits` `(B, num_classes)`, whose argmax
  is the prediction. Trained with the usual loop: `loss.backward()`, optimizer step; `model.eval()` to evaluate
  (SpecAugment, Monte-Carlo fusion and M3ER's check switch on the mode).
  Classical (the elderly-speech system, the eGeMAPS + SVM and frozen-text + LR anchors): an object with `fit(train_batches)`,
  `predict(batches) -> np.ndarray` and `evaluate(batches) -> dict` (`classification_metrics`), where batches are
  re-iterable dicts as above plus `texts`. With `spec.selects_on_validation` the runner calls
  `fit(train_batches, validation_batches)` instead: the system chooses its hyper-parameters on the validation rows
  (never the test rows), and reports how in `selection_note()` and every candidate in `search` (a list of dicts).
- `spec.batch_keys(config)`: the keys it reads beyond the processor's, for that config (`texts`: the utterance
  strings, UniMSE tokenises them itself; `eeg_feats`, `face_pixels`, `face_soft_labels` for face_eeg's other
  branches); `spec.input_fixes[key]` says how to configure the system without a key a runner cannot feed.
- `spec.needs_prepare`: `model.prepare(train_batches)` is called once with the training batches before training
  (M3ER's modality check, ResNet34's speaker-ID stage); those batches also carry `speakers`, one string per
  utterance.
- `config.modalities`: the inputs it uses; a runner scores it only in the modality cases holding one of them.
- `save_baseline(model, spec, config, folder)` / `load_baseline(folder)`: weights as safetensors plus the config
  as JSON (no pickle).

Config: every config is a dataclass deriving from `BaselineConfig` (`num_classes`, `text_vocab_size`, `visual_dim`,
`acoustic_dim`, `modalities`). Unknown config keys raise. `load_baseline_config(path, **overrides)` reads a config
file (`baseline: <name>`, `config: {...}`) -> (spec, config).

| name | system | module |
|---|---|---|
| early_fusion / late_fusion | concatenation + MLP / per-modality heads, averaged or learned weights | fusion.py |
| mfn | Memory Fusion Network (AAAI 2018) | mfn.py |
| m3er | M3ER: CCA modality check, proxy features, multiplicative fusion, MFN (AAAI 2020) | m3er.py |
| face_eeg | face CNN + EEG encoder, Monte-Carlo decision fusion (BSPC 2021) | face_eeg.py |
| (SEED-IV) | face_eeg's EEG encoder on SEED-IV, LOSO or session folds (`baselines/seed_iv.py`) | seed_iv.py |
| resnet_logmel | ResNet34 on log-mels, statistics pooling, SpecAugment, speaker-ID transfer | resnet_logmel.py |
| yamnet_audio / elderly_speech | YAMNet-style MobileNet + text embeddings -> sklearn (ICMI 2020) | elderly_speech.py |
| egemaps_svm | eGeMAPSv02 functionals or frames' mean + std -> standardised SVM, C, kernel by validation | egemaps.py |
| text_probe | frozen sentence encoder (mean-pooled MiniLM) -> standardised logistic regression, C by validation | text_probe.py |
| unimse | T5 with A/V adapters, contrastive loss, label words (EMNLP 2022) | unimse.py |

The downstream runner reaches these systems only through this registry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .common import BaselineConfig, BaselineOutput, BaselineTask, make_config
from .elderly_speech import (
    ElderlySpeechBaseline,
    ElderlySpeechConfig,
    FusedFeatureClassifier,
    MobileNetV1,
    SentenceEmbedder,
    YAMNetAudioModel,
    YAMNetEncoder,
    build_elderly_speech,
    build_yamnet_audio,
)
from .egemaps import EgemapsSVM, EgemapsSVMBaseline, EgemapsSVMConfig, build_egemaps_svm, pool_frames
from .face_eeg import (
    FACE_EEG_INPUT_FIXES,
    EEGEncoder,
    FaceEEGConfig,
    FaceEEGModel,
    build_face_eeg,
    face_eeg_task_fields,
    fit_branch_weights,
    monte_carlo_fusion,
    read_seed_iv,
    seed_iv_samples,
)
from .fusion import (
    ConcatFusion,
    EarlyFusionModel,
    FusionConfig,
    LateFusionModel,
    ModalityPooler,
    WeightedLateFusion,
    build_early_fusion,
    build_late_fusion,
)
from .m3er import CCA, M3ERConfig, M3ERModel, ModalityCheck, build_m3er, multiplicative_fusion_loss
from .mfn import MemoryFusionNetwork, MFNConfig, MFNModel, build_mfn
from .probe import ProbeBaseline, ValidatedProbe
from .resnet_logmel import (
    ResNetLogMelConfig,
    ResNetLogMelModel,
    SpecAugment,
    StatisticsPooling,
    build_resnet_logmel,
    pretrain_speakers,
    train_speaker_then_emotion,
)
from .text_probe import TextProbeBaseline, TextProbeConfig, build_text_probe
from .unimse import UniMSEConfig, UniMSEModel, build_unimse, unimse_for_tokenizer, unimse_task_fields

CONFIG_PACKAGE = "memobert.baselines"
BASELINE_FILE = "baseline.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class BaselineSpec:
    """One registered system and the interface a runner uses (see the module docstring): `name`, `config_class`,
    `builder(config, **overrides)`, `kind` ("neural" | "classical"), the batch keys it may read beyond the
    processor's (`extra_keys`) and how to do without them (`input_fixes`), whether it has a `prepare(train_batches)`
    step (`needs_prepare`), whether a classical system chooses its hyper-parameters on the validation rows
    (`selects_on_validation`: `fit(train_batches, validation_batches)`), what it takes from the task
    (`task_fields`) and from the tokenizer (`for_tokenizer`), and the paper."""

    name: str
    config_class: type
    builder: Callable[..., Any]
    kind: str = "neural"
    extra_keys: tuple[str, ...] = ()
    needs_prepare: bool = False
    paper: str = ""
    input_fixes: Mapping[str, str] = field(default_factory=dict)
    task_fields: Callable[[BaselineTask], dict[str, Any]] | None = None
    for_tokenizer: Callable[[Any, Any], Any] | None = None
    selects_on_validation: bool = False

    def __call__(self, config: Any = None, **overrides: Any) -> Any:
        return self.builder(config, **overrides)

    def make_config(self, config: Any = None, **overrides: Any) -> Any:
        """The config dataclass from an instance, a mapping or None, with overrides (unknown keys raise)."""
        return make_config(self.config_class, config, **overrides)

    def config_for_task(self, source: Any, task: BaselineTask) -> Any:
        """The config from `source` (an instance, a mapping or None) with the task filled in: class count and what
        the system takes from the task; the corpus' frame sizes and the tokenizer's vocabulary when the task has
        them (a runner checking a config before reading the corpus gives neither)."""
        overrides: dict[str, Any] = {"num_classes": task.num_classes}
        overrides.update(self.task_fields(task) if self.task_fields else {})
        if task.visual_dim is not None:
            overrides.update(visual_dim=task.visual_dim, acoustic_dim=task.acoustic_dim)
        if task.tokenizer is not None:
            overrides["text_vocab_size"] = len(task.tokenizer)
        config = self.make_config(source, **overrides)
        if task.tokenizer is not None and self.for_tokenizer is not None:
            config = self.for_tokenizer(config, task.tokenizer)
        return config

    def batch_keys(self, config: Any) -> tuple[str, ...]:
        """The extra batch keys `config` makes the system read: its `batch_keys()` when the config has one (face_eeg's
        depend on its branches), else every key of `extra_keys`."""
        return tuple(config.batch_keys()) if hasattr(config, "batch_keys") else self.extra_keys


BASELINES: dict[str, BaselineSpec] = {}


def register_baseline(spec: BaselineSpec) -> BaselineSpec:
    """Adds `spec` to `BASELINES` (a name can be registered once)."""
    if spec.name in BASELINES:
        raise ValueError(f"A baseline named {spec.name!r} is already registered.")
    if spec.kind not in ("neural", "classical"):
        raise ValueError(f"BaselineSpec.kind must be 'neural' or 'classical', got {spec.kind!r}.")
    if spec.selects_on_validation and spec.kind != "classical":
        raise ValueError("BaselineSpec.selects_on_validation is for classical systems (neural ones are selected by "
                         "the runner's validation curve).")
    BASELINES[spec.name] = spec
    return spec


def build_baseline(name: str, config: Any = None, **overrides: Any) -> Any:
    """Builds the registered baseline `name` from its config (dataclass, mapping or None) and keyword overrides."""
    if name not in BASELINES:
        raise KeyError(f"Unknown baseline {name!r}; registered: {sorted(BASELINES)}.")
    return BASELINES[name](config, **overrides)


def shipped_configs() -> list[str]:
    """Names of the config files shipped with the package (`memobert/baselines/configs/`), e.g. "mfn",
    "offline/unimse_tiny"."""
    root = resources.files(CONFIG_PACKAGE) / "configs"
    names = []
    for entry in root.iterdir():
        if entry.is_dir():
            names += [f"{entry.name}/{sub.name[:-5]}" for sub in entry.iterdir() if sub.name.endswith(".yaml")]
        elif entry.name.endswith(".yaml"):
            names.append(entry.name[:-5])
    return sorted(names)


def baseline_config_path(name_or_path: str | os.PathLike) -> Path | None:
    """A config file: an existing path as given, else the shipped config of that name (`mfn`, `mfn.yaml`,
    `offline/unimse_tiny`; also as `baselines/configs/<name>.yaml`, the path in a source checkout); None when
    neither exists. Works from an installed wheel (the configs are package data)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path).replace(os.sep, "/").removesuffix(".yaml")
    for prefix in ("memobert/baselines/configs/", "baselines/configs/", "configs/"):
        name = name.split(prefix, 1)[-1]
    shipped = resources.files(CONFIG_PACKAGE) / "configs" / f"{name}.yaml"
    return Path(str(shipped)) if shipped.is_file() else None


def read_baseline_file(path: str | os.PathLike) -> tuple[BaselineSpec, Mapping[str, Any]]:
    """A baseline YAML/JSON file (`baseline: <name>` and `config: {...}`) -> (the spec, the config mapping)."""
    import yaml

    path = os.fspath(path)
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    if not isinstance(data, Mapping) or "baseline" not in data:
        raise ValueError(f"{path}: a baseline config file needs a 'baseline: <name>' entry (and 'config: {{...}}').")
    unknown = sorted(set(data) - {"baseline", "config"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; put the system's fields under 'config:'.")
    name = data["baseline"]
    if name not in BASELINES:
        raise ValueError(f"{path}: unknown baseline {name!r}; registered: {sorted(BASELINES)}.")
    return BASELINES[name], data.get("config") or {}


def load_baseline_config(path: str | os.PathLike, **overrides: Any) -> tuple[BaselineSpec, Any]:
    """Reads a baseline config file -> (the spec, its config dataclass with `overrides` applied)."""
    spec, values = read_baseline_file(path)
    try:
        return spec, spec.make_config(values, **overrides)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{os.fspath(path)}: {error}") from error


def save_baseline(model: Any, spec: BaselineSpec, config: Any, folder: str | os.PathLike) -> Path:
    """A neural baseline's weights (`model.safetensors`) and its config (`baseline.json`) in `folder`."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / WEIGHTS_FILE))
    (folder / BASELINE_FILE).write_text(json.dumps({"baseline": spec.name, "config": config.to_dict()}, indent=2))
    return folder


def load_baseline(folder: str | os.PathLike) -> Any:
    """The neural baseline saved by `save_baseline` in `folder`, in eval mode (weights read without pickle)."""
    from safetensors.torch import load_model

    folder = Path(folder)
    if not (folder / BASELINE_FILE).is_file():
        raise FileNotFoundError(f"{folder} holds no {BASELINE_FILE}: give a folder written by save_baseline.")
    spec, values = read_baseline_file(folder / BASELINE_FILE)
    model = spec(spec.make_config(values))
    load_model(model, str(folder / WEIGHTS_FILE))
    return model.eval()


for _spec in (
    BaselineSpec("early_fusion", FusionConfig, build_early_fusion, paper="early fusion by concatenation"),
    BaselineSpec("late_fusion", FusionConfig, build_late_fusion, paper="late (decision) fusion"),
    BaselineSpec("mfn", MFNConfig, build_mfn, paper="Zadeh et al., Memory Fusion Network, AAAI 2018"),
    BaselineSpec("m3er", M3ERConfig, build_m3er, needs_prepare=True,
                 paper="Mittal et al., M3ER, AAAI 2020"),
    BaselineSpec("face_eeg", FaceEEGConfig, build_face_eeg,
                 extra_keys=("eeg_feats", "face_pixels", "face_soft_labels"), input_fixes=FACE_EEG_INPUT_FIXES,
                 task_fields=face_eeg_task_fields, paper="face + EEG with Monte-Carlo decision fusion, BSPC 2021"),
    BaselineSpec("resnet_logmel", ResNetLogMelConfig, build_resnet_logmel, needs_prepare=True,
                 paper="ResNet34 on log-mels with statistics pooling, SpecAugment and speaker-ID transfer"),
    BaselineSpec("yamnet_audio", ElderlySpeechConfig, build_yamnet_audio,
                 paper="Boateng & Kowatsch, ICMI 2020 (audio encoder alone)"),
    BaselineSpec("elderly_speech", ElderlySpeechConfig, build_elderly_speech, kind="classical",
                 extra_keys=("texts",), paper="Boateng & Kowatsch, elderly speech emotion, ICMI 2020"),
    BaselineSpec("egemaps_svm", EgemapsSVMConfig, build_egemaps_svm, kind="classical", selects_on_validation=True,
                 paper="Eyben et al., eGeMAPS, IEEE TAC 2016: functionals + standardised SVM"),
    BaselineSpec("text_probe", TextProbeConfig, build_text_probe, kind="classical", selects_on_validation=True,
                 extra_keys=("texts",), paper="frozen mean-pooled sentence encoder + logistic regression (linear probe)"),
    BaselineSpec("unimse", UniMSEConfig, build_unimse, extra_keys=("texts",), task_fields=unimse_task_fields,
                 for_tokenizer=unimse_for_tokenizer, paper="Hu et al., UniMSE, EMNLP 2022"),
):
    register_baseline(_spec)

__all__ = [
    "BASELINES",
    "BaselineSpec",
    "BaselineConfig",
    "BaselineOutput",
    "BaselineTask",
    "register_baseline",
    "build_baseline",
    "shipped_configs",
    "baseline_config_path",
    "read_baseline_file",
    "load_baseline_config",
    "save_baseline",
    "load_baseline",
    "make_config",
    # fusion
    "FusionConfig", "ModalityPooler", "ConcatFusion", "WeightedLateFusion", "EarlyFusionModel", "LateFusionModel",
    "build_early_fusion", "build_late_fusion",
    # MFN / M3ER
    "MFNConfig", "MemoryFusionNetwork", "MFNModel", "build_mfn",
    "M3ERConfig", "M3ERModel", "ModalityCheck", "CCA", "multiplicative_fusion_loss", "build_m3er",
    # face + EEG
    "FaceEEGConfig", "FaceEEGModel", "EEGEncoder", "monte_carlo_fusion", "fit_branch_weights", "read_seed_iv",
    "seed_iv_samples", "build_face_eeg",
    # ResNet log-mel
    "ResNetLogMelConfig", "ResNetLogMelModel", "StatisticsPooling", "SpecAugment", "pretrain_speakers",
    "train_speaker_then_emotion",
    "build_resnet_logmel",
    # elderly speech
    "ElderlySpeechConfig", "ElderlySpeechBaseline", "YAMNetAudioModel", "YAMNetEncoder", "MobileNetV1",
    "SentenceEmbedder", "FusedFeatureClassifier", "build_elderly_speech", "build_yamnet_audio",
    # eGeMAPS + SVM
    "EgemapsSVMConfig", "EgemapsSVM", "EgemapsSVMBaseline", "build_egemaps_svm", "pool_frames",
    # frozen text encoder + logistic regression; the validated probe both anchors use
    "TextProbeConfig", "TextProbeBaseline", "build_text_probe", "ValidatedProbe", "ProbeBaseline",
    # UniMSE
    "UniMSEConfig", "UniMSEModel", "build_unimse",
]
