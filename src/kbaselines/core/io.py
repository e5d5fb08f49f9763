"""Atomic file writes: a reader never sees half a file, and an interrupted run leaves none behind.

Files are made with the permissions of an ordinary ``open()`` (0666 less the umask), not the 0600 of
:func:`tempfile.mkstemp`, so that teammates sharing a cluster folder can read them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_file", "current_umask", "write_json_atomic", "write_text_atomic"]


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb", fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit rename it over ``path``.

    Args:
        path: the file to write; its folder is created.
        mode: ``"wb"`` or ``"w"``.
        fsync: flush the data to disk before the rename (checkpoints), so that a crash leaves the
            old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, mode) as file:
            yield file
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_file(path, "w") as file:
        file.write(text)
    return Path(path)


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
