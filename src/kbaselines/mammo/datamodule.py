"""The mammography LightningDataModule: cases split by the CV layer, two training stages.

Samples are cases (grouped by patient, stratified by class). Training runs in two stages within one
fit: for the first ``stage1_epochs`` epochs the train loader gives patches (lesions labelled by
their contour's class, and normal tissue; a sampler balances the three classes), afterwards whole
views labelled by their breast. The Trainer must reload the train loader every epoch
(``reload_dataloaders_every_n_epochs: 1``, set by the experiment). Validation scores whole views;
the test loader scores the validation views (``part`` 0, for the operating point) then the test
views (``part`` 1).

Before any epoch the selection decodes every view (into the image cache, by
``cache_workers`` processes; cut to the breast with ``crop=breast``) and hashes
it: a file that cannot be read or decoded stops the run, naming it, or with ``skip_broken`` leaves
its case out, counted and listed; the digests go into the sample table, so the split refuses one
image in two parts. :meth:`MammoDataModule.check` adds the content audit and the tree's empty
folders and dangling links. A root holding the official parts is indexed part by part
(:func:`~kbaselines.mammo.index.join_parts`); case ids then start with the part folder
(``1.Training/``). Exports whose tags lost the view read with a views table (``views_table``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

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
from kbaselines.core.data.samples import SampleTable
from kbaselines.core.data.synthetic_delivery import SyntheticTwin
from kbaselines.core.io import write_text_atomic
from kbaselines.mammo.cache import ImageCache
from kbaselines.mammo.cache_build import CacheFill, fill_cache
from kbaselines.mammo.contours import LESION_CLASSES
from kbaselines.mammo.crop import CropBox, check_crop
from kbaselines.mammo.dataset import (
    PatchDataset,
    PatchItem,
    ViewDataset,
    ViewItem,
    worker_context,
)
from kbaselines.mammo.dicom import VIEWS
from kbaselines.mammo.index import (
    CLASSES,
    MammoCase,
    MammoIndex,
    build_index,
    count,
    join_parts,
    read_views_table,
    set_aside,
)
from kbaselines.mammo.synthetic import ensure_synthetic_mammo, generate_mammo
from kbaselines.mammo.views_table import ORIGINS, ViewsTable

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

__all__ = ["MammoDataError", "MammoDataModule"]

log = logging.getLogger(__name__)

KEYS = {
    "case": lambda c: c.case_id,
    "patient": lambda c: c.patient,
    "grp": lambda c: c.grp,
    "device": lambda c: c.device,
    "birads": lambda c: c.birads,
}


class MammoDataError(RuntimeError):
    """The dataset has problems that stop training (listed in the message)."""


class MammoDataModule(FoldDataModule):
    """Mammography cases (mammography.md layout) for the CV layer and the two-stage baseline.

    Args:
        root: the dataset folder (``metadata.csv``, ``images/``, ``contours/``, optional ``masks/``),
            or a folder holding the official parts, each such a folder.
        cache_dir: where decoded, resized images are kept (uint16 ``.npy``).
        cache_size: ``[rows, columns]`` of the cached images (every view is resized to it).
        image_size: ``[rows, columns]`` of the stage-2 network input (resized from the cache).
        patch_size: stage-1 patch side in full-resolution pixels (the guideline: 448).
        patch_input_size: the side the patches are resized to for the network.
        stage1_epochs: epochs on patches before whole views (0: stage 2 only).
        patches_per_lesion: patch items per lesion and epoch (jittered in the lesion's box).
        normal_patches_per_view: normal-tissue patch items per normal view and epoch.
        batch_size: global training batch of whole views; ``patch_batch_size`` of patches.
        patch_batch_size: global training batch of stage 1 (default ``batch_size``).
        eval_batch_size: global evaluation batch (default ``batch_size``).
        num_workers, pin_memory, persistent_workers: data-loader settings.
        augment: random flips for training.
        flip_right: flip right breasts so every chest wall is on the left.
        seed: seed of the sampler, the patch positions and the flips.
        split: ``{"train", "val", "test"}`` case ids from the CV layer; None: every case is a test case.
        synthetic: arguments of :func:`~kbaselines.mammo.synthetic.generate_mammo`.
        group_key: ``patient`` (default; all cases of a patient in one fold) or ``case``.
        stratify_key: ``grp`` (the class) or None.
        domain_key: ``device`` or None, for ``leave_one_group_out``.
        skip_broken: leave out cases with problems (a DICOM that cannot be read or decoded, a bad
            metadata row, a bad contour; counted and listed in the log and in
            ``skipped_cases.csv`` of the fold's folder) instead of stopping.
        parts: the folder names of the official parts (``data.parts``, see
            :class:`~kbaselines.core.data.datamodule.FoldDataModule`).
        views_table: a CSV (or JSON) of each image's laterality and view, for exports whose tags
            lost them (relative to ``root``, or absolute; :mod:`~kbaselines.mammo.views_table`).
        views_columns: its columns, ``{image, laterality, view}`` (defaults
            :data:`~kbaselines.mammo.views_table.DEFAULT_COLUMNS`).
        crop: ``breast`` cuts each view to the breast before resizing it into the cache
            (:mod:`~kbaselines.mammo.crop`; lesion boxes and patch sizes follow), ``none`` keeps
            the whole view.
        cache_workers: processes that decode views into a cold cache (default one per core, at
            most 16; 1: this process), :func:`~kbaselines.mammo.cache_build.fill_cache`.
    """

    def __init__(
        self,
        root: str | None = None,
        cache_dir: str | None = None,
        cache_size: tuple[int, int] = (1664, 1280),
        image_size: tuple[int, int] = (1664, 1280),
        patch_size: int = 448,
        patch_input_size: int = 224,
        stage1_epochs: int = 10,
        patches_per_lesion: int = 4,
        normal_patches_per_view: int = 1,
        batch_size: int = 8,
        patch_batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        augment: bool = True,
        flip_right: bool = True,
        seed: int = 0,
        split: dict[str, list[str]] | None = None,
        synthetic: dict[str, Any] | None = None,
        group_key: str = "patient",
        stratify_key: str | None = "grp",
        domain_key: str | None = None,
        skip_broken: bool = False,
        parts: dict[str, list[str]] | None = None,
        views_table: str | None = None,
        views_columns: Mapping[str, str | None] | None = None,
        crop: str = "none",
        cache_workers: int | None = None,
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
        self.check_keys(KEYS, group_key=group_key, stratify_key=stratify_key, domain_key=domain_key)
        self.cache_dir = cache_dir
        self.cache_size = (int(cache_size[0]), int(cache_size[1]))
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.patch_size = patch_size
        self.patch_input_size = patch_input_size
        self.stage1_epochs = stage1_epochs
        self.patches_per_lesion = patches_per_lesion
        self.normal_patches_per_view = normal_patches_per_view
        self.patch_batch_size = patch_batch_size or batch_size
        self.augment = augment
        self.flip_right = flip_right
        self.group_key = group_key
        self.stratify_key = stratify_key
        self.domain_key = domain_key
        self.skip_broken = skip_broken
        self.views_table = views_table
        self.views_columns = dict(views_columns or {})
        self.crop = check_crop(crop)
        self.cache_workers = cache_workers
        self._views: ViewsTable | None = None
        self._index: MammoIndex | None = None
        self._cache: ImageCache | None = None
        self._facts: dict[str, FileFacts] | None = None

    # -- the dataset ------------------------------------------------------------------------------
    @property
    def index(self) -> MammoIndex:
        """The index of the tree, or of every official part joined (built once per process; the
        DICOM headers cached per folder)."""
        if self._index is None:
            if self.root is None:
                raise FileNotFoundError(
                    "data.root is not set: data.root=/path/to/mammography, or data=mammo_synthetic"
                )
            indexes = {
                prefix: build_index(
                    folder,
                    self._cache_base() / f"dicom_headers{prefix and '.' + prefix[:-1]}.json",
                    self.views,
                )
                for prefix, folder in self.folders().items()
            }
            index = join_parts(self.root, indexes)
            index.problems += self.views.problems
            ambiguous = self.views.ambiguous().items()
            set_aside(index, [Problem(self._relative(f), why) for f, why in ambiguous])
            self._index = index
        return self._index

    @property
    def views(self) -> ViewsTable:
        """The views table (``views_table``), or none: every file's tags must give the view."""
        if self._views is None:
            self._views = (
                ViewsTable.none(Path(self.root))
                if self.views_table is None
                else read_views_table(self.views_table, self.root, self.views_columns)
            )
        return self._views

    def _relative(self, file: str) -> str:
        return Path(file).relative_to(self.root).as_posix()

    def _cache_base(self) -> Path:
        """This root's folder under ``cache_dir`` (default ``<root>/.cache``)."""
        base = Path(self.cache_dir) if self.cache_dir else Path(self.root) / ".cache"
        root_key = hashlib.sha1(str(Path(self.root).resolve()).encode()).hexdigest()[:10]
        return base / f"mammo_{root_key}"

    @property
    def cache(self) -> ImageCache:
        """The image cache of this root and preprocessing setting."""
        if self._cache is None:
            _ = self.index  # the lateralities the views table gives
            sides = {str(Path(f).resolve()): side for f, side in self.views.sides.items()}
            self._cache = ImageCache(
                self._cache_base(), self.cache_size, self.flip_right, sides, self.crop
            )
        return self._cache

    def prepare_data(self) -> None:
        """Generate the synthetic tree when configured and index it. The selection
        (:meth:`cases`, :meth:`check`) decodes the files (:meth:`fill_cache`, ``cache_workers``
        processes) and reads them (``check(workers)`` threads)."""
        if self.synthetic is not None:
            ensure_synthetic_mammo(self.synthetic_root(), **self.synthetic)
        _ = self.index

    @classmethod
    def synthetic_twin(cls, arguments: Mapping[str, Any]) -> SyntheticTwin:
        """The twin's cases and patients are numbered from ``first_case``."""
        return SyntheticTwin(
            ensure_synthetic_mammo,
            generator_arguments(generate_mammo, arguments),
            count="num_cases",
            first="first_case",
        )

    def cases(self) -> list[MammoCase]:
        """The usable cases, sorted by id, every view decoded (:meth:`_screen`).

        Raises:
            MammoDataError: cases have problems and ``skip_broken`` is false (each listed).
        """
        index = self.index
        self._screen()
        if index.problems and not self.skip_broken:
            listing = "\n  ".join(str(p) for p in index.problems[:20])
            more = (
                f"\n  ... and {len(index.problems) - 20} more" if len(index.problems) > 20 else ""
            )
            raise MammoDataError(
                f"{index.root}: {len(index.problems)} problems:\n  {listing}{more}\nFix them "
                f"(python scripts/check_dataset.py data=mammo data.root={self.root} lists all), or "
                "set data.skip_broken=true to leave those cases out"
            )
        if index.bad_cases:
            listing = "\n  ".join(
                f"{case}: {'; '.join(str(p) for p in problems)}"
                for case, problems in sorted(index.bad_cases.items())[:20]
            )
            more = (
                f"\n  ... and {len(index.bad_cases) - 20} more" if len(index.bad_cases) > 20 else ""
            )
            log.warning(
                "%d cases skipped (data.skip_broken=true; all in skipped_cases.csv):\n  %s%s",
                len(index.bad_cases),
                listing,
                more,
            )
        return sorted(index.cases, key=lambda c: c.case_id)

    def _view_files(self) -> list[Path]:
        """The DICOM file of every view of the indexed cases."""
        root = Path(self.index.root)
        return [root / rel for case in self.index.cases for rel in case.views.values()]

    def fill_cache(
        self, workers: int | None = None, shard: str | None = None, progress: bool = True
    ) -> CacheFill:
        """Decode the indexed views missing from the image cache (all, or the shard ``"i/n"``)
        with ``workers`` processes (default ``cache_workers``); ``scripts/build_cache.py``."""
        workers = workers or self.cache_workers
        return fill_cache(self.cache, self._view_files(), workers, shard, progress)

    def _screen(self, workers: int | None = None) -> dict[str, FileFacts]:
        """Decode every view of the indexed cases into the image cache (:meth:`fill_cache`) and
        read and hash every one (``workers`` threads; progress bars; once per process, then from
        the caches while files keep their size and time); cases with a view that cannot be read
        or decoded move to the bad cases.
        Returns the files' facts (digest, identity) for the content audit."""
        if self._facts is not None:
            return self._facts
        index = self.index
        root = Path(index.root)
        paths = self._view_files()
        self.fill_cache()
        facts = inspect_files(
            paths,
            decode=None,
            cache_file=facts_cache_file(self._cache_base(), root, "dicom"),
            workers=workers,
            desc="reading mammograms",
        )
        keep = []
        for case in index.cases:
            problems = [
                Problem(rel, reason)
                for rel in case.views.values()
                if (reason := facts[str(root / rel)].error or self.cache.failure(root / rel))
            ]
            if problems:
                index.problems += problems
                index.bad_cases.setdefault(case.case_id, []).extend(problems)
            else:
                keep.append(case)
        index.cases = keep
        self._facts = facts
        return facts

    def skipped_rows(self) -> list[tuple[str, str]]:
        """``(case, reason)`` of every skipped case: the bad ones and the discarded (``discard_yn``)."""
        rows = [
            (case, "; ".join(str(p) for p in problems))
            for case, problems in sorted(self.index.bad_cases.items())
        ]
        rows += [
            (case, "discard_yn = 1 (rejected by the reviewer)") for case in self.index.discarded
        ]
        return rows

    def sample_table(self) -> SampleTable:
        """Cases for the CV layer: ids are case ids, groups ``group_key``, labels ``stratify_key``;
        with each case's four files and their digests, so the split refuses one image in two
        parts."""
        cases = self.cases()
        facts = self._screen()
        root = Path(self.index.root)
        files = [tuple(case.views[view] for view in VIEWS) for case in cases]
        ids = [c.case_id for c in cases]
        return SampleTable(
            ids=ids,
            groups=[str(KEYS[self.group_key](c)) for c in cases],
            labels=None
            if self.stratify_key is None
            else [str(KEYS[self.stratify_key](c)) for c in cases],
            domains=None
            if self.domain_key is None
            else [str(KEYS[self.domain_key](c)) for c in cases],
            files=files,
            digests=[tuple(facts[str(root / rel)].digest for rel in row) for row in files],
            parts=self.part_labels(ids),
        )

    # -- the fold's datasets ----------------------------------------------------------------------
    @property
    def info(self) -> DataInfo:
        """The net's two maps, cancer then benign (pooled logit ``k`` is ``class_names[k]``);
        fixed by the task, so known before :meth:`setup`."""
        return DataInfo(class_names=LESION_CLASSES)

    def _view_items(self, cases: list[MammoCase], part: int = 1) -> list[ViewItem]:
        root = Path(self.index.root)
        return [
            ViewItem(
                path=str(root / case.views[view]),
                case_id=case.case_id,
                patient=case.patient,
                view=view,
                grp=case.grp,
                breast=case.breasts[view[0].upper()],
                device=case.device,
                birads=case.birads,
                histology=case.histology,
                part=part,
            )
            for case in cases
            for view in VIEWS
        ]

    def _patch_items(self, cases: list[MammoCase]) -> list[PatchItem]:
        root = Path(self.index.root)
        items = []
        for case in cases:
            for view in VIEWS:
                path = str(root / case.views[view])
                header = case.headers[view]
                box = self.cache.crop_box(path) or CropBox.whole(header.rows, header.columns)
                patch = max(8, round(self.patch_size * self.cache_size[0] / box.height))
                for lesion in (lesion for lesion in case.lesions if lesion.view == view):
                    items += [
                        PatchItem(path, lesion.cls, box.map_box(lesion.box), patch)
                    ] * self.patches_per_lesion
                if case.breasts[view[0].upper()] == "normal":
                    items += [PatchItem(path, "normal", None, patch)] * self.normal_patches_per_view
        return items

    def setup(self, stage: str | None = None) -> None:
        """Build the fold's datasets from ``split`` (once)."""
        if self.datasets:
            return
        by_id = {c.case_id: c for c in self.cases()}
        chosen = self.fold_parts(
            dict(sorted(by_id.items())), "cases", "root, skip_broken", MammoDataError
        )
        train = chosen.get("train", [])
        if train:
            self.datasets["patches"] = PatchDataset(
                self.cache, self._patch_items(train), self.patch_input_size, self.augment, self.seed
            )
            self.datasets["train"] = ViewDataset(
                self.cache, self._view_items(train), self.image_size, self.augment, self.seed
            )
        val = self._view_items(chosen.get("val", []), part=0)
        if val:
            self.datasets["val"] = ViewDataset(self.cache, val, self.image_size)
        test = self._view_items(chosen.get("test", []), part=1)
        if test:
            self.datasets["test"] = ViewDataset(self.cache, val + test, self.image_size)

    def eval_records(self, stage: str) -> list[ViewItem]:
        """The views of the ``val`` or ``test`` loader in order (``test`` holds val views first)."""
        if stage not in self.datasets:
            raise RuntimeError(
                f"no {stage} set: call setup() first, or the split's {stage} is empty"
            )
        return list(self.datasets[stage].items)  # type: ignore[attr-defined]

    # -- loaders ----------------------------------------------------------------------------------
    def worker_context(self) -> BaseContext:
        """Workers started from a lean server process, not forked from the trainer
        (:func:`~kbaselines.mammo.dataset.worker_context`)."""
        return worker_context()

    def loader_seed(self) -> int:
        """A new seed every epoch: the train loader is rebuilt each epoch (the stage switch), and
        a fixed seed would draw the same order every time."""
        return self.seed + (self.trainer.current_epoch if self.trainer is not None else 0)

    @property
    def stage(self) -> int:
        """1 (patches) during the first ``stage1_epochs`` epochs, then 2 (whole views)."""
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return 1 if epoch < self.stage1_epochs else 2

    def train_dataloader(self) -> DataLoader:
        """Balanced patches in stage 1, shuffled whole views in stage 2."""
        if self.split is None or "train" not in self.datasets:
            raise RuntimeError("no training cases: training needs the CV layer's split (train.py)")
        self._write_skipped()
        if self.stage == 2:
            return self.loader(self.datasets["train"], self.batch_size, shuffle=True)
        patches: PatchDataset = self.datasets["patches"]  # type: ignore[assignment]
        if not len(patches):
            raise MammoDataError(
                "stage 1 has no patches: the training cases have no lesions and no normal breasts"
            )
        counts = {cls: patches.classes.count(cls) for cls in set(patches.classes)}
        weights = torch.tensor([1.0 / counts[cls] for cls in patches.classes], dtype=torch.double)
        sampler = WeightedRandomSampler(
            weights,
            num_samples=len(patches),
            replacement=True,
            generator=torch.Generator().manual_seed(self.loader_seed()),
        )
        return self.loader(patches, self.patch_batch_size, shuffle=False, sampler=sampler)

    def _write_skipped(self) -> None:
        """List the skipped cases in the fold's folder (``skipped_cases.csv``)."""
        rows = self.skipped_rows()
        trainer = self.trainer
        if not rows or trainer is None or not trainer.is_global_zero:
            return
        lines = ["case_id,reason"] + [
            f'{case},"{reason.replace(chr(34), chr(39))}"' for case, reason in rows
        ]
        write_text_atomic(
            Path(trainer.default_root_dir) / "skipped_cases.csv", "\n".join(lines) + "\n"
        )

    # -- checking ---------------------------------------------------------------------------------
    def check(self, workers: int | None = None) -> DatasetReport:
        """Counts (cases per class, views, BI-RADS, lesions, sizes, devices, where laterality and
        view came from, views without pixel spacing, files decoded) and every problem: the
        index's (metadata rows, headers, the views table, contours against the image size),
        views that cannot be read or decoded, one file under two paths or byte-identical in two
        ``group_key`` groups, views table rows naming no file, and empty folders and dangling
        links anywhere under the root."""
        index = self.index
        facts = self._screen(workers)
        root = Path(index.root)
        cases = index.cases
        lesions: dict[str, int] = {cls: 0 for cls in LESION_CLASSES}
        for case in cases:
            for lesion in case.lesions:
                lesions[lesion.cls] += 1
        counts: dict[str, dict[str, int] | int] = {
            "cases": len(cases),
            "patients": len({c.patient for c in cases}),
            "cases per class": {cls: sum(c.grp == cls for c in cases) for cls in CLASSES},
            "views per case": count(cases, lambda c: len(c.views)),
            "BI-RADS": count(cases, lambda c: c.birads),
            "lesions per class": lesions,
            "image sizes": count(
                [h for c in cases for h in c.headers.values()],
                lambda h: f"{h.columns}x{h.rows}",  # type: ignore[arg-type]
            ),
            "devices": count(cases, lambda c: c.device),
            **self._view_origins(cases),
            "views without pixel spacing": sum(
                h.spacing is None for c in cases for h in c.headers.values()
            ),
            "histology": count(cases, lambda c: c.histology),
            "DICOM files read and decoded": len(facts),
            "discarded (discard_yn = 1)": len(index.discarded),
            "cases with problems": len(index.bad_cases),
        }
        if per_part := self.part_counts(c.case_id for c in cases):
            counts["cases per part"] = per_part
        problems = list(index.problems) + self.views.unmatched()
        problems += audit_content(
            {c.case_id: [str(root / rel) for rel in c.views.values()] for c in cases},
            {c.case_id: str(KEYS[self.group_key](c)) for c in cases},
            facts,
            root,
        )
        named = {p.file for p in problems}  # a case folder's problem already names its file
        cache = self._cache_base().parent.resolve()
        problems += [
            p
            for p in tree_problems(root, skip=lambda rel: (root / rel).resolve() == cache)
            if p.file not in named
        ]
        if not cases:
            problems.append(Problem(str(index.root), "no usable case"))
        return DatasetReport("Mammography", str(index.root), counts, problems, len(facts))

    def _view_origins(self, cases: list[MammoCase]) -> dict[str, dict[str, int]]:
        """Views by where their laterality and view came from (:data:`~kbaselines.mammo.
        views_table.ORIGINS`: the tags, the views table, both agreeing)."""
        root = Path(self.index.root)
        origins = [self.views.origins[str(root / rel)] for c in cases for rel in c.views.values()]
        return {
            f"{what} from": {origin: sum(o[i] == origin for o in origins) for origin in ORIGINS}
            for i, what in enumerate(("laterality", "view"))
        }
