"""Metrics of generated images: sliced Wasserstein distance, MS-SSIM diversity, FID.

SWD follows the PGGAN paper (Karras et al. 2018, appendix D) and NVIDIA's reference
(``metrics/sliced_wasserstein.py``): each image's Laplacian pyramid (from its resolution down to
16x16, 5-tap binomial filter), 128 random 7x7 patches per image and level, each level's patch
descriptors normalised per colour channel (its own mean and std, real and fake sets each), then
the sliced Wasserstein distance between the real and fake descriptor sets over 512 random unit
directions (4 repeats of 128). Reported x 1e3 as in the paper; ``swd`` is the mean over levels.

MS-SSIM among pairs of generated images measures diversity (lower is more diverse; the paper's
use); it uses torchmetrics, with fewer scales and a smaller window for small images. FID needs
Inception weights the user supplies (never downloaded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

__all__ = [
    "fid",
    "laplacian_pyramid",
    "ms_ssim_diversity",
    "sliced_wasserstein",
    "swd",
    "swd_descriptors",
]

PATCH_SIZE = 7
PATCHES_PER_IMAGE = 128
MIN_LEVEL_SIZE = 16
DIRECTIONS = 128
REPEATS = 4
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.outer(_BINOMIAL, _BINOMIAL).to(x)
    kernel = kernel.expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def _downsample(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[:, :, ::2, ::2]


def _upsample(x: torch.Tensor) -> torch.Tensor:
    up = torch.zeros(*x.shape[:2], x.shape[2] * 2, x.shape[3] * 2, dtype=x.dtype, device=x.device)
    up[:, :, ::2, ::2] = x * 4.0
    return _blur(up)


def laplacian_pyramid(images: torch.Tensor, min_size: int = MIN_LEVEL_SIZE) -> list[torch.Tensor]:
    """Levels from the full resolution (band-pass) down to ``min_size`` (the low-pass residual).

    Summing the levels back up (``upsample`` then add) gives the images again.
    """
    levels = []
    x = images.float()
    while x.shape[-1] > min_size:
        low = _downsample(x)
        levels.append(x - _upsample(low))
        x = low
    levels.append(x)
    return levels


def swd_descriptors(
    images: torch.Tensor,
    generator: np.random.Generator,
    patches_per_image: int = PATCHES_PER_IMAGE,
    patch_size: int = PATCH_SIZE,
) -> list[torch.Tensor]:
    """Per pyramid level, ``[N * patches_per_image, C * patch * patch]`` random patches, unnormalised.

    Args:
        images: ``[N, C, S, S]`` (any range: descriptors are normalised per channel later).
        generator: the patch positions' random source.
    """
    result = []
    for level in laplacian_pyramid(images):
        n, _, h, w = level.shape
        if h < patch_size or w < patch_size:
            raise ValueError(f"images of {h}x{w} are smaller than the {patch_size}px patches")
        ys = torch.from_numpy(generator.integers(0, h - patch_size + 1, (n, patches_per_image)))
        xs = torch.from_numpy(generator.integers(0, w - patch_size + 1, (n, patches_per_image)))
        offsets = torch.arange(patch_size)
        rows = (ys[..., None] + offsets)[..., :, None]  # [n, p, k, 1]
        cols = (xs[..., None] + offsets)[..., None, :]  # [n, p, 1, k]
        batch = torch.arange(n)[:, None, None, None]
        patches = level.permute(0, 2, 3, 1)[batch, rows, cols]  # [n, p, k, k, c]
        result.append(patches.permute(0, 1, 4, 2, 3).reshape(n * patches_per_image, -1))
    return result


def _normalize(descriptors: torch.Tensor, channels: int) -> torch.Tensor:
    """Zero mean, unit std per colour channel over every patch and pixel (the reference's step)."""
    d = descriptors.reshape(descriptors.shape[0], channels, -1)
    d = d - d.mean(dim=(0, 2), keepdim=True)
    d = d / d.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
    return d.reshape(descriptors.shape[0], -1)


def sliced_wasserstein(
    a: torch.Tensor,
    b: torch.Tensor,
    generator: torch.Generator,
    directions: int = DIRECTIONS,
    repeats: int = REPEATS,
) -> float:
    """Mean over random unit directions of the 1-D Wasserstein distance of the projections.

    ``a`` and ``b`` are ``[n, d]`` sets of the same size.
    """
    if a.shape != b.shape:
        raise ValueError(f"descriptor sets differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    distances = []
    for _ in range(repeats):
        dirs = torch.randn(a.shape[1], directions, generator=generator).to(a.dtype)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa = torch.sort(a @ dirs, dim=0).values
        pb = torch.sort(b @ dirs, dim=0).values
        distances.append((pa - pb).abs().mean(dim=0))
    return float(torch.cat(distances).mean())


def swd(
    real: torch.Tensor,
    fake: torch.Tensor,
    seed: int = 0,
    patches_per_image: int = PATCHES_PER_IMAGE,
) -> dict[str, float]:
    """SWD x 1e3 per pyramid level (``swd_<size>``) and their mean (``swd``).

    Args:
        real: ``[N, C, S, S]`` real images.
        fake: ``[N, C, S, S]`` generated images, same shape and range as ``real``.
        seed: the patch positions and projection directions.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} images differ")
    # both sets are cut at the same random positions, so identical sets give exactly 0
    real_desc = swd_descriptors(real.cpu(), np.random.default_rng(seed), patches_per_image)
    fake_desc = swd_descriptors(fake.cpu(), np.random.default_rng(seed), patches_per_image)
    directions = torch.Generator().manual_seed(seed)
    channels = real.shape[1]
    result = {}
    for r, f in zip(real_desc, fake_desc, strict=True):
        level_size = real.shape[-1] >> len(result)
        distance = sliced_wasserstein(_normalize(r, channels), _normalize(f, channels), directions)
        result[f"swd_{level_size}"] = 1e3 * distance
    result["swd"] = float(np.mean(list(result.values())))
    return result


def _ms_ssim_settings(size: int) -> tuple[int, float, tuple[float, ...]]:
    """The window, Gaussian sigma and scale weights torchmetrics accepts at ``size``: the standard 11 px
    window (sigma 1.5) and 5 scales when the image allows, else fewer scales (weights renormalised)
    and a smaller window (sigma scaled with it; torchmetrics sizes the window from sigma)."""
    for scales in range(len(MS_SSIM_BETAS), 0, -1):
        for kernel in (11, 9, 7, 5, 3):
            if size > (kernel - 1) * 2 ** (scales - 1):
                betas = MS_SSIM_BETAS[:scales]
                total = sum(betas)
                return kernel, 1.5 * (kernel - 1) / 10, tuple(b / total for b in betas)
    raise ValueError(f"images of {size} px are too small for MS-SSIM")


def ms_ssim_diversity(images: torch.Tensor) -> float:
    """Mean MS-SSIM between consecutive pairs (0-1, 2-3, ...) of images in [0, 1].

    Identical images give 1; a varied set gives low values (the paper's diversity measure).
    """
    if images.shape[0] < 2:
        raise ValueError("MS-SSIM diversity needs at least two images")
    pairs = images.shape[0] // 2 * 2
    kernel, sigma, betas = _ms_ssim_settings(images.shape[-1])
    value = multiscale_structural_similarity_index_measure(
        images[0:pairs:2].float(),
        images[1:pairs:2].float(),
        kernel_size=kernel,
        sigma=sigma,
        betas=betas,
        data_range=1.0,
    )
    return float(value)


def fid(real: torch.Tensor, fake: torch.Tensor, weights: str | Path) -> float:
    """Fréchet Inception distance with Inception weights from the user's file, images in [0, 1].

    Raises:
        FileNotFoundError: the weights file is missing (nothing is downloaded).
        ImportError: torchmetrics' Inception needs the ``torch-fidelity`` package.
    """
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.fid_weights={path}: no such file. FID needs the Inception weights of "
            "torch-fidelity (pt_inception-2015-12-05-6726825d.pth) downloaded by you; leave "
            "model.fid_weights=null to skip FID"
        )
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(f"FID needs torchmetrics[image] and torch-fidelity: {error}") from error
    metric = FrechetInceptionDistance(
        feature=2048, normalize=True, feature_extractor_weights_path=str(path)
    )
    metric.update(real.float(), real=True)
    metric.update(fake.float(), real=False)
    return float(metric.compute())
