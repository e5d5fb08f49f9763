"""Weights from elsewhere: the authors' checkpoint layout, weights_only, safetensors export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from kbaselines.core.weights import load_pretrained, save_safetensors
from kbaselines.kface.lightcnn import lightcnn9, lightcnn29v2

AUTHORS_CLASSES = 79077  # LightCNN_9Layers_checkpoint.pth.tar: CASIA-WebFace + MS-Celeb-1M


pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """A class a weights-only load must not construct."""


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A file laid out like the authors' LightCNN-9 release, made once (its classifier is 80 MB).

    Returns the path and the backbone tensors it holds (the classifier is not kept in memory).
    """
    torch.manual_seed(0)
    source = lightcnn9(num_classes=AUTHORS_CLASSES)
    state = {"module." + k: v for k, v in source.state_dict().items()}  # DataParallel prefix
    path = tmp_path_factory.mktemp("authors") / "LightCNN_9Layers_checkpoint.pth.tar"
    torch.save({"epoch": 80, "arch": "LightCNN-9", "prec1": 98.7, "state_dict": state}, path)
    backbone = {k: v.clone() for k, v in source.state_dict().items() if not k.startswith("fc2.")}
    return path, backbone


def test_loads_the_authors_layout_and_drops_their_classifier(authors_checkpoint) -> None:
    path, backbone = authors_checkpoint
    model = lightcnn9(num_classes=40)
    fresh_classifier = model.fc2.weight.detach().clone()
    report = load_pretrained(model, path)
    assert report.dropped_classifier == {
        "fc2.weight": (AUTHORS_CLASSES, 256),
        "fc2.bias": (AUTHORS_CLASSES,),
    }
    assert report.loaded == sorted(backbone)
    assert "module." not in str(report) and "dropped the classifier" in str(report)
    own = model.state_dict()
    for key, value in backbone.items():
        assert torch.equal(own[key], value), key
    assert model.fc2.weight.shape == (40, 256)
    assert torch.equal(model.fc2.weight, fresh_classifier)  # untouched, ready to fine-tune


def test_authors_checkpoint_into_an_embedding_only_model(authors_checkpoint) -> None:
    path, backbone = authors_checkpoint
    model = lightcnn9()  # num_classes=0: forward returns the embedding
    report = load_pretrained(model, path)
    assert sorted(report.dropped_classifier) == ["fc2.bias", "fc2.weight"]
    assert torch.equal(model.fc1.filter.weight, backbone["fc1.filter.weight"])


def test_a_matching_classifier_is_loaded(tmp_path: Path) -> None:
    source = lightcnn29v2(num_classes=5, input_size=32)
    path = tmp_path / "LightCNN_29Layers_V2_checkpoint.pth.tar"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, path)
    model = lightcnn29v2(num_classes=5, input_size=32)
    report = load_pretrained(model, path)
    assert report.dropped_classifier == {}
    assert "fc2.weight" in report.loaded
    assert torch.equal(model.fc2.weight, source.fc2.weight)
    assert torch.equal(model.block4[3].conv2.filter.weight, source.block4[3].conv2.filter.weight)


def test_our_lightning_checkpoint_loads(tmp_path: Path) -> None:
    source = lightcnn9(num_classes=3, input_size=32)
    path = tmp_path / "best.ckpt"
    torch.save(
        {
            "epoch": 4,
            "hyper_parameters": {"max_genuine_pairs": 100},
            "state_dict": {"net." + k: v for k, v in source.state_dict().items()},
        },
        path,
    )
    model = lightcnn9(num_classes=3, input_size=32)
    assert load_pretrained(model, path).dropped_classifier == {}
    assert torch.equal(model.fc2.bias, source.fc2.bias)


def test_unexpected_key_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    state = lightcnn9(input_size=32).state_dict()
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"(?s)odd\.pth.*extra\.weight.*strict_backbone=False"):
        load_pretrained(lightcnn9(input_size=32), path)
    report = load_pretrained(lightcnn9(input_size=32), path, strict_backbone=False)
    assert report.unexpected == ["extra.weight"]


def test_missing_and_reshaped_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "small.pth"
    state = lightcnn9(input_size=32).state_dict()
    del state["features.0.filter.bias"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"(?s)small\.pth.*missing.*features\.0\.filter\.bias"):
        load_pretrained(lightcnn9(input_size=32), path)
    # a 32 px network's embedding layer does not fit a 128 px one
    with pytest.raises(ValueError, match=r"other shape.*fc1\.filter\.weight"):
        load_pretrained(lightcnn9(input_size=128), path)


def test_code_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": lightcnn9(input_size=32).state_dict(), "meta": Payload()}, path)
    with pytest.raises(ValueError, match=r"pickled\.pth.*weights-only"):
        load_pretrained(lightcnn9(input_size=32), path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        load_pretrained(lightcnn9(input_size=32), tmp_path / "nothing.pth")


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model = lightcnn9(num_classes=3, input_size=32)
    path = save_safetensors(model, tmp_path / "export" / "lightcnn9.safetensors")
    assert set(load_file(str(path))) == set(model.state_dict())
    copy = lightcnn9(num_classes=3, input_size=32)
    report = load_pretrained(copy, path)
    assert report.dropped_classifier == {} and len(report.loaded) == len(model.state_dict())
    for (key, a), b in zip(model.state_dict().items(), copy.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_models_without_get_classifier(tmp_path: Path) -> None:
    """Generic: any module loads; without get_classifier nothing counts as a classifier."""
    source = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    path = save_safetensors(source, tmp_path / "mlp.safetensors")
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert load_pretrained(model, path).loaded == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert torch.equal(model[2].weight, source[2].weight)
