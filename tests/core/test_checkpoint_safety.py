"""No code runs from a checkpoint: every load path refuses a crafted pickle before it executes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from kbaselines.core.cluster.checkpoint_io import UnsafeCheckpointError, load_checkpoint
from kbaselines.core.cluster.resume import ResumeError, resume_checkpoint
from kbaselines.core.config import PROJECT_ROOT


class _Payload:
    """Unpickling it (weights_only=False) would create the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def _crafted(path: Path, marker: Path) -> Path:
    """A file shaped like a Lightning checkpoint, with the payload among its plain values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": {}, "loops": {}, "net_sizes": {}, "pggan_progress": _Payload(marker)}, path
    )
    return path


def test_the_payload_would_run_when_unpickled(tmp_path: Path) -> None:
    """The crafted file is real: a plain unpickle runs it (so the refusals below mean something)."""
    marker = tmp_path / "ran"
    torch.load(_crafted(tmp_path / "x.ckpt", marker), weights_only=False)
    assert marker.exists()


def test_load_checkpoint_refuses_it_naming_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _crafted(tmp_path / "x.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"x\.ckpt was refused.*Unsupported global"):
        load_checkpoint(path)
    assert not marker.exists()


def test_resume_refuses_a_planted_last_checkpoint_instead_of_starting_over(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    planted = _crafted(tmp_path / "fold_0" / "checkpoints" / "last.ckpt", marker)
    with pytest.raises(ResumeError) as error:
        resume_checkpoint(tmp_path / "fold_0")
    message = str(error.value)
    assert f"{planted}: {planted} was refused" in message
    assert "To start this fold over, move these files out of" in message
    assert not marker.exists()


def test_resume_falls_back_past_a_planted_checkpoint_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "ran"
    good = tmp_path / "fold_0" / "checkpoints" / "last-prev.ckpt"
    good.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "loops": {}}, good)
    os.utime(good, ns=(1, 1))
    planted = _crafted(tmp_path / "fold_0" / "checkpoints" / "last.ckpt", marker)
    with caplog.at_level("WARNING"):
        assert resume_checkpoint(tmp_path / "fold_0") == good
    assert str(planted) in caplog.text and "was refused" in caplog.text
    assert not marker.exists()


def test_eval_and_generate_refuse_it(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from kbaselines.core.evaluate import evaluate_checkpoint

    marker = tmp_path / "ran"
    path = _crafted(tmp_path / "x.ckpt", marker)
    cfg = OmegaConf.create({"ckpt_path": str(path), "paths": {"output_dir": str(tmp_path)}})
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        evaluate_checkpoint(cfg)  # before the config's data or model is looked at
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    try:
        from generate import checkpoint_resolution
    finally:
        sys.path.remove(str(PROJECT_ROOT / "scripts"))
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        checkpoint_resolution(path)
    assert not marker.exists()


def test_model_weights_refuse_it(tmp_path: Path) -> None:
    from kbaselines.core.weights import read_state_dict

    marker = tmp_path / "ran"
    path = tmp_path / "LightCNN_9Layers_checkpoint.pth.tar"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Payload(marker)}, path)
    with pytest.raises(ValueError, match=r"LightCNN_9Layers_checkpoint\.pth\.tar"):
        read_state_dict(path)
    assert not marker.exists()


def test_predict_and_export_refuse_it(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from kbaselines.core.data.datamodule import DataInfo
    from kbaselines.core.predict.checkpoints import fold_checkpoints, load_task

    marker = tmp_path / "ran"
    planted = _crafted(tmp_path / "run" / "fold_0" / "checkpoints" / "best.ckpt", marker)
    model_cfg = OmegaConf.create({"_target_": "torch.nn.Identity"})  # never reached
    for path in fold_checkpoints(tmp_path / "run"):  # predict.py's run folder, export.py's file
        with pytest.raises(UnsafeCheckpointError, match="refused"):
            load_task(model_cfg, path, DataInfo)
    assert fold_checkpoints(tmp_path / "run") == [planted]
    assert not marker.exists()
