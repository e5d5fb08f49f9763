"""Known third-party noise is silenced by exact message, and nothing else is."""

from __future__ import annotations

import logging
import warnings

import pytest

from kbaselines.core.quiet import KNOWN_LOG_LINES, KNOWN_WARNINGS, silence_known_noise


def test_known_warnings_are_silenced_and_others_still_show() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_noise()
        for message in KNOWN_WARNINGS:
            warnings.warn(message, FutureWarning, stacklevel=1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated in a new way", stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "`isinstance(treespec, LeafSpec)` is deprecated in a new way"
    ]


def test_lightning_tips_are_dropped_and_its_other_lines_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    silence_known_noise()
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=logger.name):
        for line in KNOWN_LOG_LINES:
            logger.info(f"{line} and the rest of it")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
