"""Face generation: train a progressively growing GAN (PGGAN) and score it against held-out faces.

Training (manual optimisation, one critic and one generator step per minibatch) follows the paper:
WGAN-GP with lambda 10 and drift 0.001 * D(real)^2, one optimizer for G and one for D from the
``model/optimizer`` factory (the paper's Adam lr 0.001 betas (0, 0.99), set in ``model/pggan.yaml``)
whose states are reset when a block is added, a phase schedule counted in images (4x4 stabilises,
then each doubling fades in with alpha rising linearly over ``fade_kimg`` thousand images and
stabilises for ``stab_kimg``), a minibatch size per resolution, mirror augmentation, and an
exponential moving average of G set as a half-life in images with a ramp-up (the EMA makes samples
and metrics).

The DataModule gives faces at the final resolution in [0, 1]; the task maps them to [-1, 1] and
average-pools them to the phase's resolution, blending the real images like the fade-in.

Evaluation compares EMA samples with real images: the sliced Wasserstein distance on Laplacian
pyramid patches, MS-SSIM among the samples (diversity), FID with user-supplied Inception weights.
At the end of every phase: a grid of samples from fixed latents and a row of ``phase_metrics.csv``
in the fold folder. Phase, alpha, images seen, optimisers and EMA are all in the checkpoint, so a
run stopped in the middle of a phase resumes where it was.
"""

from __future__ import annotations

import copy
import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.io import write_json_atomic
from kbaselines.core.optimization import OptimizerFactory
from kbaselines.core.task import BaseTask
from kbaselines.kface.gan_metrics import MIN_LEVEL_SIZE, fid, ms_ssim_diversity, swd
from kbaselines.kface.pggan import PGGAN
from kbaselines.kface.sample_grids import plot_phase_metrics, save_grid

__all__ = ["GenerationTask", "Phase", "PhaseSchedule", "ema_beta", "gradient_penalty"]

log = logging.getLogger(__name__)

PHASE_METRICS = "phase_metrics.csv"


@dataclass(frozen=True)
class Phase:
    """One training phase: a fade-in or a stabilisation at ``level`` (resolution 4 * 2**level)."""

    index: int
    level: int
    fade: bool
    start: int  # images seen when it starts
    length: int  # images

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def resolution(self) -> int:
        return 4 * 2**self.level

    @property
    def kind(self) -> str:
        return "fade" if self.fade else "stab"


class PhaseSchedule:
    """4x4 stabilises, then each level fades in and stabilises; lengths in images.

    Args:
        num_levels: levels of the networks (1 for 4x4 ... 9 for 1024x1024).
        fade_kimg: thousands of images of each fade-in.
        stab_kimg: thousands of images of each stabilisation.
        final_kimg: thousands of images of the last stabilisation (default ``stab_kimg``).
    """

    def __init__(
        self, num_levels: int, fade_kimg: float, stab_kimg: float, final_kimg: float | None = None
    ) -> None:
        if fade_kimg <= 0 or stab_kimg <= 0:
            raise ValueError("model.fade_kimg and model.stab_kimg must be positive")
        lengths: list[tuple[int, bool, float]] = [(0, False, stab_kimg)]
        for level in range(1, num_levels):
            lengths += [(level, True, fade_kimg), (level, False, stab_kimg)]
        if final_kimg is not None:
            lengths[-1] = (*lengths[-1][:2], final_kimg)
        self.phases: list[Phase] = []
        start = 0
        for index, (level, fade, kimg) in enumerate(lengths):
            length = max(1, round(kimg * 1000))
            self.phases.append(Phase(index, level, fade, start, length))
            start += length

    @property
    def total(self) -> int:
        """Images of the whole training."""
        return self.phases[-1].end

    def at(self, images: int) -> tuple[Phase, float]:
        """The phase after ``images`` images, and its alpha (linear over a fade-in, else 1)."""
        for phase in self.phases:
            if images < phase.end:
                break
        alpha = min(1.0, (images - phase.start) / phase.length) if phase.fade else 1.0
        return phase, max(alpha, 0.0)


def gradient_penalty(
    critic: nn.Module | Any, real: torch.Tensor, fake: torch.Tensor, mix: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP: mean over samples of (||grad D(x_hat)|| - 1)^2 at x_hat = real + mix * (fake - real).

    Args:
        critic: a callable from images to scores ``[B, 1]``.
        mix: ``[B]`` mixing factors in [0, 1] (uniform in training).
    """
    mixed = torch.lerp(real, fake, mix.view(-1, 1, 1, 1)).detach().requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def _at_least(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images below ``size`` enlarged (nearest) to it: SWD's 7x7 patches need 16x16 (4x4 and 8x8
    phases are scored on their pixels repeated)."""
    factor = -(-size // images.shape[-1])
    return images if factor <= 1 else F.interpolate(images, scale_factor=factor, mode="nearest")


def ema_beta(batch: int, images_seen: int, half_life_kimg: float, rampup: float | None) -> float:
    """The EMA decay for one step of ``batch`` images: the weight of the old average halves every
    ``half_life_kimg`` thousand images; with ``rampup``, the half-life is at most
    ``rampup * images_seen``, so that the random initial weights are forgotten early."""
    half_life = half_life_kimg * 1000
    if rampup is not None:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


class GenerationTask(BaseTask):
    """PGGAN training with manual optimisation; SWD, MS-SSIM (and FID) at test.

    Args:
        net: a :class:`~kbaselines.kface.pggan.PGGAN`.
        optimizer: a partial optimizer (``_partial_: true`` in the config), called once with G's
            parameters and once with D's: the two networks step in turn, each with its own state.
        resolution: the final resolution; must be the net's (one setting for data and model).
        fade_kimg: thousands of images per fade-in phase (paper 800).
        stab_kimg: thousands of images per stabilisation phase (paper 800).
        final_kimg: thousands of images of the last stabilisation (default ``stab_kimg``).
        minibatch: batch size per resolution (``{256: 14, 512: 6, 1024: 3}``); resolutions not
            listed use the data batch. Each data batch is cut into chunks of this size.
        gp_lambda: gradient penalty weight (paper 10).
        drift: weight of the drift term D(real)^2 (paper 0.001).
        ema_half_life_kimg: half-life of the generator's moving average, in thousands of images.
        ema_rampup: the half-life is at most ``ema_rampup`` x images seen (null: no ramp-up).
        mirror: flip half of the real images horizontally.
        metric_images: real and generated images per SWD evaluation (at most the real set).
        grid_size: samples per side of the grids.
        seed: seed of the grid's fixed latents and of the metric latents and patches.
        fid_weights: Inception weights file for FID (never downloaded); null skips FID.
        info: the data's facts (unused: a generator needs no class names).
    """

    net: PGGAN

    def __init__(
        self,
        net: PGGAN,
        optimizer: OptimizerFactory,
        resolution: int = 128,
        fade_kimg: float = 800.0,
        stab_kimg: float = 800.0,
        final_kimg: float | None = None,
        minibatch: dict[int, int] | None = None,
        gp_lambda: float = 10.0,
        drift: float = 0.001,
        ema_half_life_kimg: float = 10.0,
        ema_rampup: float | None = 0.05,
        mirror: bool = True,
        metric_images: int = 1024,
        grid_size: int = 8,
        seed: int = 0,
        fid_weights: str | None = None,
        info: DataInfo | None = None,
    ) -> None:
        if net.resolution != resolution:
            raise ValueError(
                f"model.resolution={resolution} but the net is built for {net.resolution}: "
                "set model.resolution only (the net and data.input_size follow it)"
            )
        super().__init__(net, optimizer, info=info)
        self.automatic_optimization = False
        self.ema = copy.deepcopy(net.generator).requires_grad_(False).eval()
        self.schedule = PhaseSchedule(net.num_levels, fade_kimg, stab_kimg, final_kimg)
        self.minibatch = {int(k): int(v) for k, v in (minibatch or {}).items()}
        self.images_seen = 0
        # the phase whose start was handled (optimisers reset), and the phases whose end was
        self.phase_index = 0
        self.phases_done = 0
        self.phase_rows: list[dict[str, Any]] = []
        self._test_images: list[torch.Tensor] = []
        self._reference: torch.Tensor | None = None
        self.test_results: dict[str, float] = {}

    # -- sampling ---------------------------------------------------------------------------------
    def latents(self, n: int, seed: int) -> torch.Tensor:
        """``n`` latent vectors drawn from their own generator (the same for a seed, always)."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.net.latent_size, generator=generator).to(self.device)

    @torch.no_grad()
    def sample(
        self, z: torch.Tensor, level: int | None = None, alpha: float = 1.0, chunk: int = 64
    ) -> torch.Tensor:
        """EMA generator images in [0, 1]."""
        out = [self.ema(part, level, alpha) for part in z.split(chunk)]
        return torch.cat(out).add(1).div(2).clamp(0, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] at the final resolution from latents, by the EMA generator."""
        return self.sample(z)

    # -- training ---------------------------------------------------------------------------------
    def current(self) -> tuple[Phase, float]:
        """The phase and alpha at the images seen so far."""
        return self.schedule.at(self.images_seen)

    def real_at(self, images: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
        """Final-resolution images in [0, 1] -> the phase's resolution in [-1, 1], blended like the
        fade-in (alpha 0: the lower resolution upsampled)."""
        x = images * 2 - 1
        factor = self.net.resolution // (4 * 2**level)
        if factor > 1:
            x = F.avg_pool2d(x, factor)
        if alpha < 1.0:
            low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
            x = torch.lerp(low, x, alpha)
        return x

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        images = batch["image"]
        if self.hparams.mirror:
            flip = torch.rand(images.shape[0], device=images.device) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        phase, _ = self.current()
        size = self.minibatch.get(phase.resolution, images.shape[0])
        for chunk in images.split(size):
            if self.images_seen >= self.schedule.total:
                break
            self._train_chunk(chunk)
        if self.images_seen >= self.schedule.total:
            self.trainer.should_stop = True

    def _train_chunk(self, images: torch.Tensor) -> None:
        phase, alpha = self.current()
        if phase.index != self.phase_index:
            self._start_phase(phase)
        opt_g, opt_d = self.optimizers()
        generator, critic = self.net.generator, self.net.discriminator
        n = images.shape[0]
        real = self.real_at(images, phase.level, alpha)

        def score(x: torch.Tensor) -> torch.Tensor:
            return critic(x, phase.level, alpha)

        # critic step
        critic.requires_grad_(True)
        z = torch.randn(n, self.net.latent_size, device=self.device)
        with torch.no_grad():
            fake = generator(z, phase.level, alpha)
        d_real, d_fake = score(real), score(fake)
        mix = torch.rand(n, device=self.device)
        penalty = gradient_penalty(score, real, fake, mix)
        wasserstein = d_real.mean() - d_fake.mean()
        loss_d = -wasserstein + self.hparams.gp_lambda * penalty
        loss_d = loss_d + self.hparams.drift * d_real.pow(2).mean()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        # generator step
        critic.requires_grad_(False)
        z = torch.randn(n, self.net.latent_size, device=self.device)
        loss_g = -score(generator(z, phase.level, alpha)).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        critic.requires_grad_(True)

        self.images_seen += n
        self._update_ema(n)
        self.log_dict(
            {
                "train/loss_d": loss_d.detach(),
                "train/loss_g": loss_g.detach(),
                "train/wasserstein": wasserstein.detach(),
                "train/gp": penalty.detach(),
                "train/alpha": alpha,
                "train/resolution": float(phase.resolution),
                "train/kimg": self.images_seen / 1000,
            },
            on_step=True,
            on_epoch=False,
            batch_size=n,
        )
        if self.images_seen >= phase.end and self.phases_done <= phase.index:
            self._end_phase(phase)

    @torch.no_grad()
    def _update_ema(self, batch: int) -> None:
        hp = self.hparams
        beta = ema_beta(batch, self.images_seen, hp.ema_half_life_kimg, hp.ema_rampup)
        for average, param in zip(
            self.ema.parameters(), self.net.generator.parameters(), strict=True
        ):
            average.lerp_(param, 1.0 - beta)

    def _start_phase(self, phase: Phase) -> None:
        """Enter ``phase``; a fade-in adds a block, so both Adam states start afresh (the paper)."""
        if phase.fade:
            for optimizer in self.optimizers():
                optimizer.optimizer.state.clear()
        self.phase_index = phase.index
        log.info(
            "Phase %d: %dx%d %s, %.1f kimg from %.1f kimg",
            phase.index,
            phase.resolution,
            phase.resolution,
            "fade-in" if phase.fade else "stabilisation",
            phase.length / 1000,
            phase.start / 1000,
        )

    def _end_phase(self, phase: Phase) -> None:
        """Sample grid and metrics of the EMA generator at the end of ``phase`` (rank 0 writes)."""
        if self.trainer.is_global_zero:
            row = self.phase_metrics(phase)
            self.phase_rows.append(row)
            self._write_phase_outputs(phase, row)
            self.log_dict({f"phase/{k}": v for k, v in row.items() if k.startswith(("swd", "ms"))})
        self.phases_done = phase.index + 1

    def phase_metrics(self, phase: Phase) -> dict[str, Any]:
        """SWD and MS-SSIM of EMA samples at the phase's resolution against the reference images."""
        real = self.real_at(self.reference_images(), phase.level, 1.0).add(1).div(2)
        fake = self.sample(self.latents(real.shape[0], self.hparams.seed + 1), phase.level)
        scores = swd(
            _at_least(real, MIN_LEVEL_SIZE), _at_least(fake, MIN_LEVEL_SIZE), self.hparams.seed
        )
        row: dict[str, Any] = {
            "phase": phase.index,
            "resolution": phase.resolution,
            "kind": phase.kind,
            "kimg": self.images_seen / 1000,
            "swd": scores["swd"],
        }
        if phase.resolution >= 8:
            row["ms_ssim"] = ms_ssim_diversity(fake)
        return row

    def reference_images(self) -> torch.Tensor:
        """Real images the phases are scored on (final resolution, [0, 1]), read once: the
        validation part when there is one, else the held-out test part, else training images."""
        if self._reference is None:
            datasets = self.data.datasets
            name = next(p for p in ("val", "test", "train") if p in datasets)
            dataset = datasets[name]
            count = min(self.hparams.metric_images, len(dataset))
            picks = torch.linspace(0, len(dataset) - 1, count).round().long().tolist()
            self._reference = torch.stack([dataset[i]["image"] for i in picks]).to(self.device)
            log.info("Phase metrics against %d %s images", count, name)
        return self._reference

    def _write_phase_outputs(self, phase: Phase, row: dict[str, Any]) -> None:
        folder = Path(self.trainer.default_root_dir)
        grid = self.sample(self.latents(self.hparams.grid_size**2, self.hparams.seed), phase.level)
        name = f"phase{phase.index:02d}_{phase.resolution}px_{phase.kind}.png"
        save_grid(grid, folder / "samples" / name, scale=max(1, 64 // phase.resolution))
        path = folder / PHASE_METRICS
        fields = ["phase", "resolution", "kind", "kimg", "swd", "ms_ssim"]
        new = not path.exists()
        with path.open("a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in fields})
        with path.open() as file:
            rows = list(csv.DictReader(file))
        plot_phase_metrics(rows, ["swd"], folder / "phase_metrics.png")

    # -- evaluation -------------------------------------------------------------------------------
    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._test_images.append(batch["image"])

    def on_test_epoch_end(self) -> None:
        """SWD of EMA samples against the test images, MS-SSIM among samples, FID when set up."""
        real = torch.cat(self._test_images)[: self.hparams.metric_images]
        self._test_images.clear()
        phase, _ = self.current()
        real = self.real_at(real, phase.level, 1.0).add(1).div(2)
        fake = self.sample(self.latents(real.shape[0], self.hparams.seed + 1), phase.level)
        results = swd(
            _at_least(real, MIN_LEVEL_SIZE), _at_least(fake, MIN_LEVEL_SIZE), self.hparams.seed
        )
        results["ms_ssim"] = ms_ssim_diversity(fake)
        if self.hparams.fid_weights:
            results["fid"] = fid(real, fake, self.hparams.fid_weights)
        elif not self.test_results:
            log.info(
                "FID skipped: set model.fid_weights=<Inception weights file> (torch-fidelity's "
                "pt_inception-2015-12-05-6726825d.pth); nothing is downloaded"
            )
        self.test_results = {k: float(v) for k, v in results.items()}
        self.log_dict({f"test/{k}": v for k, v in self.test_results.items()})

    def write_test_outputs(self, out_dir: Path, stage: str) -> None:
        """The final grid of samples from the fixed latents and the test metrics per pyramid level."""
        phase, _ = self.current()
        grid = self.sample(self.latents(self.hparams.grid_size**2, self.hparams.seed), phase.level)
        save_grid(grid, out_dir / f"samples_{stage}.png", scale=max(1, 64 // phase.resolution))
        write_json_atomic(out_dir / f"swd_{stage}.json", self.test_results)

    # -- optimisers and checkpoints ---------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """G's optimizer, then D's (the order ``self.optimizers()`` returns them in): one factory,
        two states, since the networks step in turn on losses of their own."""
        return [
            self.optimizer_factory(params=list(part.parameters()))
            for part in (self.net.generator, self.net.discriminator)
        ]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The net's sizes (the base's) and the progress (images seen, phase), for resume, and
        the generator's current level and fade-in alpha, at which ``predict.py`` and ``export.py``
        run it (without the phase lengths of the config); the EMA generator is a submodule, saved
        in the state dict."""
        super().on_save_checkpoint(checkpoint)
        phase, alpha = self.current()
        checkpoint["pggan_progress"] = {
            "level": phase.level,
            "alpha": alpha,
            "images_seen": self.images_seen,
            "phase_index": self.phase_index,
            "phases_done": self.phases_done,
            "phase_rows": list(self.phase_rows),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        progress = checkpoint["pggan_progress"]
        self.images_seen = int(progress["images_seen"])
        self.phase_index = int(progress["phase_index"])
        self.phases_done = int(progress["phases_done"])
        self.phase_rows = list(progress["phase_rows"])

    def net_sizes(self) -> dict[str, int]:
        """The arguments that rebuild the net (:func:`kbaselines.kface.pggan.pggan`)."""
        net = self.net
        return {
            "resolution": net.resolution,
            "latent_size": net.latent_size,
            "channels": net.channels,
            "fmap_base": net.fmap_base,
            "fmap_max": net.fmap_max,
            "mbstd_group_size": net.mbstd_group_size,
        }
