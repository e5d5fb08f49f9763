"""The Simple Baseline nets: the timm-style contract, output stride, and the paper's sizes."""

from __future__ import annotations

import pytest
import torch

from kbaselines.core.config import compose_config
from kbaselines.pose.simple_baseline import (
    SimpleBaseline,
    simple_baseline_resnet18,
    simple_baseline_resnet50,
    simple_baseline_resnet101,
    simple_baseline_resnet152,
)


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("builder", "millions"),
    [
        (simple_baseline_resnet50, 34.0),
        (simple_baseline_resnet101, 53.0),
        (simple_baseline_resnet152, 68.6),
    ],
)
def test_parameter_counts_match_the_paper(builder, millions: float) -> None:
    assert _count(builder()) / 1e6 == pytest.approx(millions, rel=0.01)


def test_contract_and_heatmaps_at_a_quarter(one_thread) -> None:
    net = simple_baseline_resnet18(deconv_channels=(32, 32, 32), feature_stage=None).eval()
    x = torch.zeros(2, 3, 64, 96)
    features = net.forward_features(x)
    assert features.shape == (2, 512, 2, 3)
    assert net.forward_head(features, pre_logits=True).shape == (2, 32, 16, 24)
    assert net(x).shape == (2, 16, 16, 24) and net.stride == 4
    assert net.get_classifier() is net.final
    net.reset_classifier(17)
    assert net(x).shape[1] == 17 and net.num_joints == 17
    assert [f["reduction"] for f in net.feature_info] == [32, 4]


def test_light_variant_keeps_a_finer_feature_map(one_thread) -> None:
    net = simple_baseline_resnet18().eval()
    x = torch.zeros(1, 3, 64, 64)
    assert net.forward_features(x).shape == (1, 256, 4, 4)
    assert net(x).shape == (1, 16, 16, 16) and net.stride == 4
    with pytest.raises(ValueError, match="deconvolutions on stride 16"):
        simple_baseline_resnet18(deconv_channels=(8,) * 5)


def test_deconvolutions_are_the_papers() -> None:
    head = simple_baseline_resnet50().head.layers
    deconvs = [m for m in head if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(d.out_channels, d.kernel_size, d.stride) for d in deconvs] == [
        (256, (4, 4), (2, 2))
    ] * 3
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in head) == 3


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="num_joints"):
        SimpleBaseline("resnet18", num_joints=0)


@pytest.mark.parametrize("experiment", ["pose_simple_baseline", "pose_simple_baseline_synthetic"])
def test_experiments_compose(experiment: str) -> None:
    cfg = compose_config([f"+experiment={experiment}"])
    assert cfg.callbacks.model_checkpoint.monitor == "val/pckh"
    assert cfg.optimized_metric == "test/pckh"
    assert cfg.model.net.num_joints == 16
