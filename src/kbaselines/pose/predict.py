"""Pose keypoints of new images with a trained Simple Baseline (``predict.py``), and its export.

Inputs (``input=``): a folder of images, searched recursively (video frames are images; the pose
file naming ``...-Camera 9_<frame>.jpg`` gives each its camera and frame), one image, or a dataset
tree in the pose format (a folder with ``annotations/*_2d.json``: its image records give the
``img_no``, paths and sizes; its people are not read). Every image is opened first: an unreadable
one, or one that is not the size its record says, is a problem, and the others are predicted.

Person boxes: ``detections=``, a COCO results file read by
:func:`~kbaselines.pose.detections.read_detections` (``image_id``: the file name without its suffix
for a folder, the ``img_no`` for a dataset tree); an image without a box is counted, not predicted.
Without it, each image is one person: the whole frame.

Each box is cropped, normalised, flip-tested and decoded by the evaluation's own functions
(:func:`~kbaselines.pose.transforms.crop_person`, :func:`~kbaselines.pose.dataset.normalise`,
:meth:`~kbaselines.pose.task.PoseTask.fused_heatmaps`,
:meth:`~kbaselines.pose.codec.HeatmapCodec.decode_image`), so a fold's test images give its
``predictions_test.json``. A fold ensemble averages the models' flip-fused heatmaps, then decodes
once.

Outputs (``out=``): ``predictions_2d.json`` (the dataset's 2D format with a per-person ``score``,
per-joint ``keypoint_scores`` and an ``info`` naming the checkpoints), ``skeletons/<img_path>.png``
(each image with its boxes and skeletons) and, with ``cameras=`` (``cameras.json`` of pose.md),
``predictions_3d.json``: the joints of every instant seen by ``min_views`` calibrated views with one
person each, triangulated by the evaluation's confidence-weighted DLT (world mm, the frame of
``cameras.json``). Views of several people are left out (nothing tells which person of one view is
which of another); a view where the detector found one of two people can still mix them, so
``cameras=`` is meant for captures of one person.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.integrity import inspect_files
from kbaselines.core.io import write_json_atomic, write_text_atomic
from kbaselines.core.predict.checkpoints import LoadedTask
from kbaselines.core.predict.predictor import ExportContract, Inputs, Predictor
from kbaselines.pose.codec import HeatmapCodec
from kbaselines.pose.dataset import MEAN, STD, normalise, read_rgb
from kbaselines.pose.detections import read_detections
from kbaselines.pose.info import PoseInfo
from kbaselines.pose.joints import JOINTS, NUM_JOINTS
from kbaselines.pose.outputs import plot_image_people, predictions_document
from kbaselines.pose.reader import (
    Camera,
    PoseFormatError,
    PoseImage,
    PosePerson,
    parse_img_path,
    read_2d,
    read_cameras,
)
from kbaselines.pose.task import PoseTask, person_scores
from kbaselines.pose.transforms import crop_person, invert_affine
from kbaselines.pose.triangulation import triangulate_views

__all__ = ["IMAGE_SUFFIXES", "PosePredictor"]

#: The image files a folder input is searched for (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

#: One person to predict and its image.
Item = tuple[PosePerson, PoseImage]
#: The keypoints of a box to predict (none labelled).
_UNLABELLED = np.zeros((NUM_JOINTS, 3))


@dataclass
class _Listed:
    """The images an input names (readable or not), by ``img_no``; the ids a detections file uses
    for them; the folder their paths are relative to; the problems found listing them and the
    images these leave out."""

    root: Path
    images: dict[int, PoseImage]
    ids: dict[int | str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    refused: set[int] = field(default_factory=set)
    tree: bool = False


class _Crops(Dataset):
    """The people as the network's inputs, cropped as the evaluation crops them."""

    def __init__(
        self, root: Path, items: Sequence[Item], input_size: tuple[int, int], enlarge: float
    ) -> None:
        self.root, self.items, self.input_size, self.enlarge = root, items, input_size, enlarge

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        person, image = self.items[index]
        pixels = read_rgb(self.root / image.path)
        if pixels is None:  # opened when listed: changed since
            raise FileNotFoundError(f"{self.root / image.path} became unreadable while predicting")
        crop, matrix = crop_person(pixels, person.bbox, self.input_size, self.enlarge)
        return {
            "image": normalise(crop),
            "inverse": torch.from_numpy(invert_affine(matrix)),
            "index": torch.tensor(index),
        }


class PosePredictor(Predictor):
    """2D keypoints (and, given the cameras, 3D joints) of images with a Simple Baseline.

    Args:
        input_size: the network's input ``[height, width]`` (``data.input_size`` of the run).
        stride: input pixels per heatmap cell (``data.stride``).
        enlarge: box enlargement before cropping (``data.enlarge``).
        image_dir: the folder of a dataset tree that ``img_path`` is relative to.
        annotations_2d: glob of a dataset tree's 2D files (their presence makes ``input`` a tree).
        detections: a COCO results file of person boxes, or None (each image is one person).
        detection_category: the person category id of the detections file.
        detection_min_score: detections scoring below it are left out (counted).
        cameras: ``cameras.json`` of the views, or None (no 3D).
        min_views: calibrated views of an instant needed to triangulate it.
        draw: write ``skeletons/<img_path>.png``.
        batch_size: crops per batch.
        num_workers: data-loader workers that read and crop the images.
    """

    info_type = PoseInfo

    def __init__(
        self,
        *,
        input_size: Sequence[int] = (256, 192),
        stride: int = 4,
        enlarge: float = 1.25,
        image_dir: str = "images",
        annotations_2d: str = "annotations/*_2d.json",
        detections: str | None = None,
        detection_category: int = 1,
        detection_min_score: float = 0.0,
        cameras: str | None = None,
        min_views: int = 2,
        draw: bool = True,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.codec = HeatmapCodec((int(input_size[0]), int(input_size[1])), stride)
        self.enlarge = enlarge
        self.image_dir = image_dir
        self.annotations_2d = annotations_2d
        self.detections = None if detections is None else Path(detections)
        self.detection_settings = {
            "category_id": detection_category,
            "min_score": detection_min_score,
        }
        self.cameras_file = None if cameras is None else Path(cameras)
        self.min_views = min_views
        self.draw = draw
        self._root = Path()
        self._source: Path | None = None
        self._cameras: dict[str, Camera] = {}
        self._without_people = 0

    # -- inputs -----------------------------------------------------------------------------------
    def read_inputs(self, source: Path | None) -> Inputs:
        """The people of ``source`` (a folder, an image or a dataset tree) and the problems.

        Raises:
            ValueError: no ``input=``, or it holds no image.
            FileNotFoundError: ``input=`` does not exist.
            PoseFormatError: the detections or cameras file is unreadable as a whole.
        """
        if source is None:
            raise ValueError(
                "input= is required: a folder of images (or video frames), one image, or a pose "
                "dataset tree"
            )
        if not source.exists():
            raise FileNotFoundError(f"input={source} does not exist")
        if self.cameras_file is not None:
            self._cameras = read_cameras(self.cameras_file)
        tree = source.is_dir() and any(source.glob(self.annotations_2d))
        listed = self._tree(source) if tree else self._folder(source)
        self._root, self._source = listed.root, source
        images, problems = self._readable(listed)
        people, more = self._people(listed, images)
        problems += more
        self._without_people = sum(not people.get(n) for n in images)
        items = [(p, images[n]) for n in sorted(people) for p in people[n]]
        return Inputs(items, problems)

    def _folder(self, source: Path) -> _Listed:
        """The images of a folder (recursively) or one image file, numbered in path order; a
        detections file names them by file name without suffix (a number also as an int)."""
        root = source if source.is_dir() else source.parent
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise ValueError(
                f"input={source} holds no image ({', '.join(IMAGE_SUFFIXES)}) and no 2D annotation "
                f"file ({self.annotations_2d}) of a pose dataset tree"
            )
        listed = _Listed(root, {})
        names: dict[str, list[int]] = defaultdict(list)
        for img_no, file in enumerate(files, start=1):
            relative = file.relative_to(root).as_posix()
            recording, camera, frame = parse_img_path(relative)
            listed.images[img_no] = PoseImage(
                img_no, relative, 0, 0, "", "", camera, recording, frame
            )
            names[file.stem].append(img_no)
        for name, numbers in names.items():
            if len(numbers) > 1 and self.detections is not None:
                others = ", ".join(listed.images[n].path for n in numbers)
                listed.problems += [
                    Problem(
                        str(root / listed.images[n].path),
                        f"its name {name!r} is also the name of {others}: the detections' "
                        "image_id cannot tell them apart; rename them",
                    )
                    for n in numbers
                ]
                listed.refused.update(numbers)
                continue
            listed.ids[name] = numbers[0]
            if name.isdigit():
                listed.ids.setdefault(int(name), numbers[0])
        return listed

    def _tree(self, source: Path) -> _Listed:
        """The image records of a dataset tree's 2D files, by ``img_no`` (their people unread)."""
        listed = _Listed(source / self.image_dir, {}, tree=True)
        where: dict[int, str] = {}  # the first record of each img_no
        for file in sorted(source.glob(self.annotations_2d)):
            try:
                content = read_2d(file)
            except PoseFormatError as error:
                listed.problems += error.problems
                continue
            listed.problems += [
                p for p in content.problems if (p.record or "").startswith("images")
            ]
            for img_no, image in content.images.items():
                if img_no in listed.images:
                    listed.problems.append(
                        Problem(
                            str(file),
                            f"img_no {img_no} is also the img_no of {where[img_no]}: give every "
                            "image its own img_no",
                            content.image_records[img_no],
                        )
                    )
                    continue
                listed.images[img_no] = image
                where[img_no] = f"{content.image_records[img_no]} of {file}"
        listed.ids = {n: n for n in listed.images}
        return listed

    def _readable(self, listed: _Listed) -> tuple[dict[int, PoseImage], list[Problem]]:
        """The listed images that open (with their decoded size), and the problems of the others."""
        paths = {n: str(listed.root / i.path) for n, i in listed.images.items()}
        facts = inspect_files(paths.values(), desc="Opening the images")
        images: dict[int, PoseImage] = {}
        problems = list(listed.problems)
        for img_no, image in listed.images.items():
            fact = facts[paths[img_no]]
            if img_no in listed.refused:
                continue
            if fact.error:
                problems.append(Problem(paths[img_no], fact.error))
            elif listed.tree and (fact.width, fact.height) != (image.width, image.height):
                problems.append(
                    Problem(
                        paths[img_no],
                        f"is {fact.width}x{fact.height}, but its record (img_no {img_no}) says "
                        f"{image.width}x{image.height}: correct the record or the image",
                    )
                )
            else:
                images[img_no] = replace(image, width=fact.width, height=fact.height)
        return images, problems

    def _people(
        self, listed: _Listed, images: dict[int, PoseImage]
    ) -> tuple[dict[int, list[PosePerson]], list[Problem]]:
        """The person boxes of each readable image: the detections file's, or the whole image."""
        if self.detections is None:
            return {
                n: [PosePerson(n, 1, (0.0, 0.0, float(i.width), float(i.height)), _UNLABELLED)]
                for n, i in images.items()
            }, []
        keyed = {key: images[n] for key, n in listed.ids.items() if n in images}
        found = read_detections(
            self.detections,
            keyed,
            **self.detection_settings,
            images_of=(
                "img_no of a readable image of the dataset tree"
                if listed.tree
                else "readable image's name (its file name without suffix)"
            ),
            setting="detections=",
        )
        return found.by_image, found.problems

    def dataset(self, items: Sequence[Item]) -> Dataset:
        """The people's crops as the evaluation makes them (no augmentation)."""
        return _Crops(self._root, items, self.codec.input_size, self.enlarge)

    # -- prediction -------------------------------------------------------------------------------
    def predict_batch(self, models: Sequence[LoadedTask], batch: dict[str, Any]) -> list[Any]:
        """Joints ``[J, 2]`` (image pixels) and peaks ``[J]`` per crop: the mean of the models'
        flip-fused heatmaps (each model flips as its task evaluates), decoded once."""
        tasks = [_pose_task(m) for m in models]
        heatmaps = torch.stack([t.fused_heatmaps(batch["image"]) for t in tasks]).mean(dim=0)
        joints, peaks = self.codec.decode_image(
            heatmaps.cpu().numpy(), batch["inverse"].cpu().numpy()
        )
        return [{"joints": j, "peaks": p} for j, p in zip(joints, peaks, strict=True)]

    def write(
        self,
        items: Sequence[Item],
        predictions: Sequence[Any],
        models: Sequence[LoadedTask],
        out: Path,
    ) -> dict[str, int]:
        """``predictions_2d.json``, the skeleton PNGs and, with cameras, ``predictions_3d.json``."""
        info = {
            "input": None if self._source is None else str(self._source),
            "boxes": "whole image" if self.detections is None else str(self.detections),
            "checkpoints": [{"path": str(m.path), "sha256": m.sha256} for m in models],
            "ensemble": len(models) > 1,
        }
        shape = (len(predictions), NUM_JOINTS)  # also when nothing was predicted
        joints = np.array([p["joints"] for p in predictions]).reshape(*shape, 2)
        peaks = np.array([p["peaks"] for p in predictions]).reshape(shape)
        scores = person_scores(peaks, np.array([p.score for p, _ in items]))
        document = predictions_document(list(items), joints, scores, peaks=peaks, info=info)
        write_text_atomic(out / "predictions_2d.json", json.dumps(document))
        counts = {
            "people": len(items),
            "images": len({i.img_no for _, i in items}),
            "images_without_people": self._without_people,
        }
        if self.draw:
            self._draw(items, joints, scores, out / "skeletons")
        if self.cameras_file is not None:
            result = self._triangulate(items, joints, peaks)
            write_json_atomic(
                out / "predictions_3d.json",
                {"info": {**info, "cameras": str(self.cameras_file)}, "joint_names": list(JOINTS)}
                | result,
            )
            counts["instants_3d"] = len(result["instants"])
        return counts

    def _draw(
        self, items: Sequence[Item], joints: np.ndarray, scores: np.ndarray, folder: Path
    ) -> None:
        by_image: dict[int, list[int]] = defaultdict(list)
        for k, (_, image) in enumerate(items):
            by_image[image.img_no].append(k)
        for ks in by_image.values():
            image = items[ks[0]][1]
            pixels = read_rgb(self._root / image.path)
            if pixels is None:
                continue  # changed since it was predicted; its keypoints are written
            path = (folder / image.path).with_suffix(".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            plot_image_people(pixels, [items[k][0].bbox for k in ks], joints[ks], scores[ks], path)

    def _triangulate(
        self, items: Sequence[Item], joints: np.ndarray, peaks: np.ndarray
    ) -> dict[str, list[dict[str, Any]]]:
        """Every instant's 3D joints from its views with one person and a calibrated camera (the
        person of one view cannot be told from another's in views of several); the instants with
        fewer than ``min_views`` such views are listed with those they lack."""
        images = [image for _, image in items]
        people = Counter(image.img_no for image in images)
        instants: dict[str, list[int]] = defaultdict(list)
        for k, image in enumerate(images):
            instants[image.instant].append(k)
        found, left_out = [], []
        for ks in instants.values():
            place = {"recording": images[ks[0]].recording, "frame": images[ks[0]].frame}
            crowded = {k for k in ks if people[images[k].img_no] > 1}
            uncalibrated = {k for k in ks if images[k].camera not in self._cameras}
            views = [k for k in ks if k not in crowded | uncalibrated]
            if len(views) < self.min_views:
                left_out.append(
                    {
                        **place,
                        "reason": f"{len(views)} views with one person and a calibrated camera; "
                        f"{self.min_views} needed",
                        "several_people": sorted({images[k].path for k in crowded}),
                        "no_calibration": sorted({images[k].path for k in uncalibrated}),
                    }
                )
                continue
            cameras = [self._cameras[images[k].camera] for k in views]
            points = triangulate_views(cameras, joints[views], peaks[views])
            found.append(
                {
                    **place,
                    "views": [
                        {
                            "img_no": images[k].img_no,
                            "img_path": "/" + images[k].path,
                            "camera": images[k].camera,
                        }
                        for k in views
                    ],
                    "keypoints": np.round(points, 2).tolist(),
                    "keypoint_scores": np.round(
                        peaks[views].mean(axis=0).astype(float), 4
                    ).tolist(),
                }
            )
        return {"instants": found, "left_out": left_out}

    # -- export -----------------------------------------------------------------------------------
    def export_contract(self, model: LoadedTask) -> ExportContract:
        """The Simple Baseline from a normalised crop to its raw heatmaps; cropping, the flip test
        and decoding stay outside the graph (described in the card, decoding shipped as
        ``kbaselines.pose.codec.HeatmapCodec.decode_image``)."""
        task = _pose_task(model)
        info = task.pose_info
        height, width = self.codec.input_size
        generator = torch.Generator().manual_seed(0)
        return ExportContract(
            module=task.net,
            example_inputs=(torch.randn(2, 3, height, width, generator=generator),),
            input_names=("image",),
            output_names=("heatmaps",),
            preprocessing={
                "input_size": [height, width],
                "channels": "RGB",
                "layout": "NCHW float32",
                "normalisation": "(pixel in 0..255 - mean) / std, per channel",
                "mean": np.round(MEAN.astype(float), 4).tolist(),
                "std": np.round(STD.astype(float), 4).tolist(),
                "crop": (
                    "the person box [x1, y1, x2, y2] widened to the input's aspect (width / "
                    f"height), enlarged {self.enlarge}x around its centre and warped onto the input "
                    "by an affine map taking its centre to ((width - 1) / 2, (height - 1) / 2), "
                    "pixel centres at integers (bilinear, black outside): "
                    "kbaselines.pose.transforms.crop_person"
                ),
                "enlarge": self.enlarge,
                "boxes": "a person detector's, or the whole image",
            },
            postprocessing={
                "heatmaps": f"[batch, {info.num_joints}, {height // self.codec.stride}, "
                f"{width // self.codec.stride}], one per joint of joint_names",
                "joint_names": list(info.joint_names),
                "stride": self.codec.stride,
                "flip_test": bool(task.hparams.flip_test),
                "flip": (
                    "run the mirrored crop too; mirror its heatmaps back, swap the flip_pairs "
                    "and average with the crop's"
                ),
                "flip_pairs": [list(p) for p in info.flip_pairs],
                "decode": (
                    "per joint: the argmax cell (x, y), moved 0.25 cell towards the higher "
                    "neighbour on each axis (inside the map); crop pixel = cell * stride + "
                    "(stride - 1) / 2; image pixel = the crop's inverse affine map; joint score = "
                    "the peak value; person score = mean joint score x box score"
                ),
                "function": "kbaselines.pose.codec.HeatmapCodec.decode_image",
            },
            tolerance=1e-4,
        )


def _pose_task(model: LoadedTask) -> PoseTask:
    if not isinstance(model.task, PoseTask):
        raise TypeError(
            f"{model.path} holds a {type(model.task).__name__}, not a pose task: use a pose "
            "experiment (+experiment=pose_simple_baseline...)"
        )
    return model.task
