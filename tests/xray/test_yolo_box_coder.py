"""Anchor points and the point-box coding: hand-computed points, encode/decode round trip."""

import pytest
import torch

from kbaselines.xray.yolo.box_coder import PointBoxCoder, make_anchor_points


def test_anchor_points_are_cell_centres_level_by_level():
    points, strides = make_anchor_points([(2, 3), (1, 1)], [8, 16])
    assert points.shape == (7, 2) and strides.shape == (7, 1)
    # row-major: x runs fastest
    assert points[:4].tolist() == [[4, 4], [12, 4], [20, 4], [4, 12]]
    assert points[6].tolist() == [8, 8]
    assert strides.squeeze(1).tolist() == [8] * 6 + [16]


def test_anchor_points_reject_mismatched_levels():
    with pytest.raises(ValueError, match="strides"):
        make_anchor_points([(2, 2)], [8, 16])


def test_encode_hand_computed():
    coder = PointBoxCoder(reg_max=16)
    points = torch.tensor([[20.0, 20.0]])
    box = torch.tensor([[4.0, 12.0, 36.0, 28.0]])
    assert coder.encode(points, torch.tensor([[8.0]]), box).tolist() == [[2.0, 1.0, 2.0, 1.0]]


def test_encode_decode_round_trip():
    coder = PointBoxCoder(reg_max=16)
    generator = torch.Generator().manual_seed(0)
    points, strides = make_anchor_points([(8, 8), (4, 4), (2, 2)], [8, 16, 32])
    distances = torch.rand(len(points), 4, generator=generator) * 14  # inside 0..reg_max-1
    boxes = coder.decode(points, strides, distances)
    torch.testing.assert_close(coder.encode(points, strides, boxes), distances)
    torch.testing.assert_close(
        coder.decode(points, strides, coder.encode(points, strides, boxes)), boxes
    )


def test_encode_clamps_to_the_representable_range():
    coder = PointBoxCoder(reg_max=4, eps=0.01)
    points = torch.tensor([[50.0, 50.0]])
    far = torch.tensor([[0.0, 60.0, 100.0, 100.0]])  # left 50 px = 6.25 strides, top outside
    encoded = coder.encode(points, torch.tensor([[8.0]]), far)
    torch.testing.assert_close(encoded, torch.tensor([[2.99, 0.0, 2.99, 2.99]]))


def test_expectation_of_one_hot_bins_is_the_bin():
    coder = PointBoxCoder(reg_max=8)
    logits = torch.full((1, 4, 8), -1e4)
    for side, bin_ in enumerate([0, 3, 5, 7]):
        logits[0, side, bin_] = 1e4
    assert coder.expectation(logits.flatten(1)).tolist() == [[0.0, 3.0, 5.0, 7.0]]
    # equal logits: the mean bin
    assert coder.expectation(torch.zeros(1, 32)).tolist() == [[3.5] * 4]


def test_reg_max_below_two_is_refused():
    with pytest.raises(ValueError, match="reg_max"):
        PointBoxCoder(reg_max=1)
