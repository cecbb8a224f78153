"""The other published systems MEmoBERT is compared with, runnable on the same corpus, folds and metrics.

Registry: `BASELINES[name]` is a `BaselineSpec`; `BASELINES[name](config)` (or `build_baseline(name, config,
**overrides)`) builds the system from its config dataclass, a mapping (a parsed YAML file under
`baselines/configs/`) or None (the defaults).

The interface a runner relies on
--------------------------------
Neural baselines (`spec.kind == "neural"`): an `nn.Module` whose `forward(**batch)` takes the keys of
`MEmoBertProcessor`'s batches, any subset of `input_ids`, `attention_mask` `(B, L)`, `visual_feats` `(B, Tv, Dv)`,
`visual_mask` `(B, Tv)`, `acoustic_feats` `(B, Ta, Da)`, `acoustic_mask` `(B, Ta)`, `labels` `(B,)`, ignores keys it
does not use, and returns a `BaselineOutput` dataclass (or a subclass with extra fields) with
`loss` (when `labels` are given) and `logits` `(B, num_classes)`, whose argmax is the prediction. Some need more keys,
listed in `spec.extra_keys`: `texts` (list of str: UniMSE tokenises with T5's own tokenizer), `eeg_feats`
`(B, 62, 5)`, `face_pixels`, `face_soft_labels` (`spec.batch_keys(config)`: those a given config reads; face_eeg with
`eeg: false, face_input: features` reads none). A model with a `prepare(train_batches)` method (`spec.needs_prepare`:
M3ER's modality check, ResNet34's speaker-ID stage) must have it called once with the training batches before
training; when its `prepare_needs_speakers` is True those batches also carry `speakers` (one speaker string per
utterance; ResNet34 with `speaker_pretraining_epochs` > 0). The training loop is the
usual one: `loss.backward()`, optimizer step; `model.eval()` for evaluation (SpecAugment, Monte-Carlo fusion and M3ER's
check switch on the mode).

Classical baselines (`spec.kind == "classical"`: the elderly-speech system): an object with `fit(train_batches)`,
`predict(batches) -> np.ndarray` and `evaluate(batches) -> dict` (`classification_metrics`), where batches are
re-iterable dicts as above plus `texts`.

Config: every config is a dataclass deriving from `BaselineConfig` (`num_classes`, `text_vocab_size`, `visual_dim`,
`acoustic_dim`, `modalities`); the runner sets the sizes from the corpus (`corpus.json`, the tokenizer) and the
class count from the label set. Unknown config keys raise. `load_baseline_config(path, **overrides)` reads one of the
files under `baselines/configs/` (`baseline: <name>`, `config: {...}`) -> (spec, config); `spec(config)` builds it.

| name | system | module |
|---|---|---|
| early_fusion / late_fusion | concatenation + MLP / per-modality heads, averaged or learned weights | fusion.py |
| mfn | Memory Fusion Network (AAAI 2018) | mfn.py |
| m3er | M3ER: CCA modality check, proxy features, multiplicative fusion, MFN (AAAI 2020) | m3er.py |
| face_eeg | face CNN + EEG encoder, Monte-Carlo decision fusion (BSPC 2021) | face_eeg.py |
| (SEED-IV) | face_eeg's EEG encoder on SEED-IV, LOSO or session folds (`baselines/seed_iv.py`) | seed_iv.py |
| resnet_logmel | ResNet34 on log-mels, statistics pooling, SpecAugment, speaker-ID transfer | resnet_logmel.py |
| yamnet_audio / elderly_speech | YAMNet-style MobileNet + text embeddings -> sklearn (ICMI 2020) | elderly_speech.py |
| unimse | T5 with A/V adapters, contrastive loss, label words (EMNLP 2022) | unimse.py |

Nothing else in the library imports this package (the scripts and tests do).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .common import BaselineConfig, BaselineOutput, make_config
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
from .face_eeg import (
    EEGEncoder,
    FaceEEGConfig,
    FaceEEGModel,
    build_face_eeg,
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
from .resnet_logmel import (
    ResNetLogMelConfig,
    ResNetLogMelModel,
    SpecAugment,
    StatisticsPooling,
    build_resnet_logmel,
    pretrain_speakers,
    train_speaker_then_emotion,
)
from .unimse import UniMSEConfig, UniMSEModel, build_unimse


@dataclass(frozen=True)
class BaselineSpec:
    """One registered system: `name`, `config_class`, `builder(config, **overrides)`, `kind` ("neural" |
    "classical"), the batch keys it needs beyond the processor's (`extra_keys`), whether it has a
    `prepare(train_batches)` step (`needs_prepare`), and the paper."""

    name: str
    config_class: type
    builder: Callable[..., Any]
    kind: str = "neural"
    extra_keys: tuple[str, ...] = ()
    needs_prepare: bool = False
    paper: str = ""

    def __call__(self, config: Any = None, **overrides: Any) -> Any:
        return self.builder(config, **overrides)

    def make_config(self, config: Any = None, **overrides: Any) -> Any:
        """The config dataclass from an instance, a mapping or None, with overrides (unknown keys raise)."""
        return make_config(self.config_class, config, **overrides)

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
    BASELINES[spec.name] = spec
    return spec


def build_baseline(name: str, config: Any = None, **overrides: Any) -> Any:
    """Builds the registered baseline `name` from its config (dataclass, mapping or None) and keyword overrides."""
    if name not in BASELINES:
        raise KeyError(f"Unknown baseline {name!r}; registered: {sorted(BASELINES)}.")
    return BASELINES[name](config, **overrides)


def load_baseline_config(path: str | os.PathLike, **overrides: Any) -> tuple[BaselineSpec, Any]:
    """Reads a baseline YAML/JSON file (`baseline: <name>` and `config: {...}`, as in `baselines/configs/`) ->
    (the spec, its config dataclass with `overrides` applied, e.g. the corpus sizes)."""
    import json

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
    spec = BASELINES[name]
    try:
        config = spec.make_config(data.get("config") or {}, **overrides)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
    return spec, config


for _spec in (
    BaselineSpec("early_fusion", FusionConfig, build_early_fusion, paper="early fusion by concatenation"),
    BaselineSpec("late_fusion", FusionConfig, build_late_fusion, paper="late (decision) fusion"),
    BaselineSpec("mfn", MFNConfig, build_mfn, paper="Zadeh et al., Memory Fusion Network, AAAI 2018"),
    BaselineSpec("m3er", M3ERConfig, build_m3er, needs_prepare=True,
                 paper="Mittal et al., M3ER, AAAI 2020"),
    BaselineSpec("face_eeg", FaceEEGConfig, build_face_eeg,
                 extra_keys=("eeg_feats", "face_pixels", "face_soft_labels"),
                 paper="face + EEG with Monte-Carlo decision fusion, BSPC 2021"),
    BaselineSpec("resnet_logmel", ResNetLogMelConfig, build_resnet_logmel, needs_prepare=True,
                 paper="ResNet34 on log-mels with statistics pooling, SpecAugment and speaker-ID transfer"),
    BaselineSpec("yamnet_audio", ElderlySpeechConfig, build_yamnet_audio,
                 paper="Boateng & Kowatsch, ICMI 2020 (audio encoder alone)"),
    BaselineSpec("elderly_speech", ElderlySpeechConfig, build_elderly_speech, kind="classical",
                 extra_keys=("texts",), paper="Boateng & Kowatsch, elderly speech emotion, ICMI 2020"),
    BaselineSpec("unimse", UniMSEConfig, build_unimse, extra_keys=("texts",),
                 paper="Hu et al., UniMSE, EMNLP 2022"),
):
    register_baseline(_spec)

__all__ = [
    "BASELINES",
    "BaselineSpec",
    "BaselineConfig",
    "BaselineOutput",
    "register_baseline",
    "build_baseline",
    "load_baseline_config",
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
    # UniMSE
    "UniMSEConfig", "UniMSEModel", "build_unimse",
]
