"""PGGAN building blocks: equalized learning rate, pixel norm, minibatch stddev, fade-in, sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kbaselines.kface.pggan import (
    EqualConv2d,
    EqualLinear,
    MinibatchStdDev,
    PixelNorm,
    feature_maps,
    pggan,
)


def test_equalized_lr_scales_unit_weights_by_he_constant() -> None:
    conv = EqualConv2d(8, 4, 3)
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(8 * 9))
    # the stored weights are N(0, 1); the effective ones are weight * scale
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.ones(1, 8, 5, 5)
    # the centre pixel sees every input of the 3x3 window: 8 * 9 * scale
    assert conv(x)[0, 0, 2, 2].item() == pytest.approx(8 * 9 * conv.scale, rel=1e-5)
    linear = EqualLinear(16, 2, gain=1.0)
    assert linear.scale == pytest.approx(1 / 4)
    big = EqualLinear(4096, 512)
    assert big.weight.std().item() == pytest.approx(1.0, abs=0.01)


def test_equalized_lr_keeps_activations_at_unit_scale() -> None:
    torch.manual_seed(0)
    conv = EqualConv2d(256, 256, 3)
    x = torch.randn(8, 256, 8, 8)
    y = F.leaky_relu(conv(x), 0.0)
    # He init: E[relu(y)^2] = E[x^2] over the interior
    assert y[:, :, 1:-1, 1:-1].pow(2).mean().item() == pytest.approx(1.0, rel=0.1)


def test_pixel_norm_gives_unit_mean_square_per_pixel() -> None:
    x = torch.randn(2, 16, 3, 3) * 7
    y = PixelNorm()(x)
    assert torch.allclose(y.pow(2).mean(dim=1), torch.ones(2, 3, 3), atol=1e-5)
    # a hand case: features (3, 4) -> mean square 12.5 -> divided by sqrt(12.5)
    hand = PixelNorm()(torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)).flatten()
    assert torch.allclose(hand, torch.tensor([3.0, 4.0]) / math.sqrt(12.5), atol=1e-6)


def test_minibatch_stddev_shape_and_value() -> None:
    # group of 2: samples 0 and 2 (reshape [group, n/group, ...]) and samples 1 and 3
    x = torch.zeros(4, 2, 2, 2)
    x[0] = 1.0
    x[2] = 3.0  # std of (1, 3) = 1 everywhere
    x[1] = 5.0
    x[3] = 5.0  # std 0
    y = MinibatchStdDev(group_size=2, eps=0.0)(x)
    assert y.shape == (4, 3, 2, 2)
    assert torch.equal(y[:, :2], x)
    assert torch.allclose(y[0, 2], torch.ones(2, 2)) and torch.allclose(y[2, 2], torch.ones(2, 2))
    assert torch.allclose(y[1, 2], torch.zeros(2, 2)) and torch.allclose(y[3, 2], torch.zeros(2, 2))
    # a batch that is not a multiple of the group uses the largest common divisor
    assert MinibatchStdDev(group_size=4)(torch.randn(6, 3, 4, 4)).shape == (6, 4, 4, 4)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return pggan(resolution=16, latent_size=32, fmap_max=32)


def test_generator_fade_in_at_alpha_0_and_1(net) -> None:
    g = net.generator
    z = torch.randn(4, 32)
    low = g(z, level=1, alpha=1.0)  # 8x8 path
    assert low.shape == (4, 3, 8, 8)
    at0 = g(z, level=2, alpha=0.0)
    assert torch.allclose(at0, F.interpolate(low, scale_factor=2, mode="nearest"), atol=1e-6)
    high = g.to_rgb[2](g.blocks[1](g.blocks[0](g.stem(z))))
    assert torch.allclose(g(z, level=2, alpha=1.0), high, atol=1e-6)
    half = g(z, level=2, alpha=0.5)
    assert torch.allclose(half, 0.5 * at0 + 0.5 * high, atol=1e-5)


def test_discriminator_fade_in_at_alpha_0_and_1(net) -> None:
    d = net.discriminator
    image = torch.randn(4, 3, 16, 16)
    at0 = d(image, level=2, alpha=0.0)
    assert torch.allclose(at0, d(F.avg_pool2d(image, 2), level=1, alpha=1.0), atol=1e-5)
    full = d.head(d.blocks[0](d.blocks[1](d.act(d.from_rgb[2](image)))))
    assert torch.allclose(d(image, level=2, alpha=1.0), full, atol=1e-5)


def test_channel_widths_follow_the_paper() -> None:
    assert [feature_maps(k) for k in range(9)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    with pytest.raises(ValueError, match="power of two"):
        pggan(resolution=48)


def test_parameter_counts_at_1024_match_the_paper() -> None:
    counts = pggan(resolution=1024).parameter_counts()
    assert counts["generator"] == pytest.approx(23.08e6, rel=0.01)
    assert counts["discriminator"] == pytest.approx(23.09e6, rel=0.01)
