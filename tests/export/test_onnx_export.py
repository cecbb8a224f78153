"""ONNX export (memobert.onnx_export): the graph in onnxruntime gives the torch model's class logits (max |difference|
<= 1e-4) for batch 1 and 3+, independent text / visual / acoustic lengths, padded rows and every modality subset; the
exported folder is usable alone; the command and its errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from memobert.onnx_export import (  # noqa: E402
    INPUT_NAMES,
    ONNXEmotionModel,
    ONNXExportError,
    export_onnx,
    export_onnx_main,
)
from tests.export.conftest import save_classifier_model  # noqa: E402

TOLERANCE = 1e-4
MODELS = ("prompt", "classifier")
# (batch, text, visual, acoustic): 0 frames = the modality is missing (None for both models).
SHAPES = {
    "text": [(1, 6, 0, 0), (3, 9, 0, 0)],
    "text+visual": [(1, 5, 7, 0), (4, 11, 3, 0)],
    "text+acoustic": [(1, 8, 0, 13), (3, 4, 0, 20)],
    "all": [(1, 7, 5, 9), (3, 12, 36, 64), (5, 3, 1, 2)],
}


def make_batch(config, batch: int, text: int, visual: int, acoustic: int, *, prompt: bool, seed: int,
               padded: bool = True) -> dict:
    """Torch-style inputs: None for a missing modality; with `padded`, rows after the first have partial masks
    (row 1 of a frame modality may be all padding), the first row is full."""
    rng = np.random.default_rng(seed)

    def mask(length: int, keep: int) -> torch.Tensor:
        out = np.ones((batch, length), np.int64)
        if padded:
            for row in range(1, batch):
                out[row, rng.integers(min(keep, length), length + 1):] = 0
        return torch.from_numpy(out)

    inputs = {}
    if text:
        ids = rng.integers(1000, config.vocab_size, (batch, text))
        ids[ids == config.mask_token_id] = 1000
        if prompt:
            ids[:, min(1, text - 1)] = config.mask_token_id
        inputs.update(input_ids=torch.from_numpy(ids), attention_mask=mask(text, 2),
                      token_type_ids=torch.zeros(batch, text, dtype=torch.long))
    frame_keep = 0 if text else 1  # without text, position 0 (pooled) is the first frame: keep it real
    if visual:
        inputs.update(visual_feats=torch.from_numpy(rng.normal(size=(batch, visual, config.visual_dim)).astype("f4")),
                      visual_mask=mask(visual, frame_keep))
    if acoustic:
        inputs.update(
            acoustic_feats=torch.from_numpy(rng.normal(size=(batch, acoustic, config.acoustic_dim)).astype("f4")),
            acoustic_mask=mask(acoustic, frame_keep))
    return inputs


def torch_logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def cases():
    for name in MODELS:
        for subset, shapes in SHAPES.items():
            for shape in shapes:
                yield pytest.param(name, shape, id=f"{name}-{subset}-{'x'.join(map(str, shape))}")


@pytest.mark.parametrize("name, shape", list(cases()))
def test_onnx_logits_match_torch(exported, name, shape):
    model, onnx_model, _ = exported[name]
    inputs = make_batch(model.config, *shape, prompt=name == "prompt", seed=sum(shape))
    expected = torch_logits(model, inputs)
    got = onnx_model(**inputs)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    assert got.shape == (shape[0], model.config.num_labels)
    assert (got - expected).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("shape", [(1, 0, 6, 0), (3, 0, 0, 10), (3, 0, 5, 9)], ids=["visual", "acoustic", "frames"])
def test_the_classifier_without_text(exported, shape):
    model, onnx_model, _ = exported["classifier"]
    inputs = make_batch(model.config, *shape, prompt=False, seed=7)
    assert (onnx_model(**inputs) - torch_logits(model, inputs)).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("name", MODELS)
def test_a_missing_modality_is_none_an_all_masked_one_or_length_zero(exported, name):
    """The torch model's None, its all-zero mask and the graph's length-0 segment give the same logits."""
    model, onnx_model, _ = exported[name]
    full = make_batch(model.config, 3, 8, 4, 6, prompt=name == "prompt", seed=3)
    without_visual = {k: v for k, v in full.items() if not k.startswith("visual")}
    masked_visual = {**full, "visual_mask": torch.zeros_like(full["visual_mask"])}
    expected = torch_logits(model, without_visual)
    assert (torch_logits(model, masked_visual) - expected).abs().max().item() <= TOLERANCE
    assert (onnx_model(**masked_visual) - expected).abs().max().item() <= TOLERANCE
    assert (onnx_model(**{**full, "visual_feats": None, "visual_mask": None}) - expected).abs().max() <= TOLERANCE
    # the raw session, without the wrapper: length-0 visual inputs
    feed = {k: v.numpy() for k, v in full.items()}
    feed.update(visual_feats=np.zeros((3, 0, model.config.visual_dim), np.float32),
                visual_mask=np.zeros((3, 0), np.int64))
    (raw,) = onnx_model.session.run(["logits"], feed)
    assert np.abs(raw - expected.numpy()).max() <= TOLERANCE


def test_numpy_inputs_and_the_torch_models_extra_keywords(exported):
    model, onnx_model, _ = exported["prompt"]
    inputs = make_batch(model.config, 2, 6, 3, 4, prompt=True, seed=11)
    expected = torch_logits(model, inputs)
    numpy_inputs = {k: v.numpy() for k, v in inputs.items()}
    numpy_inputs["visual_mask"] = numpy_inputs["visual_mask"].astype(bool)
    got = onnx_model(**numpy_inputs, labels=torch.zeros(2, dtype=torch.long), return_dict=True)
    assert (got - expected).abs().max().item() <= TOLERANCE
    without_optional = {k: v for k, v in inputs.items() if k not in ("token_type_ids",)}
    assert (onnx_model(**without_optional) - expected).abs().max().item() <= TOLERANCE


def test_the_exported_folder_is_usable_alone(exported, tmp_path):
    """config.json and the processor beside the .onnx build the inputs; a lone .onnx carries its config."""
    from memobert import MEmoBertConfig, MEmoBertProcessor

    model, _, folder = exported["prompt"]
    assert {"model.onnx", "config.json", "memobert_processor.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()}
    assert MEmoBertConfig.from_pretrained(str(folder)).label_token_ids == model.config.label_token_ids
    processor = MEmoBertProcessor.from_pretrained(str(folder))
    rng = np.random.default_rng(0)
    batch = processor(text=["i did not expect that", None, "fine"], prompt=True,
                      visual=[rng.normal(size=(5, 128)), None, rng.normal(size=(2, 128))],
                      acoustic=[rng.normal(size=(9, 80)), rng.normal(size=(3, 80)), None])
    alone = tmp_path / "alone.onnx"
    shutil.copy(folder / "model.onnx", alone)
    onnx_model = ONNXEmotionModel.from_pretrained(tmp_path, threads=1)  # the folder's only .onnx, no config.json
    assert onnx_model.config.label_words == model.config.label_words
    assert onnx_model.config.id2label == model.config.id2label
    assert onnx_model.providers == ["CPUExecutionProvider"]
    assert (onnx_model(**batch) - torch_logits(model, dict(batch))).abs().max().item() <= TOLERANCE


def test_the_graph_has_the_seven_inputs_with_dynamic_lengths(exported):
    _, onnx_model, _ = exported["classifier"]
    inputs = {i.name: i.shape for i in onnx_model.session.get_inputs()}
    assert list(inputs) == list(INPUT_NAMES)
    assert inputs["input_ids"] == ["batch", "text"] and inputs["visual_feats"][:2] == ["batch", "visual"]
    assert inputs["acoustic_mask"] == ["batch", "acoustic"]
    assert [o.name for o in onnx_model.session.get_outputs()] == ["logits"]


def test_the_models_input_checks(exported):
    model, onnx_model, _ = exported["prompt"]
    inputs = make_batch(model.config, 2, 6, 3, 0, prompt=True, seed=5)
    with pytest.raises(ValueError, match="exactly one \\[MASK\\]"):
        onnx_model(**{**inputs, "input_ids": torch.full_like(inputs["input_ids"], 1000)})
    with pytest.raises(ValueError, match="config.visual_dim"):
        onnx_model(**{**inputs, "visual_feats": torch.zeros(2, 3, 7)})
    with pytest.raises(ValueError, match="frame positions"):
        onnx_model(**{**inputs, "visual_feats": torch.zeros(2, 37, 128), "visual_mask": torch.ones(2, 37)})
    with pytest.raises(ValueError, match="batch sizes"):
        onnx_model(**{**inputs, "visual_feats": torch.zeros(3, 3, 128), "visual_mask": torch.ones(3, 3)})
    with pytest.raises(ValueError, match="needs input_ids"):
        onnx_model(visual_feats=inputs["visual_feats"])
    with pytest.raises(TypeError, match="unexpected inputs \\['pixels'\\]"):
        onnx_model(**inputs, pixels=torch.zeros(1))


def test_the_command_end_to_end(exported):
    """`memobert export-onnx MODEL_DIR OUT.onnx --opset 18` (the classifier of the `exported` fixture)."""
    import onnx

    _, onnx_model, folder = exported["classifier"]
    assert str(folder / "classifier.onnx") in exported["command_output"]
    assert "max |onnx - torch| of the logits" in exported["command_output"]
    assert onnx.load(str(folder / "classifier.onnx")).opset_import[0].version == 18
    assert onnx_model.architecture == "MEmoBertForSequenceClassification"
    assert {"classifier.onnx", "config.json", "tokenizer.json", "memobert_processor.json"} <= {
        p.name for p in folder.iterdir()}
    assert ONNXEmotionModel.from_pretrained(folder).path == folder / "classifier.onnx"  # the folder's only .onnx


def test_a_folder_without_config_is_one_error_line(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        export_onnx(tmp_path, tmp_path / "model.onnx")
    with pytest.raises(SystemExit) as exit_:
        export_onnx_main([str(tmp_path), str(tmp_path / "model.onnx")])
    assert exit_.value.code == f"error: {tmp_path} has no config.json: give the folder that save_pretrained wrote " \
                               "for a prompt-tuned or fine-tuned MEmoBERT (the model folder of `memobert downstream`)."
    assert not (tmp_path / "model.onnx").exists()


def test_a_model_that_is_no_classifier_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "memobert",
                                                      "architectures": ["MEmoBertForPreTraining"]}))
    with pytest.raises(ValueError, match="MEmoBertForPreTraining.*MEmoBertForPrompt or MEmoBertForSequence"):
        export_onnx(tmp_path, tmp_path / "model.onnx")


def test_a_mistyped_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        export_onnx_main(["a", "b.onnx", "--no-such-flag"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == ("memobert export-onnx: unknown option --no-such-flag "
                                               "(see memobert export-onnx --help)")


def test_a_mean_pooling_classifier(tokenizer, tmp_path):
    """The pooler of `classifier_pooling="mean"` reads the mask: the graph gives it the concatenated one."""
    from memobert import MEmoBertConfig, MEmoBertForSequenceClassification
    from memobert.onnx_export import load_classifier

    folder = save_classifier_model(tmp_path / "model", tokenizer)
    config = MEmoBertConfig.from_pretrained(str(folder))
    config.classifier_pooling = "mean"
    MEmoBertForSequenceClassification.from_pretrained(str(folder), config=config).save_pretrained(str(folder))
    path = export_onnx(folder, tmp_path / "onnx" / "model.onnx", check=False)
    model, onnx_model = load_classifier(folder), ONNXEmotionModel.from_pretrained(path, threads=1)
    for shape in [(1, 6, 0, 0), (3, 9, 5, 0), (3, 7, 4, 11), (3, 0, 6, 9)]:
        inputs = make_batch(model.config, *shape, prompt=False, seed=sum(shape))
        assert (onnx_model(**inputs) - torch_logits(model, inputs)).abs().max().item() <= TOLERANCE


def test_another_model_folder_is_refused(prompt_dir, classifier_dir, tmp_path, capsys):
    """Exporting beside another model's weights would overwrite its config.json and processor: refused, untouched."""
    other = shutil.copytree(classifier_dir, tmp_path / "other")
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    with pytest.raises(ValueError, match="holds another model's weights .* with a different config.json"):
        export_onnx(prompt_dir, other / "model.onnx", check=False)
    with pytest.raises(SystemExit) as exit_:
        export_onnx_main([str(prompt_dir), str(other / "prompt.onnx")])
    assert "would overwrite its config.json" in str(exit_.value.code)
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before


def test_a_failed_check_renames_the_graph(prompt_dir, tmp_path, monkeypatch):
    """A copy of the same model is no other model; a graph that fails the check is left as <name>.failed only."""
    from memobert import onnx_export

    copy = shutil.copytree(prompt_dir, tmp_path / "copy")
    config_before = (copy / "config.json").read_bytes()
    monkeypatch.setattr(onnx_export, "CHECK_TOLERANCE", -1.0)  # every difference fails
    with pytest.raises(ONNXExportError, match=r"kept for inspection as .*model\.onnx\.failed, not at"):
        export_onnx(prompt_dir, copy / "model.onnx")
    assert not (copy / "model.onnx").exists() and (copy / "model.onnx.failed").stat().st_size > 0
    assert (copy / "config.json").read_bytes() == config_before  # nothing written beside a failed graph
