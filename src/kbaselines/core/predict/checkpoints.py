"""The checkpoints a prediction uses, and the tasks rebuilt from them without any data.

A checkpoint holds what is needed to rebuild its task: the state dict, the net's data-derived sizes
(``net_sizes``) and the data's facts (``data_info``: class names, joint names...). A run folder
stands for its folds: each fold's tested checkpoint (``metrics.json`` says ``best`` or ``last``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kbaselines.core.builders import build_task
from kbaselines.core.cluster.checkpoint_io import load_checkpoint
from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.task import BaseTask

__all__ = ["LoadedTask", "file_sha256", "fold_checkpoints", "load_task"]

_FOLD = re.compile(r"fold_(\d+)$")


def fold_checkpoints(ckpt_path: str | Path) -> list[Path]:
    """``[ckpt_path]`` for a file; for a run folder, the checkpoint each fold was tested with.

    Raises:
        FileNotFoundError: the path does not exist, or a run folder has no finished fold (naming
            the checkpoint each fold lacks).
    """
    path = Path(ckpt_path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(
            f"ckpt_path={path} does not exist: give a .ckpt file or a run folder"
        )
    folds = sorted(
        (p for p in path.iterdir() if p.is_dir() and _FOLD.match(p.name)),
        key=lambda p: int(_FOLD.match(p.name).group(1)),  # type: ignore[union-attr]
    )
    found, missing = [], []
    for fold in folds:
        metrics = fold / "metrics.json"
        tested = (
            json.loads(metrics.read_text()).get("tested_checkpoint", "best")
            if metrics.is_file()
            else "best"
        )
        checkpoint = fold / "checkpoints" / f"{tested}.ckpt"
        (found if checkpoint.is_file() else missing).append(checkpoint)
    if not found:
        raise FileNotFoundError(
            f"ckpt_path={path} is a folder without fold checkpoints "
            f"({', '.join(map(str, missing)) or 'no fold_<k> folder'}): give a run folder of "
            "train.py or a .ckpt file"
        )
    return found


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class LoadedTask:
    """A task rebuilt from a checkpoint, in eval mode, with what the checkpoint says of its run.

    Args:
        task: the task with the checkpoint's weights.
        path: the checkpoint file.
        sha256: its SHA-256, so the outputs say exactly which weights made them.
        extras: the checkpoint's plain values besides the weights (``operating_point`` ...).
    """

    task: BaseTask
    path: Path
    sha256: str
    extras: Mapping[str, Any]


def _plain_info(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Lists back to the tuples a frozen DataInfo holds."""

    def tuples(value: Any) -> Any:
        return tuple(tuples(v) for v in value) if isinstance(value, list | tuple) else value

    return {key: tuples(value) for key, value in raw.items()}


def load_task(model_cfg: DictConfig, path: str | Path, info_type: type[DataInfo]) -> LoadedTask:
    """Rebuild the configured task from a checkpoint (weights-only load), in eval mode.

    Raises:
        ValueError: the checkpoint has no ``data_info`` (written before it was stored) or its
            weights do not fit the configured model (naming the file and the keys).
    """
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if "data_info" not in checkpoint:
        raise ValueError(
            f"{path} holds no data_info (the class or joint names the net was trained with): it was "
            "written by an older version; evaluate it with eval.py, or train again"
        )
    info = info_type(**_plain_info(checkpoint["data_info"]))
    task = build_task(
        model_cfg,
        info=info,
        net_sizes=dict(checkpoint.get("net_sizes", {})),
        published_weights=False,
    )
    try:
        task.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ValueError(
            f"{path} does not fit the configured model ({error}); use the experiment the "
            "checkpoint was trained with (+experiment=<name>)"
        ) from error
    task.eval()
    extras = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "optimizer_states")}
    return LoadedTask(task, path, file_sha256(path), extras)
