"""The DataModule base of every dataset: its declared contract, a fold's datasets and loaders.

What the CV layer and the tasks may use of a DataModule is declared here, and nothing else:

- :meth:`FoldDataModule.sample_table`: the samples the CV layer splits (ids, groups, labels);
- :meth:`FoldDataModule.eval_records`: the records an evaluation loader serves, in dataset order
  (batch ``index`` ``i`` is record ``i``), for outputs that name files, people or cases;
- :attr:`FoldDataModule.info`: the facts of the data a task is built with (class names, joint
  names...), one typed :class:`DataInfo` handed to the task by ``core.builders.build_task``;
- :meth:`FoldDataModule.check`: the dataset report of ``scripts/check_dataset.py``;
- :meth:`FoldDataModule.synthetic_twin`: how the synthetic twin is generated, for its delivery form
  (``scripts/make_delivery.py``).

A root may hold the dataset as delivered, in its official parts (``1.Training/``,
``2.Validation/``, each the spec's tree; the names are ``data.parts``). Every dataset then reads
each folder of :meth:`FoldDataModule.folders` with its own reader, as a whole tree, and joins what
it read: sample ids, files and problems get the part folder as prefix (``1.Training/<id>``), and
:meth:`FoldDataModule.part_labels` gives each sample's part to the sample table, which
``cv.scheme=official`` splits on. A root without parts is read as before, ids unprefixed.

A dataset's DataModule reads its format, builds ``self.datasets`` (``"train"``, ``"val"``,
``"test"``) from the fold's ``split`` in ``setup()``, and inherits the loaders: the global batch is
divided between the processes, shuffling and workers are seeded, an empty validation part gives
no validation, and training without the CV layer's split is refused with a message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from kbaselines.core.data.dataset_report import DatasetReport
from kbaselines.core.data.loaders import per_process_batch, worker_init_fn
from kbaselines.core.data.parts import DEFAULT_PART_NAMES, check_part_names, find_parts
from kbaselines.core.data.samples import SampleTable

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from kbaselines.core.data.synthetic_delivery import SyntheticTwin

__all__ = ["SPLIT_PARTS", "DataInfo", "FoldDataModule"]

#: The parts of a fold's split.
SPLIT_PARTS = ("train", "val", "test")

Record = TypeVar("Record")


@dataclass(frozen=True)
class DataInfo:
    """What a task needs to know of the data it is built for; a dataset package subclasses it
    with its own facts (joint names and sigmas, category names).

    Args:
        class_names: the classes the net predicts, in label order (label ``k`` is
            ``class_names[k]``, or ``class_names[k - 1]`` where 0 is a detector's background).
    """

    class_names: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        """How many classes the net's head needs."""
        return len(self.class_names)


class FoldDataModule(pl.LightningDataModule):
    """Loaders over ``self.datasets``, which a subclass fills in ``setup()`` from ``split``.

    Subclasses with a sampler of their own (class-aware, balanced) override :meth:`train_sampler`;
    ``collate_fn`` batches samples of varying size (detection targets).

    Args:
        root: the dataset folder.
        batch_size: global training batch (divided by the number of processes).
        eval_batch_size: global evaluation batch (default ``batch_size``).
        num_workers: data-loader workers.
        pin_memory: data-loader setting.
        persistent_workers: keep workers between epochs (only with workers).
        seed: shuffling and augmentation seed.
        split: ``{"train", "val", "test"}`` sample ids from the CV layer; None: every sample is a
            test sample (eval.py).
        synthetic: arguments of the dataset's generator; when set, ``prepare_data()`` generates
            the dataset at ``root`` (once).
        parts: the folder names of the official parts, ``{"train": [...], "test": [...]}``
            (compared ignoring case, a leading number and separators; ``data.parts``); None:
            :data:`~kbaselines.core.data.parts.DEFAULT_PART_NAMES`.
    """

    collate_fn: Callable[[list[Any]], Any] | None = None

    def __init__(
        self,
        *,
        root: str | None,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        seed: int,
        split: Mapping[str, Sequence[str]] | None,
        synthetic: Mapping[str, Any] | None,
        parts: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError("data.batch_size and data.eval_batch_size must be positive")
        if split is not None and set(split) - set(SPLIT_PARTS):
            raise ValueError(
                f"split has parts {sorted(set(split) - set(SPLIT_PARTS))}; "
                f"expected {', '.join(SPLIT_PARTS)}"
            )
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.seed = seed
        self.split = None if split is None else {k: list(v) for k, v in split.items()}
        self.synthetic = None if synthetic is None else dict(synthetic)
        self.part_names = check_part_names(DEFAULT_PART_NAMES if parts is None else parts)
        self.datasets: dict[str, Dataset] = {}
        self._official_parts: dict[str, Path] | None = None

    # -- the declared contract ------------------------------------------------------------------
    def sample_table(self) -> SampleTable:
        """Every sample the CV layer may split, sorted by id, with its group (and label)."""
        raise NotImplementedError(f"{type(self).__name__} must define sample_table()")

    def eval_records(self, stage: str) -> Sequence[Any]:
        """The records of the ``stage`` (``"val"`` or ``"test"``) dataset, in its order: the
        sample behind a batch's ``index`` ``i`` is ``eval_records(stage)[i]``."""
        raise NotImplementedError(f"{type(self).__name__} must define eval_records(stage)")

    @property
    def info(self) -> DataInfo:
        """The data-derived facts the task is built with (valid after ``setup()``)."""
        return DataInfo()

    def check(self, workers: int | None = None) -> DatasetReport:
        """Counts and problems of the selected data (``scripts/check_dataset.py``): every
        selected file opened and decoded (``workers`` threads, default one per core), boxes and
        keypoints against their image's size, empty folders and dangling links, and the content
        audit (one file under two paths, one image in two groups)."""
        raise NotImplementedError(f"{type(self).__name__} must define check()")

    @classmethod
    def synthetic_twin(cls, arguments: Mapping[str, Any]) -> SyntheticTwin:
        """The synthetic twin made with ``arguments`` (``data.synthetic``): its generator, the
        arguments with every default filled in, and the two that count and number its groups,
        so that a delivery of it gets parts without a shared group (``make_delivery.py``)."""
        raise NotImplementedError(f"{cls.__name__} must define synthetic_twin(arguments)")

    # -- the official parts -----------------------------------------------------------------------
    def official_parts(self) -> dict[str, Path]:
        """The part folders directly under ``root`` (``{"train": root/"1.Training", "test":
        root/"2.Validation"}``), found by ``data.parts`` once; empty for a tree without parts."""
        if self._official_parts is None:
            found = {} if self.root is None else find_parts(self.root, self.part_names)
            self._official_parts = {p: found[p] for p in self.part_names if p in found}
        return self._official_parts

    def folders(self) -> dict[str, Path]:
        """The folders to read as whole dataset trees, by the prefix their sample ids get:
        ``{"": root}``, or for a root holding the official parts one per part, training first
        (``{"1.Training/": root/"1.Training", "2.Validation/": root/"2.Validation"}``)."""
        if self.root is None:
            raise FileNotFoundError("data.root is not set: set data.root=/path/to/the/dataset")
        parts = self.official_parts()
        if not parts:
            return {"": Path(self.root)}
        return {f"{folder.name}/": folder for folder in parts.values()}

    def part_labels(self, ids: Sequence[str]) -> list[str] | None:
        """The official part (``train``, ``test``) of each sample id, from its prefix; None for a
        root without parts (the sample table's ``parts``)."""
        parts = self.official_parts()
        if not parts:
            return None
        part_of = {folder.name: part for part, folder in parts.items()}
        return [part_of[i.split("/", 1)[0]] for i in ids]

    def part_counts(self, ids: Iterable[str]) -> dict[str, int]:
        """Samples per part folder (``{"1.Training": 1200, "2.Validation": 150}``) for the dataset
        check; empty for a root without parts."""
        if not self.official_parts():
            return {}
        counts = Counter(i.split("/", 1)[0] for i in ids)
        return {folder.name: counts[folder.name] for folder in self.official_parts().values()}

    def require_official_parts(self) -> dict[str, Path]:
        """The official parts, both of them (``cv.scheme=official`` trains on one, tests on the
        other).

        Raises:
            FileNotFoundError: a part is not under ``root``, naming the root, the names looked
                for and the ways out.
        """
        parts = self.official_parts()
        missing = [p for p in self.part_names if p not in parts]
        if missing:
            looked_for = "; ".join(f"{p}: {', '.join(self.part_names[p])}" for p in missing)
            raise FileNotFoundError(
                f"cv.scheme=official trains on the dataset's Training part and tests on its "
                f"Validation part, but data.root={self.root} holds no folder for the "
                f"{' and '.join(missing)} part{'s' * (len(missing) > 1)} (names looked for, "
                f"ignoring case, a leading number and separators: {looked_for}). Unpack the "
                "delivery there (python scripts/unpack.py data=<dataset> src=<delivery folder> "
                f"dst={self.root}), set data.parts to the folder names your copy uses, or split "
                "the data yourself with cv=kfold"
            )
        return parts

    # -- shared helpers ---------------------------------------------------------------------------
    @staticmethod
    def check_keys(allowed: Sequence[str], **keys: str | None) -> None:
        """Refuse a grouping, stratification or domain setting that is not one of ``allowed``."""
        for name, value in keys.items():
            if value is not None and value not in allowed:
                raise ValueError(f"data.{name}={value!r} must be one of {', '.join(allowed)}")

    def synthetic_root(self) -> str:
        """``root``, where ``prepare_data()`` generates the configured synthetic dataset."""
        if self.root is None:
            raise FileNotFoundError("data.synthetic is set but data.root is not: set data.root")
        return self.root

    def fold_parts(
        self,
        known: Mapping[str, Record],
        what: str,
        settings: str,
        error: type[Exception] = ValueError,
    ) -> dict[str, list[Record]]:
        """The records of each part of ``split`` (every known record is a test record without
        a split), in split order.

        Args:
            known: the dataset's records by sample id.
            what: what a sample is, for the message (``"images"``, ``"cases"``).
            settings: the data settings that change the ids, for the message.
            error: the exception for ids the dataset does not have.

        Raises:
            error: a part names ids that are not in ``known`` (a split made for other data).
            ValueError: an id is in two parts.
        """
        parts = self.split if self.split is not None else {"test": list(known)}
        seen: set[str] = set()
        for part, ids in parts.items():
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise error(
                    f"the {part} part of the split names {len(unknown)} {what} that are not in the "
                    f"dataset, e.g. {unknown[:3]}: the split was made for other data settings "
                    f"({settings}); use the same ones"
                )
            twice = seen.intersection(ids)
            if twice:
                raise ValueError(f"the split puts {sorted(twice)[:3]} in two parts")
            seen.update(ids)
        return {part: [known[i] for i in ids] for part, ids in parts.items()}

    def loader_seed(self) -> int:
        """The seed of a new loader's shuffling generator."""
        return self.seed

    def train_sampler(self) -> Sampler | None:
        """The training sampler; None shuffles with the seeded generator."""
        return None

    def worker_context(self) -> BaseContext | None:
        """How the loaders' worker processes start (a ``multiprocessing`` context); None: the
        platform's default (on Linux a fork of this process as it is at that moment)."""
        return None

    def loader(
        self, dataset: Dataset, batch_size: int, shuffle: bool, sampler: Sampler | None = None
    ) -> DataLoader:
        """A seeded loader of this process's share of ``batch_size``."""
        return DataLoader(
            dataset,
            batch_size=per_process_batch(self.trainer, batch_size),
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.loader_seed()),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            worker_init_fn=worker_init_fn,
            collate_fn=self.collate_fn,
            multiprocessing_context=self.worker_context() if self.num_workers else None,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or sampled) training batches of the fold."""
        if self.split is None:
            raise RuntimeError(
                f"this {type(self).__name__} has no split (split=None): every sample is a test "
                "sample, for evaluating a checkpoint (eval.py). Training needs the folds of the CV "
                "layer: run train.py, which gives each fold as split={'train', 'val', 'test'}"
            )
        if "train" not in self.datasets:
            raise RuntimeError(
                "no training samples: call setup() first, or the split's train is empty"
            )
        return self.loader(
            self.datasets["train"], self.batch_size, shuffle=True, sampler=self.train_sampler()
        )

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches, or an empty list when the fold has no validation part."""
        if "val" not in self.datasets:
            return []
        return self.loader(self.datasets["val"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches of the fold (of every selected sample without a split)."""
        if "test" not in self.datasets:
            raise RuntimeError("no test samples: call setup() first, or the split's test is empty")
        return self.loader(self.datasets["test"], self.eval_batch_size, shuffle=False)
