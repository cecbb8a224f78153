"""DenseNet-BC-100 for FER+ face-expression recognition: the 342-d face feature of MEmoBERT's visual stream.

Architecture (as in the MEmoBERT preprocessing): 64x64 grayscale input; first conv 3x3 stride 2 with 24 channels
(no max-pool); 3 dense blocks of 16 bottleneck layers (BN-ReLU-Conv1x1(4*growth)-BN-ReLU-Conv3x3(growth)), growth 12;
transitions with compression 0.5 (BN-ReLU-Conv1x1-AvgPool2); final BN-ReLU -> global average pool -> 342-d feature ->
Linear -> 8 FER+ logits. Channels: 24 -> 216 -> 108 -> 300 -> 150 -> 342; spatial 64 -> 32 -> 16 -> 8.

Checkpoints are single safetensors files whose metadata holds the config as JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..data.labels import FERPLUS_CLASSES

CHECKPOINT_NAME = "model.safetensors"
_CONFIG_KEY = "densenet_fer_config"


@dataclass
class DenseNetFERConfig:
    """Hyper-parameters of a DenseNet-BC face-expression network (defaults: DenseNet-BC-100 for FER+)."""

    growth_rate: int = 12
    block_layers: tuple[int, ...] = (16, 16, 16)
    init_channels: int = 24
    bn_size: int = 4
    compression: float = 0.5
    drop_rate: float = 0.0
    image_size: int = 64
    num_classes: int = 8
    class_names: list[str] = field(default_factory=lambda: list(FERPLUS_CLASSES))
    # The network normalises its [0, 1] input itself: x -> (x - input_mean) / input_std.
    input_mean: float = 0.5
    input_std: float = 0.25

    def __post_init__(self) -> None:
        self.block_layers = tuple(int(n) for n in self.block_layers)
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"DenseNetFERConfig: {len(self.class_names)} class_names for num_classes={self.num_classes}; "
                "give one name per class."
            )
        if not 0 < self.compression <= 1:
            raise ValueError(f"DenseNetFERConfig: compression must be in (0, 1], got {self.compression}.")

    @property
    def feature_dim(self) -> int:
        """Size of the pooled feature (342 for DenseNet-BC-100 with growth 12)."""
        channels = self.init_channels
        for i, n in enumerate(self.block_layers):
            channels += n * self.growth_rate
            if i < len(self.block_layers) - 1:
                channels = int(channels * self.compression)
        return channels

    def to_json(self) -> str:
        """The config as a JSON string."""
        data = asdict(self)
        data["block_layers"] = list(self.block_layers)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DenseNetFERConfig":
        """Builds a config from `to_json`'s output; unknown keys are an error."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"DenseNetFERConfig: unknown keys {unknown} in the checkpoint's config.")
        return cls(**data)


class _Bottleneck(nn.Module):
    """BN-ReLU-Conv1x1 -> BN-ReLU-Conv3x3; its `growth_rate` new channels are concatenated to the input."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        inter = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inter, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(inter)
        self.conv2 = nn.Conv2d(inter, growth_rate, kernel_size=3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return torch.cat([x, out], dim=1)


class _Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 (compression) -> 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )


class DenseNetFER(nn.Module):
    """DenseNet-BC face-expression network; `forward` returns `(features, logits)`.

    Input: `(N, 1, H, W)` float grayscale in [0, 1] (64x64 for the default config); the network applies its own
    mean/std normalisation from the config.
    """

    def __init__(self, config: DenseNetFERConfig | None = None) -> None:
        super().__init__()
        self.config = config or DenseNetFERConfig()
        c = self.config
        channels = c.init_channels
        self.conv0 = nn.Conv2d(1, channels, kernel_size=3, stride=2, padding=1, bias=False)
        blocks: list[nn.Module] = []
        for i, n in enumerate(c.block_layers):
            layers = []
            for _ in range(n):
                layers.append(_Bottleneck(channels, c.growth_rate, c.bn_size, c.drop_rate))
                channels += c.growth_rate
            blocks.append(nn.Sequential(*layers))
            if i < len(c.block_layers) - 1:
                out_channels = int(channels * c.compression)
                blocks.append(_Transition(channels, out_channels))
                channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.final_norm = nn.BatchNorm2d(channels)
        self.classifier = nn.Linear(channels, c.num_classes)
        self.feature_dim = channels
        self.register_buffer("input_mean", torch.tensor(c.input_mean), persistent=False)
        self.register_buffer("input_std", torch.tensor(c.input_std), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(N, 1, H, W)` in [0, 1] -> `(features (N, feature_dim), logits (N, num_classes))`."""
        if pixel_values.dim() != 4 or pixel_values.shape[1] != 1:
            raise ValueError(
                f"DenseNetFER expects (N, 1, H, W) grayscale input, got shape {tuple(pixel_values.shape)}."
            )
        x = (pixel_values - self.input_mean) / self.input_std
        x = self.features(self.conv0(x))
        x = F.relu(self.final_norm(x))
        features = x.mean(dim=(2, 3))
        return features, self.classifier(features)

    def save(self, path: str | os.PathLike) -> str:
        """Writes a safetensors checkpoint (config in its metadata); a directory gets `model.safetensors` inside."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, CHECKPOINT_NAME)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        tmp = f"{path}.tmp{os.getpid()}"
        save_file(state, tmp, metadata={_CONFIG_KEY: self.config.to_json(), "format": "pt"})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> "DenseNetFER":
        """Loads a checkpoint written by `save` (a `.safetensors` file or a directory holding `model.safetensors`)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, CHECKPOINT_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"DenseNet FER checkpoint not found: {path}. Give a .safetensors file written by DenseNetFER.save "
                "or train one with memobert.encoders.ferplus_training.train_ferplus."
            )
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        if _CONFIG_KEY not in metadata:
            raise ValueError(
                f"{path} has no '{_CONFIG_KEY}' metadata: it was not written by DenseNetFER.save. "
                "Re-save the weights with DenseNetFER.save."
            )
        model = cls(DenseNetFERConfig.from_json(metadata[_CONFIG_KEY]))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path} does not match the DenseNet config in its metadata: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}."
            )
        return model.to(map_location).eval()


def densenet_bc_100(**overrides) -> DenseNetFER:
    """DenseNet-BC-100 for FER+ (growth 12, 3x16 bottlenecks, 342-d feature, 8 classes); kwargs override the config."""
    return DenseNetFER(DenseNetFERConfig(**overrides))
