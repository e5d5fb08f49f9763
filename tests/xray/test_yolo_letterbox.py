"""Letterbox: placement, padding, and the box round trip."""

import pytest
import torch

from kbaselines.xray.yolo.letterbox import (
    PAD_VALUE,
    LetterboxTransform,
    boxes_from_letterbox,
    boxes_to_letterbox,
    letterbox,
)


def test_wide_image_is_scaled_and_padded_top_and_bottom():
    image = torch.ones(3, 100, 200)
    square, params = letterbox(image, 64)
    assert square.shape == (3, 64, 64)
    assert (params.scale_x, params.scale_y, params.pad_x, params.pad_y) == (0.32, 0.32, 0, 16)
    assert torch.all(square[:, :16] == PAD_VALUE) and torch.all(square[:, 48:] == PAD_VALUE)
    torch.testing.assert_close(square[:, 16:48], torch.ones(3, 32, 64))


def test_box_round_trip_and_hand_computed_mapping():
    _, params = letterbox(torch.zeros(3, 300, 150), 128)  # tall: scale 128/300, pad in x
    boxes = torch.tensor([[0.0, 0.0, 150.0, 300.0], [10.5, 20.25, 60.0, 290.0]])
    mapped = boxes_to_letterbox(boxes, params)
    new_w = round(150 * 128 / 300)
    assert params.pad_x == (128 - new_w) // 2 and params.pad_y == 0
    torch.testing.assert_close(
        mapped[0], torch.tensor([params.pad_x, 0.0, params.pad_x + new_w, 128.0])
    )
    torch.testing.assert_close(boxes_from_letterbox(mapped, params), boxes)


def test_boxes_from_letterbox_clip_to_the_original_image():
    _, params = letterbox(torch.zeros(3, 50, 100), 64)
    inside_padding = torch.tensor([[-5.0, 0.0, 70.0, 10.0]])
    out = boxes_from_letterbox(inside_padding, params)
    assert out.tolist() == [[0.0, 0.0, 100.0, 0.0]]


def test_transform_batches_any_sizes_and_maps_targets_back():
    transform = LetterboxTransform(64)
    images = [torch.rand(3, 40, 80), torch.rand(3, 64, 32)]
    targets = [
        {"boxes": torch.tensor([[4.0, 4.0, 20.0, 30.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[1.0, 2.0, 30.0, 60.0]]), "labels": torch.tensor([2])},
    ]
    batch, mapped, params = transform(images, targets)
    assert batch.shape == (2, 3, 64, 64)
    assert mapped[1]["labels"].tolist() == [2]
    back = transform.postprocess([{"boxes": t["boxes"]} for t in mapped], params)
    for original, restored in zip(targets, back, strict=True):
        torch.testing.assert_close(restored["boxes"], original["boxes"])


def test_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        LetterboxTransform(100)
