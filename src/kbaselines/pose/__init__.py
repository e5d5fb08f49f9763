"""Human pose keypoints (``pose.md``): top-down 2D with Simple Baseline, multi-view 3D by DLT.

One module per job, imported by their full names:

- data: ``joints`` (the 16 joints, skeleton, OKS sigmas), ``reader`` (2D/3D JSON and cameras to
  plain records, no torch), ``detections`` (COCO-results person boxes), ``synthetic`` (a generated
  multi-camera tree in the same format), ``transforms`` (affine crops and augmentation),
  ``codec`` (keypoints to Gaussian heatmaps and back), ``info`` (the joints' facts a task is
  built with: names, OKS sigmas, head segment, mirror pairs), ``dataset``, ``datamodule``;
- model and task: ``simple_baseline`` (ResNet + deconvolution heads), ``task`` (training and
  2D/3D evaluation);
- evaluation: ``metrics`` (PCKh, OKS AP, detection matching), ``triangulation`` (DLT, MPJPE,
  P-MPJPE), ``outputs`` (predictions in the dataset's format, tables, plots), ``scoring``
  (``scripts/score.py`` for pose).
"""
