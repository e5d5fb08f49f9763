"""The dataset report of ``scripts/check_dataset.py``: one design for every dataset.

A report holds counts (what is there) and problems (file, record, reason); it prints as text and
is written as ``dataset_report.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from kbaselines.io import write_json_atomic

__all__ = ["DatasetReport", "Problem"]


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file (and, where it applies, one record in it)."""

    file: str
    reason: str
    record: str | None = None

    def __str__(self) -> str:
        where = self.file if self.record is None else f"{self.file} [{self.record}]"
        return f"{where}: {self.reason}"


@dataclass
class DatasetReport:
    """Counts and problems of one dataset."""

    dataset: str
    root: str
    counts: dict[str, int | dict[str, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self, path: Path) -> Path:
        return write_json_atomic(path, {**asdict(self), "ok": self.ok})

    def render(self) -> str:
        lines = [f"{self.dataset} at {self.root}"]
        for name, value in self.counts.items():
            if isinstance(value, dict):
                cells = ", ".join(f"{k}: {v}" for k, v in value.items())
                lines.append(f"  {name}: {cells}")
            else:
                lines.append(f"  {name}: {value}")
        lines.append(f"problems: {len(self.problems)}")
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)
