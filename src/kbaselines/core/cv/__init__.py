"""Cross-validation, our layer around the Lightning Trainer (Lightning has none built in).

- ``settings``: the ``cv`` config schema (every key and its default, unknown keys refused).
- ``splits``: group-aware, stratified folds from a sorted sample table; leakage check.
- ``run_folder``: the frozen config of a run folder.
- ``loop``: the fold loop (fit, resume, test, write per-fold results).
- ``summary``: mean, std, Student-t interval and pooled metrics over folds.
"""
