"""The table of samples that cross-validation splits.

Every DataModule exposes its samples as a :class:`SampleTable` so that the CV layer can split any
dataset the same way, without knowing its format: one id per sample, the group that must stay in
one fold (person, case, physical item), an optional label to stratify on, and an optional domain
(an X-ray scanner make) for schemes that hold out one domain at a time, and, for a dataset
delivered in a training and a validation part, the part of each sample (``cv.scheme=official``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SampleTable"]


@dataclass(frozen=True)
class SampleTable:
    """Samples to split, in a stable (sorted by id) order.

    Args:
        ids: unique sample ids, sorted (for example a path relative to the dataset root).
        groups: the split group of each sample; no group may be in two folds.
        labels: the stratification label of each sample, or ``None`` when the task has none.
        domains: the domain of each sample (``leave_one_group_out`` tests one domain per fold),
            or ``None``.
        files: the files each sample reads (root-relative or absolute), to name them when the
            content check finds one image in two parts; or ``None``.
        digests: the content digest of each of those files
            (:func:`~kbaselines.core.data.integrity.inspect_files`), in the same order; the split's
            leakage check refuses a fold whose parts share one; or ``None``.
        parts: the official part of each sample, ``train`` (the delivery's Training part) or
            ``test`` (its Validation part), which ``cv.scheme=official`` trains and tests on; or
            ``None`` for a dataset read without parts.
    """

    ids: list[str]
    groups: list[str]
    labels: list[str] | None = None
    domains: list[str] | None = None
    files: list[tuple[str, ...]] | None = None
    digests: list[tuple[str, ...]] | None = None
    parts: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.groups):
            raise ValueError(f"{len(self.ids)} ids but {len(self.groups)} groups")
        if self.labels is not None and len(self.labels) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.labels)} labels")
        if self.domains is not None and len(self.domains) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.domains)} domains")
        if self.parts is not None and len(self.parts) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.parts)} parts")
        if (self.files is None) != (self.digests is None):
            raise ValueError("SampleTable files and digests go together: give both or neither")
        if self.files is not None and self.digests is not None:
            if len(self.files) != len(self.ids) or len(self.digests) != len(self.ids):
                raise ValueError(f"{len(self.ids)} ids but {len(self.files)} file lists")
            if any(len(f) != len(d) for f, d in zip(self.files, self.digests, strict=True)):
                raise ValueError("each sample needs one digest per file")
        if list(self.ids) != sorted(self.ids):
            raise ValueError("SampleTable ids must be sorted so that every rank splits alike")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("SampleTable ids must be unique")
