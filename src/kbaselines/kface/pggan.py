"""PGGAN: a generator and a discriminator that grow from 4x4 to the final resolution.

Paper: Karras, Aila, Laine, Lehtinen, "Progressive Growing of GANs for Improved Quality, Stability,
and Variation", ICLR 2018 (arXiv:1710.10196).

Code: the layout follows NVIDIA's reference (github.com/tkarras/progressive_growing_of_gans,
``networks.py``: ``G_paper`` and ``D_paper``): feature maps ``min(8192 / 2^stage, 512)`` (512 up to
32x32, then 256, 128, 64, 32, 16 at 64 ... 1024), a dense 4x4 first block in G, a toRGB / fromRGB
1x1 convolution per resolution, nearest upsampling and average-pool downsampling, leaky ReLU 0.2.

The paper's tricks, each its own module: equalized learning rate (weights drawn N(0, 1) and scaled at
run time by ``gain / sqrt(fan_in)``, so that Adam's per-parameter step sizes suit every layer),
pixelwise feature normalisation in G, minibatch standard deviation in D. Both networks take the
``level`` (0 for 4x4, 1 for 8x8, ...) and the fade-in ``alpha`` of the newest block: at alpha 0
the output is the lower resolution's path (upsampled in G, the input downsampled in D), at alpha 1
the new block's.

Parameter counts at 1024x1024 with every toRGB / fromRGB layer: generator 23,086,795 and
discriminator 23,087,249 (paper: 23.08M and 23.09M; :func:`pggan` builds both).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PGGAN",
    "Discriminator",
    "EqualConv2d",
    "EqualLinear",
    "Generator",
    "MinibatchStdDev",
    "PixelNorm",
    "feature_maps",
    "pggan",
]

LRELU_SLOPE = 0.2


def feature_maps(level: int, fmap_base: int = 8192, fmap_max: int = 512) -> int:
    """Channels at ``level`` (resolution ``4 * 2**level``): the reference's ``nf(level + 1)``."""
    return min(fmap_base // 2 ** (level + 1), fmap_max)


class EqualLinear(nn.Module):
    """A linear layer with equalized learning rate: N(0, 1) weights scaled by ``gain / sqrt(fan_in)``."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    """A 'same' convolution with equalized learning rate (fan-in = ``in_chans * k * k``)."""

    def __init__(
        self, in_chans: int, out_chans: int, kernel_size: int, gain: float = math.sqrt(2)
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_chans, in_chans, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_chans))
        self.scale = gain / math.sqrt(in_chans * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit mean square (G's replacement for batch norm)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Append the mean standard deviation over groups of samples as one more feature map.

    D sees how varied the batch is, which discourages G from collapsing to few modes. Groups hold
    ``group_size`` samples (fewer when the batch is not a multiple of it: the largest common divisor).
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size = group_size
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = math.gcd(n, self.group_size)
        y = x.reshape(group, n // group, c, h, w)
        y = (y - y.mean(dim=0)).pow(2).mean(dim=0)  # variance over each group
        y = (y + self.eps).sqrt().mean(dim=(1, 2, 3))  # [n // group]
        y = y.reshape(1, -1, 1, 1, 1).expand(group, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(LRELU_SLOPE)


class GeneratorBlock(nn.Module):
    """Upsample x2 (nearest), then two 3x3 convolutions, each with leaky ReLU and pixel norm."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_chans, out_chans, 3)
        self.conv1 = EqualConv2d(out_chans, out_chans, 3)
        self.act = _act()
        self.norm = PixelNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(self.act(self.conv0(x)))
        return self.norm(self.act(self.conv1(x)))


class GeneratorStem(nn.Module):
    """The 4x4 block: the normalised latent through a dense layer to 4x4 maps, then a 3x3 conv."""

    def __init__(self, latent_size: int, out_chans: int) -> None:
        super().__init__()
        # the reference's gain sqrt(2)/4: the dense layer stands for a 4x4 conv on a 1x1 input
        self.dense = EqualLinear(latent_size, out_chans * 16, gain=math.sqrt(2) / 4)
        self.conv = EqualConv2d(out_chans, out_chans, 3)
        self.act = _act()
        self.norm = PixelNorm()
        self.out_chans = out_chans

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(self.norm(z)).reshape(-1, self.out_chans, 4, 4)
        x = self.norm(self.act(x))
        return self.norm(self.act(self.conv(x)))


class Generator(nn.Module):
    """Latent ``[B, latent_size]`` -> image ``[B, out_chans, S, S]`` at level ``level`` (S = 4 * 2**level).

    Args:
        resolution: the final side (a power of two >= 4).
        latent_size: size of the latent vector (the paper's 512).
        out_chans: image channels.
        fmap_base: channels are ``min(fmap_base / 2**(level + 1), fmap_max)``.
        fmap_max: the widest layer.
    """

    def __init__(
        self,
        resolution: int = 128,
        latent_size: int = 512,
        out_chans: int = 3,
        fmap_base: int = 8192,
        fmap_max: int = 512,
    ) -> None:
        super().__init__()
        self.num_levels = _num_levels(resolution)
        self.resolution = resolution
        self.latent_size = latent_size
        chans = [feature_maps(k, fmap_base, fmap_max) for k in range(self.num_levels)]
        self.stem = GeneratorStem(latent_size, chans[0])
        self.blocks = nn.ModuleList(
            GeneratorBlock(chans[k - 1], chans[k]) for k in range(1, self.num_levels)
        )
        self.to_rgb = nn.ModuleList(EqualConv2d(c, out_chans, 1, gain=1.0) for c in chans)

    def forward(
        self, z: torch.Tensor, level: int | None = None, alpha: float = 1.0
    ) -> torch.Tensor:
        """Images at ``level`` (default: the final one); the newest block blended in by ``alpha``."""
        level = self.num_levels - 1 if level is None else _check_level(level, self.num_levels)
        x = self.stem(z)
        for block in self.blocks[: level - 1] if level > 0 else ():
            x = block(x)
        if level == 0:
            return self.to_rgb[0](x)
        new = self.to_rgb[level](self.blocks[level - 1](x))
        if alpha >= 1.0:
            return new
        old = F.interpolate(self.to_rgb[level - 1](x), scale_factor=2, mode="nearest")
        return torch.lerp(old, new, alpha)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convolutions with leaky ReLU, then a 2x2 average pool."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_chans, in_chans, 3)
        self.conv1 = EqualConv2d(in_chans, out_chans, 3)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv0(x))
        return F.avg_pool2d(self.act(self.conv1(x)), 2)


class DiscriminatorHead(nn.Module):
    """The 4x4 block: minibatch stddev, a 3x3 conv, a dense layer, and the linear score."""

    def __init__(self, in_chans: int, hidden: int, group_size: int = 4) -> None:
        super().__init__()
        self.mbstd = MinibatchStdDev(group_size)
        self.conv = EqualConv2d(in_chans + 1, in_chans, 3)
        self.dense = EqualLinear(in_chans * 16, hidden)
        self.out = EqualLinear(hidden, 1, gain=1.0)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(self.mbstd(x)))
        x = self.act(self.dense(x.flatten(1)))
        return self.out(x)


class Discriminator(nn.Module):
    """Image ``[B, in_chans, S, S]`` at level ``level`` -> critic score ``[B, 1]``.

    Args: as :class:`Generator`; ``mbstd_group_size`` is the minibatch stddev's group.
    """

    def __init__(
        self,
        resolution: int = 128,
        in_chans: int = 3,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        mbstd_group_size: int = 4,
    ) -> None:
        super().__init__()
        self.num_levels = _num_levels(resolution)
        self.resolution = resolution
        chans = [feature_maps(k, fmap_base, fmap_max) for k in range(self.num_levels)]
        self.from_rgb = nn.ModuleList(EqualConv2d(in_chans, c, 1) for c in chans)
        # blocks[k - 1] takes level k (its chans[k] maps) down to level k - 1
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(chans[k], chans[k - 1]) for k in range(1, self.num_levels)
        )
        self.head = DiscriminatorHead(
            chans[0], feature_maps(-1, fmap_base, fmap_max), mbstd_group_size
        )
        self.act = _act()

    def forward(
        self, image: torch.Tensor, level: int | None = None, alpha: float = 1.0
    ) -> torch.Tensor:
        """Scores of images at ``level``; the newest block blended in by ``alpha``."""
        level = self.num_levels - 1 if level is None else _check_level(level, self.num_levels)
        x = self.act(self.from_rgb[level](image))
        if level > 0:
            x = self.blocks[level - 1](x)
            if alpha < 1.0:
                old = self.act(self.from_rgb[level - 1](F.avg_pool2d(image, 2)))
                x = torch.lerp(old, x, alpha)
            for k in range(level - 1, 0, -1):
                x = self.blocks[k - 1](x)
        return self.head(x)


class PGGAN(nn.Module):
    """The generator and discriminator pair, with the sizes the training task needs.

    Args:
        resolution: the final side, a power of two from 4 to 1024 (the paper's 1024).
        latent_size: size of the latent vector.
        channels: image channels (3: RGB).
        fmap_base: channels at level k are ``min(fmap_base / 2**(k + 1), fmap_max)``.
        fmap_max: the widest layer (the paper's 512; 32-64 for tests on CPU).
        mbstd_group_size: the minibatch stddev's group.
    """

    def __init__(
        self,
        resolution: int = 128,
        latent_size: int = 512,
        channels: int = 3,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        mbstd_group_size: int = 4,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.latent_size = latent_size
        self.channels = channels
        self.fmap_base = fmap_base
        self.fmap_max = fmap_max
        self.mbstd_group_size = mbstd_group_size
        self.generator = Generator(resolution, latent_size, channels, fmap_base, fmap_max)
        self.discriminator = Discriminator(
            resolution, channels, fmap_base, fmap_max, mbstd_group_size
        )
        self.num_levels = self.generator.num_levels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images at the final resolution from latents."""
        return self.generator(z)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of each network, every toRGB / fromRGB layer included."""
        return {
            "generator": sum(p.numel() for p in self.generator.parameters()),
            "discriminator": sum(p.numel() for p in self.discriminator.parameters()),
        }

    def summary_lines(self) -> list[str]:
        """The lines ``scripts/model_summary.py`` prints for this model."""
        counts = self.parameter_counts()
        size = self.resolution
        return [
            f"input:         latent {self.latent_size} -> {self.channels} x {size} x {size}",
            f"generator:     {counts['generator']:,} parameters "
            f"({counts['generator'] / 1e6:.2f}M; paper 23.08M at 1024)",
            f"discriminator: {counts['discriminator']:,} parameters "
            f"({counts['discriminator'] / 1e6:.2f}M; paper 23.09M at 1024)",
            f"total:         {sum(counts.values()):,} parameters",
        ]


def _num_levels(resolution: int) -> int:
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return int(math.log2(resolution)) - 1


def _check_level(level: int, num_levels: int) -> int:
    if not 0 <= level < num_levels:
        raise ValueError(f"level {level} outside 0..{num_levels - 1} (4x4 .. final resolution)")
    return level


def pggan(
    resolution: int = 128,
    latent_size: int = 512,
    channels: int = 3,
    fmap_base: int = 8192,
    fmap_max: int = 512,
    mbstd_group_size: int = 4,
) -> PGGAN:
    """The paper's PGGAN at ``resolution`` (narrow it with ``fmap_max`` and ``latent_size``)."""
    return PGGAN(resolution, latent_size, channels, fmap_base, fmap_max, mbstd_group_size)
