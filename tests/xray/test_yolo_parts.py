"""Backbone, neck and head: shapes and hand-offs between the stages; the backbone's choices."""

import math

import pytest
import torch

from kbaselines.xray.yolo.backbone import Backbone, cs3darknet_overrides
from kbaselines.xray.yolo.head import DecoupledHead
from kbaselines.xray.yolo.neck import PAN, C2f

# small tensors: one torch thread (see tests/conftest.py one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_nano_backbone_scales_timm_cs3darknet():
    overrides = cs3darknet_overrides(0.25, 0.33)
    assert overrides["stem"].out_chs == (8, 16)
    assert overrides["stages"].out_chs == (32, 64, 128, 256)
    assert overrides["stages"].depth == (1, 2, 3, 1)  # every stage keeps a block
    backbone = Backbone("cs3darknet_s", width_multiplier=0.25, depth_multiplier=0.33)
    assert backbone.out_channels == (64, 128, 256)
    maps = backbone(torch.rand(1, 3, 64, 96))
    assert [tuple(m.shape[-2:]) for m in maps] == [(8, 12), (4, 6), (2, 3)]


@pytest.mark.parametrize("name", ["resnet18", "cspdarknet53"])
def test_other_timm_families_are_cut_at_strides_8_16_32(name):
    backbone = Backbone(name)
    maps = backbone(torch.rand(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps] == [8, 4, 2]
    assert [m.shape[1] for m in maps] == list(backbone.out_channels)


def test_backbone_rejects_bad_multipliers():
    with pytest.raises(ValueError, match="cs3darknet family"):
        Backbone("resnet18", width_multiplier=0.5, depth_multiplier=0.5)
    with pytest.raises(ValueError, match="both"):
        Backbone("cs3darknet_s", width_multiplier=0.5)


def test_c2f_and_pan_shapes():
    assert C2f(8, 16, depth=2)(torch.rand(2, 8, 5, 5)).shape == (2, 16, 5, 5)
    pan = PAN((16, 32, 64), out_channels=(8, 16, 24))
    outs = pan([torch.rand(2, 16, 8, 8), torch.rand(2, 32, 4, 4), torch.rand(2, 64, 2, 2)])
    assert [tuple(o.shape) for o in outs] == [(2, 8, 8, 8), (2, 16, 4, 4), (2, 24, 2, 2)]
    with pytest.raises(ValueError, match="three"):
        PAN((16, 32))


def test_head_flattens_levels_and_sets_the_class_prior():
    head = DecoupledHead((8, 16, 24), num_classes=3, reg_max=4, image_size=64)
    out = head([torch.rand(2, 8, 8, 8), torch.rand(2, 16, 4, 4), torch.rand(2, 24, 2, 2)])
    assert out.sizes == [(8, 8), (4, 4), (2, 2)]
    assert out.cls_logits.shape == (2, 84, 3) and out.box_logits.shape == (2, 84, 16)
    # YOLOv8's prior: 5 objects per image over the (64 / 8)^2 cells and 3 classes
    bias = head.cls_branches[0][-1].bias
    prior = 5 / 3 / 64
    torch.testing.assert_close(bias, torch.full((3,), math.log(prior / (1 - prior))))
    with pytest.raises(ValueError, match="num_classes"):
        DecoupledHead((8, 16, 24), num_classes=0)
