"""What every dataset's DataModule builds on, without knowing any dataset.

- ``datamodule``: :class:`~kbaselines.core.data.datamodule.FoldDataModule`, the base with the
  declared contract (``sample_table``, ``eval_records``, ``info``, ``check``) and the fold loaders;
  :class:`~kbaselines.core.data.datamodule.DataInfo`, the data's facts handed to a task.
- ``samples``: the table of samples the CV layer splits.
- ``loaders``: worker seeding and the per-process batch size.
- ``generated``: folders of generated (synthetic) datasets, written once, atomically.
- ``dataset_report``: counts and problems of a dataset, as ``scripts/check_dataset.py`` prints them.
"""
