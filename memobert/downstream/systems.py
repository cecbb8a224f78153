"""What a downstream run trains: one of the MEmoBERT settings or a registered baseline, as a `System`.

The runner asks a `System` for a fresh model in every fold and seed, and for nothing else about it: its batches
(the processor, prompt or not, the extra keys it reads), whether it is trained or fitted (classical), whether it has a
`prepare` stage, the modalities it uses and how to save it. Baselines are reached only through their registry
entry's declared interface (`memobert.baselines.BaselineSpec`), never by name.

Settings (the paper's comparison):
- `direct`: MEmoBertForSequenceClassification from a fresh config (no initialisation from anything);
- `bert_direct`: the same, its text part initialised from a text BERT (`from_bert`);
- `finetune`: a pretrained MEmoBERT, its pooler and a new classification head;
- `prompt`: a pretrained MEmoBERT predicting a label word at [MASK] in `[CLS] <text> i am [MASK] . [SEP] v.. a..`;
  only the label words are scored (no new parameters);
- `baseline`: a published system of `memobert.baselines` with its config (a path, or a config shipped in the package).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import AutoConfig, AutoTokenizer

from ..baselines import BASELINES, BaselineTask, baseline_config_path, read_baseline_file, save_baseline
from ..checkpoints import resolve_checkpoint
from ..configuration_memobert import MEmoBertConfig
from ..data.labels import EmotionLabels
from ..data.schema import MODALITIES
from ..modeling_memobert import (
    BERT_CONFIG_FIELDS,
    MEmoBertForPrompt,
    MEmoBertForSequenceClassification,
    quiet_transformers,
)
from ..processing_memobert import MEmoBertProcessor
from ..training.arguments import ConfigError
from .arguments import DownstreamArguments
from .batching import EXTRA_KEYS

if TYPE_CHECKING:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from .corpus import DownstreamCorpus
    from .results import RunFolder


@dataclass
class System:
    """What the runner trains in each fold and seed."""

    processor: MEmoBertProcessor
    build: Callable[[], tuple[Any, dict]]  # a fresh model and a note of what was initialised from where
    save: Callable[[Any, Path], None]  # the selected model (and what loads it) into a folder
    prompt: bool = False  # batches are prompts ("<text> i am [MASK] .")
    extra_keys: tuple[str, ...] = ()  # batch keys beyond the processor's (EXTRA_KEYS)
    classical: bool = False  # fitted once (fit / predict / evaluate) instead of trained by updates
    needs_prepare: bool = False  # model.prepare(train_batches) before training
    selects_on_validation: bool = False  # classical: fit(train_batches, validation_batches) picks its hyper-parameters
    modalities: tuple[str, ...] = MODALITIES  # the inputs it uses

    def cases(self, cases: list[str]) -> list[str]:
        """The test cases it can be scored in: those holding at least one of its modalities (an audio-only system has
        no input in L, V or LV, so those cases are left out of its run and of its rows in results.md)."""
        letters = {"text": "L", "visual": "V", "acoustic": "A"}
        used = {letters[m] for m in self.modalities}
        return [case for case in cases if used & set(case)]


@dataclass
class Run:
    """What every fold x seed of a run shares: its arguments, system, corpus, classes, test cases, the Accelerator,
    the progress bar, the run folder and the case it trains and validates in."""

    args: DownstreamArguments
    system: System
    corpus: DownstreamCorpus
    labels: EmotionLabels
    cases: list[str]
    accelerator: Accelerator
    bar: tqdm
    folder: RunFolder
    train_case: str


def build_system(args: DownstreamArguments, labels: EmotionLabels, sizes: dict[str, int]) -> System:
    """The system of `args.setting` for a corpus with these feature sizes."""
    processor = build_processor(args, labels)
    if args.setting == "baseline":
        return _baseline_system(args, labels, sizes, processor)
    lengths = frame_lengths(args)
    pretrained = _pretrained(args)
    if pretrained and args.setting in ("finetune", "prompt"):
        _check_pretrained(MEmoBertConfig.from_pretrained(pretrained), sizes, lengths, pretrained)

    def save(model, folder: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(str(folder))

    return System(processor, lambda: build_memobert(args, labels, sizes, processor), save,
                  prompt=args.setting == "prompt")


# ----------------------------------------------------------------------------------------------------------------------
# MEmoBERT settings
# ----------------------------------------------------------------------------------------------------------------------


def _pretrained(args: DownstreamArguments) -> str | None:
    return str(Path(args.pretrained_model).expanduser()) if args.pretrained_model else None


def frame_lengths(args: DownstreamArguments) -> dict[str, int]:
    """Face and acoustic frames kept: the arguments', else the pretrained model's, else the config defaults."""
    lengths = {"max_visual_length": MEmoBertConfig.max_visual_length,
               "max_acoustic_length": MEmoBertConfig.max_acoustic_length}
    if args.pretrained_model and args.setting != "bert_direct":
        config = MEmoBertConfig.from_pretrained(_pretrained(args))
        lengths = {key: getattr(config, key) for key in lengths}
    for key in lengths:
        if getattr(args, key) is not None:
            lengths[key] = getattr(args, key)
    return lengths


def build_processor(args: DownstreamArguments, labels: EmotionLabels) -> MEmoBertProcessor:
    """The tokenizer (the pretrained model's, else the BERT's), its settings from the model's config, with this
    run's lengths and (prompt) label words."""
    overrides = dict(
        max_text_length=args.max_text_length, max_prompt_text_length=args.max_prompt_text_length, **frame_lengths(args)
    )
    if args.setting == "prompt":
        overrides["label_words"] = list(labels.label_words)
    try:
        if args.pretrained_model:
            return MEmoBertProcessor.from_pretrained(_pretrained(args), **overrides)
        return MEmoBertProcessor(AutoTokenizer.from_pretrained(resolve_checkpoint(args.bert)), **overrides)
    except ValueError as error:  # e.g. a label word of several word pieces
        raise ConfigError(str(error)) from error


def build_memobert(
    args: DownstreamArguments, labels: EmotionLabels, sizes: dict[str, int], processor: MEmoBertProcessor
) -> tuple[Any, dict]:
    """A fresh model of the MEmoBERT setting (see the module docstring) and a note of what was initialised from
    where."""
    tokenizer = processor.tokenizer
    classes = {"id2label": labels.id2label, "label2id": labels.label2id}
    pretrained = _pretrained(args)
    lengths = frame_lengths(args)

    if args.setting in ("finetune", "prompt"):
        with quiet_transformers():  # the run's JSON records the new parameters; one load per fold and seed
            if args.setting == "finetune":
                model, info = MEmoBertForSequenceClassification.from_pretrained(
                    pretrained, output_loading_info=True, classifier_pooling=args.classifier_pooling, **classes
                )
                new = sorted(info["missing_keys"])
                unexpected_new = [k for k in new if not k.startswith("classifier.")]
            else:
                model, info = MEmoBertForPrompt.from_pretrained(pretrained, output_loading_info=True)
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
        classifier_pooling=args.classifier_pooling,
        **classes,
    )
    if args.setting == "bert_direct":
        with quiet_transformers():
            model = MEmoBertForSequenceClassification.from_bert(
                resolve_checkpoint(args.bert), tokenizer=tokenizer, **overrides
            )
        return model, {"init": f"text BERT {args.bert}", "new_parameters": ["visual/acoustic embeddings", "classifier"]}
    if pretrained:
        source_config, source = MEmoBertConfig.from_pretrained(pretrained), f"sizes of {pretrained}"
    else:
        source_config, source = AutoConfig.from_pretrained(resolve_checkpoint(args.bert)), f"sizes of {args.bert}"
    shape = {name: getattr(source_config, name) for name in BERT_CONFIG_FIELDS if hasattr(source_config, name)}
    shape["vocab_size"] = max(shape.get("vocab_size", 0), len(tokenizer))
    model = MEmoBertForSequenceClassification(MEmoBertConfig(**{**shape, **overrides}))
    return model, {"init": f"random ({source})", "new_parameters": ["all"]}


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


# ----------------------------------------------------------------------------------------------------------------------
# Baselines, through their registry entry
# ----------------------------------------------------------------------------------------------------------------------


def resolve_baseline_config(args: DownstreamArguments) -> Path | None:
    """The baseline's config file: `baseline_config` (a path or a shipped config's name), else the shipped
    `<baseline>` config when there is one; None = the config class's defaults."""
    return baseline_config_path(args.baseline_config or args.baseline)


def _baseline_config(args: DownstreamArguments, task: BaselineTask):
    """(spec, config, config file) of the run's baseline for `task`."""
    spec = BASELINES[args.baseline]
    path = resolve_baseline_config(args)
    values = read_baseline_file(path)[1] if path else None
    return spec, spec.config_for_task(values, task), path


def baseline_problems(args: DownstreamArguments) -> list[str]:
    """What is wrong with the baseline choice of a `--setting baseline` run (no corpus read)."""
    if not args.baseline:
        return [f"setting baseline needs --baseline NAME (one of {sorted(BASELINES)})"]
    if args.baseline not in BASELINES:
        return [f"baseline {args.baseline!r} is unknown (registered: {sorted(BASELINES)})"]
    path = resolve_baseline_config(args)
    if args.baseline_config and path is None:
        return [f"baseline_config {args.baseline_config} is neither a file nor a config shipped in "
                "memobert/baselines/configs"]
    if path:
        try:
            named = read_baseline_file(path)[0].name
        except (OSError, ValueError) as error:
            return [str(error).rstrip(".")]
        if named != args.baseline:
            return [f"baseline_config {path} is for baseline {named!r}, not {args.baseline!r}"]
    try:
        labels = args.emotion_labels()
    except ValueError:
        return []  # bad classes: reported by validate
    try:  # the keys it reads may depend on the config (face_eeg's branches): build it as the run would, sizes aside
        spec, config, _ = _baseline_config(args, BaselineTask(labels.classes, labels.label_words))
    except (TypeError, ValueError) as error:
        return [str(error).rstrip(".")]
    unfed = [key for key in spec.batch_keys(config) if key not in EXTRA_KEYS]
    if not unfed:
        return []
    fixes = sorted({spec.input_fixes.get(key, "give a config that reads only the corpus' inputs") for key in unfed})
    shipped = baseline_config_path(spec.name)
    example = f" (as the shipped config {shipped.name} does)" if shipped and shipped != path else ""
    return [f"baseline {spec.name} with the config {path or '(defaults)'} reads {unfed}, which the downstream corpora "
            f"do not hold (the runner feeds input_ids, visual_feats and acoustic_feats, plus {list(EXTRA_KEYS)} when "
            "asked): " + "; ".join(fixes) + example]


def _baseline_system(
    args: DownstreamArguments, labels: EmotionLabels, sizes: dict[str, int], processor: MEmoBertProcessor
) -> System:
    task = BaselineTask(labels.classes, labels.label_words, sizes["visual_dim"], sizes["acoustic_dim"],
                        processor.tokenizer)
    spec, config, path = _baseline_config(args, task)
    init = {"init": f"random (baseline {spec.name}: {spec.paper})", "new_parameters": ["all"],
            "baseline_config": str(path) if path else None, "config": config.to_dict()}

    def save(model, folder: Path) -> None:
        save_baseline(model, spec, config, folder)
        processor.save_pretrained(str(folder))

    extra = tuple(key for key in spec.batch_keys(config) if key in EXTRA_KEYS)
    return System(processor, lambda: (spec(config), dict(init)), save, extra_keys=extra,
                  classical=spec.kind == "classical", needs_prepare=spec.needs_prepare,
                  selects_on_validation=spec.selects_on_validation, modalities=tuple(config.modalities))


__all__ = ["System", "Run", "build_system", "build_processor", "build_memobert", "frame_lengths", "baseline_problems",
           "resolve_baseline_config"]
