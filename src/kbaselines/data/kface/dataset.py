"""K-Face records to tensors: crop the face box (with a margin), resize, augment.

Training follows the LightCNN authors' recipe scaled to the input size: resize to 1.125 x the input
(144 for 128) and take a random crop with a random horizontal flip; evaluation takes the centre crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from kbaselines.data.kface.reader import KFaceRecord

__all__ = ["KFaceDataset", "crop_face", "make_transform"]


def crop_face(
    image: Image.Image, box: tuple[int, int, int, int] | None, margin: float
) -> Image.Image:
    """The face box enlarged by ``margin`` (a fraction of its size), clipped to the image."""
    if box is None:
        return image
    x, y, w, h = box
    left, top = max(0, round(x - margin * w)), max(0, round(y - margin * h))
    right, bottom = (
        min(image.width, round(x + w + margin * w)),
        min(image.height, round(y + h + margin * h)),
    )
    if right <= left or bottom <= top:
        return image
    return image.crop((left, top, right, bottom))


def make_transform(input_size: int, train: bool, seed: int) -> A.Compose:
    """Albumentations pipeline; albumentations ignores global seeds, hence ``seed`` here."""
    resized = round(input_size * 1.125)
    steps: list[A.BasicTransform] = [A.Resize(resized, resized)]
    if train:
        steps += [A.RandomCrop(input_size, input_size), A.HorizontalFlip(p=0.5)]
    else:
        steps += [A.CenterCrop(input_size, input_size)]
    return A.Compose(steps, seed=seed)


class KFaceDataset(Dataset):
    """Face images as ``{"image": FloatTensor[C, S, S] in [0, 1], "label": int, "index": int}``.

    Evaluation sets also carry ``"gallery": bool``: the person's reference image for identification.

    Args:
        tree: the folder the record paths are relative to.
        records: the images, in a fixed order.
        labels: the class index of each record.
        input_size: side of the square output.
        in_chans: 1 for grayscale (LightCNN), 3 for RGB.
        crop_margin: margin around the face box, as a fraction of its size.
        train: random crop and flip (else a centre crop).
        gallery: per record, whether it is its person's gallery image (evaluation sets only).
        seed: seed of the augmentation; each data-loader worker reseeds from it.
    """

    def __init__(
        self,
        tree: Path,
        records: Sequence[KFaceRecord],
        labels: Sequence[int],
        input_size: int = 128,
        in_chans: int = 1,
        crop_margin: float = 0.1,
        train: bool = False,
        gallery: Sequence[bool] | None = None,
        seed: int = 0,
    ) -> None:
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans}")
        self.tree = Path(tree)
        self.records = list(records)
        self.labels = list(labels)
        self.gallery = None if gallery is None else list(gallery)
        self.mode = "L" if in_chans == 1 else "RGB"
        self.crop_margin = crop_margin
        self.seed = seed
        self.transform = make_transform(input_size, train, seed)

    def __len__(self) -> int:
        return len(self.records)

    def reseed(self, seed: int) -> None:
        """Give this copy of the dataset (one per data-loader worker) its own augmentation seed."""
        self.transform.set_random_seed(seed)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int | bool]:
        record = self.records[index]
        path = self.tree / record.path
        try:
            with Image.open(path) as file:
                image = crop_face(file.convert(self.mode), record.box, self.crop_margin)
        except OSError as error:
            raise OSError(
                f"{path}: cannot read the image ({error}); check or remove the file"
            ) from error
        pixels = self.transform(image=np.asarray(image))["image"]
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(255)
        tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
        item: dict[str, torch.Tensor | int | bool] = {
            "image": tensor,
            "label": self.labels[index],
            "index": index,
        }
        if self.gallery is not None:
            item["gallery"] = self.gallery[index]
        return item
