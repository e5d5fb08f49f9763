"""LightCNN: the timm-style contract on every variant, parameter counts against the guideline."""

from __future__ import annotations

import pytest
import torch

from kbaselines.models.lightcnn import MaxFeatureMap, lightcnn4, lightcnn9, lightcnn29, lightcnn29v2

BUILDERS = [lightcnn4, lightcnn9, lightcnn29, lightcnn29v2]


def _embedding_params(model: torch.nn.Module) -> int:
    classifier = {id(p) for p in model.get_classifier().parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in classifier)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_contract(builder) -> None:
    size = 64 if builder is lightcnn4 else 32
    model = builder(num_classes=7, input_size=size).eval()
    images = torch.rand(2, 1, size, size)
    features = model.forward_features(images)
    assert features.ndim == 4 and features.shape[1] == model.feature_info[0]["num_chs"]
    embedding = model.forward_head(features, pre_logits=True)
    assert embedding.shape == (2, 256)
    assert model(images).shape == (2, 7)
    model.reset_classifier(3)
    assert model(images).shape == (2, 3) and model.num_classes == 3
    model.reset_classifier(0)
    assert torch.allclose(model(images), embedding)


@pytest.mark.parametrize(
    ("builder", "guideline"),
    [(lightcnn9, 5_556_000), (lightcnn29, 12_637_000)],
    ids=["lightcnn9", "lightcnn29"],
)
def test_parameter_counts_match_the_guideline(builder, guideline: int) -> None:
    count = _embedding_params(builder(num_classes=10, input_size=128))
    assert abs(count - guideline) / guideline < 0.02, count


def test_authors_counts_and_other_variants() -> None:
    # the authors' code: 5,480,864 (LightCNN-9) and 12,573,280 (LightCNN-29), classifier excluded
    assert _embedding_params(lightcnn9()) == 5_480_864
    assert _embedding_params(lightcnn29()) == 12_573_280
    assert _embedding_params(lightcnn29v2()) == 10_475_872  # plain 8192 -> 256 embedding layer
    assert _embedding_params(lightcnn4()) == 4_360_704


def test_max_feature_map_keeps_the_larger_half() -> None:
    layer = MaxFeatureMap(1, 2, kernel_size=1, padding=0)
    with torch.no_grad():
        layer.filter.weight.copy_(torch.tensor([1.0, -1.0, -2.0, 3.0]).view(4, 1, 1, 1))
        layer.filter.bias.zero_()
    x = torch.tensor([[[[1.0, -1.0]]]])
    # channels: [x, -x, -2x, 3x] -> max(x, -2x), max(-x, 3x)
    expected = torch.tensor([[[[1.0, 2.0]], [[3.0, 1.0]]]])
    assert torch.equal(layer(x), expected)


@pytest.mark.parametrize(("builder", "size"), [(lightcnn9, 40), (lightcnn29, 100), (lightcnn4, 32)])
def test_unsupported_input_size_is_refused(builder, size: int) -> None:
    with pytest.raises(ValueError, match="input_size"):
        builder(input_size=size)
