"""Known third-party noise, silenced by exact message so that a run shows progress and results.

With torch 2.14, Lightning's own code trips torch's ``LeafSpec`` deprecation at every loop start
(dozens of lines per fold); Lightning prints advertising tips for its cloud services and says
that our rich model summary replaces its own; and our two ``ModelCheckpoint`` callbacks (best and
last) make every ``test(ckpt_path="best")`` say which one it uses. None of them is the user's to
act on. Anything not listed here still shows.
"""

from __future__ import annotations

import logging
import re
import warnings

__all__ = ["KNOWN_LOG_LINES", "KNOWN_WARNINGS", "silence_known_noise"]

#: warning messages (exact text) that say nothing a user can act on
KNOWN_WARNINGS = (
    "`isinstance(treespec, LeafSpec)` is deprecated, "
    "use `isinstance(treespec, TreeSpec) and treespec.is_leaf()` instead.",
    '`.test(ckpt_path="best")` is called with Trainer configured with multiple '
    "`ModelCheckpoint` callbacks. It will use the best checkpoint path from first checkpoint "
    "callback.",
)
#: beginnings of Lightning's log lines that advertise its services, or that say our configured
#: rich model summary replaces its plain one
KNOWN_LOG_LINES = (
    "💡 Tip: For seamless cloud logging and experiment tracking,",
    "💡 Tip: For seamless cloud uploads and versioning,",
    "Trainer already configured with model summary callbacks:",
)
_LIGHTNING_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
)


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(KNOWN_LOG_LINES)


def silence_known_noise() -> None:
    """Hide the messages above in this process (entry points call it first; idempotent)."""
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message))
    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(_not_a_tip)
