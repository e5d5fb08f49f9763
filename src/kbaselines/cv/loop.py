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

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from kbaselines.cv.run_folder import freeze_config
from kbaselines.cv.splits import (
    Fold,
    Splits,
    check_no_leakage,
    fold_indices,
    load_splits,
    make_splits,
)
from kbaselines.cv.summary import FOLD_PREFIX, IncompleteRunError, summarize_run
from kbaselines.io import write_json_atomic, write_text_atomic
from kbaselines.reports.roc import plot_roc

__all__ = ["build_task", "run_cross_validation", "write_predictions"]

log = logging.getLogger(__name__)


def run_cross_validation(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate every fold this process owns; return the summary, or the fold metrics."""
    run_dir = Path(cfg.paths.output_dir)
    freeze_config(run_dir, cfg, force=cfg.get("force", False))
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    table = datamodule.sample_table()
    splits = _load_or_make_splits(run_dir / "splits.json", table, cfg.cv)
    check_no_leakage(splits, table)
    log.info(
        "Splits: %d folds over %d samples, written to %s", splits.num_folds, len(table.ids), run_dir
    )
    metrics: dict[str, Any] = {}
    for index in fold_indices(splits, cfg.cv.fold):
        metrics[f"fold_{index}"] = run_fold(cfg, splits, splits.folds[index], run_dir)
    try:
        summary = summarize_run(run_dir)
    except IncompleteRunError as error:
        log.info("%s", error)
        return metrics
    log.info("Summary:\n%s", (run_dir / "cv_summary.md").read_text())
    return summary


def _load_or_make_splits(path: Path, table: Any, cv: DictConfig) -> Splits:
    splits = make_splits(
        table,
        scheme=cv.scheme,
        num_folds=cv.num_folds,
        seed=cv.seed,
        val_fraction=cv.val_fraction,
        test_fraction=cv.test_fraction,
    )
    if path.exists() and load_splits(path) != splits:
        raise RuntimeError(
            f"{path} differs from the splits computed now: the dataset changed since the run "
            "started. Start a new run (run_name=<new name>)."
        )
    splits.to_json(path)
    return splits


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


def build_task(model_cfg: DictConfig, datamodule: pl.LightningDataModule) -> pl.LightningModule:
    """Instantiate the task, giving the net the sizes only the data knows (``num_classes``)."""
    net_cfg = model_cfg.get("net")
    if net_cfg is not None and "num_classes" in net_cfg and net_cfg.num_classes is None:
        return hydra.utils.instantiate(model_cfg, net={"num_classes": datamodule.num_classes})
    return hydra.utils.instantiate(model_cfg)


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    """The Trainer with the configured callbacks and loggers (both may be empty)."""
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    return hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=cfg.paths.fold_dir,
    )


def run_fold(cfg: DictConfig, splits: Splits, fold: Fold, run_dir: Path) -> dict[str, float]:
    """Fit and test one fold in ``fold_<k>/``; a finished fold is read back, not trained again."""
    fold_dir = run_dir / f"{FOLD_PREFIX}{fold.index}"
    done = fold_dir / "metrics.json"
    if done.exists():
        log.info("Fold %d finished earlier (%s): skipped", fold.index, done)
        return OmegaConf.to_container(OmegaConf.load(done))  # type: ignore[return-value]
    fold_cfg = _fold_config(cfg, fold, fold_dir)
    pl.seed_everything(cfg.seed + fold.index, workers=True)
    datamodule = hydra.utils.instantiate(fold_cfg.data, split=fold.as_split())
    datamodule.setup("fit")
    task = build_task(fold_cfg.model, datamodule)
    trainer = build_trainer(fold_cfg)
    last = fold_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        log.info("Fold %d: resuming from %s", fold.index, last)
    trainer.fit(task, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None)
    metrics = evaluate(trainer, task, datamodule, fold_dir, best=bool(fold.val))
    if splits.heldout:
        heldout = hydra.utils.instantiate(
            fold_cfg.data, split={"train": fold.train, "val": [], "test": splits.heldout}
        )
        scores = evaluate(trainer, task, heldout, fold_dir, best=bool(fold.val), stage="heldout")
        metrics.update(scores)
    if trainer.is_global_zero:
        write_json_atomic(done, metrics)
    return metrics


def evaluate(
    trainer: pl.Trainer,
    task: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    out_dir: Path,
    best: bool = True,
    stage: str = "test",
) -> dict[str, float]:
    """Test the best (or last) checkpoint; write predictions and a ROC plot; return the metrics.

    Metrics are renamed from ``test/...`` to ``<stage>/...`` so that a held-out set keeps its own keys.
    """
    results = trainer.test(task, datamodule=datamodule, ckpt_path="best" if best else None)
    metrics = {key.replace("test/", f"{stage}/", 1): float(v) for key, v in results[0].items()}
    rows = getattr(task, "test_predictions", None)
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
