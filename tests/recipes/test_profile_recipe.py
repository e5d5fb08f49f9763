"""scripts/profile_recipe.py: each batch measured in its own process, the GPU estimate from the
memory per sample."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from kbaselines.core.config import PROJECT_ROOT

spec = importlib.util.spec_from_file_location(
    "profile_recipe", PROJECT_ROOT / "scripts" / "profile_recipe.py"
)
profile_recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(profile_recipe)


def _point(batch: int, peak: float) -> dict:
    return {"batch": batch, "peak_gb": peak, "state_gb": 0.5}


def test_largest_batch_fills_the_usable_memory_beside_the_fixed_part() -> None:
    result = profile_recipe.estimate([_point(2, 3.0), _point(4, 5.0)], [16, 40], 1.0, 0.9)
    assert result["per_sample_gb"] == pytest.approx(1.0)
    # (0.9 x 16 - 0.5 - 1.0) / 1.0 = 12.9 samples; (36 - 1.5) / 1.0 = 34.5
    assert result["largest"] == {16: 12, 40: 34}


@pytest.mark.parametrize("points", [[_point(4, 3.0)], [_point(2, 3.0), _point(4, 2.9)]])
def test_no_estimate_without_memory_growing_with_the_batch(points: list) -> None:
    assert profile_recipe.estimate(points, [16], 1.0, 0.9) is None


@pytest.mark.cli
def test_profile_prints_each_batch_and_the_table_row(
    tmp_path: Path, run_entry_point, tiny_kface_run
) -> None:
    result = run_entry_point(
        "scripts/profile_recipe.py",
        *tiny_kface_run(tmp_path),
        "profile.batches=[8,16]",
        "profile.steps=2",
    ).stdout
    shapes = re.findall(r"batch (\d+): input \[(\d+), 1, 16, 16\], step [\d.]+ s", result)
    assert shapes == [("8", "8"), ("16", "16")]
    assert "kface_lightcnn9_synthetic: " in result
    # a row for the README table, or the reason there is no GPU estimate
    row = re.search(
        r"^\| kface_lightcnn9_synthetic \| 1 x 16 x 16 \| 16 \| [\d.]+ s \|", result, re.M
    )
    assert row or "the peaks do not grow with the batch" in result
