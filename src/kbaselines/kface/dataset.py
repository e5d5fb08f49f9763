"""K-Face records to tensors: crop the face box (with a margin), resize, augment.

Training follows the LightCNN authors' recipe scaled to the input size: resize to 1.125 x the
input (144 for 128) and take a random crop with a random horizontal flip; evaluation takes the
centre crop of the same resize, so that train and test faces have the same scale.

Albumentations ignores the global seeds (``torch.manual_seed`` and friends): each pipeline gets its
own ``seed``, and :meth:`KFaceDataset.reseed` gives every data-loader worker its own stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from PIL import Image

from kbaselines.core.data.loaders import SeededDataset
from kbaselines.kface.reader import Box, KFaceRecord

__all__ = [
    "KFaceDataset",
    "box_outside",
    "crop_face",
    "face_tensor",
    "make_transform",
    "read_face",
]

#: Resize factor before the crop: the authors' 144 -> 128.
RESIZE_FACTOR = 1.125


def box_outside(box: Box, width: int, height: int) -> str | None:
    """Why a face box cannot be cropped from a ``width x height`` image (it does not overlap it),
    or None. A box partly out of the frame is fine: the crop is clipped to the image. The check
    and training ask this of the decoded size before an epoch, :func:`crop_face` of the image."""
    x, y, w, h = box
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return f"the face box {x} {y} {w} {h} lies outside the {width}x{height} image"
    return None


def crop_face(image: Image.Image, box: Box | None, margin: float) -> Image.Image:
    """The face box enlarged by ``margin`` on each side, clipped to the image.

    Args:
        image: the whole image.
        box: ``(x, y, width, height)`` in pixels, or None: the whole image is returned.
        margin: added on each side, as a fraction of the box width (left, right) and height
            (top, bottom).

    Raises:
        ValueError: the box lies outside the image (it then names the box, not the file).
    """
    if box is None:
        return image
    reason = box_outside(box, image.width, image.height)
    if reason is not None:
        raise ValueError(reason)
    x, y, w, h = box
    left = max(0, round(x - margin * w))
    top = max(0, round(y - margin * h))
    right = min(image.width, round(x + w + margin * w))
    bottom = min(image.height, round(y + h + margin * h))
    return image.crop((left, top, right, bottom))


def make_transform(input_size: tuple[int, int], train: bool, seed: int) -> A.Compose:
    """The albumentations pipeline: resize to 1.125 x ``input_size``, then a random or centre crop.

    Args:
        input_size: ``(height, width)`` of the output.
        train: random crop and horizontal flip (else the centre crop).
        seed: the pipeline's own seed (albumentations does not follow the global seeds).
    """
    height, width = input_size
    steps: list[A.BasicTransform] = [
        A.Resize(round(height * RESIZE_FACTOR), round(width * RESIZE_FACTOR))
    ]
    if train:
        steps += [A.RandomCrop(height, width), A.HorizontalFlip(p=0.5)]
    else:
        steps += [A.CenterCrop(height, width)]
    return A.Compose(steps, seed=seed)


def read_face(path: Path, box: Box | None, in_chans: int, crop_margin: float) -> np.ndarray:
    """The face of an image file, cropped with :func:`crop_face`, as ``uint8[H, W]`` (``in_chans``
    1: grayscale) or ``uint8[H, W, 3]``: what evaluation and ``predict.py`` feed the transform.

    Raises:
        OSError: the image cannot be read (naming the file).
        ValueError: the face box lies outside the image (naming the file and its box file).
    """
    try:
        with Image.open(path) as file:
            image = file.convert("L" if in_chans == 1 else "RGB")
    except OSError as error:
        raise OSError(f"{path}: cannot read the image ({error}); replace or remove it") from error
    try:
        face = crop_face(image, box, crop_margin)
    except ValueError as error:
        raise ValueError(
            f"{path.with_suffix('.txt')}: {error}; fix the box, or delete the file to use "
            "the whole image"
        ) from None
    return np.asarray(face)


def face_tensor(transform: A.Compose, face: np.ndarray) -> torch.Tensor:
    """A face through ``transform`` (:func:`make_transform`) as ``float[C, H, W]`` in [0, 1]."""
    pixels = transform(image=face)["image"]
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(255)
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


class KFaceDataset(SeededDataset):
    """Face images as ``{"image": FloatTensor[C, H, W] in [0, 1], "label": int, "index": int}``.

    Evaluation sets also carry ``"gallery": bool``: whether the image is its person's reference
    image for identification. ``"index"`` is the position in the dataset, so that evaluation can
    put the outputs of several processes back in dataset order.

    Args:
        tree: the folder the record paths are relative to.
        records: the images, in a fixed order.
        labels: the class index of each record.
        input_size: ``(height, width)`` of the output ``H, W``.
        in_chans: 1 for grayscale (LightCNN), 3 for RGB.
        crop_margin: margin around the face box, as a fraction of its size.
        train: random crop and flip (else the centre crop).
        gallery: per record, whether it is its person's gallery image (evaluation sets only).
        seed: seed of the augmentation; each data-loader worker reseeds it (:meth:`reseed`).
    """

    def __init__(
        self,
        tree: str | Path,
        records: Sequence[KFaceRecord],
        labels: Sequence[int],
        input_size: tuple[int, int] = (128, 128),
        in_chans: int = 1,
        crop_margin: float = 0.1,
        train: bool = False,
        gallery: Sequence[bool] | None = None,
        seed: int = 0,
    ) -> None:
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans}")
        if len(input_size) != 2 or min(input_size) < 1:
            raise ValueError(f"input_size must be a positive (height, width), got {input_size}")
        if crop_margin < 0:
            raise ValueError(f"crop_margin must be >= 0 (a fraction of the box), got {crop_margin}")
        if len(labels) != len(records):
            raise ValueError(f"{len(records)} records but {len(labels)} labels")
        if gallery is not None and len(gallery) != len(records):
            raise ValueError(f"{len(records)} records but {len(gallery)} gallery flags")
        self.tree = Path(tree)
        self.records = list(records)
        self.labels = [int(label) for label in labels]
        self.gallery = None if gallery is None else [bool(g) for g in gallery]
        self.in_chans = in_chans
        self.crop_margin = crop_margin
        self.train = train
        self.transform = make_transform((int(input_size[0]), int(input_size[1])), train, seed)

    def __len__(self) -> int:
        return len(self.records)

    def reseed(self, seed: int) -> None:
        """Give this copy of the dataset (one per data-loader worker) its own augmentation seed."""
        self.transform.set_random_seed(seed)

    def load(self, index: int) -> np.ndarray:
        """The cropped face of record ``index`` (:func:`read_face`)."""
        record = self.records[index]
        return read_face(self.tree / record.path, record.box, self.in_chans, self.crop_margin)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int | bool]:
        item: dict[str, torch.Tensor | int | bool] = {
            "image": face_tensor(self.transform, self.load(index)),
            "label": self.labels[index],
            "index": index,
        }
        if self.gallery is not None:
            item["gallery"] = self.gallery[index]
        return item
