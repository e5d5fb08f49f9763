"""The builders hand the data's facts to the task as they are (typed, not as a config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from torch import nn

from kbaselines.core.builders import build_datamodule, build_task
from kbaselines.core.data.datamodule import DataInfo, FoldDataModule
from kbaselines.core.task import BaseTask


@dataclass(frozen=True)
class _Info(DataInfo):
    size: tuple[int, int] = (3, 4)


class _Data(FoldDataModule):
    def __init__(self, root: str | None = None, split: dict | None = None) -> None:
        super().__init__(
            root=root,
            batch_size=2,
            eval_batch_size=None,
            num_workers=0,
            pin_memory=False,
            persistent_workers=False,
            seed=0,
            split=split,
            synthetic=None,
        )

    @property
    def info(self) -> _Info:
        return _Info(class_names=("a", "b", "c"))


class _NetModule(nn.Module):
    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes


class _Task(BaseTask):
    pass


MODEL = {
    "_target_": f"{__name__}._Task",
    "net": {"_target_": f"{__name__}._NetModule", "num_classes": None},
    "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
}


def test_the_task_gets_the_data_info_object_and_its_class_count(tmp_path: Path) -> None:
    datamodule = build_datamodule(OmegaConf.create({"_target_": f"{__name__}._Data"}), split=None)
    cfg = OmegaConf.create(MODEL)
    task = build_task(cfg, datamodule)
    assert isinstance(task.info, _Info) and task.info.size == (3, 4)
    assert task.net.num_classes == 3
    assert build_task(cfg, datamodule, net_sizes={"num_classes": 7}).net.num_classes == 7


def test_builders_refuse_objects_outside_the_contract() -> None:
    with pytest.raises(TypeError, match="FoldDataModule"):
        build_datamodule(OmegaConf.create({"_target_": "torch.nn.Identity"}))
    datamodule = _Data()
    cfg = OmegaConf.create({"_target_": "torch.nn.Identity"})
    with pytest.raises(TypeError):
        build_task(cfg, datamodule)
