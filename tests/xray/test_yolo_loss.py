"""Loss values: DFL, the three YOLO losses on hand-made predictions, and a gradient check."""

import math

import pytest
import torch

from kbaselines.xray.yolo.assigner import TaskAlignedAssigner
from kbaselines.xray.yolo.box_coder import PointBoxCoder, make_anchor_points
from kbaselines.xray.yolo.loss import YOLOLoss, distribution_focal_loss

# small tensors: one torch thread (see tests/conftest.py one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_dfl_hand_computed():
    reg_max = 4
    logits = torch.zeros(1, 4, reg_max)  # uniform: every bin log-probability is -log 4
    target = torch.tensor([[1.0, 1.25, 2.5, 0.0]])
    assert distribution_focal_loss(logits, target).item() == pytest.approx(math.log(4))
    # a sharp distribution on the right bin: near zero for integer targets
    sharp = torch.full((1, 4, reg_max), -20.0)
    sharp[0, torch.arange(4), torch.tensor([1, 2, 0, 2])] = 20.0
    assert distribution_focal_loss(sharp, torch.tensor([[1.0, 2.0, 0.0, 2.0]])).item() < 1e-6


def _setup(reg_max: int = 4):
    coder = PointBoxCoder(reg_max)
    points, strides = make_anchor_points([(4, 4)], [10])
    return coder, points, strides


def _logits_for(coder: PointBoxCoder, distances: torch.Tensor) -> torch.Tensor:
    """Box logits whose expectation is exactly the integer ``distances`` [A, 4]."""
    logits = torch.full((*distances.shape, coder.reg_max), -30.0)
    logits.scatter_(-1, distances.long()[..., None], 30.0)
    return logits.flatten(-2)


def test_perfect_predictions_give_zero_box_and_dfl_losses():
    coder, points, strides = _setup()
    # every point predicts the box 1 stride on each side of itself
    distances = torch.ones(16, 4)
    box_logits = _logits_for(coder, distances)[None]
    gt = coder.decode(points[5:6], strides[5:6], distances[:1])  # the box of point 5
    cls_logits = torch.zeros(1, 16, 1)
    loss = YOLOLoss(coder, TaskAlignedAssigner(topk=1, alpha=1.0, beta=1.0))(
        cls_logits, box_logits, points, strides, [{"boxes": gt, "labels": torch.tensor([1])}]
    )
    assert loss["loss_box"].item() == pytest.approx(0.0, abs=1e-5)
    assert loss["loss_dfl"].item() == pytest.approx(0.0, abs=1e-5)
    # BCE at logit 0 is log 2 whatever the target; point 5 is the one positive (target 1)
    assert loss["loss_cls"].item() == pytest.approx(16 * math.log(2) * 0.5, rel=1e-5)


def test_box_loss_is_ciou_of_the_positive_weighted_and_normalised():
    coder, points, strides = _setup(reg_max=8)
    box_logits = _logits_for(coder, torch.full((16, 4), 2.0))[None]  # 40x40 boxes around points
    gt = torch.tensor([[5.0, 5.0, 45.0, 25.0]])  # 40x20 at point (25, 15)
    loss = YOLOLoss(
        coder, TaskAlignedAssigner(topk=1, alpha=1.0, beta=1.0), dfl_weight=0.0, box_weight=1.0
    )(
        torch.zeros(1, 16, 1),
        box_logits,
        points,
        strides,
        [{"boxes": gt, "labels": torch.tensor([1])}],
    )
    # IoU 0.5, same centre; CIoU adds the aspect term v = 4/pi^2 (atan 2 - atan 1)^2 times alpha
    v = 4 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    alpha = v / (1 - 0.5 + v)
    # weighted by the point's target score (its IoU, 0.5) over max(sum of target scores, 1) = 1
    assert loss["loss_box"].item() == pytest.approx(0.5 * (1 - 0.5 + alpha * v), rel=1e-4)
    assert loss["loss_dfl"].item() == 0.0


def test_image_without_objects_has_only_background_classification():
    coder, points, strides = _setup()
    cls_logits = torch.zeros(1, 16, 3, requires_grad=True)
    box_logits = torch.zeros(1, 16, 16, requires_grad=True)
    target = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    loss = YOLOLoss(coder)(cls_logits, box_logits, points, strides, [target])
    assert loss["loss_box"].item() == 0 and loss["loss_dfl"].item() == 0
    # 48 logits of 0 against target 0, normalised by max(sum of targets, 1) = 1
    assert loss["loss_cls"].item() == pytest.approx(48 * math.log(2) * 0.5, rel=1e-5)
    sum(loss.values()).backward()
    assert box_logits.grad is not None


def test_unknown_box_loss_is_refused():
    with pytest.raises(ValueError, match="box_loss"):
        YOLOLoss(PointBoxCoder(), box_loss="diou")
