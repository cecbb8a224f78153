"""A prompt-tuned or fine-tuned MEmoBERT as one ONNX graph, and `ONNXEmotionModel`, which runs it in onnxruntime as a
drop-in for the torch model's class logits.

    memobert export-onnx runs/prompt/model exported/model.onnx      # or python -m memobert.onnx_export ...
    model = ONNXEmotionModel.from_pretrained("exported")           # the .onnx file or its folder
    logits = model(**MEmoBertProcessor.from_pretrained("exported")(text=[...], visual=[...], prompt=True))

The graph: inputs `input_ids, attention_mask, token_type_ids` `(batch, text)`, `visual_feats` `(batch, visual,
visual_dim)`, `visual_mask` `(batch, visual)`, `acoustic_feats` `(batch, acoustic, acoustic_dim)`, `acoustic_mask`
`(batch, acoustic)` (ids and masks int64, features float32); output `logits` `(batch, num_labels)`. Batch and the three
lengths are dynamic and independent (at most `max_position_embeddings`, `max_visual_length`, `max_acoustic_length`).

A missing modality is a length-0 segment: `(batch, 0, dim)` features and a `(batch, 0)` mask. That is exactly what
the torch model computes for `None` (a segment that is not there; a segment whose mask is all 0 gives the same
logits too, since masked frames are never attended to). `ONNXEmotionModel` feeds it for every modality given as None,
so `model(**batch)` takes the same keywords as the torch model. Text-less input (input_ids None) is valid for
`MEmoBertForSequenceClassification` only, as in torch (the prompt needs its [MASK]).

How the graph differs from the torch forward, and why the logits are the same: the graph calls the model's own
embedders, encoder layers and heads, but runs the encoder on the padded concatenation with the additive key mask
instead of squeezing each row's padding out first (`squeeze_padding`, whose packed length is data-dependent). Padded
positions get zero attention weight either way, so the class logits agree to float rounding (about 1e-7 here);
`export_onnx(check=True)` verifies that against the torch model on every export. The model's input checks (feature
sizes, lengths, one [MASK] per prompt row) are `ONNXEmotionModel`'s, before the session runs.

Beside the .onnx, `export_onnx` writes the model's `config.json` and, when the model folder has a tokenizer, the
processor (tokenizer files + `memobert_processor.json`), so `MEmoBertProcessor.from_pretrained(folder)` builds the
inputs without the training stack. The config is also stored in the .onnx itself (metadata `memobert_config`), which
`ONNXEmotionModel` reads first: a lone .onnx file is usable too.

Needs `onnx` and `onnxscript` (the torch.export-based exporter of torch.onnx) to export, `onnxruntime` to run.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .command_line import CommandLineParser, fail
from .configuration_memobert import MEmoBertConfig
from .modeling_memobert import (
    MODEL_INPUT_NAMES,
    MEmoBertForPrompt,
    MEmoBertForSequenceClassification,
    quiet_transformers,
)

INPUT_NAMES = MODEL_INPUT_NAMES  # the graph's inputs, in this order
OUTPUT_NAME = "logits"
ONNX_FILE_NAME = "model.onnx"
CONFIG_METADATA_KEY = "memobert_config"
ARCHITECTURE_METADATA_KEY = "memobert_architecture"
EXPORTABLE = {cls.__name__: cls for cls in (MEmoBertForPrompt, MEmoBertForSequenceClassification)}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
# Weights at or above this size go to an external data file (`<name>.onnx.data`); protobuf caps one file at 2 GiB.
EXTERNAL_DATA_BYTES = 1_800_000_000
# export_onnx(check=True) fails when |onnx - torch| exceeds CHECK_TOLERANCE * max(1, max |torch logits|).
CHECK_TOLERANCE = 1e-4


class ONNXExportError(RuntimeError):
    """The exported graph does not reproduce the torch model (export_onnx's check)."""


# ----------------------------------------------------------------------------------------------------------------------
# The graph
# ----------------------------------------------------------------------------------------------------------------------


class ClassLogitsGraph(nn.Module):
    """
    What is exported: the class logits of a `MEmoBertForPrompt` or `MEmoBertForSequenceClassification`, from all seven
    inputs (a missing modality is a length-0 segment), through the model's own submodules. Differs from the model's
    forward in two ways that leave the logits unchanged: no `squeeze_padding` (padding stays in the encoder, masked
    out of attention) and no input checks (`ONNXEmotionModel` makes them).
    """

    def __init__(self, model: MEmoBertForPrompt | MEmoBertForSequenceClassification):
        super().__init__()
        self.model = model
        self.is_prompt = isinstance(model, MEmoBertForPrompt)
        pooler = model.memobert.pooler
        # A pooler that reads the mask (config.classifier_pooling = "mean") gets the concatenated mask, as in
        # MEmoBertModel.forward; BERT's [CLS] pooler takes the states only.
        self.pooler_takes_mask = pooler is not None and "mask" in inspect.signature(pooler.forward).parameters
        if self.is_prompt:
            self.register_buffer("label_token_ids", torch.tensor(model.config.label_token_ids), persistent=False)

    def forward(self, input_ids, attention_mask, token_type_ids, visual_feats, visual_mask, acoustic_feats,
                acoustic_mask):
        base = self.model.memobert
        hidden = torch.cat([
            base.embeddings(input_ids, token_type_ids),
            base.visual_embeddings(visual_feats),
            base.acoustic_embeddings(acoustic_feats),
        ], dim=1)
        mask = torch.cat([attention_mask, visual_mask, acoustic_mask], dim=1).to(hidden.dtype)
        # MEmoBertModel's additive key mask: 0 keep, dtype-min drop, broadcast over heads; expanded over the queries,
        # since onnxruntime's Attention kernel (the SDPA of opset >= 23) takes no mask of query length 1.
        attention_bias = (1.0 - mask)[:, None, None, :] * torch.finfo(hidden.dtype).min
        attention_bias = attention_bias.expand(-1, -1, mask.shape[1], -1)
        encoded, _ = base.encoder(hidden, attention_bias)
        if self.is_prompt:
            position = (input_ids == self.model.config.mask_token_id).int().argmax(dim=1)
            mask_hidden = encoded.gather(1, position[:, None, None].expand(-1, 1, encoded.shape[-1]))[:, 0]
            predictions = self.model.cls.predictions
            decoder = predictions.decoder
            return nn.functional.linear(predictions.transform(mask_hidden), decoder.weight[self.label_token_ids],
                                        decoder.bias[self.label_token_ids])
        pooled = base.pooler(encoded, mask) if self.pooler_takes_mask else base.pooler(encoded)
        return self.model.classifier(pooled)


def require_model_folder(model_dir: str | os.PathLike) -> Path:
    """`model_dir` as a Path; FileNotFoundError naming the fix when it holds no config.json."""
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json: give the folder that save_pretrained wrote for a prompt-tuned or fine-tuned "
            "MEmoBERT (the model folder of `memobert downstream`)."
        )
    return folder


def require_label_words(config: MEmoBertConfig, folder: str | os.PathLike) -> None:
    """ValueError naming the fix when a prompt model's config has no label words (`label_token_ids`)."""
    if config.label_token_ids is None:
        raise ValueError(f"The model in {folder} has no label words (config.label_token_ids is empty), so it cannot "
                         "score emotions: use a prompt-tuned model, or call model.set_label_words(words, tokenizer) "
                         "and save it again.")


def load_classifier(model_dir: str | os.PathLike) -> MEmoBertForPrompt | MEmoBertForSequenceClassification:
    """The model saved in `model_dir` (by `save_pretrained`), as the class its `config.json` names, in float32 and
    eval mode."""
    folder = require_model_folder(model_dir)
    config_file = folder / "config.json"
    with open(config_file, encoding="utf-8") as handle:
        saved = json.load(handle)
    architectures = saved.get("architectures") or []
    names = [name for name in architectures if name in EXPORTABLE]
    if saved.get("model_type") != "memobert" or not names:
        raise ValueError(
            f"{config_file} describes model_type {saved.get('model_type')!r}, architectures {architectures}; "
            f"export-onnx exports a MEmoBERT emotion classifier ({' or '.join(EXPORTABLE)}). Prompt-tune or "
            "fine-tune the model first (`memobert downstream`), or load it as one of those and save_pretrained it."
        )
    cls = EXPORTABLE[names[0]]
    with quiet_transformers():
        model = cls.from_pretrained(str(folder), dtype=torch.float32)
    if cls is MEmoBertForPrompt:
        require_label_words(model.config, folder)
    return model.eval()


def random_inputs(config: MEmoBertConfig, batch: int, text: int, visual: int, acoustic: int, *, prompt: bool,
                  padded: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random model inputs of these lengths (0 = the modality is a length-0 segment): token ids from the vocabulary
    (with one [MASK] per row when `prompt`), normal features; with `padded`, every row after the first has a shorter
    real part in each segment (the first row is full, the others' masks partial). Without text, each row's first frames
    are real: the pooled output is position 0, which must be a real position (in torch as in the graph)."""
    generator = torch.Generator().manual_seed(seed)
    low = min(1000, config.vocab_size - 1)
    input_ids = torch.randint(low, config.vocab_size, (batch, text), generator=generator)
    input_ids[input_ids == config.mask_token_id] = low
    if text and prompt:
        input_ids[:, min(1, text - 1)] = config.mask_token_id

    def mask(length: int, keep_at_least: int) -> torch.Tensor:
        out = torch.ones(batch, length, dtype=torch.long)
        if padded and length > keep_at_least:
            for row in range(1, batch):
                real = int(torch.randint(keep_at_least, length + 1, (1,), generator=generator))
                out[row, real:] = 0
        return out

    return dict(
        input_ids=input_ids,
        attention_mask=mask(text, 2 if prompt else 1),  # the [MASK] (position 1) stays a real token
        token_type_ids=torch.zeros(batch, text, dtype=torch.long),
        visual_feats=torch.randn(batch, visual, config.visual_dim, generator=generator),
        visual_mask=mask(visual, 0 if text else 1),
        acoustic_feats=torch.randn(batch, acoustic, config.acoustic_dim, generator=generator),
        acoustic_mask=mask(acoustic, 0 if text else 1),
    )


def torch_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """`inputs` as the torch model takes them: a length-0 modality becomes None (absent)."""
    out = dict(inputs)
    for key in ("input_ids", "visual_feats", "acoustic_feats"):
        if out[key].shape[1] == 0:
            masks = {"input_ids": ("attention_mask", "token_type_ids"), "visual_feats": ("visual_mask",),
                     "acoustic_feats": ("acoustic_mask",)}[key]
            out[key] = None
            out.update({name: None for name in masks})
    return out


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's warnings (deprecations, axis names merged, torchvision ops skipped) off inside the block."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export(model_dir, output_path, opset: int | None, check: bool) -> tuple[Path, float | None, bool]:
    """export_onnx's work; returns (the .onnx path, the check's max |onnx - torch| or None, processor written)."""
    output = Path(output_path)
    if output.suffix != ".onnx":
        raise ValueError(f"{output}: the output must be a .onnx file path, e.g. {output / ONNX_FILE_NAME}.")
    model = load_classifier(model_dir)
    config = model.config
    folder = Path(model_dir)
    beside = output.parent.resolve() != folder.resolve()  # config.json and the processor go beside the .onnx
    if beside:
        _refuse_other_model_folder(folder, output.parent)
    try:
        import onnx  # noqa: F401  (torch.onnx's exporter needs onnx and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(f"ONNX export needs onnx and onnxscript ({error}): pip install onnx onnxscript") from error
    from torch.export import Dim

    output.parent.mkdir(parents=True, exist_ok=True)
    graph = ClassLogitsGraph(model).eval()
    prompt = graph.is_prompt
    # Example lengths >= 2 and all different: torch.export specialises sizes 0 and 1, and equal sizes could be taken
    # for one dimension; none of them is baked into the graph.
    example = random_inputs(config, batch=2, text=8, visual=3, acoustic=5, prompt=prompt)
    batch = Dim("batch")
    text = Dim("text", max=config.max_position_embeddings)
    visual = Dim("visual", max=config.max_visual_length)
    acoustic = Dim("acoustic", max=config.max_acoustic_length)
    dims = {"input_ids": text, "attention_mask": text, "token_type_ids": text, "visual_feats": visual,
            "visual_mask": visual, "acoustic_feats": acoustic, "acoustic_mask": acoustic}
    dynamic_shapes = {name: {0: batch, 1: dim} for name, dim in dims.items()}
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(graph, (), kwargs=example, input_names=list(INPUT_NAMES),
                                    output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes, opset_version=opset,
                                    dynamo=True, verbose=False)
        program.model.metadata_props[CONFIG_METADATA_KEY] = config.to_json_string(use_diff=False)
        program.model.metadata_props[ARCHITECTURE_METADATA_KEY] = type(model).__name__
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        if output.exists():
            output.unlink()
        program.save(str(output), external_data=weight_bytes >= EXTERNAL_DATA_BYTES)

    if check:
        try:
            difference = check_export(model, output)
        except ONNXExportError as error:
            failed = output.with_name(output.name + ".failed")
            output.replace(failed)
            raise ONNXExportError(f"{error} The graph is kept for inspection as {failed}, not at {output}.") from error
    else:
        difference = None
    processor_written = False
    if beside:
        config.save_pretrained(str(output.parent))
        if any((folder / name).is_file() for name in TOKENIZER_FILES):
            from .processing_memobert import MEmoBertProcessor

            MEmoBertProcessor.from_pretrained(str(folder)).save_pretrained(str(output.parent))
            processor_written = True
    else:
        processor_written = any((folder / name).is_file() for name in TOKENIZER_FILES)
    return output, difference, processor_written


def _refuse_other_model_folder(model_dir: Path, target: Path) -> None:
    """ValueError when `target` holds another model (*.safetensors with another or no config.json), whose
    config.json and processor files the export would overwrite."""
    if not target.is_dir() or not any(target.glob("*.safetensors")):
        return

    def saved_config(path: Path) -> dict | None:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return {k: v for k, v in saved.items() if k != "transformers_version"} if isinstance(saved, dict) else None

    theirs = saved_config(target / "config.json")
    if theirs is not None and theirs == saved_config(model_dir / "config.json"):
        return  # a copy of the same model: its config.json stays what it is
    raise ValueError(
        f"{target} holds another model's weights (*.safetensors) with "
        f"{'a different config.json' if theirs is not None else 'no readable config.json'}; exporting there would "
        f"overwrite its config.json and processor files with those of {model_dir}. Write the .onnx into {model_dir} "
        "itself or into a folder of its own."
    )


def check_export(model, onnx_path: str | os.PathLike) -> float:
    """The max |onnx - torch| of the class logits over a few input shapes (padded rows; every modality subset that
    the model takes); raises ONNXExportError when it exceeds CHECK_TOLERANCE (relative to the logits' size)."""
    import onnx

    onnx.checker.check_model(str(onnx_path))
    onnx_model = ONNXEmotionModel.from_pretrained(onnx_path, threads=1)
    prompt = isinstance(model, MEmoBertForPrompt)
    shapes = [(3, 9, 5, 7), (1, 6, 0, 0), (2, 7, 4, 0), (2, 5, 0, 6)]
    if not prompt:
        shapes.append((2, 0, 4, 6))
    worst = 0.0
    for seed, (batch, text, visual, acoustic) in enumerate(shapes):
        inputs = torch_inputs(random_inputs(model.config, batch, text, visual, acoustic, prompt=prompt, seed=seed))
        with torch.no_grad():
            expected = model(**inputs).logits
        got = onnx_model(**inputs)
        difference = float((got - expected).abs().max())
        if not difference <= CHECK_TOLERANCE * max(1.0, float(expected.abs().max())):
            raise ONNXExportError(
                f"{onnx_path}: the ONNX logits differ from the torch model's by {difference:.3g} (batch {batch}, text "
                f"{text}, visual {visual}, acoustic {acoustic} frames); the exported graph does not reproduce the "
                "model (see memobert.onnx_export.ClassLogitsGraph)."
            )
        worst = max(worst, difference)
    return worst


def export_onnx(model_dir: str | os.PathLike, output_path: str | os.PathLike, *, opset: int | None = None,
                check: bool = True) -> Path:
    """
    The class logits of the MEmoBertForPrompt / MEmoBertForSequenceClassification saved in `model_dir` as one ONNX
    graph at `output_path` (inputs and conventions: this module's docstring), with `config.json` and the processor
    files of `model_dir` beside it (a folder holding another model's weights is refused: ValueError). `opset`: the
    ONNX opset (default: the exporter's). `check`: run the graph in onnxruntime against the torch model on random
    inputs of several shapes and modality subsets, and raise ONNXExportError when the logits differ by more than
    CHECK_TOLERANCE (the graph is then renamed `<name>.failed`). Returns the .onnx path.
    """
    return _export(model_dir, output_path, opset, check)[0]


# ----------------------------------------------------------------------------------------------------------------------
# Running it
# ----------------------------------------------------------------------------------------------------------------------


def _numpy(value, dtype) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(value).astype(dtype, copy=False))


class ONNXEmotionModel:
    """
    An exported MEmoBERT in onnxruntime: `model(**batch)` takes the torch model's keyword inputs (torch tensors or
    numpy arrays; None or left out for a missing modality) and returns the class logits `(batch, num_labels)` as a
    float32 torch tensor on the CPU. `config` is the exported model's MEmoBertConfig (`id2label`, `label_words`).
    """

    # Keywords of the torch models' forward that do not change the logits: accepted and ignored.
    IGNORED = ("labels", "return_dict", "word_ids")

    def __init__(self, session, config: MEmoBertConfig, architecture: str, path: Path | None = None):
        self.session = session
        self.config = config
        self.architecture = architecture
        self.path = path
        self.is_prompt = architecture == MEmoBertForPrompt.__name__

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, providers: Sequence[str] | None = None,
                        threads: int | None = None, session_options=None) -> ONNXEmotionModel:
        """
        path: the .onnx file written by `export_onnx`, or its folder (its `model.onnx`, or its only .onnx file).
        providers: onnxruntime execution providers (default `["CPUExecutionProvider"]`).
        threads: intra-op threads of the session (default: onnxruntime's, one per physical core).
        session_options: an `onnxruntime.SessionOptions` (then `threads` only sets its intra-op threads).
        """
        onnx_file = _onnx_file(Path(path))
        import onnxruntime

        options = session_options if session_options is not None else onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(onnx_file), sess_options=options,
                                               providers=list(providers or ["CPUExecutionProvider"]))
        metadata = session.get_modelmeta().custom_metadata_map
        if CONFIG_METADATA_KEY in metadata:
            config = MEmoBertConfig.from_dict(json.loads(metadata[CONFIG_METADATA_KEY]))
        elif (onnx_file.parent / "config.json").is_file():
            config = MEmoBertConfig.from_pretrained(str(onnx_file.parent))
        else:
            raise FileNotFoundError(f"{onnx_file} holds no MEmoBERT config and has no config.json beside it; export "
                                    "it with memobert export-onnx.")
        architecture = metadata.get(ARCHITECTURE_METADATA_KEY) or (config.architectures or [""])[0]
        if architecture not in EXPORTABLE:
            raise ValueError(f"{onnx_file}: architecture {architecture!r} is none of {list(EXPORTABLE)}.")
        names = [i.name for i in session.get_inputs()]
        if names != list(INPUT_NAMES):
            raise ValueError(f"{onnx_file} has inputs {names}; an export of memobert export-onnx has {INPUT_NAMES}.")
        return cls(session, config, architecture, onnx_file)

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def inputs(self, input_ids=None, attention_mask=None, token_type_ids=None, visual_feats=None, visual_mask=None,
               acoustic_feats=None, acoustic_mask=None, **unused) -> dict[str, np.ndarray]:
        """The session's feed for these torch-style inputs (every input present; a missing modality as length 0),
        after the torch model's own checks."""
        unknown = sorted(k for k, v in unused.items() if k not in self.IGNORED and v is not None)
        if unknown:
            raise TypeError(f"ONNXEmotionModel got unexpected inputs {unknown}; it takes {list(INPUT_NAMES)}.")
        config = self.config
        if input_ids is None and self.is_prompt:
            raise ValueError("MEmoBertForPrompt needs input_ids holding the prompt with one [MASK].")
        given = [x for x in (input_ids, visual_feats, acoustic_feats) if x is not None]
        if not given:
            raise ValueError("ONNXEmotionModel needs at least one of input_ids, visual_feats or acoustic_feats.")
        batch_sizes = sorted({int(x.shape[0]) for x in given})
        if len(batch_sizes) > 1:
            raise ValueError(f"The modalities have different batch sizes {batch_sizes}; give one row per sample.")
        batch = batch_sizes[0]

        feed: dict[str, np.ndarray] = {}
        if input_ids is None:
            ids = np.zeros((batch, 0), np.int64)
        else:
            ids = _numpy(input_ids, np.int64)
        if ids.ndim != 2:
            raise ValueError(f"input_ids must be (batch, text_len); got shape {tuple(ids.shape)}.")
        if ids.shape[1] > config.max_position_embeddings:
            raise ValueError(
                f"input_ids has {ids.shape[1]} tokens but the model has {config.max_position_embeddings} text "
                "positions; truncate the text (MEmoBertProcessor does, to config.max_text_length)."
            )
        if self.is_prompt and not np.all((ids == config.mask_token_id).sum(axis=1) == 1):
            raise ValueError("Every prompt row must hold exactly one [MASK] token; build prompts with "
                             "MEmoBertProcessor.")
        feed["input_ids"] = ids
        text_given = input_ids is not None
        feed["attention_mask"] = _numpy(attention_mask, np.int64) if text_given and attention_mask is not None \
            else np.ones_like(ids)
        feed["token_type_ids"] = _numpy(token_type_ids, np.int64) if text_given and token_type_ids is not None \
            else np.zeros_like(ids)
        for name, feats, mask, dim, max_length in (
            ("visual", visual_feats, visual_mask, config.visual_dim, config.max_visual_length),
            ("acoustic", acoustic_feats, acoustic_mask, config.acoustic_dim, config.max_acoustic_length),
        ):
            array = np.zeros((batch, 0, dim), np.float32) if feats is None else _numpy(feats, np.float32)
            if array.ndim != 3 or array.shape[2] != dim:
                raise ValueError(
                    f"{name}_feats has shape {tuple(array.shape)} but this model expects (batch, frames, {dim}) "
                    f"(config.{name}_dim); set the config to the feature extractor's size."
                )
            if array.shape[1] > max_length:
                raise ValueError(
                    f"{array.shape[1]} frames exceed the {max_length} frame positions of the model; truncate them "
                    f"(MEmoBertProcessor does, to config.max_{name}_length)."
                )
            feed[f"{name}_feats"] = array
            feed[f"{name}_mask"] = _numpy(mask, np.int64) if feats is not None and mask is not None \
                else np.ones(array.shape[:2], np.int64)
        for name, array in feed.items():
            reference = feed["input_ids" if name in ("attention_mask", "token_type_ids") else
                             name.replace("_mask", "_feats")]
            if name.endswith(("_mask", "_type_ids")) and array.shape != reference.shape[:2]:
                raise ValueError(f"{name} has shape {tuple(array.shape)}; expected {tuple(reference.shape[:2])}.")
        return feed

    def __call__(self, **batch) -> torch.Tensor:
        """Class logits `(batch, num_labels)` (float32, CPU) of torch-style keyword inputs."""
        if batch.get("output_hidden_states"):
            raise ValueError("ONNXEmotionModel returns the class logits only (no hidden states).")
        batch.pop("output_hidden_states", None)
        (logits,) = self.session.run([OUTPUT_NAME], self.inputs(**batch))
        return torch.from_numpy(logits)

    def __repr__(self) -> str:
        return f"ONNXEmotionModel({self.architecture}, {self.path}, providers={self.providers})"


def _onnx_file(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        if (path / ONNX_FILE_NAME).is_file():
            return path / ONNX_FILE_NAME
        found = sorted(path.glob("*.onnx"))
        if len(found) == 1:
            return found[0]
        if found:
            raise FileNotFoundError(f"{path} holds several .onnx files ({', '.join(p.name for p in found)}); "
                                    "give the file.")
        raise FileNotFoundError(f"{path} holds no .onnx file; write one with memobert export-onnx MODEL_DIR "
                                f"{path / ONNX_FILE_NAME}.")
    raise FileNotFoundError(f"{path} does not exist; give an .onnx file written by memobert export-onnx, or its "
                            "folder.")


# ----------------------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------------------

EXPORT_DOC = """A prompt-tuned or fine-tuned MEmoBERT (a folder written by save_pretrained) as one ONNX graph for
onnxruntime: inputs input_ids, attention_mask, token_type_ids, visual_feats, visual_mask, acoustic_feats, acoustic_mask
(batch and each modality's length dynamic; a missing modality is a length-0 segment), output logits (the class
logits). config.json and the processor's tokenizer files are written beside the .onnx.

    memobert export-onnx runs/prompt/model exported/model.onnx
    python -c "from memobert.onnx_export import ONNXEmotionModel; print(ONNXEmotionModel.from_pretrained('exported'))"
"""


def export_onnx_main(argv: list[str] | None = None, prog: str = "memobert export-onnx") -> None:
    """`memobert export-onnx MODEL_DIR OUT.onnx [--opset N] [--no-check]`."""
    import argparse

    parser = CommandLineParser(prog=prog, description=EXPORT_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", metavar="MODEL_DIR",
                        help="folder of a saved MEmoBertForPrompt or MEmoBertForSequenceClassification (config.json, "
                             "model.safetensors, and the processor's tokenizer files when it has them)")
    parser.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write (its folder gets config.json and "
                        "the processor files too)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: the exporter's)")
    parser.add_argument("--no-check", action="store_true", help="skip running the graph in onnxruntime against the "
                        "torch model on random inputs (by default a difference over 1e-4 is an error)")
    args = parser.parse_args(argv)
    try:
        path, difference, processor_written = _export(args.model_dir, args.output, args.opset, not args.no_check)
    except (FileNotFoundError, ValueError, ImportError, ONNXExportError) as error:
        fail(error)
    checked = "not checked" if difference is None else f"max |onnx - torch| of the logits {difference:.2g}"
    print(f"{path} ({os.path.getsize(path) / 2**20:.1f} MiB; {checked})")
    if not processor_written:
        print(f"note: {args.model_dir} has no tokenizer, so no processor was written beside the model; build the "
              "inputs with MEmoBertProcessor(tokenizer, config)")


__all__ = ["export_onnx", "export_onnx_main", "ONNXEmotionModel", "ONNXExportError", "ClassLogitsGraph",
           "load_classifier", "require_model_folder", "require_label_words", "check_export", "random_inputs",
           "torch_inputs", "INPUT_NAMES", "OUTPUT_NAME", "ONNX_FILE_NAME"]


if __name__ == "__main__":
    export_onnx_main(prog="python -m memobert.onnx_export")
