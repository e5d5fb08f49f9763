"""The K-Face LightningDataModule: plain settings in, the fold's datasets out.

The CV layer reads :meth:`KFaceDataModule.sample_table` once, splits it by person, and gives each
fold as ``split`` (sample ids per part); this module never splits nor seeds a split itself.
Training classes are the training part's people; evaluation sets label their own (unseen) people
and mark each person's gallery image (S001/L1/E01/``gallery_camera``) for identification.

The gallery image is part of the selection only when the filters select it: an experiment config
must keep S001, L1, E01 and the gallery camera in ``data.sessions/lights/expressions/cameras``
(or ``all``), else :meth:`~KFaceDataModule.setup` stops with an error naming the person.

Before any epoch, :meth:`~KFaceDataModule.selected` opens and decodes every selected image
(:func:`~kbaselines.core.data.integrity.inspect_files`, cached by size and modification time) and
checks each face box against its image's size: a damaged image stops the run there, naming every
such file, instead of one crash per file mid-epoch (or, with ``skip_broken``, is left out with a
count and a list). The content digests go into the sample table, so that the split's leakage
check refuses a fold whose parts hold one image twice (a person folder linked to another person,
a copied or hard-linked image).

A root holding the official parts (``1.Training/``, ``2.Validation/``; ``data.parts``) is indexed
part by part, each part's tree (``<part>`` or ``<part>/<resolution>``) as a whole K-Face tree
with its own cached index; its image paths, the sample ids, then start with that tree's path
under the root (``1.Training/19062000/S001/...``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kbaselines.core.data.datamodule import DataInfo, FoldDataModule
from kbaselines.core.data.dataset_report import DatasetReport, Problem
from kbaselines.core.data.generated import generator_arguments
from kbaselines.core.data.integrity import (
    FileFacts,
    audit_content,
    facts_cache_file,
    inspect_files,
    tree_problems,
)
from kbaselines.core.data.loaders import worker_init_fn
from kbaselines.core.data.parts import in_part
from kbaselines.core.data.samples import SampleTable
from kbaselines.core.data.synthetic_delivery import SyntheticTwin
from kbaselines.kface.dataset import KFaceDataset, box_outside
from kbaselines.kface.index import KFaceIndex, load_index
from kbaselines.kface.reader import (
    FACETS,
    FILTERS,
    FacetFilter,
    KFaceFormatError,
    KFaceRecord,
    KFaceSelectionError,
    facet_sort_key,
    matches,
    parse_name,
    resolve_tree,
)
from kbaselines.kface.synthetic import ensure_synthetic_kface, generate_kface

__all__ = ["KFaceDataModule", "worker_init_fn"]

log = logging.getLogger(__name__)

GALLERY = ("S001", "L1", "E01")
RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(KFaceRecord) if f.name != "box")
_SHOWN_PROBLEMS = 20


class KFaceDataModule(FoldDataModule):
    """K-Face images selected by facets, split by the CV layer.

    Args:
        root: the K-Face tree, or a folder holding High/ Middle/ Low/ trees, or a folder holding
            the official parts, each one of those.
        resolution: which of High, Middle, Low to read when the root holds them.
        sessions: the sessions to use: a list (``[S001, S002]``) or ``"all"``.
        lights: the lights to use: a list or ``"all"``.
        expressions: the expressions to use: a list or ``"all"``.
        cameras: the cameras to use: a list or ``"all"``.
        gallery_camera: the camera of each person's gallery image (with S001/L1/E01); the
            selection must include it.
        input_size: ``[height, width]`` of the network input (LightCNN and PGGAN take squares).
        in_chans: 1 (grayscale, LightCNN) or 3 (RGB).
        crop_margin: margin around the face box, as a fraction of its size.
        batch_size: the global training batch, divided by the number of processes.
        eval_batch_size: the global evaluation batch (default: ``batch_size``).
        num_workers: data-loader worker processes.
        pin_memory: data-loader setting.
        persistent_workers: keep the workers between epochs (only with ``num_workers > 0``).
        cache_dir: where the index of the tree and the facts of the opened images are cached
            (None: scan the tree and open every selected image every time).
        rebuild_index: scan the tree again even when the cached index looks current (it notices
            added, removed and edited box files by itself).
        augment: random crop and flip for training (else the evaluation transform).
        seed: seed of the augmentation and of the shuffling.
        split: ``{"train": [...], "val": [...], "test": [...]}`` sample ids (from
            :meth:`sample_table`) given by the CV layer; ``val`` and ``test`` may be empty.
            None: every selected image is a test image (evaluating a checkpoint on a whole
            dataset) and training is refused.
        synthetic: arguments of :func:`~kbaselines.kface.synthetic.generate_kface`:
            :meth:`prepare_data` generates the tree at ``root`` when absent or made otherwise.
        group_key: the record field that groups samples for the CV layer (no group in two folds).
        stratify_key: the record field the CV layer stratifies on, or None.
        skip_broken: leave out the selected images that are malformed (name, box file) or damaged
            (unreadable, empty, truncated, of another format, box outside the image), counted
            and listed in a warning, instead of stopping with an error.
        parts: the folder names of the official parts (``data.parts``, see
            :class:`~kbaselines.core.data.datamodule.FoldDataModule`).
    """

    def __init__(
        self,
        root: str | None = None,
        resolution: str = "High",
        sessions: FacetFilter = ("S001",),
        lights: FacetFilter = ("L1",),
        expressions: FacetFilter = ("E01",),
        cameras: FacetFilter = ("C7",),
        gallery_camera: str = "C7",
        input_size: Sequence[int] = (128, 128),
        in_chans: int = 1,
        crop_margin: float = 0.1,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        cache_dir: str | None = None,
        rebuild_index: bool = False,
        augment: bool = True,
        seed: int = 0,
        split: dict[str, list[str]] | None = None,
        synthetic: dict[str, Any] | None = None,
        group_key: str = "person",
        stratify_key: str | None = None,
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
        self.check_keys(RECORD_FIELDS, group_key=group_key, stratify_key=stratify_key)
        if in_chans not in (1, 3):
            raise ValueError(f"data.in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans}")
        self.resolution = resolution
        self.filters: dict[str, FacetFilter] = dict(
            zip(FILTERS, (sessions, lights, expressions, cameras), strict=True)
        )
        self.gallery_camera = gallery_camera
        if len(input_size) != 2 or min(int(v) for v in input_size) < 1:
            raise ValueError(f"data.input_size={list(input_size)} must be [height, width]")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.in_chans = in_chans
        self.crop_margin = crop_margin
        self.cache_dir = cache_dir
        self.rebuild_index = rebuild_index
        self.augment = augment
        self.group_key = group_key
        self.stratify_key = stratify_key
        self.skip_broken = skip_broken
        self._indexes: dict[str, KFaceIndex] | None = None
        self._selected: list[KFaceRecord] | None = None
        self._facts: dict[str, FileFacts] = {}
        self._classes: list[str] | None = None

    # -- the tree ---------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Generate the synthetic tree when configured (once), then build or load the indexes."""
        if self.synthetic is not None:
            ensure_synthetic_kface(self.synthetic_root(), **self.synthetic)
        self.indexes  # noqa: B018  (builds the caches)

    @classmethod
    def synthetic_twin(cls, arguments: Mapping[str, Any]) -> SyntheticTwin:
        """The twin's people are numbered from ``first_person``."""
        return SyntheticTwin(
            ensure_synthetic_kface,
            generator_arguments(generate_kface, arguments),
            count="num_people",
            first="first_person",
        )

    @property
    def tree(self) -> Path:
        """The folder the image paths are relative to: the resolved tree (``root`` or
        ``root/<resolution>``), or ``root`` when it holds the official parts."""
        return resolve_tree(self.root, self.resolution)

    @property
    def indexes(self) -> dict[str, KFaceIndex]:
        """The index of each tree read, by the prefix of its image paths under :attr:`tree`:
        ``{"": index}``, or one per official part (``"1.Training/"``, ``"1.Training/High/"``);
        loaded once (each from its cache when current)."""
        if self._indexes is None:
            resolve_tree(self.root, self.resolution)  # a missing root: the message with the fix
            self._indexes = {}
            for prefix, folder in self.folders().items():
                tree = resolve_tree(folder, self.resolution)
                key = prefix if tree == folder else f"{prefix}{tree.name}/"
                self._indexes[key] = load_index(tree, self.cache_dir, rebuild=self.rebuild_index)
        return self._indexes

    def _chosen(self, prefix: str, index: KFaceIndex) -> list[KFaceRecord]:
        """The selected records of one index, their paths under :attr:`tree`."""
        return [dataclasses.replace(r, path=prefix + r.path) for r in index.select(**self.filters)]

    def _blocking(self, problems: Sequence[Problem]) -> list[Problem]:
        """The problems that may concern the selection: every malformed name, and the malformed
        boxes of selected images (a broken box elsewhere in the tree does not stop this run)."""
        blocking = []
        for problem in problems:
            try:
                record = parse_name(str(Path(problem.file).with_suffix(".jpg").as_posix()))
            except KFaceFormatError:
                blocking.append(problem)
                continue
            if matches(record, **self.filters):
                blocking.append(problem)
        return blocking

    def _inspect(
        self, records: Sequence[KFaceRecord], workers: int | None = None
    ) -> dict[str, FileFacts]:
        """Facts of the records' images, keyed by record path (read once, then cached by size and
        modification time in ``cache_dir``)."""
        tree = self.tree
        facts = inspect_files(
            [tree / r.path for r in records],
            cache_file=facts_cache_file(self.cache_dir, tree, "kface"),
            workers=workers,
            desc=f"Checking {len(records):,} images",
        )
        return {r.path: facts[str(tree / r.path)] for r in records}

    @staticmethod
    def _damaged(records: Sequence[KFaceRecord], facts: dict[str, FileFacts]) -> dict[str, Problem]:
        """Per record path, the problem of an image that cannot be read or decoded, or whose face
        box lies outside it."""
        damaged = {}
        for record in records:
            fact = facts[record.path]
            if fact.error:
                damaged[record.path] = Problem(record.path, fact.error)
                continue
            reason = (
                None if record.box is None else box_outside(record.box, fact.width, fact.height)
            )
            if reason is not None:
                damaged[record.path] = Problem(
                    record.path[:-4] + ".txt",
                    f"{reason}: fix the box, or delete the file to use the whole image",
                    "line 1",
                )
        return damaged

    def selected(self) -> list[KFaceRecord]:
        """The selected records, sorted by path, every image opened and its box checked.

        Raises:
            KFaceFormatError: selected images have malformed names or boxes, or are damaged
                (unless ``skip_broken``), listing them.
            KFaceSelectionError: the selection is empty, naming the filter that emptied it.
        """
        if self._selected is not None:
            return self._selected
        records: list[KFaceRecord] = []
        broken: list[Problem] = []
        for prefix, index in self.indexes.items():
            records += self._chosen(prefix, index)
            broken += [in_part(prefix, p) for p in self._blocking(index.problems)]
        records.sort(key=lambda r: r.path)
        facts = self._inspect(records)
        damaged = self._damaged(records, facts)
        broken += damaged.values()
        if broken:
            listing = "\n  ".join(str(p) for p in broken[:_SHOWN_PROBLEMS])
            more = len(broken) - _SHOWN_PROBLEMS
            listing += f"\n  ... and {more} more" if more > 0 else ""
            if not self.skip_broken:
                raise KFaceFormatError(
                    self.tree,
                    f"{len(broken)} malformed or damaged files may belong to the selection:\n"
                    f"  {listing}\nFix them (python scripts/check_dataset.py data=kface "
                    f"data.root={self.root} lists every problem), or set data.skip_broken=true "
                    "to leave those images out",
                )
            records = [r for r in records if r.path not in damaged]
            log.warning(
                "%s: %d malformed or damaged files left out (data.skip_broken=true), %d images "
                "kept:\n  %s",
                self.tree,
                len(broken),
                len(records),
                "\n  ".join(str(p) for p in broken),
            )
            if not records:
                raise KFaceSelectionError(f"{self.tree}: every selected image is damaged")
        self._facts = facts
        self._selected = records
        return records

    def sample_table(self) -> SampleTable:
        """The selected images for the CV layer: ids are paths, groups the ``group_key`` values,
        and each image's content digest for the split's leakage check."""
        records = self.selected()
        labels = None
        if self.stratify_key is not None:
            labels = [str(getattr(r, self.stratify_key)) for r in records]
        ids = [r.path for r in records]
        return SampleTable(
            ids=ids,
            groups=[str(getattr(r, self.group_key)) for r in records],
            labels=labels,
            files=[(r.path,) for r in records],
            digests=[(self._facts[r.path].digest,) for r in records],
            parts=self.part_labels(ids),
        )

    # -- the fold's datasets ----------------------------------------------------------------------
    @property
    def info(self) -> DataInfo:
        """The training people as the classifier's classes (label ``k`` is ``class_names[k]``);
        known after :meth:`setup`."""
        if self._classes is None:
            raise RuntimeError("the classes are known after setup(): call datamodule.setup('fit')")
        return DataInfo(class_names=tuple(self._classes))

    def setup(self, stage: str | None = None) -> None:
        """Build the fold's datasets from ``split`` (once; later calls do nothing)."""
        if self._classes is not None:
            return
        by_path = {r.path: r for r in self.selected()}
        parts = self.fold_parts(
            by_path,
            "images",
            "root, sessions, lights, expressions, cameras",
            KFaceSelectionError,
        )
        train = parts.get("train", [])
        classes = sorted({r.person for r in train})
        if train:
            label_of = {p: k for k, p in enumerate(classes)}
            labels = [label_of[r.person] for r in train]
            self.datasets["train"] = self._dataset(train, labels, train=self.augment)
        for part in ("val", "test"):
            records = parts.get(part, [])
            if records:
                self.datasets[part] = self._evaluation_set(part, records)
        self._classes = classes

    def _dataset(
        self,
        records: list[KFaceRecord],
        labels: list[int],
        train: bool,
        gallery: list[bool] | None = None,
    ) -> KFaceDataset:
        return KFaceDataset(
            self.tree,
            records,
            labels,
            input_size=self.input_size,
            in_chans=self.in_chans,
            crop_margin=self.crop_margin,
            train=train,
            gallery=gallery,
            seed=self.seed,
        )

    def _evaluation_set(self, part: str, records: list[KFaceRecord]) -> KFaceDataset:
        """Labels by the set's own people, and each person's gallery image flagged."""
        people = sorted({r.person for r in records})
        label_of = {p: k for k, p in enumerate(people)}
        reference = (*GALLERY, self.gallery_camera)
        gallery = [(r.session, r.light, r.expression, r.camera) == reference for r in records]
        having = {r.person for r, g in zip(records, gallery, strict=True) if g}
        lacking = [p for p in people if p not in having]
        if lacking:
            shown = ", ".join(lacking[:5]) + (
                f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
            )
            raise KFaceSelectionError(
                f"person {shown} of the {part} set has no gallery image "
                f"{lacking[0]}/{'/'.join(reference)}.jpg among the selected images: the selection "
                f"must include session S001, light L1, expression E01 and camera "
                f"{self.gallery_camera} (data.sessions, data.lights, data.expressions, "
                f"data.cameras), or set data.gallery_camera to a selected camera"
            )
        labels = [label_of[r.person] for r in records]
        return self._dataset(records, labels, train=False, gallery=gallery)

    def eval_records(self, stage: str) -> list[KFaceRecord]:
        """The records of the ``"val"`` or ``"test"`` set, in dataset order (for predictions)."""
        if stage not in ("val", "test"):
            raise ValueError(f"stage must be 'val' or 'test', got {stage!r}")
        if stage not in self.datasets:
            raise RuntimeError(
                f"no {stage} set: call setup() first, or the split's {stage} is empty"
            )
        return list(self.datasets[stage].records)

    # -- checking a tree --------------------------------------------------------------------------
    def check(self, workers: int | None = None) -> DatasetReport:
        """Counts and problems of the whole tree, and every selected image opened and decoded.

        The problems: malformed names and box files (whole tree), empty folders and dangling
        links (whole tree), selected images that cannot be read or decoded or whose box lies
        outside them, and one image reached twice or copied into two people (the content audit).
        A selection that comes out empty is reported as a problem of the tree folder.

        Args:
            workers: threads opening the images (default: one per core).
        """
        indexes = self.indexes
        images = sum(len(index) for index in indexes.values())
        counts: dict[str, dict[str, int] | int] = {
            "people": len({p for index in indexes.values() for p in index.count("person")}),
            "images": images,
        }
        for facet in FACETS:
            tally = sum((Counter(index.count(facet)) for index in indexes.values()), Counter())
            counts[f"images per {facet}"] = dict(
                sorted(tally.items(), key=lambda p: facet_sort_key(p[0]))
            )
        present = sum(int(index.has_box.sum()) for index in indexes.values())
        counts["boxes"] = {"present": present, "missing": images - present}
        problems = [in_part(prefix, p) for prefix, index in indexes.items() for p in index.problems]
        chosen: list[KFaceRecord] = []
        empty = []
        for prefix, index in indexes.items():
            try:
                chosen += self._chosen(prefix, index)
            except KFaceSelectionError as error:
                empty.append(Problem(str(index.tree), str(error)))
        chosen.sort(key=lambda r: r.path)
        facts = self._inspect(chosen, workers) if chosen else {}
        damaged = self._damaged(chosen, facts)
        problems += damaged.values()
        named = {p.file for p in problems}
        problems += [p for p in tree_problems(self.tree) if p.file not in named]
        problems += audit_content(
            {r.path: [r.path] for r in chosen},
            {r.path: r.person for r in chosen},
            facts,
            self.tree,
        )
        if empty:
            problems += empty
        else:
            counts["selected"] = {
                "images": len(chosen),
                "people": len({r.person for r in chosen}),
                "opened": len(facts),
                "damaged": len(damaged),
            }
            if per_part := self.part_counts(r.path for r in chosen):
                counts["selected images per part"] = per_part
        return DatasetReport("K-Face", str(self.tree), counts, problems, len(facts))
