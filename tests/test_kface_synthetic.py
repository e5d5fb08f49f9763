"""The synthetic K-Face tree: the real format, generated once, identities not readable from raw pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kbaselines.data.kface.reader import scan_tree
from kbaselines.data.kface.synthetic import MARKER, ensure_synthetic_kface, generate_kface
from kbaselines.metrics.verification import make_pairs, verification_metrics

SMALL = {
    "num_people": 4,
    "sessions": ["S001", "S002"],
    "lights": ["L1", "L2"],
    "cameras": ["C7"],
    "image_size": 32,
}


def test_tree_follows_the_spec(tmp_path: Path) -> None:
    root = generate_kface(tmp_path / "kface", **SMALL)
    records, problems = scan_tree(root)
    assert problems == []
    assert len(records) == 4 * 2 * 2 * 3 * 1
    assert {r.person for r in records} == {"19062000", "19062001", "19062002", "19062003"}
    for record in records:
        x, y, w, h = record.box
        with Image.open(root / record.path) as image:
            assert image.size == (32, 32)
            assert x >= 0 and y >= 0 and x + w <= 32 and y + h <= 32 and w > 8 and h > 8
    assert json.loads((root / MARKER).read_text())["num_people"] == 4
    assert not (tmp_path / "kface.partial").exists()


def test_generated_once_and_again_when_arguments_change(tmp_path: Path) -> None:
    root = tmp_path / "kface"
    ensure_synthetic_kface(root, **SMALL)
    stamp = (root / MARKER).stat().st_mtime_ns
    ensure_synthetic_kface(root, **SMALL)
    assert (root / MARKER).stat().st_mtime_ns == stamp
    ensure_synthetic_kface(root, **{**SMALL, "num_people": 5})
    assert json.loads((root / MARKER).read_text())["num_people"] == 5
    assert len({r.person for r in scan_tree(root)[0]}) == 5


def test_same_seed_same_images(tmp_path: Path) -> None:
    first = generate_kface(tmp_path / "a", **SMALL)
    second = generate_kface(tmp_path / "b", **SMALL)
    other = generate_kface(tmp_path / "c", **{**SMALL, "seed": 1})
    path = "19062001/S002/L2/E03/C7.jpg"
    assert (first / path).read_bytes() == (second / path).read_bytes()
    assert (first / path).read_bytes() != (other / path).read_bytes()


@pytest.fixture(scope="module")
def pixels(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    root = generate_kface(
        tmp_path_factory.mktemp("kface") / "t", num_people=20, image_size=32, seed=5
    )
    records, _ = scan_tree(root)
    images = np.stack(
        [np.asarray(Image.open(root / r.path).convert("L"), np.float64).ravel() for r in records]
    )
    labels = np.array([int(r.person) for r in records])
    return images, labels


def test_identity_is_not_readable_from_raw_pixels(pixels: tuple[np.ndarray, np.ndarray]) -> None:
    """Raw-pixel verification is far from perfect: lights, accessories and angles dominate pixels.

    Measured on the committed generator: raw-pixel ROC AUC about 0.55 (cosine on centred
    pixels); a trained LightCNN-9 reaches about 0.99 on unseen people (test_train_kface.py).
    """
    images, labels = pixels
    centred = images - images.mean(axis=1, keepdims=True)
    pairs = make_pairs(labels, 5000, seed=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    scores = np.einsum("ij,ij->i", unit[pairs.first], unit[pairs.second])
    auc = verification_metrics(scores, pairs.same)["roc_auc"]
    assert auc < 0.65, auc
