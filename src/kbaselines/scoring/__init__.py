"""Scoring of predictions files: one module per task, each with ``main(options) -> exit code``.

``scripts/score.py task=<module name> ...`` finds them by name.
"""
