"""Hydra callbacks: the run folder checked before Hydra writes into it, and the
cross-validation summary once every fold job of a multirun has ended."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from kbaselines.core.cv.summary import IncompleteRunError, summarize_run

__all__ = ["CheckRunFolder", "RunFolderError", "SummarizeFolds", "check_writable_folder"]

log = logging.getLogger(__name__)


class RunFolderError(PermissionError):
    """The run folder cannot be written."""


def check_writable_folder(folder: Path) -> None:
    """Check that this user can make ``folder`` (or write into it) and write the files Hydra
    appends to or replaces in an earlier start's folder (``*.log``, ``.hydra/``).

    Raises:
        RunFolderError: naming the path that stops it and how to go on.
    """
    folder = folder.absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RunFolderError(_cannot_write(folder, f"{existing} is a file", "move it away"))
    written = [existing]
    if existing == folder:
        written += [*folder.glob("*.log"), *folder.glob(".hydra"), *folder.glob(".hydra/*")]
    for entry in written:
        if not os.access(entry, os.W_OK | (os.X_OK if entry.is_dir() else 0)):
            problem = f"{entry} is read-only for this user"
            raise RunFolderError(_cannot_write(folder, problem, f"chmod u+w {entry}"))


def _cannot_write(folder: Path, problem: str, fix: str) -> str:
    return (
        f"the run folder {folder} cannot be written: {problem}. Fix it ({fix}) or write the "
        "run elsewhere: run_name=<new name>, paths.log_dir=<a writable folder> or "
        "hydra.run.dir=<a writable folder>"
    )


class CheckRunFolder(Callback):
    """``on_run_start`` / ``on_multirun_start``: stop at an unwritable run folder with a message,
    before Hydra's file logging fails on it with a traceback.

    Hydra turns a callback's exceptions into warnings and goes on, so the stop is a ``SystemExit``
    (exit code 1, the message on stderr).
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _stop_unless_writable(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _stop_unless_writable(Path(config.hydra.sweep.dir))


def _stop_unless_writable(folder: Path) -> None:
    try:
        check_writable_folder(folder)
    except RunFolderError as error:
        raise SystemExit(f"Error: {error}") from None


class SummarizeFolds(Callback):
    """``on_multirun_end``: write ``cv_summary.*`` in the sweep folder (folds as jobs)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.sweep.dir)
        if not (run_dir / "splits.json").is_file():
            log.info("%s holds no splits.json: nothing to summarize", run_dir)
            return
        try:
            summarize_run(run_dir)
        except IncompleteRunError as error:
            log.warning("No summary yet: %s", error)
            return
        log.info("Summary of %s:\n%s", run_dir, (run_dir / "cv_summary.md").read_text())
