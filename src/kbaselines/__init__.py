"""K-Baselines: the baselines of Korea's public AI training datasets, trained and cross-validated.

- :mod:`kbaselines.core`: what every baseline shares and that knows no dataset (the CV layer, the
  cluster pieces, the DataModule and task bases with their declared contract, builders, shared
  metrics and plots, I/O, config composition).
- One package per dataset family, each on ``core`` and never on another family:
  :mod:`kbaselines.kface` (LightCNN recognition, PGGAN generation), :mod:`kbaselines.pose` (Simple
  Baseline 2D and multi-view 3D), :mod:`kbaselines.xray` (Faster R-CNN, YOLO),
  :mod:`kbaselines.mammo` (ResNet-34 cancer and benign maps).

Packages import nothing on their own: modules are imported by their full names (Hydra's
``_target_`` names them), so a light tool loads only what it uses.
"""

import os

# albumentations asks pypi.org for a newer version on import: a network call an offline cluster
# waits on, and a training run has no business making
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
