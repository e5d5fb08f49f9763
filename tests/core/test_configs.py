"""Every experiment composes and instantiates from the real configs (no data is read)."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
from omegaconf import open_dict

from kbaselines.core.builders import build_trainer
from kbaselines.core.config import CONFIG_DIR, compose_config

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_instantiates(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config([f"+experiment={experiment}", f"data.root={tmp_path}/data"])
    assert cfg.experiment_name == experiment
    assert cfg.optimized_metric.startswith("test/")
    datamodule = hydra.utils.instantiate(cfg.data)
    assert isinstance(datamodule, pl.LightningDataModule)
    # the class count comes from the data at run time (the CV layer sets it); stand in with 3
    sized = "num_classes" in cfg.model.get("net", {})
    task = hydra.utils.instantiate(cfg.model, **({"net": {"num_classes": 3}} if sized else {}))
    assert isinstance(task, pl.LightningModule)
    assert not sized or task.net.num_classes == 3
    if "input_size" in cfg.data and hasattr(task.net, "input_size"):
        assert task.net.input_size == cfg.data.input_size
    with open_dict(cfg):
        cfg.paths.fold_dir = str(tmp_path)
    trainer = build_trainer(cfg)
    assert trainer.max_epochs == cfg.trainer.max_epochs


def test_paper_recipe_is_the_default() -> None:
    cfg = compose_config(["+experiment=kface_lightcnn9", "data.root=/data/kface"])
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.model.optimizer.lr == 0.01
    assert cfg.model.scheduler.gamma == 0.457 and cfg.model.scheduler.step_size == 10
    assert cfg.data.input_size == 128 and cfg.trainer.max_epochs == 80 and cfg.cv.num_folds == 5


def test_command_line_data_wins_over_the_experiment() -> None:
    cfg = compose_config(["+experiment=kface_lightcnn9", "data=kface_synthetic"])
    assert cfg.data.synthetic.num_people == 100 and cfg.data.root.endswith("kface_synthetic")
