"""Datasets: for each, a reader of the real on-disk format, a Dataset, a DataModule and a synthetic twin.

Readers turn files into plain records (no torch) and know nothing of models.
"""
