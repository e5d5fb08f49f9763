"""Speed benchmark of the X-ray detectors and of the COCO metric path (not a test).

    python scripts/bench_xray.py [size=512] [images=4] [num_classes=5] [threads=2]

1. Inference images/s of Faster R-CNN (ResNet-50-FPN v2, MobileNetV3-FPN, the small one) and
   YOLO-s (``kbaselines.xray.yolo.yolo_s``; skipped with a message when absent) at one square
   input size, on the CPU, from scratch (untrained weights: the speed does not depend on them, but
   an untrained Faster R-CNN keeps its full proposal count).
2. The time to compute COCO mAP on the same predictions (1,000 synthetic images, 5 categories)
   with the framework's path (:func:`kbaselines.xray.metrics.detection_metrics`: COCO through
   faster-coco-eval plus VOC AP and per-class tables) and with plain pycocotools, as a ratio.

Settings (``repeats``, ``metric_images`` too): configs/bench_xray.yaml. No Hydra run folder is
written.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from kbaselines.core.metrics.coco import box_ground_truth, box_results
from kbaselines.xray import faster_rcnn
from kbaselines.xray.metrics import detection_metrics

__all__ = ["bench_inference", "bench_metrics", "main"]


def _timed(function: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up call)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def bench_inference(size: int, images: int, num_classes: int, repeats: int) -> dict[str, float]:
    """Images/s of each detector on ``images`` random scans of ``size`` x ``size``."""
    builders: dict[str, Callable[[], torch.nn.Module]] = {
        "Faster R-CNN R50-FPN v2": lambda: faster_rcnn.fasterrcnn_resnet50_fpn_v2(
            num_classes, min_size=size, max_size=size
        ),
        "Faster R-CNN MobileNetV3-FPN": lambda: faster_rcnn.fasterrcnn_mobilenet_v3_large_fpn(
            num_classes, min_size=size, max_size=size
        ),
        "Faster R-CNN small": lambda: faster_rcnn.fasterrcnn_small(
            num_classes, min_size=size, max_size=size
        ),
    }
    try:
        from kbaselines.xray.yolo import yolo_s

        builders["YOLO-s"] = lambda: yolo_s(num_classes=num_classes)
    except ImportError as error:
        print(f"YOLO-s skipped: kbaselines.xray.yolo.yolo_s is not available ({error})")
    batch = [
        torch.rand(3, size, size, generator=torch.Generator().manual_seed(k)) for k in range(images)
    ]
    speeds = {}
    for name, build in builders.items():
        net = build().eval()
        with torch.inference_mode():
            seconds = _timed(lambda net=net: net(batch), repeats)
        speeds[name] = images / seconds
        print(f"{name:<30} {speeds[name]:8.2f} images/s at {size}x{size}")
    return speeds


def _fake_predictions(num_images: int, num_classes: int, seed: int = 0):
    """Ground truth (3 objects per image) and noisy detections (20 per image, some matching)."""
    rng = np.random.default_rng(seed)
    targets, predictions = [], []
    for _ in range(num_images):
        xy = rng.uniform(0, 400, (3, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(20, 100, (3, 2))], axis=1)
        labels = rng.integers(1, num_classes + 1, 3)
        noise = rng.normal(0, 8, (3, 4))
        extra_xy = rng.uniform(0, 400, (17, 2))
        extra = np.concatenate([extra_xy, extra_xy + rng.uniform(10, 80, (17, 2))], axis=1)
        targets.append({"boxes": boxes, "labels": labels})
        predictions.append(
            {
                "boxes": np.concatenate([boxes + noise, extra]),
                "labels": np.concatenate([labels, rng.integers(1, num_classes + 1, 17)]),
                "scores": rng.uniform(0, 1, 20),
            }
        )
    return predictions, targets


def bench_metrics(num_images: int, num_classes: int, repeats: int) -> dict[str, float]:
    """Seconds of the framework's metric path and of plain pycocotools on the same predictions."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    predictions, targets = _fake_predictions(num_images, num_classes)
    sizes = [(512, 512)] * num_images
    categories = [f"c{k}" for k in range(1, num_classes + 1)]

    def ours() -> None:
        detection_metrics(predictions, targets, sizes, categories)

    def plain() -> None:
        gt = box_ground_truth(
            [t["boxes"] for t in targets], [t["labels"] for t in targets], sizes, categories
        )
        results = box_results(
            [p["boxes"] for p in predictions],
            [p["labels"] for p in predictions],
            [p["scores"] for p in predictions],
        )
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = gt
            coco.createIndex()
            evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()

    times = {"framework": _timed(ours, repeats), "pycocotools": _timed(plain, repeats)}
    print(
        f"COCO mAP on {num_images} images: framework path {times['framework']:.3f} s, "
        f"plain pycocotools {times['pycocotools']:.3f} s, "
        f"ratio pycocotools / framework = {times['pycocotools'] / times['framework']:.2f}"
    )
    return times


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench_xray")
def main(cfg: DictConfig) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    speeds = bench_inference(cfg.size, cfg.images, cfg.num_classes, cfg.repeats)
    if "YOLO-s" in speeds:
        reference = speeds["Faster R-CNN R50-FPN v2"]
        print(f"YOLO-s / Faster R-CNN R50-FPN v2 speed ratio: {speeds['YOLO-s'] / reference:.2f}")
    bench_metrics(cfg.metric_images, cfg.num_classes, cfg.repeats)


if __name__ == "__main__":
    main()
