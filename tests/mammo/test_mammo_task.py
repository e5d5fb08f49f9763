"""The mammography task on the core contract: built with the DataModule's info, typed access to
its MammoDataModule (training stage), and the checkpoint's additions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kbaselines.core.builders import build_datamodule, build_task
from kbaselines.core.config import compose_config
from kbaselines.core.data.datamodule import FoldDataModule
from kbaselines.mammo.datamodule import MammoDataModule
from kbaselines.mammo.task import MammoTask


@pytest.fixture(scope="module")
def built() -> tuple[MammoTask, MammoDataModule]:
    """The quick job's task and DataModule, built as the CV loop builds them (no data is read)."""
    cfg = compose_config(["+experiment=mammo_resnet34_maps_synthetic"])
    datamodule = build_datamodule(cfg.data)
    task = build_task(cfg.model, datamodule)
    assert isinstance(task, MammoTask) and isinstance(datamodule, MammoDataModule)
    return task, datamodule


def test_task_gets_the_two_maps_as_classes(built: tuple[MammoTask, MammoDataModule]) -> None:
    task, datamodule = built
    assert datamodule.info.class_names == ("cancer", "benign")
    assert task.info == datamodule.info and task.info.num_classes == 2
    assert "info" not in task.hparams and task.hparams.stage2_lr_scale == 0.1
    checkpoint: dict = {}
    task.on_save_checkpoint(checkpoint)
    assert checkpoint == {
        "net_sizes": {},
        "data_info": {"class_names": ("cancer", "benign")},
        "operating_point": None,
        "stage2_started": False,
    }


def test_learning_rates_scale_once_when_stage_2_starts(
    built: tuple[MammoTask, MammoDataModule],
) -> None:
    task, datamodule = built
    optimizer = task.configure_optimizers()["optimizer"]
    lr = optimizer.param_groups[0]["lr"]
    patch_epochs = datamodule.stage1_epochs
    trainer = SimpleNamespace(
        current_epoch=patch_epochs - 1, optimizers=[optimizer], datamodule=datamodule
    )
    task.trainer = datamodule.trainer = trainer  # the last patch epoch
    try:
        task.on_train_epoch_start()
        assert optimizer.param_groups[0]["lr"] == lr
        for epoch in (patch_epochs, patch_epochs + 1):  # stage 2: scaled at its first epoch only
            trainer.current_epoch = epoch
            task.on_train_epoch_start()
            assert optimizer.param_groups[0]["lr"] == pytest.approx(lr * 0.1)
    finally:
        task.trainer = datamodule.trainer = None
        task._stage2_started = False


def test_task_refuses_another_datamodule(built: tuple[MammoTask, MammoDataModule]) -> None:
    task, _ = built
    other = FoldDataModule(
        root=None,
        batch_size=1,
        eval_batch_size=None,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        seed=0,
        split=None,
        synthetic=None,
    )
    task.trainer = SimpleNamespace(datamodule=other)
    try:
        with pytest.raises(TypeError, match="needs a MammoDataModule"):
            task.on_train_epoch_start()
    finally:
        task.trainer = None
