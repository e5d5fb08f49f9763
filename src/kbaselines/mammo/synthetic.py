"""A synthetic mammography tree in the real format: DICOM files, metadata.csv, contour JSON.

Each case has the four views of two breasts: a half-ellipse of textured tissue against the chest
wall (left for left breasts, right for right breasts, as acquired). Cancer cases carry an
irregular, spiculated, dense mass in one breast (seen on its CC and MLO views); benign cases a
round, smooth, well-defined one; normal cases none. The files exercise the reader: MONOCHROME1 and
MONOCHROME2, 12 and 16 bits stored, uncompressed and RLE, a window, tags in the places exports use
(Image Laterality or Laterality, View Position or the View Code Sequence or only the Series
Description), file names that say nothing (``1-3.dcm``), and contour y stored negated or not.

The export form (``export=True``) writes the same cases as a real anonymised export does: files
named by bare image ids, no View Position, View Code Sequence, Modality or Pixel Spacing, Image
Laterality only in every other case, MONOCHROME1, JPEG 2000 lossless; each image's laterality and
view only in ``views.csv`` (``image_id``, ``laterality``, ``view``), read with
``data.views_table=views.csv``.

    python scripts/check_dataset.py data=mammo_synthetic data.root=data/mammo_synthetic \
        data.synthetic.num_cases=96        # generates the tree (once), then checks it
    python scripts/check_dataset.py data=mammo_synthetic_export     # the export form
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid
from tqdm.auto import tqdm

from kbaselines.core.data import generated

__all__ = ["GENERATOR_VERSION", "MARKER", "ensure_synthetic_mammo", "generate_mammo", "write_dicom"]

MARKER = ".mammo_synthetic.json"
GENERATOR_VERSION = 1
MAMMO_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image, for presentation
DEVICES = (("HOLOGIC, Inc.", "Selenia Dimensions"), ("GE MEDICAL SYSTEMS", "Senographe Essential"))
FIRST_CASE = 100001
FIRST_PATIENT = 10001
_VIEW_CODES = {"CC": "cranio-caudal", "MLO": "medio-lateral oblique"}
#: The export form's table of each image's laterality and view.
VIEWS_TABLE = "views.csv"


def write_dicom(
    path: str | Path,
    image: np.ndarray,
    laterality: str | None = "L",
    view: str | None = "CC",
    bits_stored: int = 12,
    monochrome1: bool = False,
    rle: bool = False,
    tag_style: str = "standard",
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] = (0.0, 1.0),
    patient_id: str = "10001",
    device: tuple[str, str] = DEVICES[0],
    spacing: float | None = 0.07,
    series_description: str | None = None,
    jpeg2000: bool = False,
    modality: str | None = "MG",
) -> Path:
    """Write ``image`` (values in [0, 1], as displayed) as an MG DICOM file.

    Args:
        tag_style: where laterality and view go: ``standard`` (Image Laterality, View Position),
            ``alternative`` (Laterality, View Code Sequence), ``description`` (only the Series
            Description, e.g. ``"L CC"``), ``laterality`` (only Image Laterality, as anonymised
            exports keep it), ``none`` (neither).
        window: (center, width) of the VOI window; default the full range of ``bits_stored``.
        rescale: (intercept, slope) of the modality LUT; stored values are (value - b) / m.
        spacing: Pixel Spacing and Imager Pixel Spacing in mm; None writes neither.
        jpeg2000: JPEG 2000 lossless (OpenJPEG, through pylibjpeg-openjpeg), for images of at
            least 32 pixels a side; else uncompressed or ``rle``.
        modality: the Modality tag; None writes none.
    """
    path = Path(path)
    if jpeg2000 and (rle or min(image.shape) < 32):
        raise ValueError("jpeg2000 needs no rle and an image of at least 32 pixels a side")
    top = 2**bits_stored - 1
    shown = 1.0 - image if monochrome1 else image
    intercept, slope = rescale
    stored = np.clip(np.round((shown * top - intercept) / slope), 0, top).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MAMMO_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if modality is not None:
        ds.Modality = modality
    ds.Manufacturer, ds.ManufacturerModelName = device
    ds.PatientID = patient_id
    if spacing is not None:
        ds.ImagerPixelSpacing = [spacing, spacing]
        ds.PixelSpacing = [spacing, spacing]
    if tag_style == "standard":
        ds.ImageLaterality, ds.ViewPosition = laterality, view
    elif tag_style == "alternative":
        ds.Laterality = laterality
        code = pydicom.Dataset()
        code.CodeValue, code.CodingSchemeDesignator = (
            ("R-10242" if view == "CC" else "R-10226"),
            "SRT",
        )
        code.CodeMeaning = _VIEW_CODES[view]
        ds.ViewCodeSequence = DicomSequence([code])
    elif tag_style == "description":
        ds.SeriesDescription = f"{laterality} {view}"
    elif tag_style == "laterality":
        ds.ImageLaterality = laterality
    elif tag_style != "none":
        raise ValueError(
            f"tag_style {tag_style!r}: standard, alternative, description, laterality or none"
        )
    if series_description is not None:
        ds.SeriesDescription = series_description
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    center, width = window if window is not None else ((top + 1) / 2 - 0.5, top + 1)
    ds.WindowCenter, ds.WindowWidth = f"{center:g}", f"{width:g}"
    ds.RescaleIntercept, ds.RescaleSlope = f"{intercept:g}", f"{slope:g}"
    ds.PixelData = stored.tobytes()
    if rle:
        ds.compress(RLELossless, stored)
    if jpeg2000:
        ds.compress(JPEG2000Lossless, stored, encoding_plugin="pylibjpeg")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``cv2.GaussianBlur(image, (0, 0), sigma)`` (reflected borders), fast for a wide ``sigma``.

    A direct blur costs about ``8 * sigma`` operations per pixel and pass: 25 s for the texture's
    widest blur of one 3328x2560 view. From ``sigma >= 32`` the image (with a reflected margin
    of ``4 * sigma``, the kernel's reach) is averaged over ``factor x factor`` blocks, blurred
    there with the remaining width (``sigma / factor >= 16`` block pixels) and interpolated back:
    on white noise the difference from the direct blur is about 2% of its standard deviation and
    the standard deviation is kept; below 32 the direct blur runs, so small images do not change.
    """
    factor = int(sigma // 16)
    if factor <= 1:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    rows, columns = image.shape
    margin = math.ceil(4 * sigma / factor) * factor
    padded = cv2.copyMakeBorder(
        image,
        margin,
        margin + (-rows % factor),
        margin,
        margin + (-columns % factor),
        cv2.BORDER_REFLECT_101,
    )
    height, width = padded.shape
    small = cv2.resize(padded, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    # a block average is already a box blur of variance (factor^2 - 1) / 12 pixels^2
    rest = math.sqrt(sigma**2 - (factor**2 - 1) / 12) / factor
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=rest)
    full = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return full[margin : margin + rows, margin : margin + columns]


def _tissue(
    rng: np.random.Generator, rows: int, columns: int, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A breast against the left edge (chest wall), ``scale`` times the usual depth and height:
    image in [0, 1] and the breast mask."""
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float32)
    depth = columns * rng.uniform(0.72, 0.9) * scale
    half = rows * rng.uniform(0.4, 0.47) * scale
    center = rows * rng.uniform(0.47, 0.53)
    inside = (xx / depth) ** 2 + ((yy - center) / half) ** 2
    mask = inside <= 1.0
    noise = rng.normal(0.0, 1.0, (rows, columns)).astype(np.float32)
    texture = _blur(noise, rows / 40) * 0.5 + _blur(noise, rows / 12) * 2.0
    density = rng.uniform(0.35, 0.5)
    tissue = density + 0.07 * texture - 0.12 * inside
    image = np.where(mask, np.clip(tissue, 0.08, 0.9), 0.02)
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.8), mask


def _lesion_outline(rng: np.random.Generator, cls: str, radius: float) -> np.ndarray:
    """Polygon points around (0, 0): spiculated irregular for cancer, a smooth ellipse for benign."""
    angles = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    if cls == "cancer":
        bumps = sum(
            rng.uniform(0.08, 0.2) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
            for k in (2, 3, 5)
        )
        spikes = np.zeros_like(angles)
        for angle in rng.uniform(0, 2 * np.pi, rng.integers(6, 10)):
            spikes += rng.uniform(0.6, 1.1) * np.exp(
                -(((angles - angle + np.pi) % (2 * np.pi) - np.pi) ** 2) / 0.004
            )
        r = radius * (1 + bumps + spikes)
        xs, ys = r * np.cos(angles), r * np.sin(angles)
    else:
        ratio = rng.uniform(0.75, 1.0)
        tilt = rng.uniform(0, np.pi)
        ex, ey = radius * np.cos(angles), radius * ratio * np.sin(angles)
        xs = ex * np.cos(tilt) - ey * np.sin(tilt)
        ys = ex * np.sin(tilt) + ey * np.cos(tilt)
    return np.stack([xs, ys], axis=1)


def _draw_lesion(
    rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, cls: str, scale: float = 1.0
) -> np.ndarray:
    """Draw a lesion inside the breast (sized like a breast of ``scale``); return its outline in
    pixel coordinates."""
    rows, columns = image.shape
    candidates = np.argwhere(cv2.erode(mask.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0)
    cy, cx = candidates[rng.integers(len(candidates))]
    radius = (
        rows * scale * (rng.uniform(0.06, 0.085) if cls == "cancer" else rng.uniform(0.045, 0.06))
    )
    outline = _lesion_outline(rng, cls, radius) + np.array([cx, cy])
    outline = np.clip(outline, [0, 0], [columns - 1, rows - 1])
    shape = np.zeros_like(image)
    cv2.fillPoly(shape, [np.round(outline).astype(np.int32)], 1.0)
    if cls == "cancer":
        shape = cv2.GaussianBlur(shape, (0, 0), 0.7)
        image += shape * rng.uniform(0.25, 0.32)
    else:
        shape = cv2.GaussianBlur(shape, (0, 0), 1.2)
        image += shape * rng.uniform(0.12, 0.18)
    np.clip(image, 0.0, 1.0, out=image)
    return outline


def _case_rows(num_cases: int, rng: np.random.Generator, first_case: int) -> list[dict[str, Any]]:
    groups = ("cancer", "benign", "normal")
    rows = []
    for i in range(num_cases):
        grp = groups[i % 3]
        # every fifth patient has two cases, which must stay in one fold
        patient = FIRST_PATIENT + first_case + i - (1 if i % 5 == 4 else 0)
        side = "left" if rng.random() < 0.5 else "right"
        make, model = DEVICES[int(rng.random() < 0.4)]
        birads = {
            "cancer": rng.choice(["4a", "4b", "4c", "5"]),
            "benign": rng.choice(["2", "3"]),
            "normal": "1",
        }[grp]
        rows.append(
            {
                "grp": grp,
                "case_id": str(FIRST_CASE + first_case + i),
                "recvid": str(patient),
                "manufacturer": make,
                "manufacturerModelName": model,
                "both1": birads,
                "left1": birads if side == "left" else "1",
                "right1": birads if side == "right" else "1",
                "spr_loca_cmnt": f"breast {side}" if grp != "normal" else "",
                "INVS_size": f"{rng.uniform(5, 30):.1f}" if grp == "cancer" else "",
                "htlg_type_cmnt": rng.choice(["IDC", "ILC", "DCIS"], p=[0.7, 0.15, 0.15])
                if grp == "cancer"
                else "",
                "path_t_stag": str(rng.integers(1, 4)) if grp == "cancer" else "",
                "age": str(rng.integers(35, 75)),
            }
        )
    return rows


def _write_case(
    folder: Path,
    row: dict[str, Any],
    index: int,
    rows: int,
    columns: int,
    seed: int,
    export: bool,
    breast_scale: float,
) -> tuple[dict, list[dict[str, str]]]:
    """Draw and write the four views of one case (as an export: see the module); return its
    contour JSON object and its rows of the views table."""
    rng = np.random.default_rng([seed, index])
    contours: dict[str, dict[str, dict[str, list]]] = {}
    table = []
    side = row["spr_loca_cmnt"].split()[-1][0].upper() if row["spr_loca_cmnt"] else None
    negate_y = index % 2 == 0
    style = ("standard", "standard", "alternative", "description")[index % 4]
    if export:  # Image Laterality kept in every other case, the view never
        style = "laterality" if index % 2 == 0 else "none"
    for number, (laterality, view) in enumerate(
        (("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO"))
    ):
        image, mask = _tissue(rng, rows, columns, breast_scale)
        outline = None
        if row["grp"] != "normal" and laterality == side:
            outline = _draw_lesion(rng, image, mask, row["grp"], breast_scale)
        if laterality == "R":  # acquired facing the other way: chest wall on the right
            image = image[:, ::-1].copy()
            if outline is not None:
                outline[:, 0] = columns - 1 - outline[:, 0]
        if outline is not None:
            points = [
                {"y": float(-y if negate_y else y), "x": float(x)} for x, y in np.round(outline, 1)
            ]
            contours.setdefault(row["grp"], {}).setdefault(f"{laterality}{view}".lower(), {})[
                "lesion01"
            ] = points
        name = f"1-{number + 1}"
        if export:
            name = hashlib.sha1(f"{seed}/{row['case_id']}/{laterality}{view}".encode()).hexdigest()
            name = name[:16]
            table.append({"image_id": name, "laterality": laterality, "view": view})
        write_dicom(
            folder / f"{name}.dcm",
            image,
            laterality,
            view,
            bits_stored=12 if index % 2 == 0 else 16,
            monochrome1=export or index % 4 == 1,
            rle=not export and index % 3 == 0,
            jpeg2000=export,
            tag_style=style,
            patient_id=row["recvid"],
            device=(row["manufacturer"], row["manufacturerModelName"]),
            spacing=None if export else 0.07 * 3328 / rows,
            modality=None if export else "MG",
        )
    case = int(row["case_id"])
    return {"user_id": 1, "case_id": case, "contour_list": contours, "discard_yn": 0}, table


def generate_mammo(
    root: str | Path,
    num_cases: int = 96,
    rows: int = 128,
    columns: int = 104,
    seed: int = 0,
    first_case: int = 0,
    export: bool = False,
    breast_scale: float = 1.0,
) -> Path:
    """Write ``num_cases`` cases (cancer, benign, normal in turn) into ``root``, atomically.

    Args:
        root: where the tree goes (replaced only if it is a generated tree).
        num_cases: cases; every fifth shares its patient with the previous case.
        rows, columns: image size in pixels.
        seed: every case is drawn from ``(seed, case number)``.
        first_case: the number of the first case (and patient): two trees with other numbers
            share no patient and no image, as the parts of a delivery split by patient.
        export: write the cases as an anonymised export with ``views.csv`` (see the module);
            the same cases, lesions and images as without it.
        breast_scale: each breast's depth and height (and its lesion's size) as a share of the
            usual, which fills most of the image: 0.6 puts a breast on a fifth of the image, as
            a large detector does (what ``data.crop=breast`` is for); 1.0 draws the same images
            as before the option existed.
    """
    arguments = {
        "num_cases": num_cases,
        "rows": rows,
        "columns": columns,
        "seed": seed,
        "first_case": first_case,
        "export": export,
        "breast_scale": breast_scale,
    }
    marker = {"generator_version": GENERATOR_VERSION, **arguments}
    return generated.write_generated(
        root, MARKER, marker, lambda folder: _write_tree(folder, **arguments), "mammography"
    )


def _write_tree(
    folder: Path,
    num_cases: int,
    rows: int,
    columns: int,
    seed: int,
    first_case: int,
    export: bool,
    breast_scale: float,
) -> None:
    """Draw every case, its contours and ``metadata.csv`` (and ``views.csv``) into ``folder``."""
    cases = _case_rows(num_cases, np.random.default_rng(seed), first_case)
    table = []
    for i, row in enumerate(tqdm(cases, desc="drawing synthetic mammograms"), start=first_case):
        contour, views = _write_case(
            folder / "images" / row["case_id"], row, i, rows, columns, seed, export, breast_scale
        )
        table += views
        if row["grp"] != "normal":
            (folder / "contours").mkdir(exist_ok=True)
            (folder / "contours" / f"{row['case_id']}.json").write_text(json.dumps(contour))
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(cases[0]))
        writer.writeheader()
        writer.writerows(cases)
    if export:
        with (folder / VIEWS_TABLE).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["image_id", "laterality", "view"])
            writer.writeheader()
            writer.writerows(table)


def ensure_synthetic_mammo(root: str | Path, **arguments: Any) -> Path:
    """Generate the tree unless ``root`` already holds one made with the same arguments."""
    wanted = generated.generator_arguments(generate_mammo, arguments)
    marker = {"generator_version": GENERATOR_VERSION, **wanted}
    return generated.ensure_generated(root, MARKER, marker, lambda: generate_mammo(root, **wanted))
