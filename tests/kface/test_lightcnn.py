"""LightCNN: timm's contract on every variant, the authors' layouts, counts against the guideline."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from kbaselines.kface.lightcnn import (
    LightCNN,
    MaxFeatureMap,
    lightcnn4,
    lightcnn9,
    lightcnn29,
    lightcnn29v2,
)

BUILDERS = [lightcnn4, lightcnn9, lightcnn29, lightcnn29v2]
# LightCNN-4's unpadded 9x9/5x5/5x5/4x4 convolutions need at least 57 pixels; the others take 32
TINY = {lightcnn4: 64}


def _embedding_params(model: nn.Module) -> int:
    """Parameters of the embedding network: everything except the classifier."""
    classifier = {id(p) for p in model.get_classifier().parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in classifier)


def _lightcnn4_paper_count() -> int:
    """LightCNN-4 from the paper's table at 128x128: conv (k, in, out) with out = 2 x MFM width."""
    convs = [(9, 1, 96), (5, 48, 192), (5, 96, 256), (4, 128, 384)]
    conv_params = sum(k * k * cin * cout + cout for k, cin, cout in convs)
    # 128 -9x9-> 120 -pool-> 60 -5x5-> 56 -> 28 -5x5-> 24 -> 12 -4x4-> 9 -pool (ceil)-> 5
    fc_params = 192 * 5 * 5 * 512 + 512  # fc 512, MFM to 256
    return conv_params + fc_params


# embedding-network parameters at 128x128; LightCNN-9/29/29v2 equal the authors' code exactly
COUNTS = {
    lightcnn4: _lightcnn4_paper_count(),  # 4,098,048 (the paper's table: about 4,095K)
    lightcnn9: 5_480_864,
    lightcnn29: 12_573_280,
    lightcnn29v2: 10_475_872,
}
GUIDELINE = {lightcnn9: 5_556_000, lightcnn29: 12_637_000}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_contract(builder: Callable[..., LightCNN]) -> None:
    size = TINY.get(builder, 32)
    model = builder(num_classes=7, input_size=size).eval()
    assert (model.num_classes, model.embed_dim, model.input_size, model.in_chans) == (
        7,
        256,
        size,
        1,
    )
    images = torch.rand(2, 1, size, size)

    features = model.forward_features(images)
    assert features.ndim == 4 and features.shape[:2] == (2, model.num_features)
    assert features.shape[1] == model.feature_info[-1]["num_chs"]
    assert [info["reduction"] for info in model.feature_info] == [2, 4, 8, 16]
    modules = dict(model.named_modules())
    assert all(info["module"] in modules for info in model.feature_info)

    embedding = model.forward_head(features, pre_logits=True)
    assert embedding.shape == (2, 256)
    assert model(images).shape == (2, 7)

    model.reset_classifier(3)
    assert model(images).shape == (2, 3) and model.num_classes == 3
    assert isinstance(model.get_classifier(), nn.Linear)
    assert model.get_classifier().out_features == 3

    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
    assert torch.allclose(model(images), embedding)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_without_classifier_forward_is_the_embedding(builder: Callable[..., LightCNN]) -> None:
    size = TINY.get(builder, 32)
    model = builder(input_size=size, in_chans=3, drop_rate=0.5).train()
    assert model.num_classes == 0 and isinstance(model.get_classifier(), nn.Identity)
    images = torch.rand(2, 3, size, size)
    model.eval()
    assert torch.allclose(model(images), model.forward_head(model.forward_features(images), True))


@pytest.mark.parametrize(
    "builder",
    BUILDERS,
    ids=[f"{b.__name__}-{COUNTS[b]:,}" for b in BUILDERS],
)
def test_parameter_counts(builder: Callable[..., LightCNN]) -> None:
    model = builder(num_classes=10, input_size=128)
    count = _embedding_params(model)
    assert count == COUNTS[builder]
    classifier = 256 * 10 + (0 if builder is lightcnn29v2 else 10)  # 29v2: no classifier bias
    assert sum(p.numel() for p in model.parameters()) == count + classifier
    if builder in GUIDELINE:
        assert abs(count - GUIDELINE[builder]) / GUIDELINE[builder] < 0.02, count


def test_authors_module_names() -> None:
    """Their released checkpoints load by name, so our keys are theirs."""
    nine = lightcnn9(num_classes=5).state_dict()
    assert {
        "features.0.filter.weight",
        "features.2.conv_a.filter.weight",
        "fc1.filter.weight",
    } < set(nine)
    assert nine["fc1.filter.weight"].shape == (512, 8 * 8 * 128)
    deep = lightcnn29(num_classes=5).state_dict()
    for key in ("conv1.filter.weight", "block4.3.conv2.filter.bias", "group3.conv_a.filter.weight"):
        assert key in deep
    assert deep["fc.filter.weight"].shape == (512, 8192) and "fc2.bias" in deep
    v2 = lightcnn29v2(num_classes=5).state_dict()
    assert v2["fc.weight"].shape == (256, 8192) and "fc2.weight" in v2 and "fc2.bias" not in v2


def test_caller_kwargs_win_over_the_variant() -> None:
    # LightCNN-29 without residual blocks is LightCNN-9 laid out under LightCNN-29's names
    shallow = lightcnn29(layers=(0, 0, 0, 0))
    assert _embedding_params(shallow) == COUNTS[lightcnn9]
    assert lightcnn29v2(classifier_bias=True, num_classes=2).fc2.bias is not None


def test_max_feature_map_keeps_the_larger_half() -> None:
    layer = MaxFeatureMap(1, 2, kernel_size=1, padding=0)
    with torch.no_grad():
        layer.filter.weight.copy_(torch.tensor([1.0, -1.0, -2.0, 3.0]).view(4, 1, 1, 1))
        layer.filter.bias.zero_()
    x = torch.tensor([[[[1.0, -1.0]]]])  # [1, 1, 1, 2]
    # channels [x, -x | -2x, 3x] -> max(x, -2x), max(-x, 3x)
    expected = torch.tensor([[[[1.0, 2.0]], [[3.0, 1.0]]]])
    assert torch.equal(layer(x), expected)


def test_linear_max_feature_map_on_a_hand_made_vector() -> None:
    layer = MaxFeatureMap(2, 2, linear=True)
    with torch.no_grad():
        layer.filter.weight.copy_(torch.eye(4, 2).roll(1, dims=0) + torch.eye(4, 2))
        layer.filter.bias.copy_(torch.tensor([0.0, 0.0, 5.0, -5.0]))
    # rows: [1,0], [1,1], [0,1]+5, [0,0]-5 applied to [2, 3] -> [2, 5 | 8, -5]
    assert torch.equal(layer(torch.tensor([[2.0, 3.0]])), torch.tensor([[8.0, 5.0]]))


@pytest.mark.parametrize(
    ("builder", "size"),
    [(lightcnn9, 40), (lightcnn29, 100), (lightcnn29v2, 0), (lightcnn9, 8), (lightcnn4, 32)],
)
def test_unsupported_input_size_is_refused(builder: Callable[..., LightCNN], size: int) -> None:
    with pytest.raises(ValueError, match="input_size"):
        builder(input_size=size)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"layout": "lightcnn13"},
        {"layers": (1, 2, 3)},
        {"pool_type": "avg"},
        {"num_classes": -1},
        {"num_classes": None},
        {"drop_rate": 1.0},
        {"in_chans": 0},
    ],
    ids=str,
)
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        lightcnn29(input_size=32, **kwargs)


def test_layers_outside_lightcnn29_are_refused() -> None:
    with pytest.raises(ValueError, match="layers"):
        lightcnn9(layers=(1, 2, 3, 4))


def test_images_of_another_size_are_refused_with_a_message() -> None:
    model = lightcnn9(input_size=32)
    with pytest.raises(ValueError, match="input_size=32"):
        model(torch.rand(1, 1, 64, 64))


def test_input_size_is_a_square_pair_as_the_data_gives_it() -> None:
    assert lightcnn9(input_size=[32, 32]).input_size == 32
    with pytest.raises(ValueError, match="square"):
        lightcnn9(input_size=[32, 48])
