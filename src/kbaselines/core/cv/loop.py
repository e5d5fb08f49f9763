"""The cross-validation layer around the Lightning Trainer: splits, then one fit and test per fold.

Read top to bottom like ``run_cross_validation``: freeze the config, split, check for leakage, then
for each fold build DataModule + task + Trainer with the fold's folder, fit (resuming from
``last.ckpt``), test, write ``metrics.json``; aggregate when every fold is done.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from kbaselines.core.builders import (
    build_datamodule,
    build_task,
    build_trainer,
    check_training_limits,
)
from kbaselines.core.cluster.fold_plan import FoldPlan, shared_plan
from kbaselines.core.cluster.resume import resume_checkpoint
from kbaselines.core.cv.run_folder import freeze_config
from kbaselines.core.cv.settings import CVSettings
from kbaselines.core.cv.splits import (
    OFFICIAL,
    Fold,
    Splits,
    check_no_leakage,
    fold_indices,
    load_splits,
    make_splits,
)
from kbaselines.core.cv.summary import FOLD_PREFIX, IncompleteRunError, summarize_run
from kbaselines.core.data.datamodule import FoldDataModule
from kbaselines.core.io import write_json_atomic, write_text_atomic
from kbaselines.core.plots import plot_roc
from kbaselines.core.pretrained import check_published_weights
from kbaselines.core.task import BaseTask

__all__ = ["evaluate", "run_cross_validation", "run_fold", "write_predictions"]

log = logging.getLogger(__name__)


def run_cross_validation(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate every fold this process owns; return the summary, or the fold metrics."""
    check_training_limits(cfg.trainer)
    check_published_weights(cfg)  # a missing weights file stops the run before data is read
    datamodule = build_datamodule(cfg.data)  # refuses bad data settings before anything is frozen
    run_dir = Path(cfg.paths.output_dir)
    freeze_config(run_dir, cfg, force=cfg.get("force", False))
    datamodule.prepare_data()
    if cfg.cv.scheme == OFFICIAL:
        datamodule.require_official_parts()  # before the samples are read and decoded
    table = datamodule.sample_table()
    splits = _load_or_make_splits(run_dir / "splits.json", table, OmegaConf.to_object(cfg.cv))
    check_no_leakage(splits, table)
    log.info(
        "Splits: %d folds over %d samples, written to %s", splits.num_folds, len(table.ids), run_dir
    )
    indices = list(fold_indices(splits, cfg.cv.fold))
    plan = shared_plan(run_dir, lambda: _fold_plan(run_dir, indices))
    metrics: dict[str, Any] = {}
    for index in indices:
        fold = splits.folds[index]
        metrics[f"fold_{index}"] = run_fold(cfg, splits, fold, run_dir, plan[str(index)])
    if rank_zero_only.rank != 0:  # DDP: the summary is rank 0's
        return metrics
    try:
        summary = summarize_run(run_dir)
    except IncompleteRunError as error:
        log.info("%s", error)
        return metrics
    plots = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*.png"))
    log.info(
        "Summary of %s:\n%s\nWritten: cv_summary.json, cv_summary.md; plots: %s",
        run_dir,
        (run_dir / "cv_summary.md").read_text(),
        ", ".join(plots),
    )
    return summary


def _load_or_make_splits(path: Path, table: Any, cv: CVSettings) -> Splits:
    splits = make_splits(
        table,
        scheme=cv.scheme,
        num_folds=cv.num_folds,
        seed=cv.seed,
        val_fraction=cv.val_fraction,
        test_fraction=cv.test_fraction,
        train_fraction=cv.train_fraction,
        test_size=cv.test_size,
    )
    if path.exists() and load_splits(path) != splits:
        raise RuntimeError(
            f"{path} differs from the splits computed now: the dataset changed since the run "
            "started. Start a new run (run_name=<new name>)."
        )
    splits.to_json(path)
    return splits


def _fold_plan(run_dir: Path, indices: list[int]) -> FoldPlan:
    """For each fold: finished already (``metrics.json``), or the checkpoint to resume from."""
    plan: FoldPlan = {}
    for index in indices:
        fold_dir = run_dir / f"{FOLD_PREFIX}{index}"
        done = (fold_dir / "metrics.json").exists()
        resume = None if done else resume_checkpoint(fold_dir)
        plan[str(index)] = {"done": done, "resume": None if resume is None else str(resume)}
    return plan


def _fold_config(cfg: DictConfig, fold: Fold, fold_dir: Path) -> DictConfig:
    """A copy of the config pointing at this fold's folder, without a monitor when there is no val."""
    fold_cfg = cfg.copy()
    with open_dict(fold_cfg):
        fold_cfg.cv.fold = fold.index
        fold_cfg.paths.fold_dir = str(fold_dir)
        if not fold.val:
            for callback in (fold_cfg.get("callbacks") or {}).values():
                if callback is not None and "monitor" in callback:
                    callback.monitor = None
    return fold_cfg


def run_fold(
    cfg: DictConfig,
    splits: Splits,
    fold: Fold,
    run_dir: Path,
    plan: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit and test one fold in ``fold_<k>/``; a finished fold is read back, not trained again.

    ``plan`` (rank 0's decision, the same on every rank) says whether the fold is finished and
    which checkpoint it resumes from; without it, the fold folder is looked at here. The metrics
    say which weights were tested (``tested_checkpoint``: ``best`` or ``last``).
    """
    fold_dir = run_dir / f"{FOLD_PREFIX}{fold.index}"
    done = fold_dir / "metrics.json"
    if plan is None:
        plan = _fold_plan(run_dir, [fold.index])[str(fold.index)]
    if plan["done"]:
        log.info("Fold %d finished earlier (%s): skipped", fold.index, done)
        return OmegaConf.to_container(OmegaConf.load(done))  # type: ignore[return-value]
    fold_cfg = _fold_config(cfg, fold, fold_dir)
    pl.seed_everything(cfg.seed + fold.index, workers=True)
    datamodule = build_datamodule(fold_cfg.data, split=fold.as_split())
    datamodule.setup("fit")
    task = build_task(fold_cfg.model, datamodule)
    trainer = build_trainer(fold_cfg)
    resume = plan["resume"]
    if resume is not None:
        log.info("Fold %d: resuming from %s", fold.index, resume)
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    tested = _tested_checkpoint(trainer, fold)
    best = tested == "best"
    metrics: dict[str, Any] = evaluate(trainer, task, datamodule, fold_dir, best=best)
    if splits.heldout:
        heldout = build_datamodule(
            fold_cfg.data, split={"train": fold.train, "val": [], "test": splits.heldout}
        )
        metrics.update(evaluate(trainer, task, heldout, fold_dir, best=best, stage="heldout"))
    metrics["tested_checkpoint"] = tested
    if trainer.is_global_zero:
        write_json_atomic(done, metrics)
    return metrics


def _tested_checkpoint(trainer: pl.Trainer, fold: Fold) -> str:
    """``best`` when the fold has a validation part and a checkpoint was selected on a number;
    else ``last``, the weights training ended with (the reason logged)."""
    if not fold.val:
        return "last"
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or not callback.best_model_path:
        reason = (
            "no best checkpoint, since no validation ran before training stopped "
            "(trainer.max_steps or trainer.max_time reached first, or trainer.limit_val_batches=0)"
        )
    elif callback.best_model_score is not None and not torch.isfinite(callback.best_model_score):
        reason = f"{callback.monitor} was never a number, so no checkpoint is better than another"
    else:
        return "best"
    log.warning(
        "Fold %d: %s: testing the last weights instead (tested_checkpoint: last in metrics.json)",
        fold.index,
        reason,
    )
    return "last"


def evaluate(
    trainer: pl.Trainer,
    task: BaseTask,
    datamodule: FoldDataModule,
    out_dir: Path,
    best: bool = True,
    stage: str = "test",
) -> dict[str, float]:
    """Test the best (or last) checkpoint; write predictions and a ROC plot; return the metrics.

    The task's own files (detections as COCO JSON, plots) come from its
    :meth:`~kbaselines.core.task.BaseTask.write_test_outputs`, called on the global rank 0 after
    the test. Its ``test_predictions`` rows are written as ``predictions_<stage>.csv``; rows with
    ``score`` and ``target`` columns also give a ROC curve. Metrics are renamed from ``test/...`` to ``<stage>/...`` so that a held-out set keeps its own keys.
    """
    results = trainer.test(
        task, datamodule=datamodule, ckpt_path="best" if best else None, weights_only=True
    )
    metrics = {key.replace("test/", f"{stage}/", 1): float(v) for key, v in results[0].items()}
    if trainer.is_global_zero:
        task.write_test_outputs(out_dir, stage)
    rows = task.test_predictions
    if rows and trainer.is_global_zero:
        write_predictions(out_dir / f"predictions_{stage}.csv", rows)
        if {"score", "target"} <= set(rows[0]):
            scores = [float(r["score"]) for r in rows]
            targets = [int(r["target"]) for r in rows]
            plot_roc(
                {stage: (scores, targets)},
                out_dir / f"roc_{stage}.png",
                title=f"ROC, {out_dir.name}",
            )
    return metrics


def write_predictions(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write prediction rows (dicts with the same keys) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())
