"""Is pose training data bound? Data pipeline images/s against the model's step, in one run.

    python scripts/bench_pose.py [+experiment=pose_simple_baseline_synthetic] [key=value ...]
                                 [bench.samples=128] [bench.steps=3]

Times the training dataset (JPEG decode, affine crop with augmentation, Gaussian heatmaps) in
this process, then forward + backward + Adam steps of the configured net on batches of
``data.batch_size`` crops, on the same machine. One data-loader worker keeps up when its images/s
is above the model's; otherwise ``data.num_workers`` must make up the ratio. The arguments are
train.py's overrides, composed with configs/bench_pose.yaml (the train config plus ``bench.*``);
nothing is written.
"""

from __future__ import annotations

import sys
import time

import hydra
import torch

from kbaselines.core.config import compose_config
from kbaselines.core.pretrained import unset_published_weights
from kbaselines.pose.task import joints_mse

DEFAULT = "+experiment=pose_simple_baseline_synthetic"


def bench(overrides: list[str]) -> dict[str, float]:
    """Images/s of the data pipeline (one process) and of the model's training step."""
    cfg = compose_config(overrides, config_name="bench_pose")
    samples, steps = cfg.bench.samples, cfg.bench.steps
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    ids = datamodule.sample_table().ids
    datamodule = hydra.utils.instantiate(cfg.data, split={"train": ids, "val": [], "test": []})
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    count = min(samples, len(dataset))
    start = time.perf_counter()
    items = [dataset[k] for k in range(count)]
    data_rate = count / (time.perf_counter() - start)
    # speed does not depend on the starting weights: no published file is needed
    no_weights = unset_published_weights(cfg.model).get("net", {})
    net = hydra.utils.instantiate(cfg.model.net, **no_weights).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = torch.utils.data.default_collate(items[: cfg.data.batch_size])
    timings = []
    for step in range(steps + 1):  # the first step warms up and is not counted
        start = time.perf_counter()
        loss = joints_mse(net(batch["image"]), batch["target"], batch["weight"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            timings.append(time.perf_counter() - start)
    model_rate = len(batch["image"]) * len(timings) / sum(timings)
    return {
        "data_images_per_s": data_rate,
        "model_images_per_s": model_rate,
        "input": list(cfg.data.input_size),
        "batch": len(batch["image"]),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str]) -> None:
    overrides = list(argv)
    if not any(a.startswith("+experiment=") for a in overrides):
        overrides.insert(0, DEFAULT)
    result = bench(overrides)
    ratio = result["model_images_per_s"] / result["data_images_per_s"]
    print(f"input {result['input']}, batch {result['batch']}, torch threads {result['threads']}")
    print(
        f"data pipeline (decode, crop, augment, heatmaps): {result['data_images_per_s']:8.1f} images/s per process"
    )
    print(
        f"model training step (forward, backward, Adam):  {result['model_images_per_s']:8.1f} images/s"
    )
    verdict = "data bound" if ratio > 1 else "model bound"
    print(
        f"{verdict}: the model consumes {ratio:.2f}x what one data process produces; "
        f"data.num_workers >= {max(1, int(ratio + 0.999))} keeps it fed"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
