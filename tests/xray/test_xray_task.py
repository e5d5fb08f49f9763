"""The detection task on the X-ray DataModule's contract: category names from the data's info,
file names from ``eval_records``, outputs gathered once in dataset order, the checkpoint's sizes.

A stand-in detector (one fixed box per image) keeps the test to the task's own plumbing: the
learning of real detectors is ``test_xray_train.py`` and ``test_yolo_learning.py``.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from kbaselines.xray.datamodule import XrayDataModule
from kbaselines.xray.synthetic import VOC_NAMES
from kbaselines.xray.task import DetectionTask

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["Battery", "Gun", "Knife", "Scissors", "USB"]
TESTED = 6


class OneBox(nn.Module):
    """A detector of the task's contract that finds one ``Gun`` (label 2) in every scan."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        if targets is not None:
            return {"loss": self.weight**2}
        box = {
            "boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]),
            "labels": torch.tensor([2]),
            "scores": torch.tensor([0.9]),
        }
        return [box for _ in images]


def _task(num_classes: int = 5, **kwargs) -> DetectionTask:
    return DetectionTask(OneBox(num_classes), partial(torch.optim.SGD, lr=0.1), **kwargs)


def test_test_outputs_name_categories_and_files_from_the_data(
    xray_root: Path, tmp_path: Path
) -> None:
    mapping = {v: k for k, v in VOC_NAMES.items()}
    ids = XrayDataModule(root=str(xray_root), category_map=mapping).sample_table().ids
    # the test part out of path order: outputs follow the dataset, whatever the batches
    tested = ids[:TESTED][::-1]
    module = XrayDataModule(
        root=str(xray_root),
        category_map=mapping,
        split={"train": ids[TESTED:], "val": [], "test": tested},
        eval_batch_size=4,
    )
    module.setup("test")
    task = _task(info=module.info, plot_images=2)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.test(task, datamodule=module, verbose=False)
    assert [r["image"] for r in task.test_predictions] == tested
    assert {r["category"] for r in task.test_predictions} == {"Gun"}
    assert not task.has_outputs()

    task.write_test_outputs(tmp_path, "test")
    categories = json.loads((tmp_path / "categories.json").read_text())
    assert [(c["id"], c["name"]) for c in categories] == list(enumerate(NAMES, start=1))
    images = json.loads((tmp_path / "coco_gt_test.json").read_text())["images"]
    assert [i["file_name"] for i in images] == tested
    assert (tmp_path / "detections_test.png").stat().st_size > 0

    checkpoint: dict = {}
    task.on_save_checkpoint(checkpoint)
    assert checkpoint == {
        "net_sizes": {"num_classes": 5},
        "data_info": {"class_names": tuple(NAMES)},
        "categories": NAMES,
    }


def test_a_task_without_the_data_names_its_labels_by_number() -> None:
    task = _task(num_classes=3, scheduler_interval="step", warmup_steps=7)
    assert task.scheduler_interval == "step" and task.hparams.warmup_steps == 7
    assert "info" not in task.hparams
    checkpoint: dict = {}
    task.on_save_checkpoint(checkpoint)
    assert checkpoint == {
        "net_sizes": {"num_classes": 3},
        "data_info": {"class_names": ()},
        "categories": ["1", "2", "3"],
    }
