"""LightCNN: face embeddings with Max-Feature-Map activations.

Paper: Wu, He, Sun, Tan, "A Light CNN for Deep Face Representation with Noisy Labels",
IEEE TIFS 13(11), 2018 (arXiv:1511.02683).

Code: the layouts of LightCNN-9, -29 and -29v2 follow the authors' PyTorch code
(github.com/AlfredXiangWu/LightCNN, ``light_cnn.py``: ``network_9layers``, ``network_29layers``,
``network_29layers_v2``) module for module and *name for name* (``features.*``, ``fc1`` and ``fc2``
for LightCNN-9; ``conv1``, ``block1``, ``group1``... ``fc``, ``fc2`` for LightCNN-29), so that their
released checkpoints load by name through :func:`kbaselines.core.weights.load_pretrained`.
LightCNN-4 has no released PyTorch code; it follows the paper's table (see :func:`lightcnn4`).

A Max-Feature-Map (MFM) layer computes 2n channels and keeps the element-wise maximum of the two
halves: a competitive activation that also halves the width, which the authors argue suppresses
the noisy-label neurons. There is no batch norm. The network maps a grayscale face to a 256-d
embedding; a linear classifier over the training identities sits on top for training only.

Parameter counts at 128x128, classifier excluded (the embedding network): LightCNN-4 4,098,048
(paper about 4,095K), LightCNN-9 5,480,864 (paper 5,556K), LightCNN-29 12,573,280 (paper 12,637K),
LightCNN-29v2 10,475,872.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "Group",
    "LightCNN",
    "MaxAvgPool2d",
    "MaxFeatureMap",
    "ResBlock",
    "lightcnn4",
    "lightcnn9",
    "lightcnn29",
    "lightcnn29v2",
]

LAYOUTS = ("lightcnn4", "lightcnn9", "lightcnn29")
POOL_TYPES = ("max", "maxavg")


class MaxFeatureMap(nn.Module):
    """A convolution (or linear layer) with ``2 * out_chs`` outputs, then the max of the two halves.

    The authors' ``mfm``; the inner layer keeps their name ``filter`` so that checkpoints load.

    Args:
        in_chs: input channels (input features when ``linear``).
        out_chs: output channels after the max; the inner layer computes twice as many.
        kernel_size: convolution kernel size.
        stride: convolution stride.
        padding: convolution padding.
        linear: a fully connected MFM (the embedding layer) instead of a convolution.

    Shapes:
        ``[B, in_chs, H, W] -> [B, out_chs, H', W']``, or ``[B, in_chs] -> [B, out_chs]`` if linear.
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
    """A 1x1 MFM (``conv_a``: a cheap channel mix) then a kxk MFM (``conv``); the authors' ``group``.

    Args:
        in_chs: input channels (also the width of the 1x1 layer).
        out_chs: output channels.
        kernel_size: kernel of the second convolution.
        padding: padding of the second convolution (``kernel_size // 2`` keeps the size).

    Shapes:
        ``[B, in_chs, H, W] -> [B, out_chs, H, W]``.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv_a = MaxFeatureMap(in_chs, in_chs, 1, 1, 0)
        self.conv = MaxFeatureMap(in_chs, out_chs, kernel_size, 1, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


class ResBlock(nn.Module):
    """Two 3x3 MFM convolutions with an identity shortcut; the authors' ``resblock`` (LightCNN-29).

    Args:
        chs: input and output channels.

    Shapes:
        ``[B, chs, H, W] -> [B, chs, H, W]``.
    """

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.conv1 = MaxFeatureMap(chs, chs)
        self.conv2 = MaxFeatureMap(chs, chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class MaxAvgPool2d(nn.Module):
    """2x2 max pool plus 2x2 average pool (floor mode), the down-sampling of LightCNN-29v2.

    The authors write it inline (``F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)``); as a module it has a
    name in ``feature_info`` and no parameters, so checkpoints are unaffected.

    Shapes:
        ``[B, C, H, W] -> [B, C, H // 2, W // 2]``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x, 2) + nn.functional.avg_pool2d(x, 2)


class _SizeTracker:
    """Follows the side of the feature map while the layers are built, for the fc input size.

    Computing it (rather than running a dummy image through the network) keeps construction cheap
    and names the layer where a too small input vanishes.
    """

    def __init__(self, size: int, chs: int) -> None:
        self.size = size
        self.chs = chs
        self.reduction = 1
        self.vanished_at: str | None = None

    def conv(self, name: str, out_chs: int, kernel_size: int, padding: int) -> None:
        self.size = self.size + 2 * padding - kernel_size + 1
        self.chs = out_chs
        self._check(name)

    def pool(self, name: str, pool_type: str) -> None:
        # MaxPool2d(2, 2, ceil_mode=True) as the authors' LightCNN-9/29; floor for LightCNN-29v2
        self.size = math.ceil(self.size / 2) if pool_type == "max" else self.size // 2
        self.reduction *= 2
        self._check(name)

    def _check(self, name: str) -> None:
        if self.size < 1 and self.vanished_at is None:
            self.vanished_at = name


def _pool(pool_type: str) -> nn.Module:
    if pool_type == "max":
        return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
    return MaxAvgPool2d()


def _lightcnn4_features(
    in_chans: int, pool_type: str, track: _SizeTracker
) -> tuple[nn.Sequential, list[dict]]:
    """LightCNN-4: unpadded 9x9, 5x5, 5x5, 4x4 MFM convolutions, each followed by a 2x2 pool.

    Widths from the paper's table: 96/192/256/384 convolution outputs, 48/96/128/192 after MFM.
    """
    layers: list[nn.Module] = []
    info: list[dict] = []
    in_chs = in_chans
    for out_chs, kernel in ((48, 9), (96, 5), (128, 5), (192, 4)):
        layers.append(MaxFeatureMap(in_chs, out_chs, kernel, 1, 0))
        track.conv(f"features.{len(layers) - 1}", out_chs, kernel, 0)
        layers.append(_pool(pool_type))
        track.pool(f"features.{len(layers) - 1}", pool_type)
        info.append(_info(track, f"features.{len(layers) - 1}"))
        in_chs = out_chs
    return nn.Sequential(*layers), info


def _lightcnn9_features(
    in_chans: int, pool_type: str, track: _SizeTracker
) -> tuple[nn.Sequential, list[dict]]:
    """LightCNN-9 (authors' ``network_9layers.features``): a 5x5 MFM stem, four groups, four pools."""
    layers: list[nn.Module] = [MaxFeatureMap(in_chans, 48, 5, 1, 2)]
    track.conv("features.0", 48, 5, 2)
    info: list[dict] = []

    def pool() -> None:
        layers.append(_pool(pool_type))
        track.pool(f"features.{len(layers) - 1}", pool_type)
        info.append(_info(track, f"features.{len(layers) - 1}"))

    pool()
    for in_chs, out_chs, pool_after in ((48, 96, True), (96, 192, True), (192, 128, False)):
        layers.append(Group(in_chs, out_chs))
        track.conv(f"features.{len(layers) - 1}", out_chs, 3, 1)
        if pool_after:
            pool()
    layers.append(Group(128, 128))
    track.conv(f"features.{len(layers) - 1}", 128, 3, 1)
    pool()
    return nn.Sequential(*layers), info


def _lightcnn29_stages(
    in_chans: int, layers: Sequence[int], pool_type: str, track: _SizeTracker
) -> tuple[dict[str, nn.Module], list[dict]]:
    """LightCNN-29 (authors' ``network_29layers``): residual stages before each group of LightCNN-9.

    Returns the stages by the authors' attribute names, in order: ``conv1, pool1, block1, group1,
    pool2, block2, group2, pool3, block3, group3, block4, group4, pool4``.
    """
    stages: dict[str, nn.Module] = {"conv1": MaxFeatureMap(in_chans, 48, 5, 1, 2)}
    track.conv("conv1", 48, 5, 2)
    info: list[dict] = []

    def pool(name: str) -> None:
        stages[name] = _pool(pool_type)
        track.pool(name, pool_type)
        info.append(_info(track, name))

    pool("pool1")
    plan = ((48, 96, "pool2"), (96, 192, "pool3"), (192, 128, None), (128, 128, "pool4"))
    for stage, ((chs, out_chs, pool_name), depth) in enumerate(
        zip(plan, layers, strict=True), start=1
    ):
        stages[f"block{stage}"] = nn.Sequential(*[ResBlock(chs) for _ in range(depth)])
        stages[f"group{stage}"] = Group(chs, out_chs)
        track.conv(f"group{stage}", out_chs, 3, 1)
        if pool_name:
            pool(pool_name)
    return stages, info


def _info(track: _SizeTracker, module: str) -> dict:
    return {"num_chs": track.chs, "reduction": track.reduction, "module": module}


def _build_features(
    in_chans: int, input_size: int, layout: str, layers: Sequence[int] | None, pool_type: str
) -> tuple[dict[str, nn.Module], list[dict], _SizeTracker]:
    """The feature stages by attribute name, their ``feature_info`` and the final map size."""
    track = _SizeTracker(input_size, in_chans)
    if layout == "lightcnn29":
        stages, info = _lightcnn29_stages(in_chans, layers or (1, 2, 3, 4), pool_type, track)
        return stages, info, track
    build = _lightcnn4_features if layout == "lightcnn4" else _lightcnn9_features
    features, info = build(in_chans, pool_type, track)
    return {"features": features}, info, track


def _smallest_input_size(layout: str, layers: Sequence[int] | None, pool_type: str) -> int:
    """The smallest multiple of 16 whose feature map does not vanish, for the error message."""
    for size in range(16, 1025, 16):
        with torch.device("meta"):  # sizes only: allocate nothing
            *_, track = _build_features(1, size, layout, layers, pool_type)
        if track.vanished_at is None:
            return size
    return 1024


def _check_args(
    num_classes: int,
    in_chans: int,
    input_size: int,
    embed_dim: int,
    drop_rate: float,
    layout: str,
    layers: Sequence[int] | None,
    pool_type: str,
) -> None:
    """Refuse combinations that would fail later with a shape error far from their cause."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown LightCNN layout {layout!r}; choose one of {LAYOUTS}")
    if pool_type not in POOL_TYPES:
        raise ValueError(f"unknown pool_type {pool_type!r}; choose one of {POOL_TYPES}")
    if layers is not None and layout != "lightcnn29":
        raise ValueError(
            f"layers (residual blocks per stage) apply to lightcnn29 only, not {layout}"
        )
    if layers is not None and (len(layers) != 4 or any(int(n) < 0 for n in layers)):
        raise ValueError(f"layers must be 4 non-negative block counts, got {tuple(layers)}")
    if num_classes is None or num_classes < 0:
        raise ValueError(f"num_classes must be >= 0 (0: no classifier), got {num_classes}")
    if in_chans < 1 or embed_dim < 1:
        raise ValueError(f"in_chans and embed_dim must be >= 1, got {in_chans} and {embed_dim}")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    if input_size < 16 or input_size % 16:
        raise ValueError(
            f"input_size must be a positive multiple of 16 (LightCNN pools four times by 2), "
            f"got {input_size}; resize or crop the images (the authors use 128)"
        )


def _square_side(input_size: int | Sequence[int]) -> int:
    """The side of a square input given as ``S`` or ``[S, S]`` (``data.input_size`` is a pair)."""
    if isinstance(input_size, int):
        return input_size
    sides = [int(v) for v in input_size]
    if len(sides) != 2 or sides[0] != sides[1]:
        raise ValueError(
            f"input_size={sides}: LightCNN takes square faces, [S, S] (the authors use 128)"
        )
    return sides[0]


class LightCNN(nn.Module):
    """A LightCNN: MFM convolutions, a 256-d embedding layer and an optional identity classifier.

    Use the builders (:func:`lightcnn4`, :func:`lightcnn9`, :func:`lightcnn29`,
    :func:`lightcnn29v2`); the architecture arguments below are what distinguishes them.

    Args:
        num_classes: identities of the classifier ``fc2``; 0 for none, and then ``forward`` returns
            the embedding (as timm's ``reset_classifier(0)``).
        in_chans: input channels (1: grayscale as in the paper; the authors' checkpoints need 1).
        input_size: side of the square input (``S`` or ``[S, S]``, as ``data.input_size`` gives
            it). The embedding layer's input width follows from it;
            it must be a multiple of 16 (four 2x2 pools), and LightCNN-4's unpadded convolutions
            need at least 64. The authors' checkpoints need 128.
        embed_dim: size of the embedding (256 in the paper).
        drop_rate: dropout between the embedding and the classifier. The authors' code applies
            ``F.dropout`` there (p = 0.5: pass ``drop_rate=0.5`` to reproduce it); the default 0
            leaves it out, as the K-Face configs do.
        layout: module layout and names: ``"lightcnn4"``, ``"lightcnn9"`` (a ``features``
            Sequential and ``fc1``) or ``"lightcnn29"`` (top-level ``conv1``, ``block1``... and
            ``fc``), each as the authors' checkpoints name them.
        layers: residual blocks per stage, ``"lightcnn29"`` layout only (default ``(1, 2, 3, 4)``).
        pool_type: ``"max"`` (2x2 max pool, ceil mode) or ``"maxavg"`` (max + average, LightCNN-29v2).
        fc_mfm: the embedding layer is a linear MFM (LightCNN-4/9/29) rather than a plain linear
            layer (LightCNN-29v2).
        classifier_bias: the classifier has a bias (LightCNN-29v2's has none).

    Raises:
        ValueError: an unknown layout or pool type, ``layers`` outside the ``"lightcnn29"`` layout,
            a negative size, or an ``input_size`` the pools do not divide or that vanishes.

    Shapes:
        ``forward``: ``[B, in_chans, input_size, input_size] -> [B, num_classes]`` (``[B, embed_dim]``
        when ``num_classes`` is 0).
    """

    def __init__(
        self,
        num_classes: int = 0,
        in_chans: int = 1,
        input_size: int | Sequence[int] = 128,
        embed_dim: int = 256,
        drop_rate: float = 0.0,
        layout: str = "lightcnn9",
        layers: Sequence[int] | None = None,
        pool_type: str = "max",
        fc_mfm: bool = True,
        classifier_bias: bool = True,
    ) -> None:
        super().__init__()
        input_size = _square_side(input_size)
        _check_args(
            num_classes, in_chans, input_size, embed_dim, drop_rate, layout, layers, pool_type
        )
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = input_size
        self.embed_dim = embed_dim
        self.drop_rate = drop_rate
        self.layout = layout
        self.classifier_bias = classifier_bias

        if layout == "lightcnn29":
            layers = tuple(int(n) for n in (layers if layers is not None else (1, 2, 3, 4)))
        stages, self.feature_info, track = _build_features(
            in_chans, input_size, layout, layers, pool_type
        )
        if track.vanished_at is not None:
            smallest = _smallest_input_size(layout, layers, pool_type)
            raise ValueError(
                f"input_size={input_size} is too small for the {layout} layout: the feature map "
                f"vanishes at {track.vanished_at}; use input_size >= {smallest}"
            )
        for name, stage in stages.items():  # the authors' names, in forward order
            self.add_module(name, stage)
        self._stage_names = tuple(stages)
        self.layers = layers
        self.num_features = track.chs  # channels of forward_features, as timm
        self.head_hidden_size = embed_dim  # size of forward_head(pre_logits=True), as timm
        self._flat_features = track.chs * track.size * track.size

        # the embedding layer: the authors call it fc1 in LightCNN-9, fc in LightCNN-29
        self._embed_name = "fc" if layout == "lightcnn29" else "fc1"
        embed = (
            MaxFeatureMap(self._flat_features, embed_dim, linear=True)
            if fc_mfm
            else nn.Linear(self._flat_features, embed_dim)
        )
        self.add_module(self._embed_name, embed)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc2 = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes: int) -> nn.Module:
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0: no classifier), got {num_classes}")
        if num_classes == 0:
            return nn.Identity()
        return nn.Linear(self.embed_dim, num_classes, bias=self.classifier_bias)

    def get_classifier(self) -> nn.Module:
        """The identity classifier ``fc2`` (``nn.Identity`` when ``num_classes`` is 0)."""
        return self.fc2

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one, e.g. to fine-tune on new identities.

        Args:
            num_classes: outputs of the new classifier; 0 removes it (``forward`` then returns the
                embedding).
        """
        self.fc2 = self._make_classifier(num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional feature map, unflattened.

        Args:
            x: images ``[B, in_chans, input_size, input_size]``.

        Returns:
            Features ``[B, num_features, s, s]`` (``s = input_size / 16`` for LightCNN-9/29).
        """
        for name in self._stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Flatten, embed, and classify.

        Args:
            x: features ``[B, num_features, s, s]`` from :meth:`forward_features`.
            pre_logits: return the embedding instead of the logits.

        Returns:
            The embedding ``[B, embed_dim]`` if ``pre_logits`` (or ``num_classes`` is 0), else the
            logits ``[B, num_classes]``.

        Raises:
            ValueError: the features come from an input of another size than ``input_size``.
        """
        x = torch.flatten(x, 1)
        if x.shape[1] != self._flat_features:
            raise ValueError(
                f"features of {x.shape[1]} values per image, but the model was built for "
                f"input_size={self.input_size} ({self._flat_features}); resize the images or "
                f"build the model with their size"
            )
        x = getattr(self, self._embed_name)(x)
        if pre_logits:
            return x
        return self.fc2(self.head_drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` (the embedding ``[B, embed_dim]`` without a classifier) of
        images ``[B, in_chans, input_size, input_size]``."""
        return self.forward_head(self.forward_features(x))


def lightcnn4(**kwargs: Any) -> LightCNN:
    """LightCNN-4 (paper's table): conv 9x9/96, 5x5/192, 5x5/256, 4x4/384 with MFM to 48/96/128/192
    channels, unpadded, each followed by a 2x2 max pool (ceil mode); fc 512 -> MFM 256.

    4.10M parameters at 128x128 (the 4x4 convolution leaves 9x9, pooled to 5x5), about the
    paper's 4,095K. The authors released no PyTorch LightCNN-4, so its names are ours (``features``,
    ``fc1``, ``fc2`` as LightCNN-9). ``input_size`` must be at least 64.
    """
    model_args = {"layout": "lightcnn4"}
    return LightCNN(**dict(model_args, **kwargs))


def lightcnn9(**kwargs: Any) -> LightCNN:
    """LightCNN-9 (authors' ``LightCNN_9Layers``): 5,480,864 parameters at 128x128 without classifier."""
    model_args = {"layout": "lightcnn9"}
    return LightCNN(**dict(model_args, **kwargs))


def lightcnn29(**kwargs: Any) -> LightCNN:
    """LightCNN-29 (authors' ``LightCNN_29Layers``): residual stages of 1, 2, 3, 4 blocks,
    12,573,280 parameters at 128x128 without classifier."""
    model_args = {"layout": "lightcnn29", "layers": (1, 2, 3, 4)}
    return LightCNN(**dict(model_args, **kwargs))


def lightcnn29v2(**kwargs: Any) -> LightCNN:
    """LightCNN-29v2 (authors' ``LightCNN_29Layers_v2``): max + average pooling, a plain linear
    embedding layer, a classifier without bias; 10,475,872 parameters at 128x128 without classifier."""
    model_args = {
        "layout": "lightcnn29",
        "layers": (1, 2, 3, 4),
        "pool_type": "maxavg",
        "fc_mfm": False,
        "classifier_bias": False,
    }
    return LightCNN(**dict(model_args, **kwargs))
