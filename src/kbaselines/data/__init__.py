"""Datasets: per dataset, a reader of the real format, a Dataset, a DataModule, a synthetic twin.

Readers turn files into plain records (no torch) and know nothing of models; a DataModule exposes
its samples as a :class:`~kbaselines.data.samples.SampleTable` for the cross-validation layer and
takes its fold as ``split``; every dataset reports its counts and problems as a
:class:`~kbaselines.data.report.DatasetReport` (``python scripts/check_dataset.py data=<name>``).
"""
