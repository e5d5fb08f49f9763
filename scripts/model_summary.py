"""Print a model's parameter counts and input size, to compare with the papers.

python scripts/model_summary.py +experiment=kface_lightcnn9
python scripts/model_summary.py +experiment=kface_lightcnn29 model.net.num_classes=10000
"""

from __future__ import annotations

import sys

import hydra
from torch import nn

from kbaselines.config import compose_config


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def summarize(overrides: list[str]) -> str:
    cfg = compose_config(overrides)
    net_cfg = cfg.model.net
    num_classes = net_cfg.get("num_classes", None)
    kwargs = {"num_classes": 0} if "num_classes" in net_cfg and num_classes is None else {}
    net: nn.Module = hydra.utils.instantiate(net_cfg, **kwargs)
    total = count(net)
    classifier = net.get_classifier() if hasattr(net, "get_classifier") else None
    head = count(classifier) if isinstance(classifier, nn.Module) else 0
    size = getattr(net, "input_size", None)
    chans = getattr(net, "in_chans", None)
    lines = [
        f"model:       {net_cfg._target_}",
        f"input:       {chans} x {size} x {size}",
        f"embedding:   {total - head:,} parameters ({(total - head) / 1e3:,.0f}K; classifier excluded)",
        f"classifier:  {head:,} parameters ({getattr(net, 'num_classes', 0)} classes; "
        "set model.net.num_classes=N to count one)",
        f"total:       {total:,} parameters",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1:]))
