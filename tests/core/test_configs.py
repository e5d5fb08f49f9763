"""Every experiment composes and instantiates from the real configs (no data is read)."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
from omegaconf import open_dict

from kbaselines.core.builders import build_trainer
from kbaselines.core.config import CONFIG_DIR, compose_config
from kbaselines.core.pretrained import unset_published_weights

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
    # published weights are left out here (tests/core/test_pretrained.py loads them)
    overrides = unset_published_weights(cfg.model)
    if sized:
        overrides["net"] = {**overrides.get("net", {}), "num_classes": 3}
    task = hydra.utils.instantiate(cfg.model, **overrides)
    assert isinstance(task, pl.LightningModule)
    assert not sized or task.net.num_classes == 3
    if experiment.startswith("kface_lightcnn"):
        assert [task.net.input_size] * 2 == list(cfg.data.input_size)
    with open_dict(cfg):
        cfg.paths.fold_dir = str(tmp_path)
    trainer = build_trainer(cfg)
    assert trainer.max_epochs == cfg.trainer.max_epochs


def test_paper_recipe_is_the_default() -> None:
    cfg = compose_config(["+experiment=kface_lightcnn9", "data.root=/data/kface"])
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.model.optimizer.lr == 0.01
    assert cfg.model.scheduler.gamma == 0.457 and cfg.model.scheduler.step_size == 10
    assert (
        list(cfg.data.input_size) == [128, 128]
        and cfg.trainer.max_epochs == 80
        and cfg.cv.num_folds == 5
    )


def test_command_line_data_wins_over_the_experiment() -> None:
    cfg = compose_config(["+experiment=kface_lightcnn9", "data=kface_synthetic"])
    assert cfg.data.synthetic.num_people == 100 and cfg.data.root.endswith("kface_synthetic")


def test_cv_settings_have_one_schema_that_refuses_unknown_keys() -> None:
    from hydra.errors import ConfigCompositionException

    from kbaselines.core.cv.settings import CVSettings

    cfg = compose_config(["cv=repeated_holdout"])
    assert cfg.cv.scheme == "repeated_holdout" and cfg.cv.val_fraction == CVSettings.val_fraction
    assert compose_config(["cv.num_folds=3"]).cv.num_folds == 3
    with pytest.raises(ConfigCompositionException, match="num_fold"):
        compose_config(["cv.num_fold=3"])
    with pytest.raises(ConfigCompositionException, match="val_fraction"):
        compose_config(["cv.val_fraction=some"])


@pytest.mark.parametrize("debug", sorted(p.stem for p in (CONFIG_DIR / "debug").glob("*.yaml")))
def test_debug_settings_run_one_fold_briefly(debug: str) -> None:
    cfg = compose_config(["+experiment=kface_lightcnn9_synthetic", f"debug={debug}"])
    assert cfg.cv.fold == 0 and cfg.trainer.limit_test_batches is not None
    assert (cfg.trainer.limit_train_batches or cfg.trainer.overfit_batches) is not None
