"""DICOM headers kept between starts, so that a job does not read every file's tags again.

Indexing reads the tags of every DICOM file (laterality, view, size, spacing, device). At the
dataset's 30 thousand exams (120 thousand files) that is minutes per start, and every fold job,
DDP rank and requeued job starts again. The cache keeps each file's header under its path relative
to the root, with the file's size and modification time: a file whose size or time changed is read
again, a file that is gone drops out at the next save. It is one JSON file (readable, no pickle),
written through a temporary file and a rename, so a rank never sees half of it. Unreadable files
are not cached: they are read (and reported) at every start until fixed. A header is kept as the
file's tags say it, laterality or view None when no tag says them: a views table
(``data.views_table``) may give them, and editing the table needs no header read again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kbaselines.core.io import write_text_atomic
from kbaselines.mammo.dicom import DicomHeader, MammoDicomError, read_header

__all__ = ["HEADER_CACHE_VERSION", "HeaderCache"]

log = logging.getLogger(__name__)

#: Bump when :class:`DicomHeader` or the way it is read changes: older caches are then ignored.
HEADER_CACHE_VERSION = 1


class HeaderCache:
    """Headers by relative path, reused while a file's size and modification time are unchanged.

    Args:
        file: the cache file; None keeps nothing between starts (every header is read).
    """

    def __init__(self, file: str | Path | None) -> None:
        self.file = None if file is None else Path(file)
        self._stored: dict[str, dict[str, Any]] = {}
        self._current: dict[str, dict[str, Any]] = {}
        self.reused = 0
        self.read = 0
        if self.file is not None and self.file.is_file():
            try:
                data = json.loads(self.file.read_text(encoding="utf-8"))
                if data.get("version") == HEADER_CACHE_VERSION:
                    self._stored = dict(data["headers"])
            except (OSError, ValueError, KeyError, AttributeError, TypeError) as error:
                log.warning("%s: unreadable header cache (%s); reading every header", file, error)

    def header(self, path: Path, key: str) -> DicomHeader:
        """The header of ``path`` (cached under ``key``), read only when the file changed.

        Raises:
            MammoDicomError: the file is a dangling link, unreadable or not a usable DICOM (see
                :func:`read_header`; a file without laterality or view is not refused here).
        """
        try:
            stat = path.stat()
        except OSError as error:
            reason = (
                "is a dangling link: restore its target or remove it"
                if path.is_symlink()
                else f"cannot be read ({error.strerror})"
            )
            raise MammoDicomError(path, reason) from error
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = self._stored.get(key)
        if entry is not None and entry.get("stamp") == stamp:
            fields = dict(entry["header"])
            spacing = fields.get("spacing")
            fields["spacing"] = None if spacing is None else (float(spacing[0]), float(spacing[1]))
            header = DicomHeader(**fields)
            self.reused += 1
        else:
            header = read_header(path, require_view=False)
            entry = {"stamp": stamp, "header": asdict(header)}
            self.read += 1
        self._current[key] = entry
        return header

    def save(self) -> None:
        """Write the headers asked for since loading (files gone since drop out), if any changed."""
        if self.file is None or (self.read == 0 and self._current.keys() == self._stored.keys()):
            return
        document = {"version": HEADER_CACHE_VERSION, "headers": self._current}
        write_text_atomic(self.file, json.dumps(document, separators=(",", ":")))
