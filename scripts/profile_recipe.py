"""Step time, peak memory and the largest batch per GPU size of an experiment's training step.

    python scripts/profile_recipe.py +experiment=<name> data=<family>_synthetic [key=value ...]
        [profile.batches=[16,32]] [profile.steps=3] [profile.batch_key=data.batch_size]

Each batch of ``profile.batches`` is measured in a fresh process: the experiment's DataModule (its
synthetic twin generated first; every sample a training sample, loaded in the process), task
(without published weights: they change no size) and Trainer (the experiment's trainer settings;
no validation, checkpoints or logs) train ``profile.steps`` steps. The step time is the median of
the steps after the first (forward, backward, optimiser; not the data loading), the peak memory
the process's maximum resident set.

The GPU estimate assumes a step's memory grows linearly with the batch: the slope between the
measured batches is the memory of one sample (the activations kept for the backward pass, the
same tensors on a GPU in 32-bit precision); the fixed part on a GPU is the parameters, their
gradients and the optimiser's state (counted) plus ``profile.gpu_context_gb``; the largest batch
fills ``profile.gpu_usable`` of each size in ``profile.gpu_gb``. It prints a row for the README's
table of the recipes. Composed with configs/profile_recipe.yaml (the train config plus
``profile.*``); nothing is written but the twin.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from kbaselines.core.builders import build_datamodule, build_task
from kbaselines.core.config import compose_config

__all__ = ["estimate", "main", "measure"]

GB = 2**30
RESULT = "PROFILE_RESULT "


class StepTimer(pl.Callback):
    """Times each training step (forward, backward, optimiser) and keeps the first batch's shape."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.shape: list[int] | None = None
        self.rss_before = 0.0
        self._start = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rss_before = _rss()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.shape is None:
            images = batch.get("image", batch.get("images"))
            first = images[0] if isinstance(images, list | tuple) else images
            self.shape = [len(images), *first.shape[-3:]] if first.ndim == 3 else list(first.shape)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _rss() -> float:
    """This process's resident memory now, in GB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GB


def _state_bytes(task: pl.LightningModule, optimizers: list[torch.optim.Optimizer]) -> int:
    """Parameters, the gradients of the trained ones, and the optimisers' state tensors."""
    params = sum(p.numel() * p.element_size() for p in task.parameters())
    grads = sum(p.numel() * p.element_size() for p in task.parameters() if p.requires_grad)
    state = sum(
        t.numel() * t.element_size()
        for optimizer in optimizers
        for values in optimizer.state.values()
        for t in values.values()
        if isinstance(t, torch.Tensor)
    )
    return params + grads + state


def measure(cfg: DictConfig) -> dict[str, Any]:
    """Train ``profile.steps`` steps at batch ``profile.measure`` in this process."""
    OmegaConf.update(cfg, cfg.profile.batch_key, cfg.profile.measure)
    datamodule = build_datamodule(cfg.data)
    datamodule.prepare_data()
    ids = datamodule.sample_table().ids
    datamodule = build_datamodule(
        cfg.data, split={"train": ids, "val": [], "test": []}, num_workers=0
    )
    datamodule.setup("fit")
    task = build_task(cfg.model, datamodule, published_weights=False)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as folder:
        trainer = hydra.utils.instantiate(
            cfg.trainer,
            default_root_dir=folder,
            max_epochs=1,
            max_steps=-1,
            max_time=None,
            limit_train_batches=cfg.profile.steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
        )
        trainer.fit(task, datamodule=datamodule)
    return {
        "batch": int(cfg.profile.measure),
        "input": timer.shape,
        "step_s": statistics.median(timer.seconds[1:] or timer.seconds),
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB,
        "before_gb": timer.rss_before,
        "state_gb": _state_bytes(task, trainer.optimizers) / GB,
    }


def estimate(
    points: list[dict[str, Any]], gpu_gb: list[float], context_gb: float, usable: float
) -> dict[str, Any] | None:
    """Memory per sample (least squares over the measured batches) and the largest batch per GPU
    size; None when the peaks do not grow with the batch (one batch measured, or batches too
    small for their memory to show above the process's own)."""
    batches = np.array([p["batch"] for p in points], float)
    peaks = np.array([p["peak_gb"] for p in points], float)
    if len(set(batches)) < 2:
        return None
    slope, intercept = np.polyfit(batches, peaks, 1)
    if slope <= 0:
        return None
    fixed = points[-1]["state_gb"] + context_gb
    return {
        "per_sample_gb": float(slope),
        "intercept_gb": float(intercept),
        "fixed_gpu_gb": fixed,
        "largest": {g: max(0, int((usable * g - fixed) // slope)) for g in gpu_gb},
    }


def _measure_in_child(argv: list[str], batch: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *argv, f"+profile.measure={batch}"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"batch {batch} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT) :])


def main(argv: list[str]) -> None:
    cfg = compose_config(argv, config_name="profile_recipe")
    if cfg.profile.get("measure") is not None:
        print(RESULT + json.dumps(measure(cfg)), flush=True)
        return
    settings = cfg.profile
    recipe = int(OmegaConf.select(cfg, settings.batch_key))
    load = os.getloadavg()[0]
    points = []
    for batch in settings.batches or [max(1, recipe // 2), recipe]:
        point = _measure_in_child(argv, batch)
        points.append(point)
        print(
            f"batch {batch}: input {point['input']}, step {point['step_s']:.2f} s, peak "
            f"{point['peak_gb']:.2f} GB (before the steps {point['before_gb']:.2f} GB)",
            flush=True,
        )
    print(
        f"{cfg.experiment_name}: {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"load {load:.1f} before, {os.getloadavg()[0]:.1f} after"
        + ("" if max(load, os.getloadavg()[0]) <= 1 else " (not idle: times are high)")
    )
    result = estimate(points, list(settings.gpu_gb), settings.gpu_context_gb, settings.gpu_usable)
    if result is None:
        print("the peaks do not grow with the batch: measure larger batches (profile.batches)")
        return
    print(
        f"memory per sample {result['per_sample_gb']:.3f} GB; on a GPU, parameters, gradients and "
        f"optimiser state {points[-1]['state_gb']:.2f} GB + {settings.gpu_context_gb} GB context, "
        f"{settings.gpu_usable:.0%} of its memory filled"
    )
    at = next((p for p in points if p["batch"] == recipe), None)
    if at is None:
        peak = f"{result['intercept_gb'] + result['per_sample_gb'] * recipe:.1f} GB (extrapolated)"
        step = f"{points[-1]['step_s']:.1f} s at batch {points[-1]['batch']}"
    else:
        peak, step = f"{at['peak_gb']:.1f} GB", f"{at['step_s']:.1f} s"
    size = " x ".join(map(str, points[-1]["input"][1:]))
    largest = " / ".join(str(result["largest"][g]) for g in settings.gpu_gb)
    print(f"| {cfg.experiment_name} | {size} | {recipe} | {step} | {peak} | {largest} |")


if __name__ == "__main__":
    main(sys.argv[1:])
