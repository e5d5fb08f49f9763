"""Weights from elsewhere: the authors' checkpoint layout, weights_only, safetensors export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kbaselines.models.lightcnn import lightcnn9, lightcnn29
from kbaselines.models.weights import load_pretrained, save_safetensors


class Payload:
    """A class a weights-only load must not construct."""


def _authors_lightcnn9(path: Path) -> dict[str, torch.Tensor]:
    """A file laid out like LightCNN_9Layers_checkpoint.pth.tar: module. prefix, fc1, 79,077 classes."""
    source = lightcnn9(num_classes=79077)
    state = {"module." + k.replace("fc.", "fc1.", 1): v for k, v in source.state_dict().items()}
    torch.save({"epoch": 80, "arch": "LightCNN-9", "state_dict": state}, path)
    return source.state_dict()


def test_loads_the_authors_layout_and_drops_their_classifier(tmp_path: Path) -> None:
    path = tmp_path / "LightCNN_9Layers_checkpoint.pth.tar"
    source = _authors_lightcnn9(path)
    model = lightcnn9(num_classes=40)
    report = load_pretrained(model, path)
    assert report.dropped_classifier == ["fc2.weight (79077, 256)", "fc2.bias (79077,)"]
    for key, value in model.state_dict().items():
        if not key.startswith("fc2."):
            assert torch.equal(value, source[key]), key
    assert model.fc2.weight.shape == (40, 256)


def test_lightcnn29_top_level_names(tmp_path: Path) -> None:
    source = lightcnn29(num_classes=5)
    path = tmp_path / "LightCNN_29Layers_checkpoint.pth.tar"
    torch.save(
        {
            "state_dict": {
                "module." + k.removeprefix("features."): v for k, v in source.state_dict().items()
            }
        },
        path,
    )
    model = lightcnn29(num_classes=5)
    assert load_pretrained(model, path).dropped_classifier == []
    assert torch.equal(
        model.features.block4[3].conv2.filter.weight, source.features.block4[3].conv2.filter.weight
    )


def test_unexpected_key_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    state = lightcnn9().state_dict()
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"odd\.pth.*extra\.weight"):
        load_pretrained(lightcnn9(), path)


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "small.pth"
    torch.save(lightcnn9(input_size=32).state_dict(), path)
    with pytest.raises(ValueError, match=r"other shape: fc\.filter\.weight"):
        load_pretrained(lightcnn9(input_size=128), path)


def test_code_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": lightcnn9().state_dict(), "meta": Payload()}, path)
    with pytest.raises(ValueError, match="weights-only"):
        load_pretrained(lightcnn9(), path)


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model = lightcnn9(num_classes=3, input_size=32)
    path = save_safetensors(model, tmp_path / "lightcnn9.safetensors")
    copy = lightcnn9(num_classes=3, input_size=32)
    load_pretrained(copy, path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), copy.state_dict().values(), strict=True)
    )
