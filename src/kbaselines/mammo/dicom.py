"""Read one mammogram: pixels as displayed, its view and laterality, oriented chest wall left.

Pixels go through pydicom's modality LUT (rescale) then VOI LUT or window, MONOCHROME1 is
inverted, pixels marked as padding are set to black, and the result is scaled to [0, 1]. View and
laterality come from a documented order of sources (:data:`LATERALITY_SOURCES`,
:data:`VIEW_SOURCES`), because exports differ; when none answers, the error names the file and
every source tried. Anonymised exports may strip both (their views then come from a table, see
:mod:`kbaselines.mammo.views_table`): decoding needs only the laterality, and takes it from the
caller when the tags lack it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

__all__ = [
    "LATERALITY_SOURCES",
    "VIEWS",
    "VIEW_SOURCES",
    "DicomHeader",
    "MammoDicomError",
    "no_view_reason",
    "read_header",
    "read_pixels",
]

VIEWS = ("rcc", "rmlo", "lcc", "lmlo")
#: Where the laterality is looked for, in order; free-text keywords are searched for L/R + CC/MLO
#: tokens (``LEFT_CC``, ``R MLO``, ``LCC``), then the file name.
LATERALITY_SOURCES = ("ImageLaterality", "Laterality")
VIEW_SOURCES = ("ViewPosition", "ViewCodeSequence")
TEXT_SOURCES = (
    "SeriesDescription",
    "ProtocolName",
    "ImageComments",
    "PatientID",
    "StudyDescription",
)
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_CODE_MEANINGS = {"cranio-caudal": "CC", "medio-lateral oblique": "MLO"}
_TOKEN = re.compile(r"(?<![A-Z])(LEFT|RIGHT|L|R)[ _\-.]?(CC|MLO)(?![A-Z])")


class MammoDicomError(ValueError):
    """A DICOM file that cannot be used, with the file and how to fix it in the message."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class DicomHeader:
    """What the reader needs from a file's tags.

    Args:
        laterality: ``"L"`` or ``"R"`` (None only from ``read_header(require_view=False)``, when
            no tag or string says it).
        view_position: ``"CC"`` or ``"MLO"`` (None likewise).
        rows, columns: image size in pixels.
        spacing: pixel spacing in mm (row, column), or None when the file has none.
        manufacturer, model: device, ``""`` when absent.
        source: which tag or string gave laterality and view (for the report).
    """

    laterality: str | None
    view_position: str | None
    rows: int
    columns: int
    spacing: tuple[float, float] | None
    manufacturer: str
    model: str
    source: str

    @property
    def view(self) -> str:
        """``rcc``, ``rmlo``, ``lcc`` or ``lmlo`` (the contour JSON's view names)."""
        return f"{self.laterality}{self.view_position}".lower()


def _dcmread(path: Path, pixels: bool) -> pydicom.Dataset:
    if path.stat().st_size == 0:
        raise MammoDicomError(path, "is empty (0 bytes): export it again")
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError as error:
        raise MammoDicomError(
            path, f"not a DICOM file ({error}); replace it with the exported .dcm"
        ) from error
    except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
        raise MammoDicomError(
            path, f"unreadable DICOM ({type(error).__name__}: {error}); export it again"
        ) from error


def _text_tokens(ds: pydicom.Dataset, path: Path) -> tuple[str, str, str] | None:
    for keyword in TEXT_SOURCES:
        match = _TOKEN.search(str(ds.get(keyword, "")).upper())
        if match:
            return match.group(1)[0], match.group(2), keyword
    match = _TOKEN.search(path.stem.upper())
    return (match.group(1)[0], match.group(2), "file name") if match else None


def no_view_reason(missing: str, tried_also: str = "") -> str:
    """Why a file's ``missing`` (``laterality`` or ``view``) is not known: every source tried
    (``tried_also`` appended) and the ways to fix it."""
    tried = ", ".join((*LATERALITY_SOURCES, *VIEW_SOURCES, *TEXT_SOURCES, "file name"))
    return (
        f"no {missing} found (tried {tried}{tried_also}); set Image Laterality (0020,0062) and "
        "View Position (0018,5101), name the file like LCC.dcm, or give each file's laterality "
        "and view in a table: data.views_table=<csv>"
    )


def _laterality_and_view(
    ds: pydicom.Dataset, path: Path, require: bool
) -> tuple[str | None, str | None, str]:
    laterality = view = None
    sources = []
    for keyword in LATERALITY_SOURCES:
        value = str(ds.get(keyword, "")).strip().upper()
        if value in ("L", "R"):
            laterality = value
            sources.append(keyword)
            break
    value = str(ds.get("ViewPosition", "")).strip().upper()
    if value in ("CC", "MLO"):
        view = value
        sources.append("ViewPosition")
    else:
        for item in ds.get("ViewCodeSequence", []) or []:
            meaning = str(item.get("CodeMeaning", "")).strip().lower()
            if meaning in _CODE_MEANINGS:
                view = _CODE_MEANINGS[meaning]
                sources.append("ViewCodeSequence")
                break
    if laterality is None or view is None:
        tokens = _text_tokens(ds, path)
        if tokens is not None:
            laterality = laterality or tokens[0]
            view = view or tokens[1]
            sources.append(tokens[2])
    if require and (laterality is None or view is None):
        raise MammoDicomError(path, no_view_reason("laterality" if laterality is None else "view"))
    return laterality, view, "+".join(dict.fromkeys(sources))


def _spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            return float(value[0]), float(value[1])
    return None


def read_header(path: str | Path, require_view: bool = True) -> DicomHeader:
    """The tags of ``path`` the index needs, without decoding pixels.

    Args:
        require_view: refuse a file whose laterality or view no source gives; when False they
            are None instead (a views table may supply them).

    Raises:
        MammoDicomError: not DICOM, no image size, or (``require_view``) no laterality/view in
            any source.
    """
    path = Path(path)
    ds = _dcmread(path, pixels=False)
    if "Rows" not in ds or "Columns" not in ds:
        raise MammoDicomError(path, "no Rows/Columns: not an image; remove it from the case")
    laterality, view, source = _laterality_and_view(ds, path, require_view)
    return DicomHeader(
        laterality=laterality,
        view_position=view,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        spacing=_spacing(ds),
        manufacturer=str(ds.get("Manufacturer", "")),
        model=str(ds.get("ManufacturerModelName", "")),
        source=source,
    )


def _decode(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        raise MammoDicomError(
            path,
            "has no Pixel Data (7FE0,0010): not an image (a report or presentation state?); "
            "remove it from the case or export the image again",
        )
    try:
        return ds.pixel_array
    except (RuntimeError, NotImplementedError) as error:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(syntax, "name", str(syntax))
        raise MammoDicomError(
            path,
            f"cannot decode transfer syntax {name} ({syntax}): {error}. Install the decoder "
            "plugin it names: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
            "pylibjpeg-rle",
        ) from error
    except (ValueError, EOFError, OSError, AttributeError, KeyError) as error:
        raise MammoDicomError(
            path, f"pixel data unreadable ({error}): truncated or broken file; export it again"
        ) from error


def _output_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """The range of the VOI stage's output, the same for every image of a device.

    A VOI LUT maps onto its table's bit depth; a window (pydicom's ``apply_windowing``) and the
    modality LUT alone onto the rescaled range of the stored values. Scaling by the image's own
    min and max instead would make a breast with a bright lesion darker overall, a cue no real
    reader has.
    """
    if "VOILUTSequence" in ds:
        return 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    if "ModalityLUTSequence" in ds:
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(ds.get("BitsStored", 16))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    stored = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    ends = sorted(intercept + slope * v for v in stored)
    return float(ends[0]), float(ends[1])


def _padding(ds: pydicom.Dataset, stored: np.ndarray) -> np.ndarray | None:
    """The pixels marked as padding: stored values equal to Pixel Padding Value, or between it
    and Pixel Padding Range Limit (background air of mammograms; PS3.3 C.7.5.1.1.2). They are
    not image and may hold any value, white after a window or the MONOCHROME1 inversion."""
    if "PixelPaddingValue" not in ds:
        return None
    value = int(ds.PixelPaddingValue)
    low, high = sorted((value, int(ds.get("PixelPaddingRangeLimit", value))))
    return (stored >= low) & (stored <= high)


def read_pixels(
    path: str | Path, flip_right: bool = True, laterality: str | None = None
) -> tuple[np.ndarray, DicomHeader]:
    """The displayed image in [0, 1] (float32), chest wall on the left, and its header.

    Order: modality LUT, VOI LUT or window (linear or sigmoid), scaling of the VOI output range to
    [0, 1], MONOCHROME1 inversion, padding pixels set to 0 (black), then right breasts flipped
    left-right (``flip_right``) so every breast faces the same way.

    Args:
        laterality: ``"L"`` or ``"R"`` for a file whose tags do not say it (from a views table);
            the view is not needed to decode.
    """
    path = Path(path)
    header = read_header(path, require_view=False)
    side = laterality or header.laterality
    if flip_right and side is None:
        raise MammoDicomError(path, no_view_reason("laterality") + " (it decides the flip)")
    ds = _dcmread(path, pixels=True)
    pixels = _decode(ds, path)
    if pixels.ndim != 2:
        raise MammoDicomError(path, f"pixel data of shape {pixels.shape}: expected one 2D frame")
    values = apply_modality_lut(pixels, ds)
    low, high = _output_range(ds)
    values = np.asarray(apply_voi_lut(values, ds), dtype=np.float32)
    values = np.clip((values - low) / (high - low), 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        values = 1.0 - values
    padding = _padding(ds, pixels)
    if padding is not None:
        values[padding] = 0.0
    if flip_right and side == "R":
        values = values[:, ::-1]
    return np.ascontiguousarray(values), replace(header, laterality=side)
