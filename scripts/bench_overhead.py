"""Overhead of the framework's training step against a plain PyTorch loop, measured in one run.

Both sides train the same LightCNN-9 (same initial weights) on the same in-memory batches with the
same optimiser; the framework side is our RecognitionTask in a Lightning Trainer with the default
callbacks (checkpoints, LR monitor, progress bar) and the CSV logger. Prints seconds per step of
each side and their ratio (framework / plain); the README records the figure.

    python scripts/bench_overhead.py [--steps 30] [--epochs 3] [--batch-size 32] [--input-size 64]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kbaselines.core.builders import build_trainer
from kbaselines.core.config import compose_config
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
    net: nn.Module, batches: list[dict[str, torch.Tensor]], epochs: int, lr: float
) -> float:
    optimizer = partial(torch.optim.SGD, lr=lr, momentum=0.9, weight_decay=1e-4)
    task = RecognitionTask(net=net, optimizer=optimizer)
    with tempfile.TemporaryDirectory() as folder:
        cfg = compose_config(["trainer=cpu", f"trainer.max_epochs={epochs}", "cv.val_fraction=0"])
        cfg.paths.fold_dir = folder
        cfg.callbacks.model_checkpoint.monitor = None
        timer = StepTimer()
        trainer = build_trainer(cfg)
        trainer.callbacks.append(timer)
        trainer.fit(task, datamodule=BatchDataModule(batches))
        assert Path(folder, "checkpoints", "last.ckpt").exists()
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30, help="batches per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternate the two sides this often (best of)"
    )
    args = parser.parse_args()
    pl.seed_everything(0, workers=True)
    generator = torch.Generator().manual_seed(0)
    size = args.input_size
    batches = [
        {
            "image": torch.rand(args.batch_size, 1, size, size, generator=generator),
            "label": torch.randint(0, args.classes, (args.batch_size,), generator=generator),
        }
        for _ in range(args.steps)
    ]
    initial = lightcnn9(num_classes=args.classes, input_size=size)
    steps = args.steps * args.epochs
    plain_loop(copy.deepcopy(initial), batches[:3], 1, 0.01)  # warm up kernels and allocator
    plain_times, framework_times = [], []
    for _ in range(args.repeats):
        plain_times.append(plain_loop(copy.deepcopy(initial), batches, args.epochs, 0.01) / steps)
        framework_times.append(
            framework(copy.deepcopy(initial), batches, args.epochs, 0.01) / steps
        )
    plain, ours = min(plain_times), min(framework_times)
    print(
        f"LightCNN-9, {size}x{size}, batch {args.batch_size}, {steps} steps, {torch.get_num_threads()} threads"
    )
    print(f"plain PyTorch loop: {plain * 1e3:8.1f} ms/step")
    print(f"K-Baselines (Lightning task + callbacks + logger): {ours * 1e3:8.1f} ms/step")
    print(f"overhead ratio: {ours / plain:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
