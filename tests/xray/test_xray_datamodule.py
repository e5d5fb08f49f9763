"""The X-ray DataModule on the synthetic tree: splits by physical item, cross-scanner folds,
augmentation carrying boxes, the class-aware sampler, both annotation kinds, the dataset check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kbaselines.core.cv.splits import check_no_leakage, make_splits
from kbaselines.xray.datamodule import XrayDataModule, class_aware_weights
from kbaselines.xray.synthetic import VOC_NAMES

MAPPING = {v: k for k, v in VOC_NAMES.items()}


def _module(root: Path, **kwargs) -> XrayDataModule:
    return XrayDataModule(root=str(root), category_map=MAPPING, **kwargs)


def test_coco_and_voc_give_the_same_boxes(xray_root: Path) -> None:
    coco = _module(xray_root).images()
    voc = _module(xray_root, annotation_format="voc").images()
    assert [i.path for i in coco] == [i.path for i in voc] and len(coco) == 240
    for a, b in zip(coco, voc, strict=True):
        assert [o.category for o in a.objects] == [o.category for o in b.objects]
        # VOC rectangles are the COCO boxes rounded to pixels
        np.testing.assert_allclose(
            [o.box for o in a.objects], [o.box for o in b.objects], atol=0.51
        )


def test_kfold_keeps_each_physical_item_in_one_fold(xray_root: Path) -> None:
    table = _module(xray_root).sample_table()
    assert len(set(table.groups)) == 20  # 5 categories x 4 samples
    splits = make_splits(table, scheme="kfold", num_folds=2, seed=0, val_fraction=0.15)
    check_no_leakage(splits, table)
    group_of = dict(zip(table.ids, table.groups, strict=True))
    tested = [{group_of[i] for i in fold.test} for fold in splits.folds]
    assert not tested[0] & tested[1]
    for fold in splits.folds:
        assert not {group_of[i] for i in fold.train} & {group_of[i] for i in fold.test}


def test_leave_one_scanner_out(xray_root: Path) -> None:
    table = _module(xray_root).sample_table()
    splits = make_splits(table, scheme="leave_one_group_out", num_folds=None, seed=0)
    check_no_leakage(splits, table)
    scanner_of = dict(zip(table.ids, table.domains, strict=True))
    assert splits.num_folds == 3
    for fold, scanner in zip(splits.folds, ["Astrophysics", "Rapiscan", "Smiths"], strict=True):
        assert {scanner_of[i] for i in fold.test} == {scanner}
        assert scanner not in {scanner_of[i] for i in fold.train + fold.val}


def test_augmentation_carries_boxes_and_is_seeded(xray_root: Path) -> None:
    table = _module(xray_root).sample_table()
    split = {"train": table.ids[:16], "val": [], "test": table.ids[16:24]}
    module = _module(xray_root, split=split, batch_size=4, seed=3)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert len(batch["images"]) == 4 and batch["images"][0].shape == (3, 256, 256)
    for image, target in zip(batch["images"], batch["targets"], strict=True):
        boxes = target["boxes"]
        assert boxes.shape[1] == 4 and len(boxes) == len(target["labels"]) >= 1
        assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 256
        assert set(target["labels"].tolist()) <= set(range(1, 6))
        # every box holds part of its item: item materials absorb one channel below 0.5, the
        # bag and the clutter do not
        for x0, y0, x1, y1 in boxes.round().int().tolist():
            assert image[:, y0:y1, x0:x1].min(0).values.min() < 0.5
    again = _module(xray_root, split=split, batch_size=4, seed=3)
    again.setup("fit")
    torch.testing.assert_close(next(iter(again.train_dataloader()))["images"], batch["images"])
    test = next(iter(module.test_dataloader()))
    assert test["scale"].tolist() == [[1.0, 1.0]] * 4


def test_info_names_the_labels_and_eval_records_follow_the_dataset(xray_root: Path) -> None:
    module = _module(xray_root)
    # the annotations' sorted names, known before setup() once they are read
    assert module.info.class_names == ("Battery", "Gun", "Knife", "Scissors", "USB")
    assert module.info.num_classes == 5
    ids = module.sample_table().ids
    split = {"train": ids[:8], "val": ids[8:12], "test": ids[20:16:-1]}
    module = _module(xray_root, split=split)
    module.setup("fit")
    names = module.info.class_names
    for stage in ("val", "test"):
        records = module.eval_records(stage)
        assert [r.path for r in records] == split[stage]
        for k, record in enumerate(records):
            labels = module.datasets[stage][k]["target"]["labels"].tolist()
            assert [names[label - 1] for label in labels] == [o.category for o in record.objects]
    given = _module(xray_root, categories=["USB", "Knife", "Gun", "Battery", "Scissors"])
    assert given.info.class_names[0] == "USB"  # the configured order sets the labels
    given.setup("test")
    usb = next(i for i, r in enumerate(given.eval_records("test")) if r.categories == ["USB"])
    assert given.datasets["test"][usb]["target"]["labels"].unique().tolist() == [1]


def test_eval_records_of_a_missing_part_is_refused(xray_root: Path) -> None:
    ids = _module(xray_root).sample_table().ids
    module = _module(xray_root, split={"train": ids[:8], "val": [], "test": ids[8:10]})
    module.setup("fit")
    with pytest.raises(RuntimeError, match="no val set"):
        module.eval_records("val")


def test_class_aware_sampler_draws_rare_categories_more(xray_root: Path) -> None:
    everything = _module(xray_root).images()
    common = [i.path for i in everything if {o.category for o in i.objects} == {"Knife"}]
    rare = [i.path for i in everything if {o.category for o in i.objects} == {"USB"}][:3]
    split = {"train": sorted(common + rare), "val": [], "test": []}
    module = _module(xray_root, split=split, sampler="class_aware", seed=1)
    module.setup("fit")
    drawn = list(module.train_dataloader().sampler)
    assert drawn == list(module.train_dataloader().sampler)  # seeded
    images = module.datasets["train"].images
    assert len(class_aware_weights(images)) == len(images) == len(drawn)
    usb_drawn = sum(1 for i in drawn if images[i].categories == ["USB"])
    # 3 of ~20 images hold USB sticks only; drawn by category they make about half the draws
    assert usb_drawn / len(drawn) > 3 * len(rare) / len(images), (usb_drawn, len(drawn))


def test_check_reports_counts_and_problems(xray_root: Path, tmp_path: Path) -> None:
    report = _module(xray_root).check()
    assert report.ok, report.render()
    assert report.counts["images"] == 240
    assert set(report.counts["images per scanner"]) == {"Astrophysics", "Rapiscan", "Smiths"}
    assert len(report.counts["images per scenario"]) == 4
    assert report.counts["physical samples"] == 20
    assert sum(report.counts["objects per category"].values()) == report.counts["objects"]


def test_unknown_split_ids_and_training_without_split_are_refused(xray_root: Path) -> None:
    module = _module(xray_root, split={"train": ["nope.png"], "val": [], "test": []})
    with pytest.raises(ValueError, match=r"nope\.png"):
        module.setup("fit")
    whole = _module(xray_root)
    whole.setup("test")
    assert len(whole.datasets["test"]) == 240
    with pytest.raises(RuntimeError, match="no split"):
        whole.train_dataloader()
