"""Mammography (mammography.md): 4-view DICOM screening exams, contours, metadata, a decoded cache."""
