"""Hydra callback: the cross-validation summary once every fold job of a multirun has ended."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from kbaselines.core.cv.summary import IncompleteRunError, summarize_run

__all__ = ["SummarizeFolds"]

log = logging.getLogger(__name__)


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
