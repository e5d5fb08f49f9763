"""The DICOM reader: LUTs and windows, MONOCHROME1, bit depths, RLE, tag fallbacks, the flip, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from mammo_fixtures import ramp
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from kbaselines.mammo.dicom import MammoDicomError, read_header, read_pixels
from kbaselines.mammo.synthetic import write_dicom


def _tagged_copy(name: str, folder: Path, **tags: str) -> Path:
    """A pydicom test file with mammography tags added (its pixel data untouched)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.ImageLaterality, ds.ViewPosition = "L", "CC"
    for key, value in tags.items():
        setattr(ds, key, value)
    path = folder / name
    ds.save_as(path)
    return path


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    image = ramp()
    mono2, _ = read_pixels(write_dicom(tmp_path / "m2.dcm", image, monochrome1=False))
    mono1, _ = read_pixels(write_dicom(tmp_path / "m1.dcm", image, monochrome1=True))
    np.testing.assert_allclose(mono1, mono2, atol=2.5 / 4095)
    np.testing.assert_allclose(mono2, image, atol=2.5 / 4095)
    stored = pydicom.dcmread(tmp_path / "m1.dcm").pixel_array
    assert stored[0, 0] < stored[0, -2]  # bright on screen is a low stored value in MONOCHROME1


@pytest.mark.parametrize("bits", [12, 14, 16])
def test_bit_depths_give_the_same_image(tmp_path: Path, bits: int) -> None:
    pixels, _ = read_pixels(write_dicom(tmp_path / "b.dcm", ramp(), bits_stored=bits))
    np.testing.assert_allclose(pixels, ramp(), atol=2.5 / (2**bits - 1))
    assert pydicom.dcmread(tmp_path / "b.dcm").pixel_array.max() <= 2**bits - 1


def test_window_narrows_the_displayed_range(tmp_path: Path) -> None:
    """A window centred at 2047, 1024 wide: stored values outside [1535, 2559] clip to black/white."""
    path = write_dicom(tmp_path / "w.dcm", ramp(), bits_stored=12, window=(2047.5, 1024))
    pixels, _ = read_pixels(path)
    stored = pydicom.dcmread(path).pixel_array.astype(float)
    expected = np.clip((stored - 2047.5) / 1024 + 0.5, 0, 1)  # DICOM linear window, output 0..1
    np.testing.assert_allclose(pixels, expected, atol=2e-3)
    assert pixels.min() == 0.0 and pixels.max() == 1.0


def test_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "lut.dcm", ramp(), bits_stored=12)
    ds = pydicom.dcmread(path)
    del ds.WindowCenter, ds.WindowWidth
    table = np.round(np.sqrt(np.arange(4096) / 4095) * 65535).astype(np.uint16)
    item = pydicom.Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = table.astype("<u2").tobytes()
    ds.VOILUTSequence = pydicom.Sequence([item])
    ds.save_as(path)
    pixels, _ = read_pixels(path)
    np.testing.assert_allclose(pixels, table[ds.pixel_array] / 65535.0, atol=1e-6)


def test_modality_lut_rescale(tmp_path: Path) -> None:
    """Stored values (v - intercept) / slope come back to the same display after the rescale."""
    plain, _ = read_pixels(write_dicom(tmp_path / "a.dcm", ramp(), bits_stored=16))
    rescaled, _ = read_pixels(
        write_dicom(tmp_path / "b.dcm", ramp(), bits_stored=16, rescale=(-1000.0, 2.0))
    )
    np.testing.assert_allclose(rescaled, plain, atol=3 / 65535)


def test_bundled_ct_modality_lut_and_signed_window(tmp_path: Path) -> None:
    """pydicom's CT_small (signed, intercept -1024) and MR_small (signed, window 600/1600)."""
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = _tagged_copy(name, tmp_path)
        ds = pydicom.dcmread(path)
        pixels, _ = read_pixels(path)
        values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
        bits = ds.BitsStored
        intercept, slope = float(ds.get("RescaleIntercept", 0)), float(ds.get("RescaleSlope", 1))
        low, high = intercept - slope * 2 ** (bits - 1), intercept + slope * (2 ** (bits - 1) - 1)
        np.testing.assert_allclose(pixels, (values - low) / (high - low), atol=1e-6)


def test_rle_equals_uncompressed(tmp_path: Path) -> None:
    plain, _ = read_pixels(write_dicom(tmp_path / "u.dcm", ramp(), rle=False))
    compressed, _ = read_pixels(write_dicom(tmp_path / "r.dcm", ramp(), rle=True))
    assert pydicom.dcmread(tmp_path / "r.dcm").file_meta.TransferSyntaxUID.name == "RLE Lossless"
    np.testing.assert_array_equal(plain, compressed)
    # pydicom's own RLE test file decodes to the same pixels as its uncompressed twin
    a, _ = read_pixels(_tagged_copy("MR_small.dcm", tmp_path))
    b, _ = read_pixels(_tagged_copy("MR_small_RLE.dcm", tmp_path))
    np.testing.assert_array_equal(a, b)


def test_jpeg2000_decodes_or_names_the_plugin(tmp_path: Path) -> None:
    path = _tagged_copy("MR_small_jp2klossless.dcm", tmp_path)
    try:
        import openjpeg  # noqa: F401  (pylibjpeg-openjpeg)
    except ImportError:
        with pytest.raises(MammoDicomError, match=r"pylibjpeg-openjpeg|plugin"):
            read_pixels(path)
        return
    lossless, _ = read_pixels(path)
    reference, _ = read_pixels(_tagged_copy("MR_small.dcm", tmp_path))
    np.testing.assert_array_equal(lossless, reference)


def test_missing_decoder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_dicom(tmp_path / "r.dcm", ramp(), rle=True)

    def no_decoder(self):
        raise RuntimeError(
            "Unable to decode the pixel data as the 'pylibjpeg-rle' plugin is missing"
        )

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(no_decoder))
    with pytest.raises(
        MammoDicomError, match=r"r\.dcm: cannot decode transfer syntax RLE Lossless.*pylibjpeg-rle"
    ):
        read_pixels(path)


@pytest.mark.parametrize(
    ("style", "name", "extra", "source"),
    [
        ("standard", "1-1.dcm", {}, "ImageLaterality+ViewPosition"),
        ("alternative", "1-1.dcm", {}, "Laterality+ViewCodeSequence"),
        ("description", "1-1.dcm", {}, "SeriesDescription"),
        ("none", "1-1.dcm", {"patient_id": "Calc-Test_P_00038_LEFT_MLO"}, "PatientID"),
        ("none", "P_00038_LEFT_MLO.dcm", {}, "file name"),
    ],
)
def test_view_and_laterality_fallbacks(
    tmp_path: Path, style: str, name: str, extra: dict, source: str
) -> None:
    laterality, view = (
        ("L", "MLO") if "MLO" in str(extra) + name or style == "none" else ("R", "CC")
    )
    path = write_dicom(tmp_path / name, ramp(), laterality, view, tag_style=style, **extra)
    header = read_header(path)
    assert (header.laterality, header.view_position, header.source) == (laterality, view, source)
    assert header.spacing == (0.07, 0.07) and header.rows == 32 and header.columns == 24


def test_no_view_source_names_the_file_and_tags(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "1-130.dcm", ramp(), tag_style="none")
    with pytest.raises(
        MammoDicomError,
        match=r"1-130\.dcm: no laterality found \(tried ImageLaterality, Laterality, ViewPosition",
    ):
        read_header(path)


def test_right_breasts_are_flipped(tmp_path: Path) -> None:
    left, header = read_pixels(write_dicom(tmp_path / "l.dcm", ramp(), "L", "CC"))
    right, _ = read_pixels(write_dicom(tmp_path / "r.dcm", ramp()[:, ::-1], "R", "CC"))
    assert header.view == "lcc"
    np.testing.assert_allclose(right, left, atol=1e-6)  # acquired mirrored, read the same way
    unflipped, _ = read_pixels(tmp_path / "r.dcm", flip_right=False)
    np.testing.assert_allclose(unflipped, left[:, ::-1], atol=1e-6)


def test_truncated_and_non_dicom_files(tmp_path: Path) -> None:
    whole = write_dicom(tmp_path / "whole.dcm", ramp(64, 64))
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole.read_bytes()[:-3000])
    with pytest.raises(MammoDicomError, match=r"cut\.dcm: .*(truncated|unreadable)"):
        read_pixels(cut)
    text = tmp_path / "notes.dcm"
    text.write_text("not an image")
    with pytest.raises(MammoDicomError, match=r"notes\.dcm: not a DICOM file"):
        read_header(text)
    bundled = tmp_path / "MR_truncated.dcm"
    shutil.copy(get_testdata_file("MR_truncated.dcm"), bundled)
    with pytest.raises(MammoDicomError, match="MR_truncated"):
        read_pixels(bundled)
