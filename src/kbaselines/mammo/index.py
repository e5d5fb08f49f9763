"""Index of a mammography tree: cases from metadata.csv, their four views, lesions, labels.

Every problem (file, record, reason) is collected rather than raised, so that
``check_dataset.py`` lists all of them and the DataModule can stop or skip the cases concerned.
Metadata rows are validated against one schema (:class:`MetadataRow`), as the contour files are
(:class:`~kbaselines.mammo.contours.ContourDocument`). Every file is read again at each build;
only the DICOM headers are kept between starts, by size and modification time
(:class:`~kbaselines.mammo.headers.HeaderCache`), so an edit in place is always seen. A root holding
the official parts is indexed part by part, and :func:`join_parts` joins the indexes. A views table
(``data.views_table``, :mod:`~kbaselines.mammo.views_table`) gives the laterality and view of
files whose tags lost them.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator
from tqdm.auto import tqdm

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.parts import in_part
from kbaselines.core.data.schema import RecordSchema, validate_record
from kbaselines.mammo.contours import Lesion, read_contours, read_masks
from kbaselines.mammo.dicom import VIEWS, DicomHeader, MammoDicomError
from kbaselines.mammo.headers import HeaderCache
from kbaselines.mammo.views_table import ViewsTable

__all__ = [
    "CLASSES",
    "MammoCase",
    "MammoIndex",
    "MetadataRow",
    "build_index",
    "case_views",
    "join_parts",
    "metadata_records",
    "read_metadata",
    "read_views_table",
    "set_aside",
]

log = logging.getLogger(__name__)

CLASSES = ("cancer", "benign", "normal")


@dataclass(frozen=True)
class MammoCase:
    """One 4-view exam.

    Args:
        case_id: the folder under ``images/``.
        patient: ``recvid`` (the case id when absent): all cases of a patient stay in one fold.
        grp: the case label, ``cancer``, ``benign`` or ``normal``.
        views: view name (``rcc`` ...) to the DICOM path relative to the root.
        headers: view name to its DICOM header.
        lesions: from the contours (or masks).
        breasts: ``L``/``R`` to the breast label, from contours, else the lesion side, else the case.
        meta: the metadata row (device, BI-RADS, histology ...), as strings.
    """

    case_id: str
    patient: str
    grp: str
    views: dict[str, str]
    headers: dict[str, DicomHeader]
    lesions: list[Lesion]
    breasts: dict[str, str]
    meta: dict[str, str]

    @property
    def device(self) -> str:
        header = next(iter(self.headers.values()))
        make = self.meta.get("manufacturer") or header.manufacturer
        model = self.meta.get("manufacturerModelName") or header.model
        return f"{make} {model}".strip() or "unknown"

    @property
    def birads(self) -> str:
        for key in ("both1", "left1", "right1"):
            if self.meta.get(key):
                return self.meta[key]
        return "unknown"

    @property
    def histology(self) -> str:
        return self.meta.get("htlg_type_cmnt") or "none"


@dataclass
class MammoIndex:
    """The usable cases, the problems, the bad cases (with their problems), the discarded ones."""

    root: Path
    cases: list[MammoCase]
    problems: list[Problem] = field(default_factory=list)
    bad_cases: dict[str, list[Problem]] = field(default_factory=dict)
    discarded: list[str] = field(default_factory=list)


#: BI-RADS categories (mammography.md), upper or lower case; empty when not recorded.
BIRADS = ("", "0", "1", "2", "3", "4", "4a", "4b", "4c", "5", "6")


def _birads(value: str) -> str:
    if value.lower() not in BIRADS:
        raise ValueError(f"BI-RADS is one of {', '.join(BIRADS[1:])} or empty")
    return value


BiRads = Annotated[str, AfterValidator(_birads)]


class MetadataRow(RecordSchema):
    """A case of ``metadata.csv`` (mammography.md), values as strings: the fields the index reads
    are checked; other columns (age, histology, stage ...) are kept as they are."""

    grp: Literal[CLASSES]
    case_id: str = ""
    recvid: str = ""
    both1: BiRads = ""
    left1: BiRads = ""
    right1: BiRads = ""


def metadata_records(path: Path) -> tuple[list[tuple[str, dict[str, str]]], list[Problem]]:
    """``(record, row)`` of every row of ``metadata.csv`` (``"row <line>"``) or ``metadata.json``
    (a list of objects, ``"[<index>]"``), values as stripped strings, and the file's problems
    (not readable, a row with more or fewer fields than the header, a JSON entry not an object).
    The rows are not validated here (see :class:`MetadataRow`)."""
    name = path.name
    try:
        if path.suffix == ".json":
            entries = json.loads(path.read_text(encoding="utf-8"))
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                return _csv_records(csv.reader(handle), name)
    except (OSError, ValueError, csv.Error) as error:  # a UnicodeDecodeError is a ValueError
        return [], [Problem(name, f"not readable ({error}): save it as UTF-8 {path.suffix[1:]}")]
    if not isinstance(entries, list):
        return [], [Problem(name, f"is a JSON {type(entries).__name__}, expected a list of rows")]
    records, problems = [], []
    for index, entry in enumerate(entries):
        if isinstance(entry, dict):
            row = {k: "" if v is None else str(v).strip() for k, v in entry.items()}
            records.append((f"[{index}]", row))
        else:
            problems.append(
                Problem(name, f"is a {type(entry).__name__}, not an object", f"[{index}]")
            )
    return records, problems


def _csv_records(reader: Any, name: str) -> tuple[list[tuple[str, dict[str, str]]], list[Problem]]:
    header = [column.strip() for column in next(reader, [])]
    records, problems = [], []
    for values in reader:
        if not any(value.strip() for value in values):
            continue  # a blank line
        record = f"row {reader.line_num}"
        if len(values) != len(header):
            problems.append(
                Problem(
                    name,
                    f"has {len(values)} fields, the header {len(header)}: a comma too many or "
                    "too few (quote values that hold commas)",
                    record,
                )
            )
        records.append((record, {k: v.strip() for k, v in zip(header, values, strict=False)}))
    return records, problems


def read_metadata(path: Path) -> list[dict[str, str]]:
    """Rows of ``metadata.csv`` (or ``metadata.json``), values as strings, read tolerantly (see
    :func:`metadata_records` for their problems)."""
    return [row for _, row in metadata_records(path)[0]]


def _metadata_file(root: Path) -> Path:
    for name in ("metadata.csv", "metadata.json"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"{root} has no metadata.csv (or metadata.json): the layout is <root>/metadata.csv, "
        "<root>/images/<case id>/*.dcm, <root>/contours/<case id>.json (mammography.md)"
    )


def _breast_labels(grp: str, lesions: list[Lesion], side_text: str) -> dict[str, str]:
    """Contours decide; else the lesion side (``spr_loca_cmnt``); else the case label for both."""
    if lesions:
        labels = {}
        for side in ("L", "R"):
            classes = {lesion.cls for lesion in lesions if lesion.laterality == side}
            labels[side] = "cancer" if "cancer" in classes else "benign" if classes else "normal"
        return labels
    text = side_text.lower()
    sides = {s for s, word in (("L", "left"), ("R", "right")) if word in text}
    if "both" in text or "bilateral" in text:
        sides = {"L", "R"}
    if grp != "normal" and sides:
        return {side: grp if side in sides else "normal" for side in ("L", "R")}
    return {"L": grp, "R": grp}


def case_views(
    root: Path,
    folder: Path,
    problems: list[Problem],
    cache: HeaderCache,
    table: ViewsTable | None = None,
) -> tuple[dict[str, str], dict[str, DicomHeader]]:
    """The views of one case folder, found from its ``*.dcm`` files' headers (then file names,
    then ``table``): view to path relative to ``root``, and view to header. Unreadable or
    duplicate files, files without laterality or view, tags that disagree with the table, a
    folder without ``.dcm`` files and missing views go to ``problems`` (files named from
    ``root``); ``predict.py`` reads new studies with it too."""
    table = ViewsTable.none(root) if table is None else table
    views: dict[str, str] = {}
    headers: dict[str, DicomHeader] = {}
    files = sorted(folder.glob("*.dcm"))
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            row = table.row(path)
            header = table.complete(cache.header(path, rel), path, row)
        except MammoDicomError as error:
            problems.append(Problem(rel, error.reason))
            continue
        if header.view in views:
            problems.append(
                Problem(rel, f"duplicate {header.view} view (also {views[header.view]}); keep one")
            )
            continue
        views[header.view] = rel
        headers[header.view] = header
    name = folder.relative_to(root).as_posix()
    missing = [v for v in VIEWS if v not in views]
    if not files:
        problems.append(
            Problem(
                name,
                "has no .dcm file (an empty case folder?): add the case's four views, or remove "
                "the folder and its metadata row",
            )
        )
    elif not views:
        problems.append(Problem(name, "no usable DICOM file: see its files' problems"))
    elif missing:
        problems.append(
            Problem(
                name,
                f"missing view(s) {', '.join(missing)}: a case needs the four views RCC, RMLO, LCC, LMLO",
            )
        )
    return views, headers


def _lesions(
    root: Path, case_id: str, grp: str, headers: dict[str, DicomHeader], problems: list[Problem]
) -> tuple[list[Lesion], bool]:
    """The case's lesions (contour file, then masks not drawn there) and its discard flag."""
    sizes = {view: (h.rows, h.columns) for view, h in headers.items()}
    lesions: list[Lesion] = []
    discard = False
    contour = root / "contours" / f"{case_id}.json"
    if contour.is_file():
        parsed = read_contours(contour, sizes, root)
        lesions, discard = parsed.lesions, parsed.discard
        problems += parsed.problems
    masks = root / "masks" / case_id
    if masks.is_dir():
        known = {lesion.lesion_id: lesion.cls for lesion in lesions}
        drawn = {(lesion.view, lesion.lesion_id) for lesion in lesions}
        extra, found = read_masks(masks, sizes, known, grp if grp != "normal" else "benign", root)
        lesions += [m for m in extra if (m.view, m.lesion_id) not in drawn]
        problems += found
    return lesions, discard


def _metadata_rows(metadata: Path, index: MammoIndex) -> dict[str, dict[str, str]]:
    """The valid metadata row of each case; every problem goes to ``index`` (and the case of a
    row with problems, or listed twice, to its bad cases)."""
    records, problems = metadata_records(metadata)
    by_record: dict[str | None, list[Problem]] = {}
    for problem in problems:
        by_record.setdefault(problem.record, []).append(problem)
    index.problems += by_record.pop(None, [])
    rows: dict[str, dict[str, str]] = {}
    for record, row in records:
        found = by_record.pop(record, [])
        found += validate_record(MetadataRow, row, metadata.name, record)[1]
        case_id = row.get("case_id") or row.get("recvid") or ""
        if not case_id:
            found.append(Problem(metadata.name, "no case_id (nor recvid)", record))
        elif case_id in rows or case_id in index.bad_cases:
            found.append(Problem(metadata.name, f"case {case_id} listed twice", record))
        index.problems += found
        if found and case_id:
            index.bad_cases.setdefault(case_id, []).extend(found)
        elif case_id:
            rows[case_id] = row
    for left in by_record.values():  # JSON entries that are not objects
        index.problems += left
    return {case: row for case, row in rows.items() if case not in index.bad_cases}


def build_index(
    root: str | Path, header_cache: str | Path | None = None, table: ViewsTable | None = None
) -> MammoIndex:
    """Read metadata, every case folder's DICOM headers and the contours; collect problems.

    Args:
        root: the dataset folder.
        header_cache: a file keeping the DICOM headers between starts
            (:class:`~kbaselines.mammo.headers.HeaderCache`); None reads every header.
        table: the views table (``data.views_table``), which records the rows it matched: the
            keys naming several files (:meth:`~kbaselines.mammo.views_table.ViewsTable.ambiguous`)
            are known once every part is indexed, and :func:`set_aside` leaves their cases out.
    """
    root = Path(root)
    cache = HeaderCache(header_cache)
    metadata = _metadata_file(root)
    index = MammoIndex(root=root, cases=[])
    by_case = _metadata_rows(metadata, index)
    images = root / "images"
    folders = {p.name: p for p in sorted(images.iterdir()) if p.is_dir()} if images.is_dir() else {}
    for name in sorted(set(folders) - set(by_case) - set(index.bad_cases)):
        problem = Problem(
            f"images/{name}",
            f"images without a {metadata.name} row; add the row or remove the folder",
        )
        index.problems.append(problem)
        index.bad_cases.setdefault(name, []).append(problem)
    for case_id, row in tqdm(sorted(by_case.items()), desc="indexing mammograms", leave=False):
        problems: list[Problem] = []
        if case_id not in folders:
            problems.append(
                Problem(
                    metadata.name,
                    f"case {case_id} has no folder images/{case_id}/",
                    f"case {case_id}",
                )
            )
            views, headers = {}, {}
        else:
            views, headers = case_views(root, folders[case_id], problems, cache, table)
        lesions, discard = (
            _lesions(root, case_id, row["grp"], headers, problems) if headers else ([], False)
        )
        if problems:
            index.problems += problems
            index.bad_cases.setdefault(case_id, []).extend(problems)
            continue
        if discard:
            index.discarded.append(case_id)
            continue
        index.cases.append(
            MammoCase(
                case_id=case_id,
                patient=row.get("recvid") or case_id,
                grp=row["grp"],
                views=views,
                headers=headers,
                lesions=lesions,
                breasts=_breast_labels(row["grp"], lesions, row.get("spr_loca_cmnt", "")),
                meta=row,
            )
        )
    cache.save()
    if index.discarded:
        log.info(
            "%d cases left out: discard_yn = 1 (%s)",
            len(index.discarded),
            ", ".join(index.discarded[:10]),
        )
    return index


def join_parts(root: str | Path, indexes: Mapping[str, MammoIndex]) -> MammoIndex:
    """The indexes of the folders under ``root``, by prefix (``{"": index}`` for the root itself,
    or one per official part: ``{"1.Training/": ...}``), as one index of ``root``: case ids, view
    paths and problems prefixed with the part folder; patients are kept as they are, so that a
    patient in both parts is one group."""
    if list(indexes) == [""]:
        return indexes[""]
    joined = MammoIndex(root=Path(root), cases=[])
    for prefix, index in indexes.items():
        joined.cases += [
            replace(
                case,
                case_id=prefix + case.case_id,
                views={view: prefix + rel for view, rel in case.views.items()},
            )
            for case in index.cases
        ]
        joined.problems += [in_part(prefix, p) for p in index.problems]
        for case, problems in index.bad_cases.items():
            joined.bad_cases[prefix + case] = [in_part(prefix, p) for p in problems]
        joined.discarded += [prefix + case for case in index.discarded]
    return joined


def read_views_table(
    path: str | Path, root: str | Path, columns: Mapping[str, str | None] | None = None
) -> ViewsTable:
    """``data.views_table``: ``path`` (relative to ``root``, or absolute), a CSV (or JSON) read as
    ``metadata.csv`` is, with ``columns`` (``data.views_columns``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a column is missing (see :class:`~kbaselines.mammo.views_table.ViewsTable`).
    """
    root = Path(root)
    file = root / path
    if not file.is_file():
        raise FileNotFoundError(
            f"data.views_table={path}: no such file ({file}); give the table of each image's "
            f"laterality and view, as a path relative to data.root={root} or an absolute one"
        )
    name = file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)
    records, problems = metadata_records(file)
    return ViewsTable(name, records, problems, columns or {}, root)


def set_aside(index: MammoIndex, problems: list[Problem]) -> None:
    """Add ``problems`` of files (named relative to ``index.root``) to ``index``; the cases holding
    those files move to the bad cases."""
    case_of = {rel: case.case_id for case in index.cases for rel in case.views.values()}
    index.problems += problems
    for problem in problems:
        if problem.file in case_of:
            index.bad_cases.setdefault(case_of[problem.file], []).append(problem)
    index.cases = [case for case in index.cases if case.case_id not in index.bad_cases]


def count(cases: list[MammoCase], key) -> dict[str, int]:
    """How many cases have each value of ``key(case)``, sorted by value."""
    return dict(sorted(Counter(str(key(c)) for c in cases).items()))
