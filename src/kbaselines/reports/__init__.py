"""Plots written next to the numbers at the end of a fold or a run."""
