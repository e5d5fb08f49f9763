"""Plots written next to the numbers at the end of a fold or a run.

- ``roc``: ROC curves (one per fold, and pooled) as a PNG, FAR on a log axis by default.
"""

from kbaselines.reports.roc import plot_roc

__all__ = ["plot_roc"]
