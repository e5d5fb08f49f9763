"""The engine every baseline runs on; it knows no dataset (import-linter checks it).

- ``cv/``: the cross-validation layer around the Lightning Trainer (settings schema, splits, fold
  loop, run folder, summary).
- ``cluster/``: atomic checkpoints, resume, preemption and requeue, DDP and SLURM glue.
- ``data/``: the DataModule base and its declared contract (``datamodule``), fold loaders
  (``loaders``), generated-dataset folders (``generated``), the sample table the CV layer splits
  (``samples``), the dataset report of ``scripts/check_dataset.py`` (``dataset_report``).
- ``task``: the task base (optimizers, gathering outputs across ranks, checkpoint sizes, test
  outputs); ``optimization``: optimizer and scheduler factories.
- ``builders``: DataModule, task, callbacks, loggers and Trainer from a config, for every entry point.
- ``metrics/``: ROC AUC, operating points, bootstrap intervals, DeLong (``classification``); the COCO
  evaluation for boxes and keypoints (``coco``).
- ``plots``: ROC curves; ``weights``: weights from elsewhere (weights-only) and safetensors export;
  ``io``: atomic writes; ``config``: composing the configs outside an entry point; ``evaluate``:
  the body of ``eval.py``; ``quiet``: known third-party noise silenced by exact message.
"""
