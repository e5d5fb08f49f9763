"""X-ray records to detector inputs: image tensor, boxes and labels, augmented with albumentations.

Output follows the torchvision detection interface: ``image`` FloatTensor[3, H, W] in 0..1 and
``target`` = ``{"boxes": FloatTensor[N, 4] x_min y_min x_max y_max, "labels": Int64[N] 1..C}``.
``scale`` maps the dataset's pixels back to the annotation's (an optional longest-side resize), so
that predictions are scored in the original image coordinates.

Albumentations ignores the global seeds: each pipeline has its own ``seed`` and
:meth:`XrayDataset.reseed` gives every data-loader worker its own stream.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from PIL import Image

from kbaselines.core.data.loaders import SeededDataset
from kbaselines.xray.reader import XrayFormatError, XrayImage

__all__ = ["XrayDataset", "collate_detection", "make_transform", "read_scan"]


def read_scan(path: Path, bands: Collection[int] | None = None) -> np.ndarray:
    """A scan as RGB uint8 ``[H, W, 3]``: greyscale scans repeated to three channels (Pillow's
    ``convert("RGB")``), as training, evaluation and prediction all read them.

    Args:
        path: the image file.
        bands: the band counts accepted (``(1, 3)``: greyscale or colour); None: any layout
            Pillow converts.

    Raises:
        XrayFormatError: the file cannot be read or decoded, or has another band count.
    """
    try:
        with Image.open(path) as image:
            found = image.getbands()
            if bands is not None and len(found) not in bands:
                raise XrayFormatError(
                    f"{path}: the image has {len(found)} channels ({image.mode}), but a scan is "
                    f"greyscale or colour ({' or '.join(map(str, sorted(bands)))} channels): "
                    "save it as a greyscale or RGB PNG or JPEG"
                )
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise XrayFormatError(f"{path}: cannot read the image ({error})") from error


def make_transform(train: bool, max_size: int | None, seed: int) -> A.Compose | None:
    """Optional longest-side resize; for training also flips, 90-degree turns, scale, palette jitter
    (None: nothing to do).

    Hue and saturation shifts imitate the palette differences between scanner makes; boxes
    follow every geometric step and are clipped to the image.
    """
    steps: list[A.BasicTransform] = []
    if max_size is not None:
        steps.append(A.LongestMaxSize(max_size=max_size))
    if train:
        steps += [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Affine(scale=(0.85, 1.15), p=0.5),
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=15, val_shift_limit=8, p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
        ]
    if not steps:
        return None
    bboxes = A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True, min_area=1.0)
    return A.Compose(steps, bbox_params=bboxes, seed=seed)


class XrayDataset(SeededDataset):
    """Scans as ``{"image", "target", "index", "scale"}`` items (see the module docstring).

    Args:
        root: the dataset root the image paths are relative to.
        images: the records of this part.
        category_ids: unified category name -> label (1..C; 0 is the background).
        train: augment (else only the optional resize).
        max_size: resize so that the longest side is at most this (None: keep the size).
        seed: the augmentation pipeline's seed.
    """

    def __init__(
        self,
        root: str | Path,
        images: Sequence[XrayImage],
        category_ids: Mapping[str, int],
        train: bool = False,
        max_size: int | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.images = list(images)
        self.category_ids = dict(category_ids)
        self.train = train
        self.transform = make_transform(train, max_size, seed)

    def __len__(self) -> int:
        return len(self.images)

    def reseed(self, seed: int) -> None:
        """Give this copy of the dataset (one per loader worker) its own augmentation stream."""
        if self.transform is not None:
            self.transform.set_random_seed(seed)

    def load(self, record: XrayImage) -> np.ndarray:
        """The scan as RGB uint8 (greyscale scans are repeated to three channels)."""
        path = self.root / record.path
        pixels = read_scan(path)
        if pixels.shape[:2] != (record.height, record.width):
            raise XrayFormatError(
                f"{path}: the image is {pixels.shape[1]}x{pixels.shape[0]} but its annotation "
                f"({record.source}) says {record.width}x{record.height}: fix the annotation"
            )
        return pixels

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.images[index]
        pixels = self.load(record)
        boxes = np.asarray([o.box for o in record.objects], dtype=np.float32).reshape(-1, 4)
        labels = [self.category_ids[o.category] for o in record.objects]
        out = {"image": pixels, "bboxes": boxes, "labels": labels}
        if self.transform is not None:
            out = self.transform(**out)
        image = torch.from_numpy(np.array(out["image"])).permute(2, 0, 1)
        height, width = image.shape[1:]
        return {
            "image": image.float().div_(255),
            "target": {
                "boxes": torch.as_tensor(np.asarray(out["bboxes"]), dtype=torch.float32).reshape(
                    -1, 4
                ),
                "labels": torch.as_tensor(np.asarray(out["labels"]), dtype=torch.int64).reshape(-1),
            },
            "index": index,
            "scale": torch.tensor([width / record.width, height / record.height]),
        }


def collate_detection(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Lists of images and targets (detectors take images of different sizes), stacked rest."""
    return {
        "images": [item["image"] for item in items],
        "targets": [item["target"] for item in items],
        "index": torch.tensor([item["index"] for item in items]),
        "scale": torch.stack([item["scale"] for item in items]),
    }
