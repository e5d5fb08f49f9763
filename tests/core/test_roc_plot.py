"""ROC plot: a readable PNG of the expected size, written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from kbaselines.core.plots import DPI, FIGSIZE, plot_roc

EXPECTED_SHAPE = (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI))  # rows, columns


def _curve(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = rng.random(n) < 0.5
    return targets * 1.5 + rng.normal(0, 1, n), targets.astype(int)


@pytest.mark.parametrize("log_far", [True, False])
def test_png_written_and_readable(tmp_path: Path, log_far: bool) -> None:
    curves = {"fold 0": _curve(0), "fold 1": _curve(1)}
    curves["pooled"] = tuple(np.concatenate(parts) for parts in zip(*curves.values(), strict=True))
    path = plot_roc(curves, tmp_path / "sub" / "roc.png", title="ROC", log_far=log_far)
    assert path == tmp_path / "sub" / "roc.png"
    assert path.stat().st_size > 1000
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == EXPECTED_SHAPE
    assert image.std() > 0  # something is drawn
    assert [p.name for p in path.parent.iterdir()] == ["roc.png"]  # no temporary file left


def test_lists_accepted_and_file_replaced(tmp_path: Path) -> None:
    path = tmp_path / "roc.png"
    path.write_bytes(b"old")
    scores, targets = _curve(2, 50)
    plot_roc({"test": (scores.tolist(), targets.tolist())}, path, title="t")
    assert matplotlib.image.imread(path).shape[:2] == EXPECTED_SHAPE


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        plot_roc({}, tmp_path / "a.png", title="t")
    with pytest.raises(ValueError, match="'bad'"):
        plot_roc({"bad": (np.array([0.1, 0.2]), np.array([1, 1]))}, tmp_path / "b.png", title="t")
    assert list(tmp_path.iterdir()) == []
