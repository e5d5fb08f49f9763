"""A CSV logger that keeps the rows of earlier starts of a fold.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it finds one (every resume or requeue of a
fold would lose the rows logged before) and rewrites the whole file, in place, when a new column
appears (a full disk then leaves it cut short). Here every start appends under the header it finds,
a row half-written by a crash is cut off first, and a widened header is written atomically.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from kbaselines.core.io import write_text_atomic

__all__ = ["AppendingCSVLogger"]


def _kept_header(path: Path) -> list[str]:
    """The header of ``path`` (empty without one), after cutting a partly written last row."""
    if not path.is_file():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    if complete != text:
        if complete:
            write_text_atomic(path, complete)
        else:
            path.unlink()
    return next(csv.reader(io.StringIO(complete)), [])


class _AppendingWriter(ExperimentWriter):
    """Appends to the ``metrics.csv`` of earlier starts instead of deleting it."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self.metrics_keys = _kept_header(Path(self.metrics_file_path))

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes the earlier starts' ``metrics.csv`` here: they are kept."""

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        """Every row so far under the widened header, atomically."""
        path = Path(self.metrics_file_path)
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, buffer.getvalue())


class AppendingCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` keeps the rows of every start, in order (a resumed
    start logs again the steps between its checkpoint and the stop: their rows appear twice)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
