"""Speed of the mammography loader: cached images against decoding every DICOM, measured in one run.

Generates a few synthetic cases at a realistic size (default 3328x2560, the spec's; a mix of RLE
and uncompressed, 12 and 16 bits, MONOCHROME1 and 2), then measures
(1) images per second when every item decodes its DICOM (modality LUT, window, inversion, resize),
(2) images per second from the uint16 memory-mapped cache at the same output size,
(3) the share of a training step spent waiting for data: stage-2 steps of the ResNet-34 map
network on cached whole views, with the configured number of loader workers, and
(4) the seconds to index the tree reading every DICOM header, then with the header cache.
``size`` defaults to configs/data/mammo.yaml's cache_size and image_size (1664x1280). A stage-2
step at that size takes tens of seconds on a CPU, so the default batch is small and the steps few
(the wait share hardly depends on the batch: loading and computing both grow with it). The README
records the figures.

    python scripts/bench_mammo_loader.py [rows=3328] [columns=2560] [cases=3] [size=[1664,1280]]
        [workers=2] [batch_size=2] [steps=4] [repeats=10]

Settings: configs/bench_mammo_loader.yaml. No Hydra run folder is written.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import hydra
import numpy as np
import pydicom
import torch
from omegaconf import DictConfig
from pydicom.uid import RLELossless
from torch.utils.data import DataLoader, Dataset

from kbaselines.core.data.loaders import worker_init_fn
from kbaselines.mammo.cache import decode_resized
from kbaselines.mammo.datamodule import MammoDataModule
from kbaselines.mammo.dataset import ViewDataset
from kbaselines.mammo.index import build_index
from kbaselines.mammo.resnet_maps import resnet34_maps
from kbaselines.mammo.synthetic import generate_mammo


class DecodingViews(Dataset):
    """The same items as :class:`ViewDataset`, decoded from the DICOM at every access."""

    def __init__(self, views: ViewDataset) -> None:
        self.views = views

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.views.items[index]
        image = decode_resized(item.path, self.views.size)
        return {"image": torch.from_numpy(image.astype(np.float32) / 65535.0)[None]}


def images_per_second(dataset: Dataset, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        for index in range(len(dataset)):
            dataset[index]
    return repeats * len(dataset) / (time.perf_counter() - start)


def index_seconds(root: Path, header_cache: Path) -> dict[str, float]:
    """Seconds to index the tree reading every DICOM header, then with the header cache."""
    times = []
    for _ in range(2):  # the first start writes the cache the second one reads
        start = time.perf_counter()
        build_index(root, header_cache)
        times.append(time.perf_counter() - start)
    return {"index_reading_headers_s": times[0], "index_cached_headers_s": times[1]}


def data_wait_fraction(
    dataset: ViewDataset, workers: int, batch_size: int, steps: int
) -> dict[str, float]:
    """Seconds waiting for batches and computing, over ``steps`` training steps (after a warm-up)."""
    net = resnet34_maps()
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        worker_init_fn=worker_init_fn,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    waiting = computing = 0.0
    done = 0
    while done < steps + 1:
        batches = iter(loader)
        while done < steps + 1:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            fetched = time.perf_counter()
            optimizer.zero_grad()
            logits = net(batch["image"])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, torch.zeros_like(logits)
            )
            loss.backward()
            optimizer.step()
            if done > 0:  # the first step starts the workers
                waiting += fetched - start
                computing += time.perf_counter() - fetched
            done += 1
    return {
        "wait_s": waiting,
        "compute_s": computing,
        "wait_fraction": waiting / (waiting + computing),
    }


def bench(
    rows: int,
    columns: int,
    cases: int,
    size: tuple[int, int],
    workers: int,
    batch_size: int,
    steps: int,
    repeats: int,
) -> dict[str, float]:
    """Generate the synthetic tree in a temporary folder, measure, print and return the figures."""
    with tempfile.TemporaryDirectory() as folder:
        root = generate_mammo(Path(folder) / "tree", num_cases=cases, rows=rows, columns=columns)
        module = MammoDataModule(
            root=str(root),
            cache_dir=f"{folder}/cache",
            cache_size=size,
            image_size=size,
        )
        module.prepare_data()
        table = module.sample_table()
        module = MammoDataModule(
            root=str(root),
            cache_dir=f"{folder}/cache",
            cache_size=size,
            image_size=size,
            split={"train": table.ids},
        )
        module.setup("fit")
        views: ViewDataset = module.datasets["train"]  # type: ignore[assignment]
        sources = [item.path for item in views.items]
        rle = sum(
            pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
            == RLELossless
            for path in sources
        )
        indexing = index_seconds(root, Path(folder) / "headers.json")
        decoding = images_per_second(DecodingViews(views), 1)
        cached = images_per_second(views, repeats)
        wait = data_wait_fraction(views, workers, batch_size, steps)
    result = {
        "source": f"{columns}x{rows}",
        "source_files": len(sources),
        "source_rle_files": rle,
        "size": f"{size[1]}x{size[0]}",
        "decoded_images_per_s": decoding,
        "cached_images_per_s": cached,
        "speedup": cached / decoding,
        **wait,
        **indexing,
        "workers": workers,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    return result


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench_mammo_loader")
def main(cfg: DictConfig) -> None:
    bench(
        cfg.rows,
        cfg.columns,
        cfg.cases,
        tuple(cfg.size),
        cfg.workers,
        cfg.batch_size,
        cfg.steps,
        cfg.repeats,
    )


if __name__ == "__main__":
    main()
