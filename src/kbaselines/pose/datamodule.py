"""The pose LightningDataModule: the dataset's files read once, each fold's people as crops.

Samples are annotated people (``<img_no>-<person_no>``), grouped for the CV layer by a capture
facet (``group_key``: the recording folder by default, so that no actor's take and no instant seen
by several cameras is in two folds). The 3D poses and ``cameras.json`` ride along for the
multi-view evaluation of the task. With ``detections`` set, the test part is evaluated on the
crops of a detector's person boxes on the test images instead of the ground-truth boxes (the
paper's protocol); the ground-truth people stay available for scoring (:meth:`ground_truth`).

Beyond the :class:`~kbaselines.core.data.datamodule.FoldDataModule` contract, the pose task uses
what this class declares for it: :meth:`uses_detections`, :meth:`ground_truth`, ``cameras``,
``poses_3d``, :attr:`image_root` and the heatmap ``codec``.

Reading the dataset (for training, evaluation and the check alike) validates every record
(:mod:`kbaselines.pose.reader`) and opens every selected image
(:func:`~kbaselines.core.data.integrity.inspect_files`): an image that is missing, empty,
truncated or of another format, an image record whose width and height are not the decoded
image's, and a labelled keypoint outside the decoded image are problems that stop the run before
training, or with ``skip_broken`` leave the records out, counted and listed. The facts of the
images (size, modification time, digest) are cached in ``cache_dir`` by size and modification
time; the JSON files are not cached, so an edit is always read.

A root holding the official parts is read part by part, each part's 2D and 3D files and cameras
as a whole dataset; the people's sample ids and the image paths then start with the part folder
(``1.Training/``), and :attr:`PoseDataModule.image_root` is the root. The ``img_no`` of every image
must stay unique across the parts (the evaluation matches predictions to images by it): two parts
numbering their images alike are reported, naming both records.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from kbaselines.core.data.datamodule import FoldDataModule
from kbaselines.core.data.dataset_report import DatasetReport, Problem
from kbaselines.core.data.generated import generator_arguments
from kbaselines.core.data.integrity import (
    FileFacts,
    audit_content,
    facts_cache_file,
    inspect_files,
    tree_problems,
)
from kbaselines.core.data.samples import SampleTable
from kbaselines.core.data.synthetic_delivery import SyntheticTwin
from kbaselines.pose.codec import HeatmapCodec
from kbaselines.pose.dataset import PoseDataset
from kbaselines.pose.detections import Detections, read_detections
from kbaselines.pose.info import PoseInfo
from kbaselines.pose.joints import FLIP_PAIRS, HEAD, JOINTS, NECK, OKS_SIGMAS
from kbaselines.pose.reader import (
    Camera,
    PoseFormatError,
    PoseImage,
    PosePerson,
    joints_outside,
    read_2d,
    read_3d,
    read_cameras,
)
from kbaselines.pose.synthetic import ensure_synthetic_pose, generate_pose

__all__ = ["FACETS", "PoseDataModule", "Sample"]

log = logging.getLogger(__name__)

#: Image facets usable as ``group_key``, ``stratify_key`` or ``domain_key``.
FACETS = ("recording", "video_no", "action", "camera", "instant")
_SHOWN = 20

#: One evaluated or annotated person and its image.
Sample = tuple[PosePerson, PoseImage]


class PoseDataModule(FoldDataModule):
    """Pose dataset (pose.md) read from ``root``, split by the CV layer.

    Args:
        root: the dataset folder, or a folder holding the official parts, each a dataset folder.
        image_dir: the folder (under ``root``, or under each part) that ``img_path`` is relative to.
        annotations_2d: glob (under ``root``) of the 2D JSON files.
        annotations_3d: glob of the 3D JSON files (none found: no 3D evaluation).
        cameras: calibration file under ``root`` (absent: no 3D evaluation).
        input_size: network input ``[height, width]`` (multiples of 32; 4:3 as the paper).
        stride: input pixels per heatmap cell.
        sigma: Gaussian target sigma in heatmap cells.
        enlarge: box enlargement before cropping.
        augment: random scale, rotation and mirror for training.
        rotation: rotation sigma in degrees.
        scale: scale sigma.
        flip: mirror probability.
        batch_size: global training batch (divided by the number of processes).
        eval_batch_size: global evaluation batch (default ``batch_size``).
        num_workers: data-loader workers.
        pin_memory: data-loader setting.
        persistent_workers: keep workers between epochs (only with workers).
        seed: augmentation and shuffling seed.
        split: ``{"train", "val", "test"}`` sample ids from the CV layer; None: every person is a
            test sample (eval.py).
        synthetic: arguments of :func:`~kbaselines.pose.synthetic.generate_pose`; when set,
            :meth:`prepare_data` generates the dataset at ``root`` (once).
        group_key: facet that groups samples (one of :data:`FACETS`).
        stratify_key: facet to stratify on, or None.
        domain_key: facet whose values are the domains of ``leave_one_group_out``, or None.
        skip_broken: leave out broken records and the people of unreadable images (counted
            and listed in a warning) instead of stopping with an error.
        detections: a COCO results file of detected person boxes (``image_id`` = ``img_no``;
            relative paths are under ``root``) to evaluate the test part with; None: the
            ground-truth boxes.
        detection_category: the person category id of the detections file.
        detection_min_score: detections scoring below it are left out (counted).
        cache_dir: where the facts of the opened images are kept between runs (an image whose
            size and modification time are unchanged is not read again); None: no cache.
        parts: the folder names of the official parts (``data.parts``, see
            :class:`~kbaselines.core.data.datamodule.FoldDataModule`).
    """

    def __init__(
        self,
        root: str | None = None,
        image_dir: str = "images",
        annotations_2d: str = "annotations/*_2d.json",
        annotations_3d: str = "annotations/*_3d.json",
        cameras: str = "cameras.json",
        input_size: Sequence[int] = (256, 192),
        stride: int = 4,
        sigma: float = 2.0,
        enlarge: float = 1.25,
        augment: bool = True,
        rotation: float = 40.0,
        scale: float = 0.3,
        flip: float = 0.5,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        seed: int = 0,
        split: dict[str, list[str]] | None = None,
        synthetic: dict[str, Any] | None = None,
        group_key: str = "recording",
        stratify_key: str | None = None,
        domain_key: str | None = None,
        skip_broken: bool = False,
        detections: str | None = None,
        detection_category: int = 1,
        detection_min_score: float = 0.0,
        cache_dir: str | None = None,
        parts: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(
            root=root,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            seed=seed,
            split=split,
            synthetic=synthetic,
            parts=parts,
        )
        self.check_keys(
            FACETS, group_key=group_key, stratify_key=stratify_key, domain_key=domain_key
        )
        if len(input_size) != 2 or any(int(v) % 32 for v in input_size):
            raise ValueError(
                f"data.input_size={list(input_size)} must be [height, width], multiples of 32"
            )
        self.image_dir = image_dir
        self.annotations_2d = annotations_2d
        self.annotations_3d = annotations_3d
        self.cameras_file = cameras
        self.codec = HeatmapCodec((int(input_size[0]), int(input_size[1])), stride, sigma)
        self.enlarge = enlarge
        self.augmentation = {"rotation": rotation, "scale": scale, "flip": flip}
        self.augment = augment
        self.group_key = group_key
        self.stratify_key = stratify_key
        self.domain_key = domain_key
        self.skip_broken = skip_broken
        self.detections_file = detections
        self.detection_settings = {
            "category_id": detection_category,
            "min_score": detection_min_score,
        }
        self.cache_dir = cache_dir
        self._samples: dict[str, Sample] | None = None
        self._images: dict[int, PoseImage] = {}
        self._image_records: dict[int, tuple[str, str]] = {}
        self._person_records: dict[str, tuple[str, str]] = {}
        self._facts: dict[str, FileFacts] = {}
        self._left_out: Counter[str] = Counter()
        self._unreadable: list[str] = []
        self._detections: Detections | None = None
        self.truth: dict[str, list[Sample]] = {}
        self._problems: list[Problem] = []
        self.clipped_boxes = 0
        self.poses_3d: dict[tuple[str, int], np.ndarray] = {}
        self.cameras: dict[str, Camera] = {}

    # -- the files --------------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        """The dataset folder; a missing one stops with the setting to fix."""
        if self.root is None or not Path(self.root).is_dir():
            raise FileNotFoundError(
                f"pose dataset folder {self.root!r} not found: set data.root=/path/to/pose, or use "
                "the generated twin: data=pose_synthetic"
            )
        return Path(self.root)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset when configured (once)."""
        if self.synthetic is not None:
            ensure_synthetic_pose(self.synthetic_root(), **self.synthetic)

    @classmethod
    def synthetic_twin(cls, arguments: Mapping[str, Any]) -> SyntheticTwin:
        """The twin's recordings (and their ``img_no``) are numbered from ``first_recording``."""
        return SyntheticTwin(
            ensure_synthetic_pose,
            generator_arguments(generate_pose, arguments),
            count="num_recordings",
            first="first_recording",
        )

    def _read(self, workers: int | None = None) -> dict[str, Sample]:
        """Read every file once: people by sample id, 3D poses, cameras, the selected images'
        facts, and every problem (files named relative to the root)."""
        if self._samples is not None:
            return self._samples
        folder = self.folder
        samples: dict[str, Sample] = {}
        problems: list[Problem] = []
        for prefix, part in self.folders().items():
            files = sorted(part.glob(self.annotations_2d))
            if not files:
                raise FileNotFoundError(
                    f"{part}: no 2D annotation file matches "
                    f"data.annotations_2d={self.annotations_2d!r}"
                )
            for file in files:
                problems += self._read_2d(file, samples, prefix)
            problems += self._read_3d(part)
        problems += self._inspect_images(samples, workers)
        if self.clipped_boxes:
            log.info(
                "%s: %d boxes stuck out of their image and were clipped", folder, self.clipped_boxes
            )
        self._problems = [replace(p, file=self._name(p.file)) for p in problems]
        self._samples = dict(sorted(samples.items()))
        return self._samples

    def _name(self, path: str | Path) -> str:
        """A file as problems name it: relative to the root where it is under it."""
        try:
            return Path(path).relative_to(self.folder).as_posix()
        except ValueError:
            return str(path)

    def _image_file(self, image: PoseImage) -> str:
        return str(self.image_root / image.path)

    def _read_2d(self, file: Path, samples: dict[str, Sample], prefix: str) -> list[Problem]:
        """Add one 2D file's people to ``samples`` (their ids, and their images' paths under
        :attr:`image_root`, prefixed with the part's ``prefix``); its problems."""
        try:
            content = read_2d(file)
        except PoseFormatError as error:
            self._left_out["annotation files"] += 1
            return error.problems
        if prefix:
            content.images = {
                img_no: replace(
                    image, path=(PurePosixPath(prefix) / self.image_dir / image.path).as_posix()
                )
                for img_no, image in content.images.items()
            }
        problems = content.problems
        self._left_out["annotated people"] += content.annotations - len(content.people)
        self.clipped_boxes += content.clipped_boxes
        for img_no, image in content.images.items():
            if img_no in self._images:
                other, record = self._image_records[img_no]
                problems.append(
                    Problem(
                        str(file),
                        f"img_no {img_no} is also the img_no of {record} of {self._name(other)}: "
                        "give every image its own img_no",
                        content.image_records[img_no],
                    )
                )
                continue
            self._images[img_no] = image
            self._image_records[img_no] = (str(file), content.image_records[img_no])
        for person in content.people:
            if self._images[person.img_no] is not content.images[person.img_no]:
                self._left_out["annotated people"] += 1  # on an img_no of another file (above)
                continue
            samples[prefix + person.id] = (person, content.images[person.img_no])
            self._person_records[prefix + person.id] = (
                str(file),
                content.person_records[person.id],
            )
        return problems

    def _read_3d(self, folder: Path) -> list[Problem]:
        """Read the 3D files and ``cameras.json`` (both optional) of a dataset folder (the root,
        or a part: the parts' poses and cameras are joined); their problems."""
        problems: list[Problem] = []
        for file in sorted(folder.glob(self.annotations_3d)) if self.annotations_3d else []:
            try:
                poses, bad = read_3d(file)
            except PoseFormatError as error:
                problems += error.problems
                continue
            self.poses_3d.update(poses)
            problems += bad
        calibration = folder / self.cameras_file
        if calibration.is_file():
            try:
                self.cameras.update(read_cameras(calibration))
            except PoseFormatError as error:
                problems += error.problems
        return problems

    def _inspect_images(self, samples: dict[str, Sample], workers: int | None) -> list[Problem]:
        """Open every image of ``samples`` and drop the people whose image is unreadable or not
        the size its record says, or whose labelled keypoints lie outside the decoded image."""
        images = {image.img_no: image for _, image in samples.values()}
        self._facts = inspect_files(
            [self._image_file(i) for i in images.values()],
            cache_file=facts_cache_file(self.cache_dir, self.folder, "pose"),
            workers=workers,
            desc="Opening the pose images",
        )
        problems: list[Problem] = []
        broken: set[int] = set()
        for img_no, image in images.items():
            path = self._image_file(image)
            fact = self._facts[path]
            file, record = self._image_records[img_no]
            if fact.error:
                problems.append(
                    Problem(path, f"{fact.error} (img_no {img_no}, {record} of {self._name(file)})")
                )
                self._unreadable.append(self._name(path))
                broken.add(img_no)
            elif (fact.width, fact.height) != (image.width, image.height):
                problems.append(
                    Problem(
                        file,
                        f"keys 'width', 'height': {image.width}x{image.height}, but "
                        f"{self._name(path)} is {fact.width}x{fact.height}: correct the record "
                        "(its boxes and keypoints must be in the image's pixels) or the image",
                        record,
                    )
                )
                broken.add(img_no)
        for sample, (person, image) in list(samples.items()):
            if image.img_no not in broken:
                fact = self._facts[self._image_file(image)]
                outside = joints_outside(person.keypoints, fact.width, fact.height)
                if not outside:
                    continue
                file, record = self._person_records[sample]
                problems.append(
                    Problem(
                        file,
                        f"key 'keypoints': labelled joints outside the {fact.width}x{fact.height} "
                        f"image {self._name(self._image_file(image))}: {', '.join(outside)}; "
                        "correct them, or set their view flag to 0 (not labelled)",
                        record,
                    )
                )
            del samples[sample]
            self._left_out["annotated people"] += 1
        return problems

    def samples(self) -> dict[str, Sample]:
        """Every usable person by sample id, sorted (the images opened on the first call).

        Raises:
            PoseFormatError: the files have problems (unless ``skip_broken``), listing them.
        """
        samples = self._read()
        if self._problems:
            listing = "\n  ".join(str(p) for p in self._problems[:_SHOWN])
            more = len(self._problems) - _SHOWN
            listing += f"\n  ... and {more} more" if more > 0 else ""
            found = f"{len(self._problems)} problems in the pose files:\n  {listing}"
            if not self.skip_broken:
                raise PoseFormatError(
                    self.folder,
                    f"{found}\nFix them (python scripts/check_dataset.py data=pose data.root="
                    f"{self.root} lists every one), or set data.skip_broken=true to leave those "
                    "records and images out",
                )
            log.warning("%s\n%s", found, self._left_out_summary())
        return samples

    def _left_out_summary(self) -> str:
        """What ``skip_broken`` left out: counts, and the unreadable images by name."""
        counts = ", ".join(f"{n} {what}" for what, n in sorted(self._left_out.items()) if n)
        shown = "\n  ".join(self._unreadable[:_SHOWN])
        more = len(self._unreadable) - _SHOWN
        shown += f"\n  ... and {more} more" if more > 0 else ""
        images = f"; {len(self._unreadable)} unreadable images:\n  {shown}" if shown else ""
        return f"Left out (data.skip_broken=true): {counts or 'nothing'}{images}"

    @staticmethod
    def facet(image: PoseImage, key: str) -> str:
        """The value of facet ``key`` of an image."""
        return image.instant if key == "instant" else str(getattr(image, key))

    def sample_table(self) -> SampleTable:
        """People for the CV layer, grouped by ``group_key``, with their image and its digest
        (the split refuses a fold whose parts share an image's content)."""
        samples = self.samples()
        images = [image for _, image in samples.values()]
        paths = [self._image_file(i) for i in images]
        ids = list(samples)
        return SampleTable(
            ids=ids,
            groups=[self.facet(i, self.group_key) for i in images],
            labels=None
            if self.stratify_key is None
            else [self.facet(i, self.stratify_key) for i in images],
            domains=None
            if self.domain_key is None
            else [self.facet(i, self.domain_key) for i in images],
            files=[(self._name(p),) for p in paths],
            digests=[(self._facts[p].digest,) for p in paths],
            parts=self.part_labels(ids),
        )

    # -- the fold's datasets ----------------------------------------------------------------------
    @property
    def info(self) -> PoseInfo:
        """The dataset's joints (pose.md fixes them, so known before :meth:`setup`)."""
        return PoseInfo(
            joint_names=JOINTS,
            sigmas=tuple(OKS_SIGMAS.tolist()),
            head=HEAD,
            neck=NECK,
            flip_pairs=FLIP_PAIRS,
        )

    @property
    def image_root(self) -> Path:
        """The folder the images' paths are relative to: ``root/<image_dir>``, or the root when
        it holds the official parts (the paths then start with ``<part>/<image_dir>/``)."""
        return self.folder if self.official_parts() else self.folder / self.image_dir

    def setup(self, stage: str | None = None) -> None:
        """Build the fold's datasets from ``split`` (once)."""
        if self.datasets:
            return
        parts = self.fold_parts(self.samples(), "people", "root, annotation globs, skip_broken")
        for part, people in parts.items():
            if part == "test" and self.detections_file is not None and people:
                self.truth[part] = people
                people = self._detected_people(people)
            if people:
                self.datasets[part] = PoseDataset(
                    self.image_root,
                    people,
                    self.codec,
                    enlarge=self.enlarge,
                    train=part == "train" and self.augment,
                    seed=self.seed,
                    **self.augmentation,
                )

    def eval_records(self, stage: str) -> list[Sample]:
        """The ``(person, image)`` pairs of an evaluation part, in loader order: the annotated
        people, or the detected ones where :meth:`uses_detections`."""
        if stage not in self.datasets:
            raise RuntimeError(
                f"no {stage} set: call setup() first, or the split's {stage} is empty"
            )
        return list(self.datasets[stage].samples)

    def uses_detections(self, stage: str) -> bool:
        """Whether the part's crops come from the detections file."""
        return stage in self.truth

    def ground_truth(self, stage: str) -> list[Sample]:
        """The annotated ``(person, image)`` pairs that score an evaluation part."""
        return list(self.truth[stage]) if stage in self.truth else self.eval_records(stage)

    # -- detections -------------------------------------------------------------------------------
    def detections(self) -> Detections:
        """The detections file, read once against every image of the 2D files.

        Raises:
            PoseFormatError: the file is unreadable, or has broken records (unless
                ``skip_broken``: then they are left out, counted and listed in a warning).
        """
        if self._detections is not None:
            return self._detections
        self._read()
        path = self._detections_path()
        found = read_detections(path, self._images, **self.detection_settings)
        if found.problems:
            listing = "\n  ".join(str(p) for p in found.problems[:_SHOWN])
            message = f"{len(found.problems)} unusable records in the detections file:\n  {listing}"
            if not self.skip_broken:
                raise PoseFormatError(
                    path, f"{message}\nFix them, or set data.skip_broken=true to leave them out"
                )
            log.warning("%s\nThey are left out (data.skip_broken=true).", message)
        log.info(
            "%s: %d detections; left out %d of other categories and %d scoring below %s; "
            "%d boxes clipped to their image",
            path,
            len(found),
            found.other_categories,
            found.below_score,
            self.detection_settings["min_score"],
            found.clipped_boxes,
        )
        self._detections = found
        return found

    def _detections_path(self) -> Path:
        path = Path(self.detections_file or "")
        return path if path.is_absolute() else self.folder / path

    def _detected_people(self, truth: list[Sample]) -> list[Sample]:
        """The detections on the images of ``truth``'s people, as crops to evaluate."""
        images = {image.img_no: image for _, image in truth}
        by_image = self.detections().by_image
        people = [(d, images[n]) for n in sorted(images) for d in by_image.get(n, [])]
        if not people:
            raise ValueError(
                f"{self.detections_file}: no detection on any of the {len(images)} test images; "
                "is image_id the img_no of the 2D files (and data.detection_category the "
                "person category)?"
            )
        return people

    # -- checking ---------------------------------------------------------------------------------
    def check(self, workers: int | None = None) -> DatasetReport:
        """Counts (images opened, people, joints, actions, cameras, 3D coverage, what is left
        out) and every problem: the records, the images (opened with ``workers`` threads), the
        content audit, empty folders and dangling links."""
        samples = self._read(workers)
        images = {image.img_no: image for _, image in samples.values()}
        people = [p for p, _ in samples.values()]
        flags = (
            np.stack([p.keypoints[:, 2] for p in people]) if people else np.zeros((0, len(JOINTS)))
        )
        problems = self._problems + self._content_problems(samples)
        named = {p.file for p in problems}
        problems += [p for p in tree_problems(self.folder) if p.file not in named]
        with_3d = sum(
            (image.instant, p.person_no) in self.poses_3d for p, image in samples.values()
        )
        cams = sorted({i.camera for i in images.values()})
        uncalibrated = [c for c in cams if self.cameras and c not in self.cameras]
        for camera in uncalibrated:
            problems.append(
                Problem(self.cameras_file, f"camera {camera!r} of the images has no calibration")
            )
        counts: dict[str, dict[str, int] | int] = {
            "images": len(images),
            "image files opened": len(self._facts),
            "unreadable image files": len(self._unreadable),
            "people": len(people),
            "people left out": self._left_out["annotated people"],
            "recordings": len({i.recording for i in images.values()}),
            "clipped boxes": self.clipped_boxes,
            "visible joints per joint": {
                j: int((flags[:, k] == 2).sum()) for k, j in enumerate(JOINTS)
            },
            "labelled joints per joint": {
                j: int((flags[:, k] > 0).sum()) for k, j in enumerate(JOINTS)
            },
            "images per action": dict(sorted(Counter(i.action for i in images.values()).items())),
            "images per camera": dict(sorted(Counter(i.camera for i in images.values()).items())),
            "3D": {
                "people with a 3D pose": with_3d,
                "3D poses": len(self.poses_3d),
                "calibrated cameras": len(self.cameras),
            },
        }
        if per_part := self.part_counts(samples):
            counts["people per part"] = per_part
        if self.detections_file is not None:
            try:
                found = read_detections(
                    self._detections_path(), self._images, **self.detection_settings
                )
            except PoseFormatError as error:
                problems += error.problems
            else:
                problems += found.problems
                counts["detections"] = {
                    "boxes": len(found),
                    "images with a box": len(found.by_image),
                    "other categories (left out)": found.other_categories,
                    "below data.detection_min_score (left out)": found.below_score,
                    "clipped boxes": found.clipped_boxes,
                }
        problems = [replace(p, file=self._name(p.file)) for p in problems]
        return DatasetReport("Pose", str(self.folder), counts, problems, len(self._facts))

    def _content_problems(self, samples: dict[str, Sample]) -> list[Problem]:
        """One image under two records or two paths, and byte-identical images in two groups."""
        by_path: dict[str, list[int]] = defaultdict(list)
        for img_no, image in self._images.items():
            by_path[image.path].append(img_no)
        problems = []
        for path, img_nos in by_path.items():
            first = self._image_records[img_nos[0]]
            for img_no in img_nos[1:]:
                file, record = self._image_records[img_no]
                problems.append(
                    Problem(
                        self._name(file),
                        f"img_path {path} is also the img_path of {first[1]} of "
                        f"{self._name(first[0])} (img_no {img_nos[0]}): one image, two records; "
                        "merge them",
                        record,
                    )
                )
        files = {sample: [self._image_file(image)] for sample, (_, image) in samples.items()}
        groups = {
            sample: self.facet(image, self.group_key) for sample, (_, image) in samples.items()
        }
        return problems + audit_content(files, groups, self._facts, self.folder)
