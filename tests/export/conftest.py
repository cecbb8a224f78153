"""Fixtures of the ONNX export tests: a tiny saved MEmoBertForPrompt and MEmoBertForSequenceClassification (with their
processors), each exported once per module, and the torch model it was exported from."""

from pathlib import Path

import pytest

from tests.support.models import save_prompt_model, tiny_config_kwargs


def save_classifier_model(folder, tokenizer) -> Path:
    """A random 2-layer MEmoBertForSequenceClassification (hidden 32, 4 classes, 128 visual and 80 acoustic
    features, as `save_prompt_model`), saved with its processor."""
    import torch

    from memobert import MEmoBertConfig, MEmoBertForSequenceClassification, MEmoBertProcessor

    torch.manual_seed(1)
    config = MEmoBertConfig(**tiny_config_kwargs(visual_dim=128, acoustic_dim=80, max_visual_length=36,
                                                 max_acoustic_length=64, label_token_ids=None))
    model = MEmoBertForSequenceClassification(config)
    model.save_pretrained(folder)
    MEmoBertProcessor(tokenizer, model.config).save_pretrained(str(folder))
    return Path(folder)


@pytest.fixture(scope="module")
def prompt_dir(tmp_path_factory, tokenizer) -> Path:
    import torch

    torch.manual_seed(0)
    return Path(save_prompt_model(tmp_path_factory.mktemp("prompt_model"), tokenizer))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, tokenizer) -> Path:
    return save_classifier_model(tmp_path_factory.mktemp("classifier_model"), tokenizer)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, prompt_dir, classifier_dir):
    """{"prompt" | "classifier": (torch model, ONNXEmotionModel, export folder)}, each exported once with the export's
    own check: the prompt model by `export_onnx` (default opset), the classifier by the command (`--opset 18`, its
    printout under "command_output")."""
    import contextlib
    import io

    from memobert.onnx_export import ONNXEmotionModel, export_onnx, export_onnx_main, load_classifier

    prompt_path = export_onnx(prompt_dir, tmp_path_factory.mktemp("prompt_onnx") / "model.onnx")
    classifier_path = tmp_path_factory.mktemp("classifier_onnx") / "out" / "classifier.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        export_onnx_main([str(classifier_dir), str(classifier_path), "--opset", "18"])
    return {
        "prompt": (load_classifier(prompt_dir), ONNXEmotionModel.from_pretrained(prompt_path, threads=1),
                   prompt_path.parent),
        "classifier": (load_classifier(classifier_dir), ONNXEmotionModel.from_pretrained(classifier_path, threads=1),
                       classifier_path.parent),
        "command_output": printed.getvalue(),
    }
