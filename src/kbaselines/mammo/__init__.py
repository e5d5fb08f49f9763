"""Mammography (``mammography.md``): four DICOM views per case, cancer and benign maps.

One module per job, imported by their full names:

- data: ``dicom`` (pixels as the modality and VOI LUTs say), ``headers`` (DICOM headers kept
  between starts), ``contours`` (lesion outlines), ``index`` (cases, views, metadata), ``cache``
  (decoded views memory-mapped), ``synthetic`` (generated DICOM cases), ``dataset``, ``datamodule``
  (patches, then whole views);
- model and task: ``resnet_maps`` (ResNet-34 with cancer-map and benign-map heads), ``task``
  (two-stage training, case-level scores with an operating point);
- evaluation: ``outputs`` (map overlays, subgroup tables), ``scoring`` (``scripts/score.py`` for
  mammography);
- use: ``predict`` (``predict.py`` on new studies, fold ensembles, the ``export.py`` contract).
"""
