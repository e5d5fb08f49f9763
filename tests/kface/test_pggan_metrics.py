"""SWD on Laplacian-pyramid patches and MS-SSIM diversity: hand cases and known behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kbaselines.kface.gan_metrics import (
    laplacian_pyramid,
    ms_ssim_diversity,
    sliced_wasserstein,
    swd,
    swd_descriptors,
)


def _smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Random smooth colour images (noise upsampled), a stand-in for natural images."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=generator)
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def test_laplacian_pyramid_levels_and_reconstruction() -> None:
    from kbaselines.kface.gan_metrics import _upsample

    images = _smooth_images(2, 64, 0)
    levels = laplacian_pyramid(images)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = _upsample(rebuilt) + band
    assert torch.allclose(rebuilt, images, atol=1e-5)


def test_descriptors_are_128_patches_of_7x7_per_image_and_level() -> None:
    descriptors = swd_descriptors(_smooth_images(3, 32, 0), np.random.default_rng(0))
    assert [tuple(d.shape) for d in descriptors] == [(3 * 128, 3 * 49), (3 * 128, 3 * 49)]


def test_sliced_wasserstein_hand_case() -> None:
    # 1-D: every projection of {0, 1} vs {0, 1} + 2 along a unit direction u is shifted by 2*u;
    # in 1 dimension u = +-1, so the distance is exactly 2
    a = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    distance = sliced_wasserstein(a, a + 2, torch.Generator().manual_seed(0), directions=8)
    assert distance == pytest.approx(2.0)


def test_swd_of_identical_sets_is_zero_and_grows_with_the_difference() -> None:
    real = _smooth_images(64, 16, 0)
    same = swd(real, real.clone())
    assert same["swd"] == pytest.approx(0.0, abs=1e-9) and set(same) == {"swd", "swd_16"}
    other = swd(real, _smooth_images(64, 16, 1))["swd"]  # same distribution, other samples
    blurred = swd(real, F.avg_pool2d(real, 3, stride=1, padding=1))["swd"]
    noisy = swd(real, (real + 0.2 * torch.randn_like(real)).clamp(0, 1))["swd"]
    assert other < blurred < noisy, (other, blurred, noisy)
    assert noisy > 1.3 * other


def test_swd_ignores_a_global_colour_shift_like_the_reference() -> None:
    # descriptors are normalised per colour channel, so a constant offset cancels
    real = _smooth_images(16, 16, 0)
    assert swd(real, real * 0.5 + 0.25)["swd"] == pytest.approx(0.0, abs=0.05)


def test_ms_ssim_of_identical_images_is_one_and_of_different_ones_lower() -> None:
    images = _smooth_images(4, 16, 0)
    pair = torch.cat([images[:1], images[:1]])
    assert ms_ssim_diversity(pair) == pytest.approx(1.0, abs=1e-5)
    assert ms_ssim_diversity(images) < 0.9
    large = _smooth_images(2, 256, 0)  # the standard 11 px window and five scales
    assert ms_ssim_diversity(torch.cat([large[:1], large[:1]])) == pytest.approx(1.0, abs=1e-5)


def test_fid_without_weights_names_the_setting(tmp_path) -> None:
    from kbaselines.kface.gan_metrics import fid

    images = torch.rand(2, 3, 16, 16)
    with pytest.raises(FileNotFoundError, match=r"model\.fid_weights"):
        fid(images, images, tmp_path / "missing.pth")
