"""Speed settings: channels-last weights, TF32 matmul precision, compile in place of the net."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from kbaselines.core.cluster.performance import PerformanceSettings
from kbaselines.core.task import BaseTask


class _Task(BaseTask):
    def __init__(self) -> None:
        super().__init__(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), torch.optim.SGD)


def test_channels_last_and_matmul_precision() -> None:
    task = _Task()
    before = torch.get_float32_matmul_precision()
    try:
        PerformanceSettings(channels_last=True, float32_matmul_precision="high").setup(
            None, task, "fit"
        )
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)
    weight = task.net[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()


def test_compile_keeps_the_state_dict_keys() -> None:
    task = _Task()
    keys = list(task.state_dict())
    PerformanceSettings(compile=True).setup(None, task, "fit")
    assert list(task.state_dict()) == keys  # checkpoints load with and without compile


def test_compile_needs_a_net() -> None:
    with pytest.raises(TypeError, match="compile=false"):
        PerformanceSettings(compile=True).setup(None, pl.LightningModule(), "fit")
