"""Crops and back."""

from __future__ import annotations

import numpy as np
import pytest

from kbaselines.pose.transforms import (
    box_to_center_size,
    crop_matrix,
    invert_affine,
    transform_points,
)


def test_box_gets_the_aspect_and_the_margin() -> None:
    center, size = box_to_center_size((10, 20, 40, 140), aspect=0.75, enlarge=1.25)
    assert center.tolist() == [25, 80]
    assert size.tolist() == pytest.approx([90 * 1.25, 120 * 1.25])


@pytest.mark.parametrize("rotation", [0.0, 30.0, -75.0])
def test_crop_and_back_is_the_identity(rotation: float) -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 300, (16, 2))
    matrix = crop_matrix(np.array([150.0, 120.0]), np.array([90.0, 120.0]), rotation, (48, 64))
    back = transform_points(transform_points(points, matrix), invert_affine(matrix))
    assert np.abs(back - points).max() < 1e-6
    # the box centre lands on the crop centre, its corners on the crop's
    assert transform_points(np.array([150.0, 120.0]), matrix) == pytest.approx([23.5, 31.5])
    if rotation == 0:
        corner = transform_points(np.array([150 - 45.0, 120 - 60.0]), matrix)
        assert corner == pytest.approx([-0.5, -0.5])
