"""Task-aligned assignment on hand-made cases."""

import pytest
import torch

from kbaselines.xray.yolo.assigner import TaskAlignedAssigner

# small tensors: one torch thread (see tests/conftest.py one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")

# a 4x4 grid of points at stride 10: centres 5, 15, 25, 35 in x and y (row-major)
XS = torch.tensor([5.0, 15.0, 25.0, 35.0])
POINTS = torch.stack(torch.meshgrid(XS, XS, indexing="xy"), -1).reshape(-1, 2)


def _index(x: float, y: float) -> int:
    return int(((POINTS - torch.tensor([x, y])).abs().sum(1) == 0).nonzero())


def test_no_objects_gives_background_everywhere():
    assigner = TaskAlignedAssigner(topk=3)
    out = assigner(
        torch.rand(16, 2),
        torch.rand(16, 4),
        POINTS,
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.long),
    )
    assert not out.foreground.any() and out.scores.sum() == 0


def test_topk_points_inside_the_box_ranked_by_score_and_iou():
    gt = torch.tensor([[0.0, 0.0, 20.0, 20.0]])  # contains the points (5,5) (15,5) (5,15) (15,15)
    pred_boxes = gt.repeat(16, 1)  # every prediction is a perfect box: IoU 1 inside
    pred_scores = torch.full((16, 2), 0.1)
    pred_scores[_index(15, 15), 1] = 0.9  # the right class, best score
    pred_scores[_index(5, 5), 1] = 0.4
    pred_scores[_index(35, 35), 1] = 1.0  # outside the box: never a candidate
    out = TaskAlignedAssigner(topk=2, alpha=1.0, beta=1.0)(
        pred_scores, pred_boxes, POINTS, gt, torch.tensor([1])
    )
    assert out.foreground.nonzero().squeeze(1).tolist() == sorted([_index(5, 5), _index(15, 15)])
    # soft targets: metric / best metric * best IoU (1.0) on the object's class only
    assert out.scores[_index(15, 15)].tolist() == [0.0, 1.0]
    torch.testing.assert_close(out.scores[_index(5, 5)], torch.tensor([0.0, 0.4 / 0.9]))
    torch.testing.assert_close(out.boxes[_index(5, 5)], gt[0])


def test_target_score_is_scaled_to_the_best_iou_of_the_object():
    gt = torch.tensor([[0.0, 0.0, 20.0, 20.0]])
    pred_boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0]]).repeat(16, 1)  # IoU 0.5 everywhere
    pred_scores = torch.full((16, 1), 0.5)
    out = TaskAlignedAssigner(topk=1, alpha=1.0, beta=1.0)(
        pred_scores, pred_boxes, POINTS, gt, torch.tensor([0])
    )
    assert out.foreground.sum() == 1
    torch.testing.assert_close(out.scores[out.foreground], torch.tensor([[0.5]]))


def test_a_point_claimed_by_two_objects_keeps_the_one_it_overlaps_most():
    big = [0.0, 0.0, 40.0, 40.0]
    small = [10.0, 10.0, 20.0, 20.0]  # only the point (15, 15) is inside it
    gt = torch.tensor([big, small])
    pred_boxes = torch.tensor([big]).repeat(16, 1)
    pred_boxes[_index(15, 15)] = torch.tensor([10.0, 10.0, 20.0, 22.0])  # overlaps `small` most
    pred_scores = torch.full((16, 2), 0.5)
    out = TaskAlignedAssigner(topk=16, alpha=1.0, beta=1.0)(
        pred_scores, pred_boxes, POINTS, gt, torch.tensor([0, 1])
    )
    assert out.foreground.all()
    assert out.gt_index[_index(15, 15)] == 1
    assert (out.gt_index == 0).sum() == 15
    torch.testing.assert_close(out.boxes[_index(15, 15)], gt[1])
    # class of the small object (1) on its point, class 0 elsewhere
    assert out.scores[_index(15, 15), 0] == 0 and out.scores[_index(15, 15), 1] > 0
    assert (out.scores[out.gt_index == 0, 1] == 0).all()


def test_points_on_the_box_border_are_outside():
    gt = torch.tensor([[5.0, 5.0, 15.0, 15.0]])  # points (5,5) and (15,15) lie on its corners
    out = TaskAlignedAssigner(topk=16)(
        torch.full((16, 1), 0.5), gt.repeat(16, 1), POINTS, gt, torch.tensor([0])
    )
    assert not out.foreground.any()
