"""Object detection: train any torchvision-style detector, score it with COCO and VOC metrics.

The detector contract (Faster R-CNN from torchvision, the YOLO of ``kbaselines.xray.yolo``):

- ``net(images, targets)`` in training mode returns a dict of scalar losses, summed here;
  ``images`` is ``list[FloatTensor[3, H, W]]`` with values 0..1 (sizes may differ) and
  ``targets`` is ``list[{"boxes": FloatTensor[N, 4] x_min y_min x_max y_max in pixels,
  "labels": Int64Tensor[N] in 1..num_classes}]`` (0 is the background; N may be 0).
- ``net(images)`` in eval mode returns ``list[{"boxes": [M, 4], "labels": [M], "scores": [M]}]``
  in the same pixel coordinates.
- ``net.num_classes``: object categories without the background (stored in checkpoints).

Batches are ``{"images", "targets", "index", "scale"}`` (``XrayDataModule``): ``scale`` (x, y)
maps each image back to its annotation's pixels, where metrics and outputs are computed. The
category names come from the task's ``info`` (label ``k`` is ``info.class_names[k - 1]``), the
evaluated files from the DataModule's declared ``eval_records(stage)``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.io import write_json_atomic, write_text_atomic
from kbaselines.core.optimization import OptimizerFactory, SchedulerFactory
from kbaselines.core.task import BaseTask
from kbaselines.xray.metrics import DetectionScores, detection_metrics
from kbaselines.xray.plots import plot_ap_bars, plot_detection_grid, plot_pr_curves

__all__ = [
    "ROW_FIELDS",
    "DetectionTask",
    "boxes_in_scan_pixels",
    "in_scan_pixels",
    "result_rows",
]

#: the numbers logged at validation (``val/map50`` is the checkpoint monitor)
VAL_METRICS = ("map", "map50", "voc_map50")
#: the columns of the detection CSVs (``predictions_test.csv``, ``predict.py``'s ``detections.csv``)
ROW_FIELDS = ("image", "category", "score", "x_min", "y_min", "x_max", "y_max")


def boxes_in_scan_pixels(boxes: torch.Tensor, scale: torch.Tensor) -> np.ndarray:
    """Boxes ``[N, 4]`` of the dataset's image (maybe resized: ``scale`` = its (x, y) factor)
    back in the scan's own pixels, float64 on the CPU."""
    return boxes.detach().cpu().double().numpy() / scale.detach().cpu().double().numpy().repeat(2)


def in_scan_pixels(detection: Mapping[str, torch.Tensor], scale: torch.Tensor) -> dict[str, Any]:
    """A detector's output for one image in the scan's pixels, as numpy: what evaluation scores
    and prediction writes."""
    return {
        "boxes": boxes_in_scan_pixels(detection["boxes"], scale),
        "labels": detection["labels"].detach().cpu().numpy(),
        "scores": detection["scores"].detach().cpu().double().numpy(),
    }


def result_rows(
    results: Sequence[Mapping[str, Any]], file_names: Sequence[str], categories: Sequence[str]
) -> list[dict[str, Any]]:
    """COCO results (image ``k`` has id ``k + 1``) as readable CSV rows (:data:`ROW_FIELDS`)."""
    return [
        {
            "image": file_names[r["image_id"] - 1],
            "category": categories[r["category_id"] - 1],
            "score": round(r["score"], 5),
            "x_min": round(r["bbox"][0], 2),
            "y_min": round(r["bbox"][1], 2),
            "x_max": round(r["bbox"][0] + r["bbox"][2], 2),
            "y_max": round(r["bbox"][1] + r["bbox"][3], 2),
        }
        for r in results
    ]


class DetectionTask(BaseTask):
    """Detection training and COCO/VOC evaluation around a detector (see the module docstring).

    Args:
        net: the detector.
        optimizer: a partial optimizer, called with the parameters.
        scheduler: an optional partial LR scheduler.
        scheduler_interval: ``epoch`` or ``step``.
        warmup_steps: linear learning-rate warm-up over the first steps (0: none), as torchvision's
            detection recipes do; it keeps early Faster R-CNN steps from diverging.
        metric_backend: ``faster_coco_eval`` or ``pycocotools`` (same numbers).
        plot_images: how many test images the prediction grid shows.
        plot_score_threshold: predictions drawn in the grid score at least this.
        info: the data's facts (the category names in label order, background excluded).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        warmup_steps: int = 0,
        metric_backend: str = "faster_coco_eval",
        plot_images: int = 8,
        plot_score_threshold: float = 0.3,
        info: DataInfo | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_interval, info=info)
        self._scores: dict[str, DetectionScores] = {}
        self._evaluated: dict[str, list[dict[str, Any]]] = {}

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections of a list of images (eval mode)."""
        return self.net(images)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.net(batch["images"], batch["targets"])
        loss = sum(losses.values())
        size = len(batch["images"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        for name, value in losses.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=size)
        return loss

    # -- evaluation -------------------------------------------------------------------------------
    def _detect_step(self, batch: dict[str, Any]) -> None:
        """Keep each image's predictions and targets in annotation pixels, on the CPU."""
        detections = self.net(batch["images"])
        for k, (image, prediction, target) in enumerate(
            zip(batch["images"], detections, batch["targets"], strict=True)
        ):
            scale = batch["scale"][k]
            height, width = image.shape[1:]
            self.collect(
                {
                    "index": int(batch["index"][k]),
                    "size": (round(width / float(scale[0])), round(height / float(scale[1]))),
                    "prediction": in_scan_pixels(prediction, scale),
                    "target": {
                        "boxes": boxes_in_scan_pixels(target["boxes"], scale),
                        "labels": target["labels"].detach().cpu().numpy(),
                    },
                }
            )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._detect_step(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._detect_step(batch)

    def categories(self) -> list[str]:
        """The category names, label ``k`` being ``names[k - 1]``; ``"1"`` .. ``"C"`` for a task
        built without the data's info (a bare task in a unit test)."""
        if self.info.class_names:
            return list(self.info.class_names)
        return [str(k) for k in range(1, self.net.num_classes + 1)]

    def _file_names(self, stage: str, outputs: list[dict[str, Any]]) -> list[str]:
        """The image path of each output, named in the COCO files, predictions and plot titles."""
        records = self.data.eval_records(stage)
        return [records[o["index"]].path for o in outputs]

    def _score(self, stage: str) -> DetectionScores | None:
        outputs = self.gathered_objects()
        if not outputs:
            return None
        scores = detection_metrics(
            [o["prediction"] for o in outputs],
            [o["target"] for o in outputs],
            [o["size"] for o in outputs],
            self.categories(),
            self._file_names(stage, outputs),
            backend=self.hparams.metric_backend,
        )
        self._scores[stage] = scores
        self._evaluated[stage] = outputs
        return scores

    def on_validation_epoch_end(self) -> None:
        scores = self._score("val")
        if scores is not None:
            metrics = {f"val/{k}": max(scores.metrics[k], 0.0) for k in VAL_METRICS}
            self.log_dict(metrics, prog_bar=True, sync_dist=False)

    def on_test_epoch_end(self) -> None:
        scores = self._score("test")
        if scores is None:
            raise RuntimeError("no test batches: the test set is empty")
        self.log_dict({f"test/{k}": float(v) for k, v in scores.metrics.items()}, sync_dist=False)
        names = [i["file_name"] for i in scores.ground_truth["images"]]
        self.test_predictions = result_rows(scores.results, names, self.categories())

    def write_test_outputs(self, out_dir: Path, stage: str) -> None:
        """Category ids, COCO ground truth and results JSON, per-class table and plots."""
        scores = self._scores.get("test")
        if scores is None:
            return
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "categories.json", scores.ground_truth["categories"])
        write_json_atomic(out_dir / f"coco_gt_{stage}.json", scores.ground_truth)
        write_json_atomic(out_dir / f"coco_results_{stage}.json", scores.results)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(scores.per_class[0]))
        writer.writeheader()
        writer.writerows(scores.per_class)
        write_text_atomic(out_dir / f"per_class_{stage}.csv", buffer.getvalue())
        write_text_atomic(out_dir / f"coco_summary_{stage}.txt", scores.coco.summary)
        categories = self.categories()
        plot_ap_bars(
            scores.per_class, out_dir / f"ap_per_class_{stage}.png", f"Per-class AP, {stage}"
        )
        plot_pr_curves(scores.coco.precision, categories, out_dir / f"pr_curves_{stage}.png")
        self._plot_grid(out_dir / f"detections_{stage}.png", categories)

    def _plot_grid(self, path: Path, categories: list[str]) -> None:
        """The first ``plot_images`` test images, reloaded unaugmented, with boxes in their pixels."""
        outputs = self._evaluated["test"][: self.hparams.plot_images]
        if not outputs:
            return
        dataset = self.data.datasets["test"]
        images, predictions, targets = [], [], []
        for output in outputs:
            item = dataset[output["index"]]
            scale = item["scale"].double().numpy().repeat(2)
            images.append(item["image"].permute(1, 2, 0).numpy())
            predictions.append(
                {**output["prediction"], "boxes": output["prediction"]["boxes"] * scale}
            )
            targets.append({**output["target"], "boxes": output["target"]["boxes"] * scale})
        titles = self._file_names("test", outputs)
        plot_detection_grid(
            images,
            predictions,
            targets,
            categories,
            path,
            score_threshold=self.hparams.plot_score_threshold,
            titles=[Path(t).name for t in titles],
        )

    # -- checkpoints and optimisation -------------------------------------------------------------
    def net_sizes(self) -> dict[str, int]:
        """The category count of the detector's head (without the background), so ``eval.py``
        can rebuild the net."""
        return {"num_classes": self.net.num_classes}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also record the category names, so that a checkpoint's labels can be read alone."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["categories"] = self.categories()

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """Ramp the learning rate linearly over the first ``warmup_steps`` steps (each group from
        its learning rate at the first step, which a scheduler then takes over)."""
        step, warmup = self.trainer.global_step, self.hparams.warmup_steps
        if step <= warmup:
            for group in optimizer.param_groups:
                base = group.setdefault("warmup_target_lr", group["lr"])
                group["lr"] = base * min(1.0, (step + 1) / warmup) if warmup else base
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
