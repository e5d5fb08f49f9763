"""The X-ray baggage LightningDataModule: annotations in, the fold's detection datasets out.

The CV layer reads :meth:`XrayDataModule.sample_table` once (ids: image paths; groups: the
physical item, so that the hundreds of near-duplicate scans of one item stay in one fold; labels:
each scan's main category for stratification; domains: the scanner, for the cross-scanner
``leave_one_group_out`` scheme) and gives each fold as ``split``. Category ids come from the whole
dataset (sorted names -> 1..C), so every fold and every run of the same data share them. A root
holding the official parts is read part by part (:func:`~kbaselines.xray.reader.join_parts`); the
image paths, the sample ids, then start with the part folder (``1.Training/``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler, WeightedRandomSampler

from kbaselines.core.data.datamodule import DataInfo, FoldDataModule
from kbaselines.core.data.dataset_report import DatasetReport, Problem
from kbaselines.core.data.integrity import audit_content, facts_cache_file, tree_problems
from kbaselines.core.data.samples import SampleTable
from kbaselines.core.data.synthetic_delivery import SyntheticTwin
from kbaselines.xray.dataset import XrayDataset, collate_detection
from kbaselines.xray.reader import (
    XrayAnnotations,
    XrayFormatError,
    XrayImage,
    join_parts,
    read_annotations,
)
from kbaselines.xray.synthetic import ensure_synthetic_xray, synthetic_arguments

__all__ = ["GROUP_KEYS", "XrayDataModule", "class_aware_weights"]

log = logging.getLogger(__name__)

GROUP_KEYS = ("sample", "image")
STRATIFY_KEYS = ("category",)
DOMAIN_KEYS = ("scanner", "scenario", "family")
SAMPLERS = ("class_aware",)
_SHOWN = 20


def main_category(image: XrayImage) -> str:
    """The scan's most frequent category (ties: the first name), ``none`` for an empty scan."""
    counts = Counter(o.category for o in image.objects)
    if not counts:
        return "none"
    return min(counts, key=lambda name: (-counts[name], name))


def class_aware_weights(images: Sequence[XrayImage]) -> list[float]:
    """Sampling weight per image: the largest ``1 / objects of its category`` among its objects,
    so that rare categories are drawn as often as common ones (empty scans: the smallest)."""
    counts = Counter(o.category for image in images for o in image.objects)
    floor = 1.0 / max(counts.values(), default=1)
    return [
        max((1.0 / counts[o.category] for o in image.objects), default=floor) for image in images
    ]


def _listing(items: Sequence[Any]) -> str:
    shown = "\n  ".join(str(i) for i in items[:_SHOWN])
    more = len(items) - _SHOWN
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


class XrayDataModule(FoldDataModule):
    """X-ray scans with boxes, split by the CV layer.

    Args:
        root: the dataset root (``<scanner>/<category>/<scenario>/<image>.png``), or a folder
            holding the official parts, each such a root.
        annotation_format: ``coco`` (JSON, polygons or boxes) or ``voc`` (one XML per image).
        annotation_files: annotation files relative to the root (to each part's, for a root with
            parts); None: every ``*.json``/``*.xml``.
        category_map: annotation name -> unified name (``{"USB Metal": "USB"}``).
        categories: the allowed unified names (an unmapped other name is an error); None: the
            names the annotations use.
        max_size: resize scans so their longest side is at most this before the detector's own
            resize (saves memory on 1920x1080 captures); None: as stored.
        augment: flips, 90-degree turns, scale and palette jitter for training.
        sampler: None (shuffle) or ``class_aware`` (rare categories drawn as often as common).
        batch_size: the global training batch, divided by the number of processes.
        eval_batch_size: the global evaluation batch (default: ``batch_size``).
        num_workers, pin_memory, persistent_workers: data-loader settings.
        seed: augmentation, shuffling and sampling seed.
        split: ``{"train", "val", "test"}`` image paths from the CV layer; None: every image is a
            test image (eval.py) and training is refused.
        synthetic: arguments of :func:`~kbaselines.xray.synthetic.generate_xray`;
            :meth:`prepare_data` generates the tree at ``root`` once.
        group_key: ``sample`` (the physical item; names without one fall back to the image) or
            ``image``.
        stratify_key: ``category`` (each scan's main category) or None.
        domain_key: ``scanner``, ``scenario``, ``family`` or None: the domain of
            ``cv.scheme=leave_one_group_out`` (``scanner``: train on two makes, test the third).
        cache_dir: where the facts of the opened images (size, decoded size, digest) are kept,
            so that a second run only stats unchanged files; None: open every image every run.
        skip_broken: leave out the images that cannot be used (unreadable, missing, a size or a
            box that does not fit), counted and listed in a warning, instead of stopping.
        parts: the folder names of the official parts (``data.parts``, see
            :class:`~kbaselines.core.data.datamodule.FoldDataModule`).
    """

    def __init__(
        self,
        root: str | None = None,
        annotation_format: str = "coco",
        annotation_files: Sequence[str] | None = None,
        category_map: Mapping[str, str] | None = None,
        categories: Sequence[str] | None = None,
        max_size: int | None = None,
        augment: bool = True,
        sampler: str | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        seed: int = 0,
        split: dict[str, list[str]] | None = None,
        synthetic: dict[str, Any] | None = None,
        group_key: str = "sample",
        stratify_key: str | None = "category",
        domain_key: str | None = "scanner",
        cache_dir: str | None = None,
        skip_broken: bool = False,
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
        for name, value, allowed in (
            ("group_key", group_key, GROUP_KEYS),
            ("stratify_key", stratify_key, (*STRATIFY_KEYS, None)),
            ("domain_key", domain_key, (*DOMAIN_KEYS, None)),
            ("sampler", sampler, (*SAMPLERS, None)),
        ):
            if value not in allowed:
                raise ValueError(f"data.{name}={value!r} must be one of {list(allowed)}")
        self.annotation_format = annotation_format
        self.annotation_files = None if annotation_files is None else list(annotation_files)
        self.category_map = dict(category_map or {})
        self.allowed_categories = None if categories is None else list(categories)
        self.max_size = max_size
        self.augment = augment
        self.sampler = sampler
        self.group_key = group_key
        self.stratify_key = stratify_key
        self.domain_key = domain_key
        self.cache_dir = cache_dir
        self.skip_broken = skip_broken
        self._annotations: XrayAnnotations | None = None

    # -- the annotations --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Generate the synthetic tree when configured (once)."""
        if self.synthetic is not None:
            ensure_synthetic_xray(self.synthetic_root(), **self.synthetic)

    @classmethod
    def synthetic_twin(cls, arguments: Mapping[str, Any]) -> SyntheticTwin:
        """The twin's physical items are numbered from ``first_sample`` in every category."""
        return SyntheticTwin(
            ensure_synthetic_xray,
            synthetic_arguments(**arguments),
            count="samples_per_category",
            first="first_sample",
        )

    @property
    def annotations(self) -> XrayAnnotations:
        """Every annotation of the root with its image opened, read once (problems included,
        not raised)."""
        return self._read()

    def _read(self, workers: int | None = None) -> XrayAnnotations:
        if self._annotations is None:
            if self.root is None:
                raise FileNotFoundError("set data.root to the X-ray dataset folder")
            found = {
                prefix: read_annotations(
                    folder,
                    self.annotation_format,
                    self.annotation_files,
                    self.category_map,
                    self.allowed_categories,
                    cache_file=facts_cache_file(self.cache_dir, folder, "xray"),
                    workers=workers,
                )
                for prefix, folder in self.folders().items()
            }
            self._annotations = join_parts(self.root, found)
        return self._annotations

    def images(self) -> list[XrayImage]:
        """The usable images, sorted by path; clipped, dropped and ungrouped boxes are logged,
        and so are the images left out with ``skip_broken``.

        Raises:
            XrayFormatError: the annotations have problems, or images cannot be used and
                ``skip_broken`` is false; each listed with file and record.
        """
        found = self.annotations
        fix = (
            f"Fix them (python scripts/check_dataset.py data=xray data.root={self.root} lists "
            "every problem)"
        )
        if found.problems:
            raise XrayFormatError(
                f"{len(found.problems)} problems in the annotations under {found.root}:\n  "
                f"{_listing(found.problems)}\n{fix}; data.skip_broken does not cover these "
                "(they concern whole annotation files or the settings)"
            )
        broken = [p for problems in found.broken.values() for p in problems]
        if broken and not self.skip_broken:
            raise XrayFormatError(
                f"{len(found.broken)} images under {found.root} cannot be used:\n  "
                f"{_listing(broken)}\n{fix}, or set data.skip_broken=true to leave them out"
            )
        if broken:
            log.warning(
                "%d images left out (data.skip_broken=true):\n  %s",
                len(found.broken),
                _listing(broken),
            )
        for kind, where in (
            ("clipped to the image", found.clipped),
            ("dropped (zero area)", found.dropped),
        ):
            if where:
                log.warning("%d boxes %s:\n  %s", len(where), kind, _listing(where))
        if found.without_sample_key and self.group_key == "sample":
            log.warning(
                "%d of %d images have no HS code and sample number in their name: each is its "
                "own split group (near-duplicate scans of one item may then fall in two folds)",
                found.without_sample_key,
                len(found.images),
            )
        return found.images

    def _group(self, image: XrayImage) -> str:
        return image.group if self.group_key == "sample" else image.path

    def sample_table(self) -> SampleTable:
        """Image paths, their split group, main category and domain for the CV layer."""
        images = self.images()
        labels = [main_category(i) for i in images] if self.stratify_key else None
        domains = None
        if self.domain_key is not None:
            domains = [str(getattr(i.name, self.domain_key)) for i in images]
        facts = self.annotations.facts
        ids = [i.path for i in images]
        return SampleTable(
            ids=ids,
            groups=[self._group(i) for i in images],
            labels=labels,
            domains=domains,
            files=[(i.path,) for i in images],
            digests=[(facts[self.annotations.file(i.path)].digest,) for i in images],
            parts=self.part_labels(ids),
        )

    # -- categories -------------------------------------------------------------------------------
    @property
    def info(self) -> DataInfo:
        """The category names in label order (label ``k`` is ``class_names[k - 1]``, 0 being the
        background): ``data.categories`` when set, else the annotations' names (read on first
        use), so that every fold and every run of the same data share the labels."""
        return DataInfo(class_names=tuple(self.allowed_categories or self.annotations.categories))

    # -- the fold's datasets ----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Build the fold's datasets from ``split`` (once; later calls do nothing)."""
        if self.datasets:
            return
        by_path = {i.path: i for i in self.images()}
        parts = self.fold_parts(
            by_path, "annotated images", "root, annotation format, skip_broken", XrayFormatError
        )
        category_ids = {name: k for k, name in enumerate(self.info.class_names, start=1)}
        for part, images in parts.items():
            if images:
                self.datasets[part] = XrayDataset(
                    self.root,
                    images,
                    category_ids,
                    train=part == "train" and self.augment,
                    max_size=self.max_size,
                    seed=self.seed,
                )

    def eval_records(self, stage: str) -> list[XrayImage]:
        """The images of the ``val`` or ``test`` set, in dataset order: batch ``index`` ``i`` is
        ``eval_records(stage)[i]`` (the file names of the COCO files and predictions)."""
        if stage not in self.datasets:
            raise RuntimeError(
                f"no {stage} set: call setup() first, or the split's {stage} is empty"
            )
        return list(self.datasets[stage].images)

    # -- loaders ----------------------------------------------------------------------------------
    collate_fn = staticmethod(collate_detection)

    def train_sampler(self) -> Sampler | None:
        """Class-aware sampling (``sampler: class_aware``): rare categories drawn more often."""
        if self.sampler != "class_aware":
            return None
        dataset = self.datasets["train"]
        return WeightedRandomSampler(
            class_aware_weights(dataset.images),
            num_samples=len(dataset),
            replacement=True,
            generator=torch.Generator().manual_seed(self.seed),
        )

    # -- checking a dataset -----------------------------------------------------------------------
    def check(self, workers: int | None = None) -> DatasetReport:
        """Counts per category, scanner, scenario and family, empty scans, changed boxes; every
        problem: of the annotation files, of each image (opened by ``workers`` threads), empty
        folders and dangling links, one image under two paths or in two groups."""
        found = self._read(workers)
        images = found.images
        objects = Counter(o.category for i in images for o in i.objects)
        counts: dict[str, dict[str, int] | int] = {
            "annotation files": found.annotation_files,
            "image files opened": len(found.facts),
            "image files unreadable": sum(1 for f in found.facts.values() if not f.ok),
            "images that cannot be used": len(found.broken),
            "images": len(images),
            "objects": sum(objects.values()),
            "objects per category": dict(sorted(objects.items())),
        }
        for facet in ("scanner", "scenario", "family"):
            values = Counter(str(getattr(i.name, facet)) for i in images)
            counts[f"images per {facet}"] = dict(sorted(values.items()))
        counts["images without objects"] = sum(1 for i in images if not i.objects)
        counts["images without a sample key"] = found.without_sample_key
        counts["physical samples"] = len({i.group for i in images if i.name.sample_key})
        if per_part := self.part_counts(i.path for i in images):
            counts["images per part"] = per_part
        counts["boxes clipped"] = len(found.clipped)
        counts["boxes dropped (zero area)"] = len(found.dropped)
        problems = found.every_problem
        problems += [Problem(w, "box clipped to the image") for w in found.clipped]
        problems += [Problem(w, "zero-area box dropped") for w in found.dropped]
        reported = {p.file for p in problems}  # an annotated dangling link is reported already
        problems += [
            p for p in tree_problems(found.root, skip=self._is_cache) if p.file not in reported
        ]
        problems += audit_content(
            {i.path: [found.file(i.path)] for i in images},
            {i.path: self._group(i) for i in images},
            found.facts,
            found.root,
        )
        return DatasetReport("X-ray baggage", str(found.root), counts, problems, len(found.facts))

    def _is_cache(self, folder: str) -> bool:
        """True for the cache folder when it lies inside the root (not a dataset folder)."""
        if self.cache_dir is None or self.root is None:
            return False
        return (Path(self.root) / folder).resolve() == Path(self.cache_dir).resolve()
