"""The pose task on the core contract: the data's joints as its info, the net's size kept."""

from __future__ import annotations

import pytest
import torch

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.pose.datamodule import PoseDataModule
from kbaselines.pose.joints import JOINTS
from kbaselines.pose.simple_baseline import SimpleBaseline
from kbaselines.pose.task import PoseTask


def _task(num_joints: int = len(JOINTS), **settings: object) -> PoseTask:
    net = SimpleBaseline("resnet18", num_joints=num_joints, deconv_channels=(8, 8, 8))
    return PoseTask(net, optimizer=lambda params: torch.optim.Adam(params), **settings)


def test_the_task_takes_the_datas_joints_and_keeps_the_nets_size() -> None:
    info = PoseDataModule().info
    task = _task(info=info)
    assert task.pose_info is info
    assert task.net_sizes() == {"num_joints": len(JOINTS)}
    checkpoint: dict = {}
    task.on_save_checkpoint(checkpoint)
    assert checkpoint["net_sizes"] == {"num_joints": len(JOINTS)}
    assert task.hparams.flip_test and "info" not in task.hparams


def test_joints_that_do_not_fit_are_refused() -> None:
    with pytest.raises(TypeError, match="PoseInfo"):
        _task(info=DataInfo(class_names=("person",)))
    with pytest.raises(ValueError, match="num_joints=17"):
        _task(17, info=PoseDataModule().info)
    # a task built without the data's joints (a config check) says so when it needs them
    with pytest.raises(TypeError, match=r"info=datamodule\.info"):
        _task().pose_info  # noqa: B018
