"""X-ray prediction and export: scans in; COCO results, a CSV and drawn detections out.

``input=`` is a folder of scans (searched recursively for ``.png``, ``.jpg``, ``.jpeg``, ``.bmp``)
or one scan, of any size, greyscale or colour. A scan is prepared exactly as the evaluation prepares
a test scan (the same :class:`~kbaselines.xray.dataset.XrayDataset`: greyscale repeated to RGB,
the data's ``max_size`` resize, then the detector's own resize or letterbox), and its detections
are mapped back to the scan's pixels as the evaluation's COCO results are. A file that cannot be
read, or whose channel count is neither 1 (greyscale) nor 3 (colour), is reported and skipped.

Written into ``out=``:

- ``detections.json``: COCO results (``image_id``, ``category_id``, ``bbox`` x y w h, ``score``);
- ``coco_images.json``: what the ids mean: ``images`` (id ``k`` is the ``k``-th scan in path
  order, with its ``file_name`` relative to ``input`` and its size), ``categories`` (ids and the
  checkpoint's class names) and ``info`` (the checkpoints used); load it as a COCO ground truth
  and the results with ``loadRes``;
- ``detections.csv``: one row per detection, the columns of ``predictions_test.csv``;
- ``drawn/<scan>.png``: each scan with its detections and category names (``predictor.draw``).

A fold ensemble (``ckpt_path=<run folder>``) fuses the folds' detections of each image by
class-wise NMS over their union (``torchvision.ops.batched_nms`` at ``fusion_iou``, by default
the detector's own NMS IoU), keeping at most as many detections as the most prolific fold
returned. NMS rather than weighted box fusion:
each kept box and score is one a fold predicted (no averaged coordinates of boxes that only partly
agree) and it is the operator the detectors already use. One checkpoint's detections are written
as the detector returns them (no further NMS), so they equal its evaluation's COCO results.

Export contracts (``export.py``): YOLO exports a letterboxed batch -> raw head outputs (dynamic
batch); box decoding and NMS stay outside the graph, in
:func:`kbaselines.xray.yolo.postprocess.decode_detections` (named in the model card with its
thresholds) followed by :func:`kbaselines.xray.yolo.letterbox.boxes_from_letterbox`. Faster R-CNN
exports one image -> boxes, labels, scores with torchvision's resize, normalisation and NMS inside
the graph, at batch 1 and the traced height and width (see :meth:`DetectionPredictor.export_contract`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.models.detection import FasterRCNN
from torchvision.ops import batched_nms

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.io import write_json_atomic, write_text_atomic
from kbaselines.core.metrics.coco import box_ground_truth, box_results
from kbaselines.core.predict.checkpoints import LoadedTask
from kbaselines.core.predict.predictor import ExportContract, Inputs, Predictor
from kbaselines.xray.dataset import XrayDataset, collate_detection, read_scan
from kbaselines.xray.faster_rcnn import SingleImageDetector
from kbaselines.xray.names import parse_image_path
from kbaselines.xray.plots import plot_detection_grid
from kbaselines.xray.reader import IMAGE_SUFFIXES, XrayFormatError, XrayImage
from kbaselines.xray.task import ROW_FIELDS, in_scan_pixels, result_rows
from kbaselines.xray.yolo.letterbox import PAD_VALUE
from kbaselines.xray.yolo.yolo import YOLO, YOLORawOutputs

__all__ = ["SCAN_BANDS", "DetectionPredictor", "fuse_detections"]

#: channel counts of a scan: greyscale or colour
SCAN_BANDS = (1, 3)
#: ONNX Runtime against PyTorch: raw logits (YOLO; measured 1.1e-5 for YOLO-s at 640 px) and
#: boxes in pixels (Faster R-CNN; float32 boxes near 1333 px differed by 6e-4, at 64 px by 1e-5)
YOLO_TOLERANCE = 1e-4
RCNN_TOLERANCE = 1e-2


def fuse_detections(detections: Sequence[dict[str, np.ndarray]], iou: float) -> dict[str, Any]:
    """One image's detections of several models fused by class-wise NMS over their union (see
    the module docstring), by score; one model's are returned unchanged."""
    if len(detections) == 1:
        return detections[0]
    boxes = torch.from_numpy(np.concatenate([d["boxes"].reshape(-1, 4) for d in detections]))
    scores = torch.from_numpy(np.concatenate([d["scores"] for d in detections]))
    labels = torch.from_numpy(np.concatenate([d["labels"] for d in detections]))
    keep = batched_nms(boxes, scores, labels, iou)[: max(len(d["scores"]) for d in detections)]
    return {
        "boxes": boxes[keep].numpy(),
        "labels": labels[keep].numpy(),
        "scores": scores[keep].numpy(),
    }


def _drawn_name(path: str) -> str:
    """``drawn/`` file of a scan: its relative path, ``.png`` appended unless it is one."""
    return path if path.lower().endswith(".png") else f"{path}.png"


class DetectionPredictor(Predictor):
    """Detections of X-ray scans by a detection task (Faster R-CNN or YOLO), one checkpoint or a
    fold ensemble (see the module docstring).

    Args:
        batch_size: scans per batch.
        num_workers: data-loader workers reading the scans.
        max_size: the data's longest-side resize before the detector (``data.max_size``), as the
            evaluation applies it; None: none.
        score_threshold: detections written (JSON, CSV) score at least this; 0: every detection
            the detector returns, as in the evaluation's COCO results.
        fusion_iou: IoU of the class-wise NMS that fuses a fold ensemble's detections; None: the
            detector's own NMS IoU (YOLO's ``nms_thresh``, Faster R-CNN's RoI heads'), so that
            the fused set is what one detector's NMS would keep of the union.
        draw: draw each scan with its detections scoring at least the task's
            ``plot_score_threshold`` (and ``score_threshold``).
    """

    collate_fn = staticmethod(collate_detection)

    def __init__(
        self,
        *,
        batch_size: int = 4,
        num_workers: int = 0,
        max_size: int | None = None,
        score_threshold: float = 0.0,
        fusion_iou: float | None = None,
        draw: bool = True,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        if fusion_iou is not None and not 0.0 < fusion_iou <= 1.0:
            raise ValueError(f"predictor.fusion_iou={fusion_iou} must lie in (0, 1]")
        self.max_size = max_size
        self.score_threshold = score_threshold
        self.fusion_iou = fusion_iou
        self.draw = draw
        self.root = Path()

    # -- inputs -----------------------------------------------------------------------------------
    def read_inputs(self, source: Path | None) -> Inputs:
        """Every scan of the folder ``source`` (or the scan ``source``), opened and checked;
        unreadable files and wrong channel counts are problems, the rest items.

        Raises:
            FileNotFoundError: no ``input``, or it holds no scan.
        """
        if source is None or not source.exists():
            raise FileNotFoundError(
                f"input={source} does not exist: give a folder of X-ray scans or one scan"
            )
        self.root = source if source.is_dir() else source.parent
        files = [source] if source.is_file() else sorted(source.rglob("*"))
        scans = [f for f in files if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        if not scans:
            raise FileNotFoundError(
                f"input={source} holds no scan ({', '.join(IMAGE_SUFFIXES)}): give a folder of "
                "X-ray scans"
            )
        items, problems = [], []
        for file in scans:
            path = file.relative_to(self.root).as_posix()
            try:
                height, width = read_scan(file, SCAN_BANDS).shape[:2]
            except XrayFormatError as error:
                problems.append(Problem(path, str(error).removeprefix(f"{file}: ")))
                continue
            items.append(XrayImage(path, width, height, parse_image_path(path), (), path))
        return Inputs(items, problems)

    def dataset(self, items: Sequence[XrayImage]) -> XrayDataset:
        """The scans prepared as the evaluation prepares test scans (no labels)."""
        return XrayDataset(self.root, items, {}, train=False, max_size=self.max_size)

    # -- prediction -------------------------------------------------------------------------------
    def predict_batch(self, models: Sequence[LoadedTask], batch: dict[str, Any]) -> list[Any]:
        """Each scan's detections in its own pixels, fused over the models."""
        per_model = [
            [
                in_scan_pixels(detection, scale)
                for detection, scale in zip(
                    model.task(batch["images"]), batch["scale"], strict=True
                )
            ]
            for model in models
        ]
        iou = self._fusion_iou(models[0])
        return [
            fuse_detections([detections[k] for detections in per_model], iou)
            for k in range(len(batch["images"]))
        ]

    def _fusion_iou(self, model: LoadedTask) -> float:
        if self.fusion_iou is not None:
            return self.fusion_iou
        net = model.task.net
        return float(net.roi_heads.nms_thresh if isinstance(net, FasterRCNN) else net.nms_thresh)

    # -- outputs ----------------------------------------------------------------------------------
    def write(
        self,
        items: Sequence[XrayImage],
        predictions: Sequence[dict[str, Any]],
        models: Sequence[LoadedTask],
        out: Path,
    ) -> dict[str, int]:
        """``detections.json``, ``coco_images.json``, ``detections.csv`` and ``drawn/``."""
        categories = models[0].task.categories()
        kept = []
        for prediction in predictions:
            chosen = prediction["scores"] >= self.score_threshold
            kept.append({key: value[chosen] for key, value in prediction.items()})
        names = [item.path for item in items]
        results = box_results(
            [p["boxes"] for p in kept], [p["labels"] for p in kept], [p["scores"] for p in kept]
        )
        write_json_atomic(out / "detections.json", results)
        images = box_ground_truth(
            [np.zeros((0, 4))] * len(items),
            [np.zeros(0, dtype=np.int64)] * len(items),
            [(item.width, item.height) for item in items],
            categories,
            names,
        )
        info = {
            "checkpoints": [{"path": str(m.path), "sha256": m.sha256} for m in models],
            "fusion": "class-wise NMS over the folds' detections at IoU "
            f"{self._fusion_iou(models[0])}"
            if len(models) > 1
            else None,
            "score_threshold": self.score_threshold,
        }
        write_json_atomic(out / "coco_images.json", {"info": info, **images})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(ROW_FIELDS))
        writer.writeheader()
        writer.writerows(result_rows(results, names, categories))
        write_text_atomic(out / "detections.csv", buffer.getvalue())
        drawn = self._draw(items, kept, models[0], out / "drawn") if self.draw else 0
        return {"images": len(items), "detections": len(results), "drawn": drawn}

    def _draw(
        self,
        items: Sequence[XrayImage],
        predictions: Sequence[dict[str, Any]],
        model: LoadedTask,
        folder: Path,
    ) -> int:
        """One PNG per scan (its pixels as read for prediction), boxes named by category."""
        dataset = self.dataset(items)
        categories = model.task.categories()
        threshold = max(self.score_threshold, float(model.task.hparams.plot_score_threshold))
        for item, prediction in zip(items, predictions, strict=True):
            path = folder / _drawn_name(item.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            plot_detection_grid(
                [dataset.load(item) / 255.0],
                [prediction],
                None,
                categories,
                path,
                score_threshold=threshold,
                titles=[item.path],
            )
        return len(items)

    # -- export -----------------------------------------------------------------------------------
    def export_contract(self, model: LoadedTask) -> ExportContract:
        """YOLO: letterboxed batch -> raw head outputs, dynamic batch, decoding and NMS after the
        graph. Faster R-CNN: one image -> boxes, labels, scores, NMS inside the graph; batch 1 at
        any height and width (torchvision's detectors unroll their loop over a batch).

        Raises:
            TypeError: the net is neither (naming its type).
        """
        net = model.task.net
        if isinstance(net, YOLO):
            return self._yolo_contract(net)
        if isinstance(net, FasterRCNN):
            return self._rcnn_contract(net)
        raise TypeError(
            f"{model.path}: cannot export a {type(net).__name__}; the X-ray export knows YOLO "
            "(kbaselines.xray.yolo) and torchvision's Faster R-CNN"
        )

    def _scan_preprocessing(self) -> dict[str, Any]:
        return {
            "channels": "RGB; greyscale scans repeated to 3 channels (PIL convert('RGB'))",
            "range": "0..1 (uint8 / 255)",
            "data_max_size": self.max_size,
            "data_resize": "longest side resized to data_max_size (albumentations "
            "LongestMaxSize, bilinear) before the network when set; divide the boxes by its "
            "factor for the scan's pixels",
        }

    def _yolo_contract(self, net: YOLO) -> ExportContract:
        size, strides = net.input_size, net.head.strides
        generator = torch.Generator().manual_seed(0)
        example = torch.rand(2, net.in_chans, size, size, generator=generator)
        return ExportContract(
            module=YOLORawOutputs(net).eval(),
            example_inputs=(example,),
            input_names=("images",),
            output_names=("cls_logits", "box_logits"),
            preprocessing={
                **self._scan_preprocessing(),
                "normalisation": "none",
                "letterbox": "kbaselines.xray.yolo.letterbox.letterbox(image, size): aspect "
                f"ratio kept (bilinear, antialiased), centred, padded with {PAD_VALUE:.6f}",
                "image_size": size,
            },
            postprocessing={
                "outputs": {
                    "cls_logits": "[B, A, C] class logits per anchor point (score = sigmoid)",
                    "box_logits": f"[B, A, 4 * {net.head.reg_max}] logits of the left, top, "
                    "right, bottom distance distributions",
                },
                "nms": "outside the graph",
                "function": "kbaselines.xray.yolo.postprocess.decode_detections",
                "arguments": {
                    "sizes": [[size // s, size // s] for s in strides],
                    "strides": list(strides),
                    "reg_max": net.head.reg_max,
                    "score_thresh": net.score_thresh,
                    "nms_thresh": net.nms_thresh,
                    "detections_per_img": net.detections_per_img,
                },
                "then": "kbaselines.xray.yolo.letterbox.boxes_from_letterbox(boxes, params of "
                "the image's letterbox): xyxy in the image's pixels",
                "labels": "1..C: class_names[label - 1]",
            },
            tolerance=YOLO_TOLERANCE,
        )

    def _rcnn_contract(self, net: FasterRCNN) -> ExportContract:
        height, width = net.transform.min_size[-1], net.transform.max_size
        generator = torch.Generator().manual_seed(0)
        example = torch.rand(3, height, width, generator=generator)
        roi = net.roi_heads
        return ExportContract(
            module=SingleImageDetector(net).eval(),
            example_inputs=(example,),
            input_names=("image",),
            output_names=("boxes", "labels", "scores"),
            preprocessing={
                **self._scan_preprocessing(),
                "input": f"one image [3, {height}, {width}]: resize the scan keeping its aspect "
                "ratio to fit, pad bottom and right with the mean below (the normalised 0 "
                "torchvision pads with)",
                "inside_graph": {
                    "resize": {"min_size": height, "max_size": width},
                    "normalisation": {
                        "mean": list(net.transform.image_mean),
                        "std": list(net.transform.image_std),
                    },
                },
            },
            postprocessing={
                "outputs": {
                    "boxes": "[K, 4] xyxy in the input image's pixels",
                    "labels": "[K] 1..C: class_names[label - 1]",
                    "scores": "[K]",
                },
                "nms": "inside the graph (torchvision's RoI heads)",
                "score_thresh": roi.score_thresh,
                "nms_thresh": roi.nms_thresh,
                "detections_per_img": roi.detections_per_img,
                "batch": "one image per call, of any height and width: torchvision's detectors "
                "loop over the images of a list, which the exporter unrolls",
            },
            dynamic_batch=False,
            dynamic_axes={"image": {1: "height", 2: "width"}},
            tolerance=RCNN_TOLERANCE,
        )
