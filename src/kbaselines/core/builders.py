"""Builders every entry point uses: DataModule, task, callbacks, loggers, Trainer from a config.

``train.py`` (through the CV loop), ``eval.py`` and the scripts build their objects here, so that
a config means the same thing to each of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError
from pytorch_lightning.strategies import ParallelStrategy

from kbaselines.core.data.datamodule import DataInfo, FoldDataModule
from kbaselines.core.data.generated import check_generation_root
from kbaselines.core.pretrained import unset_published_weights
from kbaselines.core.task import BaseTask

__all__ = [
    "build_callbacks",
    "build_datamodule",
    "build_loggers",
    "build_task",
    "build_trainer",
    "check_training_limits",
]


def build_datamodule(data_cfg: DictConfig, **settings: Any) -> FoldDataModule:
    """The dataset's DataModule, with ``settings`` over the config's (``split``: the fold's ids
    from the CV layer, or None for every sample a test sample).

    A synthetic data config may generate its dataset only into ``paths.data_dir`` or a folder
    that already holds files (see :func:`~kbaselines.core.data.generated.check_generation_root`).
    """
    if data_cfg.get("synthetic") and data_cfg.get("root"):
        check_generation_root(data_cfg.root, _data_dir(data_cfg), _data_config_name())
    datamodule = hydra.utils.instantiate(data_cfg, **settings)
    if not isinstance(datamodule, FoldDataModule):
        raise TypeError(
            f"data._target_={data_cfg.get('_target_')} builds a {type(datamodule).__name__}, "
            "not a kbaselines.core.data.datamodule.FoldDataModule"
        )
    return datamodule


def _data_dir(data_cfg: DictConfig) -> str | None:
    """``paths.data_dir`` of the config ``data_cfg`` is part of (None for a lone data config)."""
    try:
        return OmegaConf.select(data_cfg, "..paths.data_dir")
    except ConfigKeyError:
        return None


def _data_config_name() -> str:
    """The data config of this run (``kface_synthetic``), for messages."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get("data", "<name>_synthetic"))
    return "<name>_synthetic"


def build_task(
    model_cfg: DictConfig,
    datamodule: FoldDataModule | None = None,
    net_sizes: Mapping[str, int] | None = None,
    *,
    info: DataInfo | None = None,
    published_weights: bool = True,
) -> BaseTask:
    """The task, given the data's :class:`~kbaselines.core.data.datamodule.DataInfo`: the
    DataModule's, or ``info`` itself (a checkpoint's, for ``predict.py`` without data).

    A net whose config leaves ``num_classes`` null gets the data's class count; ``net_sizes`` (a
    checkpoint's, for ``eval.py``) override the net's sizes instead. ``published_weights=False``
    builds without the published weights the config starts from
    (:mod:`~kbaselines.core.pretrained`): a checkpoint is about to replace them, and the machine
    evaluating it need not hold those files.
    """
    if info is None:
        if datamodule is None:
            raise ValueError("build_task needs the DataModule or the data's info")
        info = datamodule.info
    net_cfg = model_cfg.get("net")
    net: dict[str, Any] = {}
    if net_sizes:
        net = dict(net_sizes)
    elif net_cfg is not None and "num_classes" in net_cfg and net_cfg.num_classes is None:
        net = {"num_classes": info.num_classes}
    overrides = {} if published_weights else unset_published_weights(model_cfg)
    if net:
        overrides["net"] = {**overrides.get("net", {}), **net}
    # ``info`` goes to the built partial, not through Hydra, which would turn it into a config
    partial = hydra.utils.instantiate(model_cfg, _partial_=True, **overrides)
    task = partial(info=info)
    if not isinstance(task, BaseTask):
        raise TypeError(
            f"model._target_={model_cfg.get('_target_')} builds a {type(task).__name__}, "
            "not a kbaselines.core.task.BaseTask"
        )
    return task


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The configured callbacks. An entry without ``_target_`` only overrides a callback this
    config does not have (an experiment tuning ``model_checkpoint`` composed into ``eval.yaml``,
    which has no callbacks group): there is nothing to build."""
    return [
        hydra.utils.instantiate(c)
        for c in (cfg.get("callbacks") or {}).values()
        if c and "_target_" in c
    ]


def build_loggers(cfg: DictConfig) -> list[Any]:
    """The configured experiment loggers (CSV by default; TensorBoard, MLflow, W&B on request)."""
    return [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values() if c]


def check_training_limits(trainer_cfg: DictConfig) -> None:
    """Refuse ``trainer.max_epochs=-1`` (Lightning: no end) without a step or time limit."""
    if (
        trainer_cfg.get("max_epochs") == -1
        and trainer_cfg.get("max_steps") in (None, -1)
        and trainer_cfg.get("max_time") is None
    ):
        raise ValueError(
            "trainer.max_epochs=-1 trains without end: set a limit as well, "
            "trainer.max_steps=<optimizer steps> or trainer.max_time=<DD:HH:MM:SS>, "
            "or a number of epochs (trainer.max_epochs=80)"
        )


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    """The Trainer with the configured callbacks and loggers, writing into ``paths.fold_dir``."""
    loggers = build_loggers(cfg)
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=build_callbacks(cfg),
        logger=loggers or False,
        default_root_dir=cfg.paths.fold_dir,
    )
    _refuse_local_ddp_in_multirun(trainer)
    return trainer


def _refuse_local_ddp_in_multirun(trainer: pl.Trainer) -> None:
    """Lightning's local DDP re-runs ``sys.argv`` per rank: under ``-m`` each rank would sweep."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    strategy = trainer.strategy
    if (
        isinstance(strategy, ParallelStrategy)
        and trainer.world_size > 1
        and not strategy.cluster_environment.creates_processes_externally
    ):
        raise RuntimeError(
            "local DDP (a trainer with several devices started by Lightning) cannot run under "
            "-m/--multirun: Lightning re-runs the command line in every rank, so each rank would "
            "start the whole sweep. Run the folds one command at a time (cv.fold=<k>, or "
            "cv.fold=null for the loop), or on SLURM with hydra/launcher=slurm trainer=slurm, "
            "where SLURM starts one task per GPU"
        )
