"""X-ray baggage hazardous items (``xray.md``): object detection with Faster R-CNN and YOLO.

One module per job, imported by their full names:

- data: ``names`` (the file-name convention), ``reader`` (COCO JSON and Pascal VOC XML to plain
  records, no torch), ``synthetic`` (a generated tree in the same formats), ``dataset``,
  ``datamodule``;
- models: ``faster_rcnn`` (torchvision builders), ``yolo/`` (an anchor-free YOLO, one module per
  stage);
- task and evaluation: ``task`` (training, COCO/VOC evaluation), ``metrics`` (VOC AP, per-class
  tables around the shared COCO evaluation), ``plots`` (AP bars, PR curves, detections drawn),
  ``scoring`` (``scripts/score.py`` for X-ray).
"""
