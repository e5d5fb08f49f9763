"""LightCNN: face embeddings with Max-Feature-Map activations.

Wu, He, Sun, Tan, "A Light CNN for Deep Face Representation with Noisy Labels", TIFS 2018;
layouts follow the authors' PyTorch code (AlfredXiangWu/LightCNN, ``light_cnn.py``), whose released
checkpoints load through :meth:`LightCNN.checkpoint_key` and ``kbaselines.models.weights``.

A Max-Feature-Map (MFM) layer produces 2n channels and keeps the element-wise maximum of the two
halves: a competitive activation that also halves the width. There is no batch norm. The network
maps a grayscale face to a 256-d embedding; a linear classifier over identities sits on top for
training.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = [
    "LightCNN",
    "MaxAvgPool2d",
    "MaxFeatureMap",
    "lightcnn4",
    "lightcnn9",
    "lightcnn29",
    "lightcnn29v2",
]


class MaxFeatureMap(nn.Module):
    """A convolution (or linear layer) with ``2 * out_chs`` outputs, then the max of the two halves.

    Args:
        in_chs: input channels (features for ``linear=True``).
        out_chs: output channels after the max (the layer computes twice as many).
        kernel_size: convolution kernel size.
        stride: convolution stride.
        padding: convolution padding.
        linear: a fully connected MFM (the embedding layer) instead of a convolution.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        linear: bool = False,
    ) -> None:
        super().__init__()
        self.out_chs = out_chs
        self.filter = (
            nn.Linear(in_chs, 2 * out_chs)
            if linear
            else nn.Conv2d(in_chs, 2 * out_chs, kernel_size, stride, padding)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = torch.split(self.filter(x), self.out_chs, dim=1)
        return torch.maximum(first, second)


class Group(nn.Module):
    """A 1x1 MFM (``conv_a``, a cheap channel mix) followed by a kxk MFM (``conv``)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv_a = MaxFeatureMap(in_chs, in_chs, 1, 1, 0)
        self.conv = MaxFeatureMap(in_chs, out_chs, kernel_size, 1, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


class ResBlock(nn.Module):
    """Two 3x3 MFM convolutions with an identity shortcut (LightCNN-29)."""

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.conv1 = MaxFeatureMap(chs, chs)
        self.conv2 = MaxFeatureMap(chs, chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class MaxAvgPool2d(nn.Module):
    """2x2 max pool plus 2x2 average pool, the down-sampling of LightCNN-29v2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x, 2) + nn.functional.avg_pool2d(x, 2)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)


def _features_4(in_chans: int) -> nn.Sequential:
    """LightCNN-4 (the guideline's table): 9x9, 5x5, 5x5, 4x4 MFM convolutions, each then a 2x2 pool."""
    return nn.Sequential(
        MaxFeatureMap(in_chans, 48, 9, 1, 0),
        _pool(),
        MaxFeatureMap(48, 96, 5, 1, 0),
        _pool(),
        MaxFeatureMap(96, 128, 5, 1, 0),
        _pool(),
        MaxFeatureMap(128, 192, 4, 1, 0),
        _pool(),
    )


def _features_9(in_chans: int) -> nn.Sequential:
    """LightCNN-9: a 5x5 MFM stem and four groups, four 2x2 pools (128 px -> 8x8x128)."""
    return nn.Sequential(
        MaxFeatureMap(in_chans, 48, 5, 1, 2),
        _pool(),
        Group(48, 96),
        _pool(),
        Group(96, 192),
        _pool(),
        Group(192, 128),
        Group(128, 128),
        _pool(),
    )


def _features_29(in_chans: int, layers: tuple[int, ...], v2: bool) -> nn.Sequential:
    """LightCNN-29 (v2: max+avg pooling): residual stages between the groups of LightCNN-9."""
    widths = (48, 96, 192, 128)
    outs = (96, 192, 128, 128)
    parts: OrderedDict[str, nn.Module] = OrderedDict(conv1=MaxFeatureMap(in_chans, 48, 5, 1, 2))
    parts["pool1"] = MaxAvgPool2d() if v2 else _pool()
    for stage, (chs, out, depth) in enumerate(zip(widths, outs, layers, strict=True), start=1):
        parts[f"block{stage}"] = nn.Sequential(*[ResBlock(chs) for _ in range(depth)])
        parts[f"group{stage}"] = Group(chs, out)
        if stage != 3:  # the authors pool after groups 1, 2 and 4 (pool2, pool3, pool4)
            parts[f"pool{min(stage, 3) + 1}"] = MaxAvgPool2d() if v2 else _pool()
    return nn.Sequential(parts)


class LightCNN(nn.Module):
    """A LightCNN: MFM convolutions, a 256-d embedding layer and an identity classifier.

    Args:
        arch: ``"4"``, ``"9"``, ``"29"`` or ``"29v2"`` (use the builders below).
        num_classes: identities of the classifier; 0 for none (``forward`` returns the embedding).
        in_chans: input channels (1: grayscale as in the paper).
        input_size: side of the square input; the embedding layer's width follows from it.
        embed_dim: size of the embedding.
        drop_rate: dropout before the classifier.
        layers: residual blocks per stage (LightCNN-29 only).
    """

    def __init__(
        self,
        arch: str = "9",
        num_classes: int = 0,
        in_chans: int = 1,
        input_size: int = 128,
        embed_dim: int = 256,
        drop_rate: float = 0.0,
        layers: tuple[int, ...] = (1, 2, 3, 4),
    ) -> None:
        super().__init__()
        if arch not in ("4", "9", "29", "29v2"):
            raise ValueError(f"unknown LightCNN arch {arch!r}; choose 4, 9, 29 or 29v2")
        if arch != "4" and input_size % 16:
            raise ValueError(
                f"LightCNN-{arch} pools 4 times by 2: input_size must divide by 16, got {input_size}"
            )
        if arch == "4" and input_size < 64:
            raise ValueError(
                f"LightCNN-4 uses unpadded 9x9/5x5/5x5/4x4 convolutions: input_size >= 64, got {input_size}"
            )
        self.arch = arch
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = input_size
        self.embed_dim = embed_dim
        self.drop_rate = drop_rate
        if arch == "4":
            self.features = _features_4(in_chans)
        elif arch == "9":
            self.features = _features_9(in_chans)
        else:
            self.features = _features_29(in_chans, tuple(layers), v2=arch == "29v2")
        with torch.no_grad():
            shape = self.features(torch.zeros(1, in_chans, input_size, input_size)).shape
        self.num_features = int(shape[1] * shape[2] * shape[3])
        fc_in = 512 if arch == "4" else self.num_features
        self.fc_pre = nn.Linear(self.num_features, 512) if arch == "4" else nn.Identity()
        self.fc = (
            nn.Linear(fc_in, embed_dim)
            if arch == "29v2"
            else MaxFeatureMap(fc_in, embed_dim, linear=True)
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.fc2 = self._make_classifier(num_classes)
        self.feature_info = [
            {
                "num_chs": int(shape[1]),
                "reduction": input_size // int(shape[2]),
                "module": "features",
            }
        ]

    def _make_classifier(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        return nn.Linear(self.embed_dim, num_classes, bias=self.arch != "29v2")

    def get_classifier(self) -> nn.Module:
        """The identity classifier (``nn.Identity`` when ``num_classes`` is 0)."""
        return self.fc2

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a new one of ``num_classes`` outputs (0 removes it)."""
        self.num_classes = num_classes
        self.fc2 = self._make_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional features ``[B, C, h, w]`` of images ``[B, in_chans, S, S]``."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Embedding ``[B, embed_dim]`` (``pre_logits``) or logits ``[B, num_classes]``."""
        embedding = self.fc(self.fc_pre(torch.flatten(x, 1)))
        if pre_logits:
            return embedding
        return self.fc2(self.head_drop(embedding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def checkpoint_key(self, key: str) -> str:
        """Our name for a parameter name of the authors' released checkpoints.

        Their LightCNN-9 calls the embedding layer ``fc1``; their LightCNN-29 keeps its stages at the
        top level (``conv1``, ``block1``...) where ours sit in ``features``.
        """
        if self.arch == "9" and key.startswith("fc1."):
            return "fc." + key.removeprefix("fc1.")
        if self.arch in ("29", "29v2") and key.split(".")[0] in self.features._modules:
            return "features." + key
        return key


def lightcnn4(**kwargs) -> LightCNN:
    """LightCNN-4: four MFM convolutions (9x9, 5x5, 5x5, 4x4), fc 512 -> MFM 256."""
    return LightCNN(**dict({"arch": "4"}, **kwargs))


def lightcnn9(**kwargs) -> LightCNN:
    """LightCNN-9: about 5.5M parameters in the embedding network at 128x128."""
    return LightCNN(**dict({"arch": "9"}, **kwargs))


def lightcnn29(**kwargs) -> LightCNN:
    """LightCNN-29: residual MFM stages (1, 2, 3, 4 blocks), about 12.6M parameters at 128x128."""
    return LightCNN(**dict({"arch": "29", "layers": (1, 2, 3, 4)}, **kwargs))


def lightcnn29v2(**kwargs) -> LightCNN:
    """LightCNN-29v2: max+avg pooling, a plain linear embedding layer, a bias-free classifier."""
    return LightCNN(**dict({"arch": "29v2", "layers": (1, 2, 3, 4)}, **kwargs))
