"""The image cache (built once, invalidated by edits and settings) and the two-stage DataModule."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mammo_fixtures import ramp

from kbaselines.mammo.cache import ImageCache, decode_resized
from kbaselines.mammo.datamodule import MammoDataModule
from kbaselines.mammo.resnet_maps import pool_map, resnet34_maps
from kbaselines.mammo.synthetic import write_dicom


def test_cache_is_built_once_and_invalidated(tmp_path: Path) -> None:
    source = write_dicom(tmp_path / "a.dcm", ramp(64, 48))
    cache = ImageCache(tmp_path / "cache", (32, 24))
    assert cache.build([source]) == 1 and cache.build([source]) == 0
    image = cache.load(source)
    assert isinstance(image, np.memmap) and image.dtype == np.uint16 and image.shape == (32, 24)
    np.testing.assert_array_equal(image, decode_resized(source, (32, 24)))
    # a changed source file (new pixels, new time) makes a new entry with the new pixels
    write_dicom(source, ramp(64, 48)[::-1])
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache.missing([source]) == [source]
    assert cache.build([source]) == 1
    np.testing.assert_array_equal(cache.load(source), decode_resized(source, (32, 24)))
    # a changed preprocessing setting too
    assert ImageCache(tmp_path / "cache", (16, 12)).missing([source]) == [source]
    assert ImageCache(tmp_path / "cache", (32, 24), flip_right=False).missing([source]) == [source]


@pytest.fixture(scope="module")
def datamodule(mammo_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> MammoDataModule:
    settings = {
        "root": str(mammo_tree),
        "cache_dir": str(tmp_path_factory.mktemp("cache")),
        "cache_size": (128, 104),
        "image_size": (64, 52),
        "patch_size": 64,
        "patch_input_size": 32,
        "stage1_epochs": 1,
        "batch_size": 4,
    }
    module = MammoDataModule(**settings)
    module.prepare_data()
    table = module.sample_table()
    split = {"train": table.ids[:6], "val": table.ids[6:9], "test": table.ids[9:]}
    module = MammoDataModule(**settings, split=split)
    module.setup("fit")
    return module


class _Trainer:
    """The two attributes the DataModule reads from a Lightning Trainer."""

    world_size = 1
    is_global_zero = True

    def __init__(self, epoch: int, folder: str) -> None:
        self.current_epoch = epoch
        self.default_root_dir = folder


def test_sample_table_groups_by_patient(mammo_tree: Path, tmp_path: Path) -> None:
    module = MammoDataModule(
        root=str(mammo_tree), cache_dir=str(tmp_path), cache_size=(32, 26), domain_key="device"
    )
    table = module.sample_table()
    assert len(table.ids) == 12 and table.labels[:3] == ["cancer", "benign", "normal"]
    assert table.groups[3] == table.groups[4]  # every fifth case shares the previous case's patient
    assert table.domains is not None and len(set(table.domains)) >= 1


def test_stage_switch_and_batches(datamodule: MammoDataModule, tmp_path: Path) -> None:
    datamodule.trainer = _Trainer(0, str(tmp_path))
    patches = next(iter(datamodule.train_dataloader()))
    assert patches["image"].shape == (4, 1, 32, 32) and "part" not in patches
    datamodule.trainer.current_epoch = 1
    views = next(iter(datamodule.train_dataloader()))
    assert views["image"].shape == (4, 1, 64, 52) and "part" in views
    test = next(iter(datamodule.test_dataloader()))
    assert test["part"].tolist() == [0, 0, 0, 0]  # validation views come first
    items = datamodule.eval_records("test")
    assert [it.part for it in items].count(0) == 12 and len(items) == 12 + 4 * 3


def test_lesion_patches_show_the_lesion(datamodule: MammoDataModule) -> None:
    patches = datamodule.datasets["patches"]
    by_class = {}
    for i, item in enumerate(patches.items):
        by_class.setdefault(item.cls, []).append(float(patches[i]["image"].mean()))
    assert set(by_class) == {"cancer", "benign", "normal"}
    # lesions are dense: their patches are brighter than the average normal patch
    assert np.mean(by_class["cancer"]) > np.mean(by_class["normal"])


def test_model_maps_and_pooling() -> None:
    net = resnet34_maps().eval()
    with torch.no_grad():
        features = net.forward_features(torch.rand(2, 1, 128, 96))
        maps = net.forward_maps(features)
        assert features.shape == (2, 512, 4, 3) and maps.shape == (2, 2, 4, 3)
        assert net(torch.rand(1, 1, 64, 64)).shape == (1, 2)
    grid = torch.arange(20.0).reshape(1, 1, 4, 5)
    assert pool_map(grid, "avg").item() == 9.5
    assert pool_map(grid, "max").item() == 19.0
    assert pool_map(grid, "topk", top_k=0.1).item() == 18.5  # mean of the top 2 of 20 cells
    # torchvision ResNet-34: 21,797,672 parameters; minus the fc (513,000) and two of the stem's three
    # input channels (2 x 64 x 7 x 7 = 6,272)
    assert sum(p.numel() for p in net.backbone.parameters()) == 21_278_400


def test_model_stride16_and_batch_statistics() -> None:
    """The quick job's options: layer3 features (stride 16) and batch norm without running stats."""
    net = resnet34_maps(feature_stride=16, batch_stats=True).eval()
    assert not any("running" in key for key in net.state_dict())
    with torch.no_grad():
        features = net.forward_features(torch.rand(2, 1, 128, 104))
        assert features.shape == (2, 256, 8, 7) and net(torch.rand(2, 1, 64, 64)).shape == (2, 2)
    with pytest.raises(ValueError, match="feature_stride"):
        resnet34_maps(feature_stride=8)


def test_patch_crop_equals_padding_the_whole_image() -> None:
    """Patches are cut without padding the whole memory-mapped view, with the same result."""
    from kbaselines.mammo.dataset import _crop

    rng = np.random.default_rng(0)
    image = rng.integers(0, 65535, (37, 29), dtype=np.uint16)
    for size in (8, 9, 16):
        padded = np.pad(image, size // 2, mode="constant")
        for cy in range(0, image.shape[0] + size, 3):  # windows past every edge included
            for cx in range(0, image.shape[1] + size, 4):
                expected = padded[cy : cy + size, cx : cx + size]
                assert np.array_equal(_crop(image, cy, cx, size), expected), (size, cy, cx)
