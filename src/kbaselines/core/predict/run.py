"""The predict loop: models from a checkpoint or a run folder, inputs read by the family's
predictor, batched with a progress bar, bad items reported and the rest predicted."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from kbaselines.core.cv.run_folder import FROZEN_CONFIG
from kbaselines.core.io import write_json_atomic
from kbaselines.core.predict.checkpoints import LoadedTask, fold_checkpoints, load_task
from kbaselines.core.predict.predictor import Predictor

__all__ = [
    "adopt_run_config",
    "build_predictor",
    "load_models",
    "predict",
    "run_predict",
    "select_device",
]

log = logging.getLogger(__name__)


def build_predictor(cfg: DictConfig) -> Predictor:
    """The experiment's predictor (``predictor`` config group)."""
    if cfg.get("predictor") is None:
        raise ValueError(
            "this experiment names no predictor: add `- override /predictor: <name>` to its "
            "defaults (configs/predictor/ lists them)"
        )
    predictor = hydra.utils.instantiate(cfg.predictor)
    if not isinstance(predictor, Predictor):
        raise TypeError(
            f"predictor._target_={cfg.predictor.get('_target_')} builds a "
            f"{type(predictor).__name__}, not a kbaselines.core.predict.predictor.Predictor"
        )
    return predictor


def adopt_run_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` with the model and data settings of the run the checkpoint comes from.

    A checkpoint in a run folder (``<run>/fold_<k>/checkpoints/<name>.ckpt``, or the run folder
    itself) was trained with the run's frozen ``config.yaml``; its network sizes and input
    settings are taken from there, so that the training overrides need not be repeated.
    """
    path = Path(cfg.ckpt_path)
    run = path if path.is_dir() else path.resolve().parent.parent.parent
    frozen = run / FROZEN_CONFIG
    if not frozen.is_file():
        return cfg
    saved = OmegaConf.load(frozen)
    cfg = cfg.copy()
    with open_dict(cfg):
        for group in ("model", "data"):
            if group in saved:
                cfg[group] = saved[group]
    log.info("Model and data settings from %s (the run the checkpoint comes from)", frozen)
    return cfg


def select_device(accelerator: str | None) -> torch.device:
    """``trainer.accelerator`` as a device: a GPU when asked for (or ``auto``) and present."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("gpu", "cuda"):
        raise RuntimeError("trainer=gpu was asked for but torch sees no CUDA device")
    return torch.device("cpu")


def load_models(cfg: DictConfig, predictor: Predictor, device: torch.device) -> list[LoadedTask]:
    """Every checkpoint of ``cfg.ckpt_path`` (a file, or a run folder's folds), on ``device``."""
    models = [
        load_task(cfg.model, path, predictor.info_type) for path in fold_checkpoints(cfg.ckpt_path)
    ]
    for model in models:
        model.task.to(device)
    log.info("Predicting with %s", ", ".join(str(m.path) for m in models))
    return models


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def predict(
    predictor: Predictor, models: list[LoadedTask], items: list[Any], device: torch.device
) -> list[Any]:
    """The predictions of every item, in order, batched, with a progress bar."""
    loader = DataLoader(
        predictor.dataset(items),
        batch_size=predictor.batch_size,
        shuffle=False,
        num_workers=predictor.num_workers,
        collate_fn=predictor.collate_fn,
    )
    predictions: list[Any] = []
    with torch.inference_mode():
        for batch in tqdm(loader, desc="Predicting", unit=" batches"):
            predictions += predictor.predict_batch(models, _to(batch, device))
    return predictions


def run_predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict ``cfg.input`` into ``cfg.out`` and write ``predict_report.json``.

    The report names the checkpoints used (with their SHA-256), the counts the predictor
    returns and every item that could not be predicted, with the reason.
    """
    out = Path(cfg.out)
    cfg = adopt_run_config(cfg)
    predictor = build_predictor(cfg)
    device = select_device(cfg.trainer.get("accelerator"))
    torch.manual_seed(int(cfg.get("seed", 0)))
    models = load_models(cfg, predictor, device)  # refused files stop before any input is read
    inputs = predictor.read_inputs(None if cfg.get("input") is None else Path(cfg.input))
    predictions = predict(predictor, models, inputs.items, device) if inputs.items else []
    out.mkdir(parents=True, exist_ok=True)
    counts = predictor.write(inputs.items, predictions, models, out)
    report = {
        "input": None if cfg.get("input") is None else str(cfg.input),
        "checkpoints": [{"path": str(m.path), "sha256": m.sha256} for m in models],
        "ensemble": len(models) > 1,
        "predicted": len(predictions),
        "not_predicted": len(inputs.problems),
        "counts": counts,
        "problems": [
            {"item": p.file, "record": p.record, "reason": p.reason} for p in inputs.problems
        ],
    }
    write_json_atomic(out / "predict_report.json", report)
    for problem in inputs.problems:
        log.warning("Not predicted: %s", problem)
    log.info(
        "Predicted %d items with %d model(s) into %s; %d not predicted (listed in "
        "predict_report.json)",
        len(predictions),
        len(models),
        out,
        len(inputs.problems),
    )
    return report
