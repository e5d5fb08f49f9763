"""Generated (synthetic) dataset folders: written once, completely or not at all, one writer at a time.

Every synthetic twin is written into a temporary sibling folder, with a marker file holding the
generator's version and arguments written last, then renamed into place. A folder without the
marker (half written, or made by hand) is never taken as a finished dataset, and a folder that no
generator made is never replaced. Several processes (DDP ranks, fold jobs) may ask for the same
dataset at once: one generates under a lock, the others wait and find it made. A training run
generates a new dataset only inside the data folder (:func:`check_generation_root`): elsewhere, a
missing folder is far more likely a mistyped path to a real dataset than a wish for fake data.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "check_generation_root",
    "ensure_generated",
    "generation_lock",
    "generator_arguments",
    "read_marker",
    "write_generated",
]

log = logging.getLogger(__name__)


def generator_arguments(generate: Callable[..., Any], arguments: Mapping[str, Any]) -> dict:
    """Every argument of ``generate(root, ...)`` but ``root``, defaults filled in and sequences
    as lists, so that the marker compares equal whether a setting was given or left out.

    Raises:
        ValueError: an argument ``generate`` does not take, naming the ones it does.
    """
    known = [name for name in inspect.signature(generate).parameters if name != "root"]
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        raise ValueError(f"data.synthetic has unknown arguments {unknown}; known: {known}")
    bound = inspect.signature(generate).bind("root", **arguments)
    bound.apply_defaults()
    return {
        name: list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        for name, value in bound.arguments.items()
        if name != "root"
    }


def check_generation_root(root: str | Path, data_dir: str | Path | None, config: str) -> None:
    """Refuse to generate a synthetic dataset into a missing or empty folder outside ``data_dir``.

    A folder that holds files is left to :func:`write_generated`: a generated twin is reused or
    regenerated, anything else is refused there.

    Args:
        root: ``data.root``, where the dataset would be generated.
        data_dir: ``paths.data_dir``, the folder of generated datasets (None: unknown).
        config: the data config's name (``kface_synthetic``), for the message.

    Raises:
        FileNotFoundError: naming the path and the two ways to generate there on purpose.
    """
    root = Path(root).resolve()
    if root.is_dir() and any(root.iterdir()):
        return
    if data_dir is not None and root.is_relative_to(Path(data_dir).resolve()):
        return
    real = config.removesuffix("_synthetic")
    raise FileNotFoundError(
        f"data.root={root} is missing or empty, and data={config} would generate a synthetic "
        f"(fake) dataset there and train on it. Synthetic datasets are generated into a new folder only "
        f"inside paths.data_dir={data_dir}. For a real dataset, check the path and use its own "
        f"data config (data={real} data.root=<path>). To generate the synthetic dataset there on "
        f"purpose, set paths.data_dir to a folder that holds it (paths.data_dir={root.parent}), "
        f"or generate it first: python scripts/check_dataset.py data={config} data.root={root}"
    )


def read_marker(root: str | Path, marker_name: str) -> dict[str, Any] | None:
    """The marker of a finished dataset (generator version and arguments), or None."""
    try:
        return json.loads((Path(root) / marker_name).read_text())
    except (OSError, ValueError):
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_into_place(partial: Path, root: Path) -> None:
    """Rename the finished folder to ``root``, moving a previous generated one out of the way."""
    old = None
    if root.exists():
        old = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.old-"))
        os.replace(root, old / root.name)
    os.replace(partial, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_generated(
    root: str | Path,
    marker_name: str,
    marker: dict[str, Any],
    write: Callable[[Path], None],
    what: str,
) -> Path:
    """Write a dataset with ``write(folder)`` into a temporary sibling, then rename it to ``root``.

    Args:
        root: where the dataset goes.
        marker_name: the marker file's name inside the dataset.
        marker: what the marker holds (generator version and arguments).
        write: draws every file of the dataset into the folder it is given.
        what: the dataset's name, for messages ("K-Face").

    Raises:
        FileExistsError: ``root`` is a folder that no generator made.
    """
    root = Path(root)
    if (
        root.exists()
        and read_marker(root, marker_name) is None
        and (not root.is_dir() or any(root.iterdir()))
    ):
        raise FileExistsError(
            f"{root} exists and is not a generated {what} tree (no {marker_name}): refusing to "
            "replace it; choose another data.root, or remove the folder yourself"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.partial-"))
    try:
        partial.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the dataset is ordinary data
        write(partial)
        (partial / marker_name).write_text(json.dumps(marker, indent=2) + "\n")
        _swap_into_place(partial, root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return root


@contextlib.contextmanager
def generation_lock(root: Path) -> Iterator[None]:
    """One generator at a time per dataset: every DDP rank or job may call ``prepare_data``.

    A lock file beside the dataset (``.<name>.lock``), held with ``fcntl.flock`` where the
    platform has it; elsewhere the atomic rename still keeps half-written folders out of sight.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_generated(
    root: str | Path, marker_name: str, marker: dict[str, Any], generate: Callable[[], Path]
) -> Path:
    """Call ``generate()`` unless ``root`` already holds a dataset made with ``marker``.

    Returns:
        ``root``.
    """
    root = Path(root)
    if read_marker(root, marker_name) == marker:
        return root
    with generation_lock(root):
        if read_marker(root, marker_name) == marker:  # made by another process meanwhile
            return root
        log.info("Generating a synthetic dataset at %s (%s)", root, marker)
        generate()
    return root
