"""Top-down person crops with Gaussian heatmap targets (the Simple Baseline data pipeline).

Each item is one annotated person: the box enlarged 1.25x at the input's aspect, warped to the
input size (with random scale, rotation and mirror in training), the joints' heatmaps and their
weights (0 for unlabelled joints) from the :class:`~kbaselines.pose.codec.HeatmapCodec`. The
inverse warp travels with the item so that predictions map back to image pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from kbaselines.core.data.loaders import SeededDataset
from kbaselines.pose.codec import HeatmapCodec
from kbaselines.pose.joints import flip_permutation
from kbaselines.pose.reader import PoseImage, PosePerson
from kbaselines.pose.transforms import crop_person, invert_affine, transform_points

__all__ = ["MEAN", "STD", "PoseDataset", "normalise", "read_rgb"]

#: ImageNet's channel mean and standard deviation, in 0-255 RGB pixels.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def read_rgb(path: Path) -> np.ndarray | None:
    """The RGB pixels ``[H, W, 3]`` of an image file (a grey or RGBA file as RGB, as OpenCV
    reads it in colour), or None when it is missing or unreadable."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if pixels is None else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def normalise(crop: np.ndarray) -> torch.Tensor:
    """A crop ``[h, w, 3]`` of RGB pixels as the network's input ``[3, h, w]``: each channel less
    :data:`MEAN`, over :data:`STD` (the evaluation's and ``predict.py``'s alike)."""
    tensor = (np.ascontiguousarray(crop, dtype=np.float32) - MEAN) / STD
    return torch.from_numpy(tensor.transpose(2, 0, 1).copy())


class PoseDataset(SeededDataset):
    """People ``(person, image)`` of a fold's part as network inputs and targets.

    Args:
        image_root: the folder ``img_path`` is relative to.
        samples: ``(person, image)`` pairs.
        codec: the crop size (the network input) and its heatmaps' geometry.
        enlarge: box enlargement before cropping.
        train: draw the augmentation (else the plain crop).
        rotation: rotation range in degrees (normal with this sigma, clipped at 2 sigma, applied
            to 60% of the crops, as the paper's code).
        scale: scale range (1 +- scale, normal with this sigma, clipped).
        flip: probability of a horizontal mirror with left/right joints swapped.
        seed: seed of the augmentation (reseeded per worker by ``worker_init_fn``).
    """

    def __init__(
        self,
        image_root: str | Path,
        samples: list[tuple[PosePerson, PoseImage]],
        codec: HeatmapCodec,
        enlarge: float = 1.25,
        train: bool = False,
        rotation: float = 40.0,
        scale: float = 0.3,
        flip: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.image_root = Path(image_root)
        self.samples = samples
        self.codec = codec
        self.enlarge = enlarge
        self.train = train
        self.rotation = rotation
        self.scale = scale
        self.flip = flip
        self.rng = np.random.default_rng(seed)
        self._perm = flip_permutation()

    def reseed(self, seed: int) -> None:
        """A new augmentation stream (one per data-loader worker)."""
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def read_image(self, image: PoseImage) -> np.ndarray:
        """The RGB pixels ``[H, W, 3]`` of an image record.

        Raises:
            FileNotFoundError: the file is missing or unreadable, naming it and its record.
        """
        path = self.image_root / image.path
        pixels = read_rgb(path)
        if pixels is None:
            raise FileNotFoundError(
                f"{path}: image of img_no {image.img_no} is missing or unreadable; check "
                "data.root / data.image_dir (python scripts/check_dataset.py data=pose lists it)"
            )
        return pixels

    def _augmentation(self) -> tuple[float, float, bool]:
        if not self.train:
            return 1.0, 0.0, False
        s = float(np.clip(self.rng.normal() * self.scale + 1, 1 - self.scale, 1 + self.scale))
        r = float(np.clip(self.rng.normal() * self.rotation, -2 * self.rotation, 2 * self.rotation))
        r = r if self.rng.uniform() < 0.6 else 0.0
        return s, r, bool(self.rng.uniform() < self.flip)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        person, image = self.samples[index]
        pixels = self.read_image(image)
        width = self.codec.input_size[1]
        s, r, mirror = self._augmentation()
        crop, matrix = crop_person(pixels, person.bbox, self.codec.input_size, self.enlarge, s, r)
        joints = transform_points(person.keypoints[:, :2], matrix)
        flags = person.keypoints[:, 2].copy()
        if mirror:
            crop = crop[:, ::-1]
            joints = joints[self._perm]
            joints[:, 0] = width - 1 - joints[:, 0]
            flags = flags[self._perm]
            # the inverse map of a mirrored crop: mirror back, then undo the warp
            mirror_matrix = np.array([[-1.0, 0, width - 1], [0, 1, 0]])
            matrix = np.vstack([mirror_matrix, [0, 0, 1]])[:2] @ np.vstack([matrix, [0, 0, 1]])
        targets, weights = self.codec.encode(joints, (flags > 0).astype(np.float32))
        return {
            "image": normalise(crop),
            "target": torch.from_numpy(targets),
            "weight": torch.from_numpy(weights),
            "inverse": torch.from_numpy(invert_affine(matrix)),
            "index": torch.tensor(index),
        }
