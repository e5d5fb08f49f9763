"""The cross-validation settings: one structured config, its defaults written once, here.

``configs/cv/*.yaml`` start from this schema (``defaults: [schema]``) and change only what their
scheme needs; Hydra then refuses a key the schema does not have (``cv.num_fold=3``) and a value of
the wrong type when the config is composed, before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

__all__ = ["CVSettings", "register_cv_schema"]


@dataclass
class CVSettings:
    """How a run's samples are split into folds (README, "Cross-validation").

    Args:
        scheme: ``kfold``, ``repeated_holdout`` (the pose guideline's), ``leave_one_group_out``
            (one domain held out per fold), ``holdout`` (one train/test cut) or ``official`` (the
            dataset's own split: train on its Training part, test on its Validation part).
        num_folds: folds, repetitions, or None (``leave_one_group_out``: one per domain;
            ``holdout``: 1); ``official`` makes one fold whatever it says.
        fold: None runs every fold in this process; an integer runs that fold only (one job per
            fold on a cluster).
        seed: seed of the splits.
        val_fraction: share of each fold's training groups kept for validation (model selection
            and operating points); 0: none, the last checkpoint is tested.
        test_fraction: share of all groups held out from every fold and scored by each fold's model.
        train_fraction: ``repeated_holdout``: share of the groups in the fixed training part.
        test_size: ``repeated_holdout`` and ``holdout``: share of all groups in each test part.
    """

    scheme: str = "kfold"
    num_folds: int | None = 5
    fold: int | None = None
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    train_fraction: float = 0.5
    test_size: float = 0.1


def register_cv_schema() -> None:
    """Make ``schema`` of the ``cv`` group (the :class:`CVSettings` defaults) known to Hydra;
    called by every entry point before it composes a config."""
    ConfigStore.instance().store(group="cv", name="schema", node=CVSettings)
