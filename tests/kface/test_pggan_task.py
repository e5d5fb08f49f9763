"""The PGGAN task: phase schedule, gradient penalty, EMA decay, real-image blending, optimizers,
resume."""

from __future__ import annotations

import math
from functools import partial

import hydra
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from kbaselines.core.config import compose_config
from kbaselines.core.data.datamodule import FoldDataModule
from kbaselines.kface.generation import GenerationTask, PhaseSchedule, ema_beta, gradient_penalty
from kbaselines.kface.pggan import pggan

#: The paper's optimizer (Karras et al. 2018, appendix A.1), as model/pggan.yaml must give it.
PAPER_ADAM = partial(torch.optim.Adam, lr=0.001, betas=(0.0, 0.99), eps=1e-8)


def test_schedule_counts_phases_in_images_with_linear_alpha() -> None:
    schedule = PhaseSchedule(num_levels=3, fade_kimg=1.0, stab_kimg=2.0)
    kinds = [(p.resolution, p.kind, p.length) for p in schedule.phases]
    assert kinds == [
        (4, "stab", 2000),
        (8, "fade", 1000),
        (8, "stab", 2000),
        (16, "fade", 1000),
        (16, "stab", 2000),
    ]
    assert schedule.total == 8000
    assert schedule.at(0) == (schedule.phases[0], 1.0)
    phase, alpha = schedule.at(2250)
    assert phase.index == 1 and alpha == pytest.approx(0.25)
    assert schedule.at(3000) == (schedule.phases[2], 1.0)
    assert schedule.at(5500)[1] == pytest.approx(0.5)
    assert schedule.at(10**9)[0] == schedule.phases[-1]
    longer = PhaseSchedule(num_levels=2, fade_kimg=1.0, stab_kimg=1.0, final_kimg=5.0)
    assert longer.phases[-1].length == 5000


def test_gradient_penalty_on_a_linear_critic() -> None:
    # D(x) = sum(w * x): the gradient is w everywhere, so the penalty is (||w|| - 1)^2
    w = torch.full((1, 1, 2, 2), 1.5)  # ||w|| = 3

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(dim=1, keepdim=True)

    real, fake = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    penalty = gradient_penalty(critic, real, fake, torch.tensor([0.0, 0.5, 1.0]))
    assert penalty.item() == pytest.approx((3.0 - 1.0) ** 2)

    # D(x) = ||x||^2 / 2: gradient x_hat, at x_hat = mix * fake with ||fake|| = 2 -> (2 mix - 1)^2
    def quadratic(x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).flatten(1).sum(dim=1, keepdim=True) / 2

    mix = torch.tensor([0.0, 0.25, 1.0])
    expected = ((2 * mix - 1) ** 2).mean()
    assert gradient_penalty(quadratic, real, fake, mix).item() == pytest.approx(expected.item())


def test_ema_half_life_and_ramp_up() -> None:
    # without ramp-up: the old average's weight halves over half_life images
    beta = ema_beta(batch=16, images_seen=10**6, half_life_kimg=10.0, rampup=None)
    assert beta ** (10_000 / 16) == pytest.approx(0.5)
    # ramp-up: early on the half-life is ramp x images seen (here 0.05 x 1000 = 50 images)
    early = ema_beta(batch=16, images_seen=1000, half_life_kimg=10.0, rampup=0.05)
    assert early == pytest.approx(0.5 ** (16 / 50))
    # a per-step 0.999 keeps a third of the start after 1000 steps; the half-life forgets it
    assert math.isclose(0.999**1000, math.exp(-1), rel_tol=1e-3)


def _task(**kwargs) -> GenerationTask:
    torch.manual_seed(0)
    net = pggan(resolution=8, latent_size=16, fmap_max=16)
    settings = {"fade_kimg": 0.064, "stab_kimg": 0.064, "metric_images": 16, "grid_size": 2}
    return GenerationTask(net, PAPER_ADAM, resolution=8, **{**settings, **kwargs})


def test_real_images_are_pooled_and_blended_like_the_fade_in() -> None:
    task = _task()
    images = torch.rand(2, 3, 8, 8)
    x = images * 2 - 1
    assert torch.allclose(task.real_at(images, level=1, alpha=1.0), x)
    low = torch.nn.functional.avg_pool2d(x, 2)
    assert torch.allclose(task.real_at(images, level=0, alpha=1.0), low)
    at0 = task.real_at(images, level=1, alpha=0.0)
    assert torch.allclose(at0, low.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


def test_net_and_resolution_must_agree() -> None:
    with pytest.raises(ValueError, match=r"model\.resolution"):
        GenerationTask(pggan(resolution=8, latent_size=16, fmap_max=16), PAPER_ADAM, resolution=16)


def test_config_gives_g_and_d_the_paper_adam(tmp_path) -> None:
    cfg = compose_config(
        ["+experiment=kface_pggan", "model.resolution=8", f"paths.data_dir={tmp_path}"]
    )
    task = hydra.utils.instantiate(cfg.model)
    expected = PAPER_ADAM([torch.nn.Parameter(torch.zeros(1))]).defaults
    built = task.configure_optimizers()
    parts = [task.net.generator, task.net.discriminator]
    assert len(built) == len(parts)
    for optimizer, part in zip(built, parts, strict=True):
        assert type(optimizer) is torch.optim.Adam and optimizer.defaults == expected
        (group,) = optimizer.param_groups
        assert list(map(id, group["params"])) == list(map(id, part.parameters()))


class _Faces(Dataset):
    def __init__(self, n: int = 64) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, 8, 8, generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index]}


class _Data(FoldDataModule):
    def __init__(self) -> None:
        super().__init__(
            root=None,
            batch_size=8,
            eval_batch_size=None,
            num_workers=0,
            pin_memory=False,
            persistent_workers=False,
            seed=0,
            split={"train": [f"{i}" for i in range(64)], "test": [f"{i}" for i in range(64, 80)]},
            synthetic=None,
        )
        self.datasets = {"train": _Faces(), "test": _Faces(16)}


def _trainer(folder, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
        **kwargs,
    )


def test_resume_in_the_middle_of_a_phase_restores_everything(tmp_path, one_thread) -> None:
    task = _task()
    # 10 steps of 8 images: 80 images, in the fade-in of 8x8 (64 .. 128)
    trainer = _trainer(tmp_path, max_steps=20, enable_checkpointing=False)
    trainer.fit(task, datamodule=_Data())
    assert task.images_seen == 80
    phase, alpha = task.current()
    assert phase.fade and phase.resolution == 8 and alpha == pytest.approx(16 / 64)
    ckpt = tmp_path / "mid.ckpt"
    trainer.save_checkpoint(ckpt)
    (tmp_path / "phase_metrics.csv").unlink()  # written at the end of the 4x4 phase

    resumed = _task()
    loader = _trainer(tmp_path, max_steps=20, enable_checkpointing=False)
    loader.fit(resumed, datamodule=_Data(), ckpt_path=ckpt)  # restores, already at max_steps
    assert resumed.images_seen == 80 and resumed.phase_index == task.phase_index
    assert resumed.current() == (phase, alpha)
    for name, value in task.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    for before, after in zip(trainer.optimizers, loader.optimizers, strict=True):
        old, new = before.state_dict()["state"], after.state_dict()["state"]
        assert old.keys() == new.keys() and old
        for key in old:
            assert torch.equal(old[key]["exp_avg"], new[key]["exp_avg"])
            assert torch.equal(old[key]["step"], new[key]["step"])
    # training on from the checkpoint reaches the end of the schedule: 64 * 3 images
    more = _trainer(tmp_path, max_epochs=100, enable_checkpointing=False)
    more.fit(resumed, datamodule=_Data(), ckpt_path=ckpt)
    assert resumed.images_seen == resumed.schedule.total == 192
    rows = (tmp_path / "phase_metrics.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in rows[1:]] == [["1", "8", "fade"], ["2", "8", "stab"]]


def test_optimiser_state_is_reset_when_a_block_fades_in(tmp_path, one_thread) -> None:
    task = _task()
    # manual optimisation counts both optimisers' steps: 16 = 8 chunks of 8 = the 4x4 phase
    trainer = _trainer(tmp_path, max_steps=16, enable_checkpointing=False)
    trainer.fit(task, datamodule=_Data())
    assert {int(s["step"]) for s in trainer.optimizers[0].state.values()} == {8}
    trainer.save_checkpoint(tmp_path / "end_of_4x4.ckpt")
    more = _trainer(tmp_path, max_steps=18, enable_checkpointing=False)
    more.fit(_task(), datamodule=_Data(), ckpt_path=tmp_path / "end_of_4x4.ckpt")
    # one step into the 8x8 fade-in: every Adam state started afresh
    assert {int(s["step"]) for s in more.optimizers[0].state.values()} == {1}
    assert {int(s["step"]) for s in more.optimizers[1].state.values()} == {1}


def test_test_metrics_and_outputs(tmp_path, one_thread) -> None:
    task = _task()
    trainer = _trainer(tmp_path, max_epochs=100, enable_checkpointing=False)
    data = _Data()
    trainer.fit(task, datamodule=data)
    (result,) = trainer.test(task, datamodule=data)
    assert {"test/swd", "test/swd_16", "test/ms_ssim"} <= set(result)
    assert result["test/swd"] > 0 and 0 < result["test/ms_ssim"] <= 1
    task.write_test_outputs(tmp_path, "test")
    assert (tmp_path / "samples_test.png").is_file() and (tmp_path / "swd_test.json").is_file()
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["phase00_4px_stab.png", "phase01_8px_fade.png", "phase02_8px_stab.png"]
    assert (tmp_path / "phase_metrics.png").is_file()
