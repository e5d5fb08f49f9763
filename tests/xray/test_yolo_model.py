"""The YOLO detector: torchvision's detection contract for every size, and its input checks."""

import pytest
import torch

from kbaselines.xray.yolo import YOLO, yolo_m, yolo_n, yolo_s

# small tensors: one torch thread (see tests/conftest.py one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


def _targets():
    return [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 30.0]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
    ]


@pytest.mark.parametrize(
    ("builder", "num_params"),
    [(yolo_n, 2_526_104), (yolo_s, 8_850_176), (yolo_m, 26_275_944)],
)
def test_every_size_trains_and_detects_in_original_pixels(builder, num_params):
    torch.manual_seed(0)
    net = builder(num_classes=80, image_size=64)
    # parameter counts for 80 classes (COCO), as the README lists them
    assert sum(p.numel() for p in net.parameters()) == num_params
    images = [torch.rand(3, 48, 80), torch.rand(3, 70, 50)]
    net.train()
    losses = net(images, _targets())
    assert set(losses) == {"loss_cls", "loss_box", "loss_dfl"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    net.eval()
    with torch.no_grad():
        detections = net(images)
    for det, image in zip(detections, images, strict=True):
        assert set(det) == {"boxes", "labels", "scores"}
        assert det["boxes"].shape[1] == 4 and len(det["labels"]) == len(det["scores"])
        assert det["labels"].dtype == torch.int64 and det["labels"].min() >= 1
        assert det["labels"].max() <= 80 and len(det["boxes"]) <= 300
        height, width = image.shape[1:]
        assert det["boxes"][:, 2].max() <= width and det["boxes"][:, 3].max() <= height


def test_forward_features_gives_the_neck_maps():
    net = yolo_n(num_classes=2, image_size=64)
    maps = net.forward_features(torch.rand(1, 3, 64, 64))
    assert [tuple(m.shape[-2:]) for m in maps] == [(8, 8), (4, 4), (2, 2)]


def test_bad_inputs_are_refused_with_a_reason():
    net = yolo_n(num_classes=2, image_size=64)
    images = [torch.rand(3, 32, 32)]
    with pytest.raises(ValueError, match="targets are required"):
        net(images)
    with pytest.raises(ValueError, match=r"target 0: labels must lie in 1\.\.2"):
        net(images, [{"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]]), "labels": torch.tensor([0])}])
    with pytest.raises(ValueError, match="x2 > x1"):
        net(images, [{"boxes": torch.tensor([[5.0, 1.0, 5.0, 5.0]]), "labels": torch.tensor([1])}])
    with pytest.raises(ValueError, match="num_classes"):
        YOLO(num_classes=None)
