"""Metrics more than one dataset uses, each tested against an independent reference.

- ``classification``: ROC AUC, operating points, rates, bootstrap intervals, DeLong's test.
- ``coco``: the COCO evaluation (faster-coco-eval or pycocotools) for boxes and keypoints.
"""
