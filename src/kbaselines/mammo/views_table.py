"""Laterality and view of DICOM files from a table, for exports whose anonymiser stripped the tags.

Real anonymised exports keep Image Laterality at best and drop View Position, the View Code
Sequence, Modality and Pixel Spacing; the dataset's CSV then holds each image's laterality and
view. ``data.views_table=<csv>`` names that table (relative to ``data.root``, or absolute) and
``data.views_columns`` its columns (:data:`DEFAULT_COLUMNS`).

A row's image key is matched with each DICOM file's path relative to ``data.root``, or any tail of
it, without ``.dcm`` and ignoring case: the bare image id (the file name, as real exports name
files), ``<case>/<file>``, ``images/<case>/<file>``, ``1.Training/images/<case>/<file>``; the
longest tail listed wins. A key that names more than one file (a bare ``1-1`` in every case folder)
is a problem of each of those files (:meth:`ViewsTable.ambiguous`), never a guess.

Values are read in the usual spellings (:data:`LATERALITIES`, :data:`VIEW_POSITIONS`); a value that
is none of them is a problem of the file its row names. The table fills in what the tags do not
say; where both say a value they must agree, and a conflict is a problem naming the file, the tags,
the row and both values. The table records where each file's laterality and view came from
(:attr:`ViewsTable.origins`) for the dataset check, and which rows named no file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from kbaselines.core.data.dataset_report import Problem
from kbaselines.mammo.dicom import DicomHeader, MammoDicomError, no_view_reason

__all__ = [
    "DEFAULT_COLUMNS",
    "LATERALITIES",
    "ORIGINS",
    "VIEW_POSITIONS",
    "TableRow",
    "ViewsTable",
]

#: ``data.views_columns``: the column of the image key, of the laterality and of the view (null:
#: the table does not give it).
DEFAULT_COLUMNS = {"image": "image_id", "laterality": "laterality", "view": "view"}
#: Spellings read, compared in lower case without spaces and punctuation ("Left breast" is
#: "leftbreast").
LATERALITIES = {
    **dict.fromkeys(("l", "left", "lt", "leftbreast", "breastleft", "좌", "좌측", "왼쪽"), "L"),
    **dict.fromkeys(
        ("r", "right", "rt", "rightbreast", "breastright", "우", "우측", "오른쪽"), "R"
    ),
}
VIEW_POSITIONS = {
    **dict.fromkeys(("cc", "craniocaudal"), "CC"),
    **dict.fromkeys(("mlo", "mediolateraloblique"), "MLO"),
}
_READ = {
    "laterality": "L or R (read: L/R, left/right, lt/rt, left breast, 좌/우, 좌측/우측, 왼쪽/오른쪽)",
    "view": "CC or MLO (read: CC/MLO, cranio-caudal/medio-lateral oblique)",
}
#: Where a value came from, as the dataset check counts it.
ORIGINS = ("header", "table", "header and table agree")


def _spelling(value: str) -> str:
    return re.sub(r"[\W_]+", "", value.lower())


def _line(record: str) -> int:
    """The number of ``row 12`` or ``[3]``, to list rows in file order."""
    return int(re.sub(r"\D", "", record) or 0)


def _key(value: str) -> str:
    """An image key or a file path compared: slashes, no ``.dcm``, lower case."""
    key = value.strip().replace("\\", "/").strip("/").lower()
    return key[:-4] if key.endswith(".dcm") else key


@dataclass(frozen=True)
class TableRow:
    """One row of the table.

    Args:
        record: ``row <line>`` (or ``[<index>]`` of a JSON table).
        image: the image key as written.
        laterality: ``"L"``/``"R"``, or None when the row does not say it.
        view: ``"CC"``/``"MLO"``, or None likewise.
        problems: what is wrong with the row (an unknown value, a field too many).
    """

    record: str
    image: str
    laterality: str | None
    view: str | None
    problems: tuple[str, ...] = ()


class ViewsTable:
    """The rows of a views table, matched with the dataset's files as the index reads them.

    Args:
        name: the table as named in messages (the path relative to ``base`` when inside it).
        records: ``(record, row)`` of every row (:func:`~kbaselines.mammo.index.metadata_records`).
        problems: the file's problems (unreadable; a row's field count, under its record).
        columns: ``data.views_columns`` (missing keys take :data:`DEFAULT_COLUMNS`).
        base: the folder file paths are matched from (``data.root``).

    Raises:
        ValueError: a configured column is not in the table, naming the columns it has.
    """

    def __init__(
        self,
        name: str,
        records: list[tuple[str, dict[str, str]]],
        problems: list[Problem],
        columns: Mapping[str, str | None],
        base: Path,
    ) -> None:
        self.name = name
        self.base = Path(base)
        self.problems = [p for p in problems if p.record is None]
        columns = {**DEFAULT_COLUMNS, **columns}
        unknown = set(columns) - set(DEFAULT_COLUMNS)
        if unknown or not columns["image"] or not (columns["laterality"] or columns["view"]):
            raise ValueError(
                f"data.views_columns={columns}: give the image column and the laterality or view "
                f"column (or both), under the keys {', '.join(DEFAULT_COLUMNS)}"
            )
        found = {column for _, row in records for column in row}
        missing = [c for c in columns.values() if c and records and c not in found]
        if missing:
            raise ValueError(
                f"{name} has no column {', '.join(map(repr, missing))} (its columns: "
                f"{', '.join(sorted(found))}): set data.views_columns.image / .laterality / .view "
                "to its column names (null for a value the table does not give)"
            )
        row_problems: dict[str, list[str]] = {}
        for problem in problems:
            if problem.record is not None:
                row_problems.setdefault(problem.record, []).append(problem.reason)
        self._rows: dict[str, list[TableRow]] = {}
        self._blank: list[TableRow] = []
        for record, row in records:
            reasons = row_problems.get(record, [])
            laterality = self._value(row, columns["laterality"], "laterality", reasons)
            view = self._value(row, columns["view"], "view", reasons)
            entry = TableRow(
                record, row.get(columns["image"], ""), laterality, view, tuple(reasons)
            )
            key = _key(entry.image)
            if key:
                self._rows.setdefault(key, []).append(entry)
            else:
                self._blank.append(entry)
        self._matched: dict[str, set[str]] = {}
        #: file path to (laterality origin, view origin), one of :data:`ORIGINS` each.
        self.origins: dict[str, tuple[str, str]] = {}
        #: file path to the laterality of the files whose tags do not say it (for decoding).
        self.sides: dict[str, str] = {}

    @staticmethod
    def _value(
        row: dict[str, str], column: str | None, what: str, reasons: list[str]
    ) -> str | None:
        value = row.get(column, "") if column else ""
        if not value:
            return None
        spellings = LATERALITIES if what == "laterality" else VIEW_POSITIONS
        known = spellings.get(_spelling(value))
        if known is None:
            reasons.append(f"{what} {value!r} (column {column!r}) is not {_READ[what]}")
        return known

    @classmethod
    def none(cls, base: Path) -> ViewsTable:
        """No table (``data.views_table`` unset): every file's tags must say its laterality and
        view."""
        return cls("", [], [], {}, base)

    @property
    def configured(self) -> bool:
        """A table was given."""
        return bool(self.name)

    def row(self, path: Path) -> TableRow | None:
        """The row naming ``path`` (its key marked as used), or None.

        Raises:
            MammoDicomError: the file is named by several rows, or its row has problems.
        """
        try:
            rel = path.relative_to(self.base).as_posix()
        except ValueError:
            rel = path.name
        parts = _key(rel).split("/")
        for start in range(len(parts)):
            key = "/".join(parts[start:])
            rows = self._rows.get(key)
            if rows:
                self._matched.setdefault(key, set()).add(str(path))
                if len(rows) > 1:
                    raise MammoDicomError(
                        path,
                        f"named by {len(rows)} rows of {self.name} "
                        f"({', '.join(r.record for r in rows)}): keep one",
                    )
                if rows[0].problems:
                    raise MammoDicomError(
                        path, f"{self.name} {rows[0].record}: {'; '.join(rows[0].problems)}"
                    )
                return rows[0]
        return None

    def complete(self, header: DicomHeader, path: Path, row: TableRow | None) -> DicomHeader:
        """``header`` with its laterality and view from the tags or the table's ``row``.

        Raises:
            MammoDicomError: tags and row disagree, or neither gives the laterality or view.
        """
        laterality, laterality_from = self._agree("laterality", header, row, path)
        view, view_from = self._agree("view", header, row, path)
        if laterality is None or view is None:
            missing = "laterality" if laterality is None else "view"
            if not self.configured:
                tried = ""
            elif row is None:
                tried = f", and {self.name}: no row names this file (its image id: {path.stem})"
            else:
                tried = f", and {self.name} {row.record}, whose {missing} is empty"
            raise MammoDicomError(path, no_view_reason(missing, tried))
        self.origins[str(path)] = (laterality_from, view_from)
        if laterality_from == ORIGINS[1]:
            self.sides[str(path)] = laterality
        return replace(header, laterality=laterality, view_position=view)

    def _agree(
        self, what: str, header: DicomHeader, row: TableRow | None, path: Path
    ) -> tuple[str | None, str]:
        tags = header.laterality if what == "laterality" else header.view_position
        listed = None if row is None else (row.laterality if what == "laterality" else row.view)
        if tags is not None and listed is not None and tags != listed:
            raise MammoDicomError(
                path,
                f"{what} {tags} in the file's tags ({header.source}) but {listed} in "
                f"{self.name} {row.record} (image {row.image!r}): correct the row or the tags",
            )
        if listed is None:
            return tags, ORIGINS[0]
        return listed, ORIGINS[2] if tags is not None else ORIGINS[1]

    def ambiguous(self) -> dict[str, str]:
        """File path to the problem of a key that names it and other files."""
        found = {}
        for key, files in self._matched.items():
            if len(files) > 1:
                records = ", ".join(r.record for r in self._rows[key])
                for file in sorted(files):
                    found[file] = (
                        f"{self.name} {records}: image {key!r} names {len(files)} files: key "
                        "the table by a longer path (<case>/<file name>) or give each file its "
                        "own id"
                    )
        return found

    def unmatched(self) -> list[Problem]:
        """The rows that named no file of the indexed cases (each row's own problems, if it has
        any, are its reason)."""
        rows = [r for key, rows in self._rows.items() if key not in self._matched for r in rows]
        return [
            Problem(
                self.name,
                "; ".join(row.problems)
                or (
                    f"image {row.image!r} names no DICOM file of the cases in the metadata: remove "
                    "the row, or add the file (keys: the file name without .dcm, or its path "
                    "from data.root)"
                    if row.image
                    else "no image id: fill it in or remove the row"
                ),
                row.record,
            )
            for row in sorted(rows + self._blank, key=lambda r: _line(r.record))
        ]
