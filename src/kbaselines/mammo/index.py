"""Index of a mammography tree: cases from metadata.csv, their four views, lesions, labels.

Every problem (file, record, reason) is collected rather than raised, so that
``check_dataset.py`` lists all of them and the DataModule can stop or skip the cases concerned.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from kbaselines.core.data.dataset_report import Problem
from kbaselines.mammo.contours import Lesion, MammoContourError, read_contours, read_masks
from kbaselines.mammo.dicom import VIEWS, DicomHeader, MammoDicomError
from kbaselines.mammo.headers import HeaderCache

__all__ = ["CLASSES", "MammoCase", "MammoIndex", "build_index", "read_metadata"]

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


def read_metadata(path: Path) -> list[dict[str, str]]:
    """Rows of ``metadata.csv`` (or ``metadata.json``, a list of objects), values as strings."""
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
        return [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]


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


def _case_views(
    root: Path, folder: Path, problems: list[Problem], cache: HeaderCache
) -> tuple[dict[str, str], dict[str, DicomHeader]]:
    views: dict[str, str] = {}
    headers: dict[str, DicomHeader] = {}
    for path in sorted(folder.glob("*.dcm")):
        rel = path.relative_to(root).as_posix()
        try:
            header = cache.header(path, rel)
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
    missing = [v for v in VIEWS if v not in views]
    if missing and views:
        problems.append(
            Problem(
                folder.relative_to(root).as_posix(),
                f"missing view(s) {', '.join(missing)}: a case needs the four views RCC, RMLO, LCC, LMLO",
            )
        )
    elif not views:
        problems.append(Problem(folder.relative_to(root).as_posix(), "no readable DICOM file"))
    return views, headers


def _lesions(
    root: Path, case_id: str, grp: str, headers: dict[str, DicomHeader], problems: list[Problem]
) -> tuple[list[Lesion], bool]:
    sizes = {view: (h.rows, h.columns) for view, h in headers.items()}
    lesions: list[Lesion] = []
    discard = False
    contour = root / "contours" / f"{case_id}.json"
    try:
        if contour.is_file():
            parsed = read_contours(contour, sizes)
            lesions, discard = parsed.lesions, parsed.discard
        masks = root / "masks" / case_id
        if masks.is_dir():
            known = {lesion.lesion_id: lesion.cls for lesion in lesions}
            drawn = {(lesion.view, lesion.lesion_id) for lesion in lesions}
            extra = read_masks(masks, sizes, known, grp if grp != "normal" else "benign")
            lesions += [m for m in extra if (m.view, m.lesion_id) not in drawn]
    except MammoContourError as error:
        rel = (
            Path(error.path).relative_to(root).as_posix()
            if Path(error.path).is_absolute()
            else error.path
        )
        problems.append(Problem(rel, error.reason, error.record))
    return lesions, discard


def build_index(root: str | Path, header_cache: str | Path | None = None) -> MammoIndex:
    """Read metadata, every case folder's DICOM headers and the contours; collect problems.

    Args:
        root: the dataset folder.
        header_cache: a file keeping the DICOM headers between starts
            (:class:`~kbaselines.mammo.headers.HeaderCache`); None reads every header.
    """
    root = Path(root)
    cache = HeaderCache(header_cache)
    metadata = _metadata_file(root)
    rows = read_metadata(metadata)
    index = MammoIndex(root=root, cases=[])
    by_case: dict[str, dict[str, str]] = {}
    for number, row in enumerate(rows, start=2):
        case_id = row.get("case_id") or row.get("recvid") or ""
        record = f"row {number}"
        if not case_id:
            index.problems.append(Problem(metadata.name, "no case_id (nor recvid)", record))
        elif case_id in by_case:
            index.problems.append(Problem(metadata.name, f"case {case_id} listed twice", record))
            index.bad_cases.setdefault(case_id, [])
        elif row.get("grp") not in CLASSES:
            problem = Problem(
                metadata.name,
                f"grp {row.get('grp')!r} of case {case_id}: expected one of {CLASSES}",
                record,
            )
            index.problems.append(problem)
            index.bad_cases.setdefault(case_id, []).append(problem)
        else:
            by_case[case_id] = row
    images = root / "images"
    folders = {p.name: p for p in sorted(images.iterdir()) if p.is_dir()} if images.is_dir() else {}
    for name in sorted(set(folders) - set(by_case) - set(index.bad_cases)):
        problem = Problem(
            f"images/{name}", "images without a metadata.csv row; add the row or remove the folder"
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
            views, headers = _case_views(root, folders[case_id], problems, cache)
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


def count(cases: list[MammoCase], key) -> dict[str, int]:
    """How many cases have each value of ``key(case)``, sorted by value."""
    return dict(sorted(Counter(str(key(c)) for c in cases).items()))
