"""The family-independent parts of predict.py and export.py: which checkpoints a run folder
stands for, the data facts a checkpoint carries, and the export formats with their card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.predict.checkpoints import fold_checkpoints, load_task
from kbaselines.core.predict.export import export_model
from kbaselines.core.predict.predictor import ExportContract


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_run_folder_stands_for_each_folds_tested_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for k in (0, 1, 10):
        _touch(run / f"fold_{k}" / "checkpoints" / "best.ckpt")
        _touch(run / f"fold_{k}" / "checkpoints" / "last.ckpt")
    (run / "fold_1" / "metrics.json").write_text(json.dumps({"tested_checkpoint": "last"}))
    assert fold_checkpoints(run) == [
        run / "fold_0/checkpoints/best.ckpt",
        run / "fold_1/checkpoints/last.ckpt",
        run / "fold_10/checkpoints/best.ckpt",
    ]
    one = run / "fold_0/checkpoints/best.ckpt"
    assert fold_checkpoints(one) == [one]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fold_checkpoints(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="without fold checkpoints"):
        fold_checkpoints(tmp_path / "empty")


def _tiny_task_config() -> object:
    return OmegaConf.create(
        {
            "_target_": "kbaselines.kface.recognition.RecognitionTask",
            "net": {
                "_target_": "kbaselines.kface.lightcnn.lightcnn4",
                "num_classes": None,
                "in_chans": 1,
                "input_size": 64,
            },
            "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
        }
    )


def test_load_task_rebuilds_the_net_from_the_checkpoints_facts(tmp_path: Path) -> None:
    from kbaselines.core.builders import build_task

    cfg = _tiny_task_config()
    task = build_task(cfg, info=DataInfo(class_names=("a", "b", "c")))
    checkpoint = {"state_dict": task.state_dict(), "loops": {}}
    task.on_save_checkpoint(checkpoint)
    path = tmp_path / "best.ckpt"
    torch.save(checkpoint, path)
    loaded = load_task(cfg, path, DataInfo)
    assert loaded.task.info.class_names == ("a", "b", "c") and not loaded.task.training
    for key, value in task.state_dict().items():
        assert torch.equal(loaded.task.state_dict()[key], value)
    del checkpoint["data_info"]
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="holds no data_info"):
        load_task(cfg, path, DataInfo)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_each_format_is_written_with_a_card(tmp_path: Path, fmt: str) -> None:
    from kbaselines.core.builders import build_task

    cfg = _tiny_task_config()
    task = build_task(cfg, info=DataInfo(class_names=("a", "b"))).eval()
    checkpoint = {"state_dict": task.state_dict(), "loops": {}}
    task.on_save_checkpoint(checkpoint)
    path = tmp_path / "run" / "fold_0" / "checkpoints" / "best.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    (tmp_path / "run" / "config.yaml").write_text("seed: 1\n")
    model = load_task(cfg, path, DataInfo)
    image = torch.randn(2, 1, 64, 64)
    contract = ExportContract(
        model.task.net, (image,), ["image"], ["logits"], {"input_size": [64, 64]}, {}
    )
    card = export_model(model, contract, fmt, tmp_path / "out")
    written = tmp_path / "out" / card["file"]
    assert card["sha256"] and written.is_file() and card["class_names"] == ["a", "b"]
    assert (tmp_path / "out" / "config.yaml").read_text() == "seed: 1\n"
    other = torch.randn(3, 1, 64, 64)  # another batch size than the traced one
    expected = model.task.net(other).detach().numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(written), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": other.numpy()})[0]
        assert card["parity"]["max_abs_diff"] <= 1e-4
    elif fmt == "torchscript":
        got = torch.jit.load(str(written))(other).detach().numpy()
    else:
        from safetensors.torch import load_file

        fresh = load_task(cfg, path, DataInfo).task.net
        torch.nn.init.zeros_(next(fresh.parameters()))
        fresh.load_state_dict(load_file(written))
        got = fresh(other).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
