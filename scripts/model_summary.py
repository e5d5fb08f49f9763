"""Print a model's parameter counts and input size, to compare with the papers.

python scripts/model_summary.py +experiment=kface_lightcnn9
python scripts/model_summary.py +experiment=kface_lightcnn29 model.net.num_classes=10000
python scripts/model_summary.py +experiment=kface_pggan model.resolution=1024
python scripts/model_summary.py +experiment=pose_simple_baseline
python scripts/model_summary.py +experiment=xray_yolo data.root=/x model.net.num_classes=80

A model with its own breakdown (PGGAN's generator and discriminator, Simple Baseline's stages)
gives it through a ``summary_lines()`` method; the others are split into the network and its
classifier (``get_classifier()``, or a detector's box predictor).
"""

from __future__ import annotations

import sys

import hydra
from hydra.errors import InstantiationException
from torch import nn

from kbaselines.core.config import compose_config
from kbaselines.core.pretrained import unset_published_weights


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _classifier(net: nn.Module) -> nn.Module | None:
    if hasattr(net, "get_classifier"):
        return net.get_classifier()
    roi_heads = getattr(net, "roi_heads", None)  # torchvision's two-stage detectors
    return getattr(roi_heads, "box_predictor", None)


def summarize(overrides: list[str]) -> str:
    cfg = compose_config(overrides)
    net_cfg = cfg.model.net
    unset = "num_classes" in net_cfg and net_cfg.num_classes is None
    # counting parameters needs no published weights file
    settings = {**unset_published_weights(cfg.model).get("net", {})}
    if unset:
        settings["num_classes"] = 0
    try:
        net: nn.Module = hydra.utils.instantiate(net_cfg, **settings)
    except InstantiationException as error:
        raise SystemExit(
            f"{net_cfg._target_} cannot be built without classes ({error.__cause__}); "
            "set model.net.num_classes=N (80 compares with COCO papers)"
        ) from error
    if hasattr(net, "summary_lines"):
        return "\n".join([f"model:         {net_cfg._target_}", *net.summary_lines()])
    total = count(net)
    classifier = _classifier(net)
    head = count(classifier) if isinstance(classifier, nn.Module) else 0
    size = getattr(net, "input_size", None)
    lines = [f"model:       {net_cfg._target_}"]
    if size is not None:
        lines.append(f"input:       {getattr(net, 'in_chans', 3)} x {size} x {size}")
    lines += [
        f"embedding:   {total - head:,} parameters ({(total - head) / 1e3:,.0f}K; classifier excluded)",
        f"classifier:  {head:,} parameters ({getattr(net, 'num_classes', 0)} classes; "
        "set model.net.num_classes=N to count one)",
        f"total:       {total:,} parameters",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1:]))
