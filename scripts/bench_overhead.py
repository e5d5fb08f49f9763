"""Overhead of the framework's training step against a plain PyTorch loop, measured in one run.

Both sides train the same LightCNN-9 (same initial weights) on the same in-memory batches with the
same optimiser; the framework side is our RecognitionTask in a Lightning Trainer with the default
callbacks (checkpoints, LR monitor, progress bar) and the CSV logger. Prints seconds per step of
each side and their ratio (framework / plain); the README records the figure.

    python scripts/bench_overhead.py [steps=30] [epochs=3] [batch_size=32] [input_size=64]

Settings (``classes``, ``repeats`` too): configs/bench_overhead.yaml. No Hydra run folder is
written.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kbaselines.core.builders import build_trainer
from kbaselines.core.config import register_configs
from kbaselines.kface.lightcnn import lightcnn9
from kbaselines.kface.recognition import RecognitionTask


class BatchList(Dataset):
    """Precomputed batches served one per item, so both sides see identical tensors."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batches[index]


class BatchDataModule(pl.LightningDataModule):
    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> DataLoader:
        return DataLoader(BatchList(self.batches), batch_size=None, shuffle=False)


class StepTimer(pl.Callback):
    """Wall time from the start of training to its end, checkpointing and logging included."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def plain_loop(
    net: nn.Module, batches: list[dict[str, torch.Tensor]], epochs: int, lr: float
) -> float:
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    net.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(net(batch["image"]), batch["label"])
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def framework(
    net: nn.Module, batches: list[dict[str, torch.Tensor]], train_cfg: DictConfig, lr: float
) -> float:
    """Seconds of ``trainer.fit`` with the Trainer ``train_cfg`` (the train config) builds."""
    optimizer = partial(torch.optim.SGD, lr=lr, momentum=0.9, weight_decay=1e-4)
    task = RecognitionTask(net=net, optimizer=optimizer)
    with tempfile.TemporaryDirectory() as folder:
        cfg = copy.deepcopy(train_cfg)
        cfg.paths.fold_dir = folder
        cfg.callbacks.model_checkpoint.monitor = None
        timer = StepTimer()
        trainer = build_trainer(cfg)
        trainer.callbacks.append(timer)
        trainer.fit(task, datamodule=BatchDataModule(batches))
        assert Path(folder, "checkpoints", "last.ckpt").exists()
    return timer.seconds


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench_overhead")
def main(cfg: DictConfig) -> None:
    pl.seed_everything(0, workers=True)
    generator = torch.Generator().manual_seed(0)
    size = cfg.input_size
    batches = [
        {
            "image": torch.rand(cfg.batch_size, 1, size, size, generator=generator),
            "label": torch.randint(0, cfg.classes, (cfg.batch_size,), generator=generator),
        }
        for _ in range(cfg.steps)
    ]
    initial = lightcnn9(num_classes=cfg.classes, input_size=size)
    # the framework side's train config, composed by this running Hydra app (compose_config would
    # start a second Hydra, which Hydra refuses)
    register_configs()
    train_cfg = hydra.compose(
        "train", ["trainer=cpu", f"trainer.max_epochs={cfg.epochs}", "cv.val_fraction=0"]
    )
    steps = cfg.steps * cfg.epochs
    plain_loop(copy.deepcopy(initial), batches[:3], 1, 0.01)  # warm up kernels and allocator
    plain_times, framework_times = [], []
    for _ in range(cfg.repeats):
        plain_times.append(plain_loop(copy.deepcopy(initial), batches, cfg.epochs, 0.01) / steps)
        framework_times.append(framework(copy.deepcopy(initial), batches, train_cfg, 0.01) / steps)
    plain, ours = min(plain_times), min(framework_times)
    print(
        f"LightCNN-9, {size}x{size}, batch {cfg.batch_size}, {steps} steps, {torch.get_num_threads()} threads"
    )
    print(f"plain PyTorch loop: {plain * 1e3:8.1f} ms/step")
    print(f"K-Baselines (Lightning task + callbacks + logger): {ours * 1e3:8.1f} ms/step")
    print(f"overhead ratio: {ours / plain:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
