"""One run folder per start, the same in every process of that start.

The default ``run_name`` is a timestamp. Lightning's local DDP re-runs ``sys.argv`` in each extra rank
seconds later, submitit jobs and requeued jobs resolve the config again, and two users starting in
the same second would share a folder. Pinning the name in ``sys.argv`` before Hydra reads it fixes
all three: every rank and every job sees the same explicit ``run_name=...``, and the process id
in it keeps two starts apart.
"""

from __future__ import annotations

import os
import time

__all__ = ["pin_run_name"]


def pin_run_name(argv: list[str], prefix: str = "") -> list[str]:
    """``argv`` with ``run_name=<prefix><timestamp>_<pid>`` added unless it names a run.

    The override goes just before the first one given (or last), so that the overrides stay one
    block between Hydra's flags (``-m``, ``--cfg job``), as its command-line parser requires.
    """
    if any(a.split("=", 1)[0].lstrip("+~") == "run_name" for a in argv[1:]):
        return argv
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    overrides = [i for i, a in enumerate(argv) if i and "=" in a and not a.startswith("-")]
    at = overrides[0] if overrides else len(argv)
    return [*argv[:at], f"run_name={prefix}{stamp}_{os.getpid()}", *argv[at:]]
