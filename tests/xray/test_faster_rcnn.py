"""Faster R-CNN builders: the detection interface, sizes from the config, and one batch fitted.

ResNet-50-FPN v2 and MobileNetV3-FPN are too slow to learn from scratch on a CPU in a test: they
get a forward/backward and a loss-decreases check on one small batch instead.
"""

from __future__ import annotations

import pytest
import torch

from kbaselines.xray.faster_rcnn import (
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn_v2,
    fasterrcnn_small,
)

SIZE = 64  # the smallest input the ResNet-50 step stays affordable at on a CPU


def _batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, SIZE, SIZE, generator=generator) * 0.2 + 0.7 for _ in range(2)]
    images[0][:, 10:30, 15:45] = 0.2
    images[1][:, 35:55, 5:25] = 0.1
    targets = [
        {"boxes": torch.tensor([[15.0, 10, 45, 30]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[5.0, 35, 25, 55]]), "labels": torch.tensor([2])},
    ]
    return images, targets


@pytest.mark.parametrize(
    "builder", [fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn_v2, fasterrcnn_small]
)
def test_forward_backward_and_loss_decreases(builder) -> None:
    torch.manual_seed(0)
    net = builder(num_classes=3, min_size=SIZE, max_size=SIZE)
    assert net.num_classes == 3 and net.roi_heads.box_predictor.cls_score.out_features == 4
    assert net.transform.min_size == (SIZE,) and net.transform.max_size == SIZE
    images, targets = _batch()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-4)
    net.train()
    losses = []
    for _ in range(4):
        loss_dict = net(images, targets)
        assert set(loss_dict) == {
            "loss_classifier",
            "loss_box_reg",
            "loss_objectness",
            "loss_rpn_box_reg",
        }
        loss = sum(loss_dict.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0], losses
    net.eval()
    with torch.no_grad():
        detections = net(images)
    assert len(detections) == 2 and set(detections[0]) == {"boxes", "labels", "scores"}
    assert detections[0]["boxes"].shape[1] == 4
    assert ((detections[0]["labels"] >= 1) & (detections[0]["labels"] <= 3)).all()


def test_small_variant_settings() -> None:
    net = fasterrcnn_small(5, backbone_kwargs={"channels": [32, 64, 128, 256]}, fpn_channels=32)
    assert net.backbone.out_channels == 32 and net.backbone.strides == (8, 16, 32)
    assert sum(p.numel() for p in net.parameters()) < 4_000_000
    with pytest.raises(ValueError, match="anchor_sizes needs 4 sizes"):
        fasterrcnn_small(5, anchor_sizes=(32, 64))
