"""Fold aggregation: statistics checked by hand and against scipy; config freezing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from kbaselines.core.cv.loop import write_predictions
from kbaselines.core.cv.run_folder import ConfigChangedError, freeze_config
from kbaselines.core.cv.summary import IncompleteRunError, describe, summarize_run


def test_describe_by_hand() -> None:
    row = describe([0.8, 0.9, 1.0])
    assert row["mean"] == pytest.approx(0.9)
    assert row["std"] == pytest.approx(0.1)  # sqrt(((0.1)^2 + 0 + (0.1)^2) / 2)
    # t(0.975, df=2) = 4.302653; half width = 4.302653 * 0.1 / sqrt(3)
    assert row["ci95"] == pytest.approx([0.9 - 0.248414, 0.9 + 0.248414], abs=1e-6)
    assert describe([0.5])["std"] is None


def _fake_run(run_dir: Path, num_folds: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    (run_dir / "splits.json").parent.mkdir(parents=True, exist_ok=True)
    (run_dir / "splits.json").write_text(json.dumps({"scheme": "kfold", "num_folds": num_folds}))
    folds = []
    for k in range(num_folds):
        target = rng.integers(0, 2, 50)
        score = target + rng.normal(0, 1, 50)
        fold_dir = run_dir / f"fold_{k}"
        fold_dir.mkdir()
        auc = float(roc_auc_score(target, score))
        (fold_dir / "metrics.json").write_text(json.dumps({"test/roc_auc": auc}))
        rows = [{"score": s, "target": int(t)} for s, t in zip(score, target, strict=True)]
        write_predictions(fold_dir / "predictions_test.csv", rows)
        folds.append((score, target))
    return folds


def test_summary_of_a_run(tmp_path: Path) -> None:
    folds = _fake_run(tmp_path)
    summary = summarize_run(tmp_path)
    aucs = [roc_auc_score(t, s) for s, t in folds]
    row = summary["metrics"]["test/roc_auc"]
    assert row["folds"] == pytest.approx(aucs)
    assert row["std"] == pytest.approx(np.std(aucs, ddof=1))
    pooled = roc_auc_score(
        np.concatenate([t for _, t in folds]), np.concatenate([s for s, _ in folds])
    )
    assert summary["pooled"]["test/roc_auc"] == pytest.approx(pooled)
    assert json.loads((tmp_path / "cv_summary.json").read_text()) == summary
    assert "| test/roc_auc |" in (tmp_path / "cv_summary.md").read_text()
    assert (tmp_path / "roc_folds.png").stat().st_size > 0


def test_summary_refuses_missing_folds(tmp_path: Path) -> None:
    _fake_run(tmp_path)
    (tmp_path / "fold_1" / "metrics.json").unlink()
    with pytest.raises(IncompleteRunError, match=r"folds \[1\]"):
        summarize_run(tmp_path)


def test_frozen_config_refuses_changes(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"trainer": {"max_epochs": 3}, "cv": {"fold": 0}})
    freeze_config(tmp_path, cfg)
    freeze_config(tmp_path, OmegaConf.create({"trainer": {"max_epochs": 3}, "cv": {"fold": 1}}))
    changed = OmegaConf.create({"trainer": {"max_epochs": 4}, "cv": {"fold": 0}})
    with pytest.raises(ConfigChangedError, match=r"trainer.max_epochs: 3 -> 4"):
        freeze_config(tmp_path, changed)
    freeze_config(tmp_path, changed, force=True)
