"""A contract test over every model config, as timm's ``tests/test_models.py`` over ``list_models()``.

Every ``configs/model/*.yaml`` (the ``optimizer/`` and ``scheduler/`` groups are not models) is
composed with a data config of its family, sized down through overrides (never by editing the
YAML), and only ``cfg.model.net`` is instantiated, offline: no weights may be downloaded. Each net
then runs one forward and backward on a tiny input and is held to the interface its module
documents:

- backbone + head (LightCNN, Simple Baseline, the mammography map net): ``forward_features``,
  ``forward_head`` (``pre_logits``, or the map net's ``pooling``), ``get_classifier`` /
  ``reset_classifier``, ``feature_info``, ``forward == forward_head(forward_features)``, shapes;
- detectors (Faster R-CNN variants, YOLO n/s/m): torchvision's detection interface, a dict of
  scalar ``loss_*`` losses with fixed keys in training, per-image ``boxes`` / ``labels`` /
  ``scores`` in eval, ``num_classes`` without the background;
- Simple Baseline: heatmaps ``[B, J, H/4, W/4]``, ``num_joints``;
- PGGAN: generator and discriminator at a small level and fade-in ``alpha``;
- every model: finite loss and gradients, and a gradient for every parameter the forward used.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig
from torch import nn

from kbaselines.core.config import CONFIG_DIR, compose_config
from kbaselines.core.pretrained import published_weights, unset_published_weights

MODEL_CONFIGS = sorted((CONFIG_DIR / "model").glob("*.yaml"))

pytestmark = pytest.mark.usefixtures("one_thread")

# ---------------------------------------------------------------------------------------------
# helpers shared by the families


def _finite_backward(net: nn.Module, loss: torch.Tensor) -> None:
    """Backpropagate a finite scalar ``loss``; every gradient must be finite."""
    assert loss.dim() == 0, f"the loss must be a scalar, got shape {tuple(loss.shape)}"
    assert torch.isfinite(loss), f"loss {loss.item()}"
    net.zero_grad(set_to_none=True)
    loss.backward()
    bad = [
        n for n, p in net.named_parameters() if p.grad is not None and not p.grad.isfinite().all()
    ]
    assert not bad, f"non-finite gradients in {bad[:5]}"


def _assert_grads(
    net: nn.Module, used: Callable[[str], bool] = lambda name: True, prefix: str = ""
) -> None:
    """Every trainable parameter the forward ``used`` has a gradient, the others none, and every
    top-level group of parameters (``backbone``, ``rpn``, ``head`` ...) has a non-zero one."""
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    assert params, "the model has no trainable parameters"
    missing = [n for n, p in params if used(n) and p.grad is None]
    assert not missing, f"{prefix}parameters without a gradient: {missing[:8]}"
    stray = [n for n, p in params if not used(n) and p.grad is not None]
    assert not stray, f"{prefix}parameters outside the forward got a gradient: {stray[:8]}"
    groups: dict[str, bool] = {}
    for name, p in params:
        if used(name):
            group = name.split(".")[0]
            groups[group] = groups.get(group, False) or bool(p.grad.abs().sum() > 0)
    dead = sorted(g for g, nonzero in groups.items() if not nonzero)
    assert not dead, f"{prefix}parameter groups whose gradients are all zero: {dead}"


def _feature_hooks(
    net: nn.Module, info: list[dict], outputs: dict[str, torch.Tensor]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Record in ``outputs`` the outputs of the modules ``feature_info`` names."""
    modules = dict(net.named_modules())
    handles = []
    for entry in info:
        assert entry["module"] in modules, f"feature_info names a missing module {entry['module']}"

        def hook(_module, _inputs, output, name=entry["module"]):
            outputs[name] = output[-1] if isinstance(output, list | tuple) else output

        handles.append(modules[entry["module"]].register_forward_hook(hook))
    return handles


def _check_feature_info(
    net: nn.Module, x: torch.Tensor, known: dict[str, torch.Tensor] | None = None
) -> None:
    """timm's ``feature_info``: dicts of ``num_chs``, ``reduction``, ``module`` in forward order,
    each module's output with ``num_chs`` channels and at most ``ceil(side / reduction)`` cells a
    side (unpadded convolutions may leave fewer; a decoder's reductions go down again).

    ``known``: outputs of modules the forward reaches other than by calling them (a backbone's
    ``forward_features``), which a forward hook does not see.
    """
    info = net.feature_info
    assert isinstance(info, list) and info, "feature_info must be a non-empty list"
    for entry in info:
        assert {"num_chs", "reduction", "module"} <= set(entry), entry
        assert entry["num_chs"] >= 1 and entry["reduction"] >= 1, entry
    outputs = dict(known or {})
    handles = _feature_hooks(net, info, outputs)
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    for entry in info:
        assert entry["module"] in outputs, f"the forward never ran {entry['module']}"
        out = outputs[entry["module"]]
        assert out.shape[1] == entry["num_chs"], (entry, tuple(out.shape))
        for side, size in zip(out.shape[2:], x.shape[2:], strict=True):
            assert 1 <= side <= math.ceil(size / entry["reduction"]), (entry, tuple(out.shape))


def _check_forward_is_head_of_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``forward(x) == forward_head(forward_features(x))`` in eval mode; returns the features."""
    net.eval()
    with torch.no_grad():
        features = net.forward_features(x)
        torch.testing.assert_close(net(x), net.forward_head(features))
    net.train()
    return features


# ---------------------------------------------------------------------------------------------
# the families


def check_lightcnn(net: nn.Module, cfg: DictConfig) -> None:
    """LightCNN (``kbaselines.kface.lightcnn``): timm's classifier interface on a face batch."""
    (size, width), batch = cfg.data.input_size, 2
    assert net.input_size == size == width and net.in_chans == cfg.data.in_chans
    num_classes = cfg.model.net.num_classes
    assert net.num_classes == num_classes
    x = torch.randn(batch, net.in_chans, size, size)

    features = _check_forward_is_head_of_features(net, x)
    assert features.dim() == 4 and features.shape[:2] == (batch, net.num_features)
    with torch.no_grad():
        embedding = net.forward_head(features, pre_logits=True)
    assert embedding.shape == (batch, net.head_hidden_size) == (batch, net.embed_dim)
    _check_feature_info(net, x)
    assert net.feature_info[-1]["num_chs"] == net.num_features

    classifier = net.get_classifier()
    assert isinstance(classifier, nn.Linear) and classifier.out_features == num_classes

    logits = net(x)
    assert logits.shape == (batch, num_classes)
    _finite_backward(net, F.cross_entropy(logits, torch.arange(batch) % num_classes))
    _assert_grads(net)

    net.reset_classifier(3)
    assert net.num_classes == 3 and net.get_classifier().out_features == 3
    with torch.no_grad():
        assert net(x).shape == (batch, 3)
    net.reset_classifier(0)
    assert isinstance(net.get_classifier(), nn.Identity)
    with torch.no_grad():
        assert net(x).shape == (batch, net.embed_dim)


def check_map_net(net: nn.Module, cfg: DictConfig) -> None:
    """The mammography map net (``kbaselines.mammo.resnet_maps``): features at ``feature_stride``,
    a cancer and a benign logit map, pooled logits ``[B, 2]`` by every pooling."""
    from kbaselines.mammo.resnet_maps import POOLINGS

    height, width, batch = 64, 64, 2
    stride = cfg.model.net.feature_stride
    assert net.feature_stride == stride and net.in_chans == cfg.model.net.in_chans
    x = torch.rand(batch, net.in_chans, height, width)

    features = _check_forward_is_head_of_features(net, x)
    assert features.shape[0] == batch and features.shape[2:] == (height // stride, width // stride)
    heads = net.get_classifier()
    assert set(heads) == set(net.map_names) == {"cancer", "benign"}
    assert all(h.in_channels == features.shape[1] and h.out_channels == 1 for h in heads.values())
    with torch.no_grad():
        maps = net.forward_maps(features)
        assert maps.shape == (batch, 2, *features.shape[2:])
        for pooling in POOLINGS:
            assert net.forward_head(features, pooling).shape == (batch, 2)
            assert net(x, pooling=pooling).shape == (batch, 2)

    logits = net(x)
    assert logits.shape == (batch, 2)
    _finite_backward(net, F.binary_cross_entropy_with_logits(logits, torch.eye(batch, 2)))
    _assert_grads(net)


def check_simple_baseline(net: nn.Module, cfg: DictConfig) -> None:
    """Simple Baseline (``kbaselines.pose.simple_baseline``): heatmaps ``[B, J, H/4, W/4]`` and
    the timm interface it claims (``pre_logits``, ``feature_info``, ``reset_classifier``)."""
    height, width, batch = 64, 32, 2
    joints = cfg.model.net.num_joints
    assert net.num_joints == joints and net.stride == 4
    x = torch.randn(batch, net.in_chans, height, width)

    features = _check_forward_is_head_of_features(net, x)
    backbone_info, head_info = net.feature_info
    assert features.shape == (
        batch,
        backbone_info["num_chs"],
        height // backbone_info["reduction"],
        width // backbone_info["reduction"],
    )
    with torch.no_grad():
        deconvolved = net.forward_head(features, pre_logits=True)
    assert deconvolved.shape == (batch, head_info["num_chs"], height // 4, width // 4)
    assert head_info["reduction"] == net.stride
    _check_feature_info(net, x, known={"backbone": features})
    assert net.get_classifier().out_channels == joints

    heatmaps = net(x)
    assert heatmaps.shape == (batch, joints, height // 4, width // 4)
    _finite_backward(net, F.mse_loss(heatmaps, torch.rand_like(heatmaps)))
    _assert_grads(net)

    net.reset_classifier(3)
    assert net.num_joints == 3 and net.get_classifier().out_channels == 3
    with torch.no_grad():
        assert net(x).shape == (batch, 3, height // 4, width // 4)


# the loss keys of each detector, the same for every batch (DetectionTask logs them by name)
DETECTOR_LOSSES = {
    "FasterRCNN": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"},
    "YOLO": {"loss_cls", "loss_box", "loss_dfl"},
}


def check_detector(net: nn.Module, cfg: DictConfig) -> None:
    """Faster R-CNN and YOLO (``kbaselines.xray``): torchvision's detection interface."""
    num_classes = cfg.model.net.num_classes
    assert net.num_classes == num_classes
    expected = DETECTOR_LOSSES[type(net).__name__]
    height, width = 48, 64
    images = [torch.rand(3, height, width), torch.rand(3, height, width)]
    targets = [
        {
            "boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [30.0, 10.0, 60.0, 30.0]]),
            "labels": torch.tensor([1, num_classes]),
        },
        # an image without objects: the keys must not change
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]

    net.train()
    losses = net(images, targets)
    assert isinstance(losses, dict) and set(losses) == expected, sorted(losses)
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), (name, value)
    _finite_backward(net, sum(losses.values()))
    _assert_grads(net)
    with torch.no_grad():
        empty = net(images[1:], targets[1:])
    assert set(empty) == expected and all(torch.isfinite(v) for v in empty.values())

    net.eval()
    with torch.no_grad():
        detections = net(images)
    assert isinstance(detections, list) and len(detections) == len(images)
    for found in detections:
        assert {"boxes", "labels", "scores"} <= set(found)
        boxes, labels, scores = found["boxes"], found["labels"], found["scores"]
        m = len(boxes)
        assert boxes.shape == (m, 4) and labels.shape == (m,) and scores.shape == (m,)
        assert boxes.dtype.is_floating_point and scores.dtype.is_floating_point
        assert labels.dtype == torch.int64
        if m:
            assert labels.min() >= 1 and labels.max() <= num_classes
            assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= width).all()
            assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= height).all()
            assert (scores >= 0).all() and (scores <= 1).all()

    if type(net).__name__ == "FasterRCNN":
        # torchvision's convention: one more class, the background
        assert net.roi_heads.box_predictor.cls_score.out_features == num_classes + 1
    else:
        size = cfg.model.net.image_size
        assert all(c.out_channels == num_classes for c in net.get_classifier())
        with torch.no_grad():
            maps = net.forward_features(torch.rand(1, 3, size, size))
        assert [tuple(m.shape[2:]) for m in maps] == [(size // s, size // s) for s in (8, 16, 32)]


def check_pggan(net: nn.Module, cfg: DictConfig) -> None:
    """PGGAN (``kbaselines.kface.pggan``): G and D at a middle level mid fade-in, and at the final
    level; alpha 0 is the lower level's path; a gradient for exactly the blocks in use."""
    resolution, batch = cfg.model.resolution, 2
    assert net.resolution == resolution and net.channels == cfg.data.in_chans
    gen, disc, last = net.generator, net.discriminator, net.num_levels - 1
    assert last >= 2, "the test needs a middle level: resolution >= 16"
    z = torch.randn(batch, net.latent_size)

    with torch.no_grad():
        # alpha 0: the lower level's output upsampled (G), the downsampled input's score (D)
        low = gen(z, level=0)
        torch.testing.assert_close(
            gen(z, level=1, alpha=0.0), F.interpolate(low, scale_factor=2, mode="nearest")
        )
        image = torch.randn(batch, net.channels, 8, 8)
        torch.testing.assert_close(
            disc(image, level=1, alpha=0.0), disc(F.avg_pool2d(image, 2), level=0)
        )
        assert net(z).shape == (batch, net.channels, resolution, resolution)

    for level, alpha in ((1, 0.5), (last, 1.0)):
        side = 4 * 2**level
        fake = gen(z, level=level, alpha=alpha)
        assert fake.shape == (batch, net.channels, side, side)
        score = disc(fake, level=level, alpha=alpha)
        assert score.shape == (batch, 1)
        _finite_backward(net, score.mean())
        _assert_grads(
            net.generator, _pggan_used(level, alpha, "to_rgb"), f"G level {level} alpha {alpha}: "
        )
        _assert_grads(
            net.discriminator,
            _pggan_used(level, alpha, "from_rgb"),
            f"D level {level} alpha {alpha}: ",
        )


def _pggan_used(level: int, alpha: float, rgb: str) -> Callable[[str], bool]:
    """Whether a G or D parameter takes part at ``level`` (blocks up to it, its RGB layer, and
    the level below's RGB layer while fading in)."""
    rgb_levels = {level, level - 1} if alpha < 1.0 and level > 0 else {level}

    def used(name: str) -> bool:
        parts = name.split(".")
        if parts[0] == "blocks":
            return int(parts[1]) < level
        if parts[0] == rgb:
            return int(parts[1]) in rgb_levels
        return True

    return used


# ---------------------------------------------------------------------------------------------
# one family per model module


@dataclass(frozen=True)
class Family:
    """How to size and check the nets of one model module."""

    data: str  # the data config the nets run on
    overrides: tuple[str, ...]  # the smallest sizes that keep the architecture valid
    check: Callable[[nn.Module, DictConfig], None]


_TINY_FASTER_RCNN = (
    "model.net.num_classes=2",
    "model.net.min_size=64",
    "model.net.max_size=64",
    # a handful of proposals and sampled boxes: the box head runs on each of them
    "++model.net.rpn_pre_nms_top_n_train=64",
    "++model.net.rpn_post_nms_top_n_train=16",
    "++model.net.rpn_pre_nms_top_n_test=64",
    "++model.net.rpn_post_nms_top_n_test=16",
    "++model.net.rpn_batch_size_per_image=32",
    "++model.net.box_batch_size_per_image=16",
)

FAMILIES = {
    "kbaselines.kface.lightcnn": Family(
        "kface_synthetic",
        # four 2x2 pools: a multiple of 16
        ("model.net.num_classes=5", "data.input_size=[16,16]"),
        check_lightcnn,
    ),
    "kbaselines.mammo.resnet_maps": Family("mammo_synthetic", (), check_map_net),
    "kbaselines.pose.simple_baseline": Family(
        "pose_synthetic", ("model.net.num_joints=5",), check_simple_baseline
    ),
    "kbaselines.xray.faster_rcnn": Family("xray_synthetic", _TINY_FASTER_RCNN, check_detector),
    "kbaselines.xray.yolo": Family(
        "xray_synthetic",
        ("model.net.num_classes=2", "model.net.image_size=64"),
        check_detector,
    ),
    "kbaselines.kface.pggan": Family(
        "kface_synthetic",
        # three levels (4, 8, 16 px), 16 channels
        ("model.resolution=16", "model.net.latent_size=16", "model.net.fmap_max=16"),
        check_pggan,
    ),
}

# nets whose smallest valid size differs from their family's
SIZE_EXCEPTIONS = {
    # unpadded 9x9, 5x5, 5x5, 4x4 convolutions between the pools
    "kbaselines.kface.lightcnn.lightcnn4": ("data.input_size=[64,64]",),
}

# keys of the net configs that would fetch weights
WEIGHT_KEYS = ("pretrained", "weights", "weights_backbone", "pretrained_backbone")


@functools.cache
def _net_target(config: Path) -> str:
    return compose_config([f"model={config.stem}"]).model.net._target_


def _weight_settings(node: object, path: str = "model.net") -> Iterator[tuple[str, object]]:
    if isinstance(node, DictConfig):
        for key, value in node.items():
            if key in WEIGHT_KEYS:
                yield f"{path}.{key}", value
            yield from _weight_settings(value, f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, value in enumerate(node):
            yield from _weight_settings(value, f"{path}[{i}]")


def test_every_model_config_has_a_family() -> None:
    assert MODEL_CONFIGS, f"no model configs in {CONFIG_DIR / 'model'}"
    unknown = {
        config.stem: target
        for config in MODEL_CONFIGS
        if (target := _net_target(config)).rsplit(".", 1)[0] not in FAMILIES
    }
    assert not unknown, f"model configs of no known family (add one to FAMILIES): {unknown}"


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=[c.stem for c in MODEL_CONFIGS])
def test_model_contract(config: Path, offline: list) -> None:
    target = _net_target(config)
    family = FAMILIES.get(target.rsplit(".", 1)[0])
    if family is None:
        pytest.fail(f"{config.stem}: no family for its net {target} (add one to FAMILIES)")
    cfg = compose_config(
        [
            f"model={config.stem}",
            f"data={family.data}",
            *family.overrides,
            *SIZE_EXCEPTIONS.get(target, ()),
        ]
    )
    published = {setting for setting, _ in published_weights(cfg.model, "model")}
    fetching = {
        k: v
        for k, v in _weight_settings(cfg.model.net)
        if v not in (None, False) and k not in published
    }
    assert not fetching, f"{config.stem} asks for weights outside core.pretrained: {fetching}"

    torch.manual_seed(0)
    # the published weights a real recipe starts from are tested in tests/core/test_pretrained.py
    net = hydra.utils.instantiate(
        cfg.model.net, **unset_published_weights(cfg.model).get("net", {})
    )
    assert isinstance(net, nn.Module)
    assert not offline, f"building {config.stem} reached for the network"
    net.train()
    family.check(net, cfg)
    assert not offline, f"running {config.stem} reached for the network"


def test_offline_guard_stops_a_download(offline: list, tmp_path: Path) -> None:
    """The guard of ``test_model_contract`` is real: a download, allowed, is refused by it."""
    cfg = compose_config(
        [
            "model=simple_baseline_r18",
            "data=pose_synthetic",
            "+model.net.weights_backbone={_target_: kbaselines.core.pretrained.TimmWeights,"
            f"name: resnet18.tv_in1k, weights_dir: '{tmp_path}', allow_download: true}}",
        ]
    )
    with pytest.raises(BaseException, match="tried to reach the network"):
        hydra.utils.instantiate(cfg.model.net)
    assert offline, "the guard saw no connection attempt"
