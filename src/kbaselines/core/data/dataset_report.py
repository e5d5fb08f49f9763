"""The dataset report of ``scripts/check_dataset.py``: one design for every dataset.

A report holds counts (what is there) and problems (which file, which record in it, what is wrong),
so that a user can fix a downloaded dataset before training on it. It prints as readable text and
is written as ``dataset_report.json`` for scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kbaselines.core.io import write_json_atomic

__all__ = ["DatasetReport", "Problem"]


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file of a dataset.

    Args:
        file: the file, relative to the dataset root where possible.
        reason: what is wrong and how to fix it (without the file name).
        record: the record inside the file (a line, an annotation id), or None for the whole file.
    """

    file: str
    reason: str
    record: str | None = None

    def __str__(self) -> str:
        where = self.file if self.record is None else f"{self.file} [{self.record}]"
        return f"{where}: {self.reason}"


@dataclass
class DatasetReport:
    """Counts and problems of one dataset.

    Args:
        dataset: the dataset's name, e.g. ``"K-Face"``.
        root: the folder that was read.
        counts: name to a number (``"images": 8100``) or to a table (``"images per light":
            {"L1": 2700, ...}``), in display order.
        problems: every problem found; the dataset is usable as is when there are none.
        files_opened: how many files the check opened and decoded (for its speed in files/s).
    """

    dataset: str
    root: str
    counts: dict[str, dict[str, int] | int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    files_opened: int = 0

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict:
        """The report as plain JSON data."""
        return {
            "dataset": self.dataset,
            "root": self.root,
            "ok": self.ok,
            "files_opened": self.files_opened,
            "counts": self.counts,
            "problems": [
                {"file": p.file, "reason": p.reason, "record": p.record} for p in self.problems
            ],
        }

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON, atomically (a reader never sees half a report)."""
        return write_json_atomic(Path(path), self.to_dict())

    def render(self) -> str:
        """A readable summary: counts as small tables, then every problem as ``file: reason``."""
        lines = [f"{self.dataset} at {self.root}"]
        scalars = {k: v for k, v in self.counts.items() if not isinstance(v, dict)}
        width = max((len(k) for k in scalars), default=0)
        for name, value in self.counts.items():
            if isinstance(value, dict):
                lines.append(f"  {name}:")
                inner = max((len(str(k)) for k in value), default=0)
                digits = max((len(f"{v:,}") for v in value.values()), default=0)
                lines += [f"    {k!s:<{inner}}  {v:>{digits},}" for k, v in value.items()]
            else:
                lines.append(f"  {name + ':':<{width + 1}} {value:,}")
        if self.ok:
            lines.append("problems: none")
        else:
            lines.append(f"problems: {len(self.problems)}")
            lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)
