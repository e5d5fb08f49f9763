"""Pick the checkpoint a restarted fold resumes from: the newest one that loads."""

from __future__ import annotations

import logging
from pathlib import Path

from kbaselines.core.cluster.checkpoint_io import load_checkpoint, previous_path

__all__ = ["ResumeError", "resume_candidates", "resume_checkpoint"]

log = logging.getLogger(__name__)

# written by the preemption handler in the fold folder (Lightning's naming, hpc_ckpt_<n>.ckpt)
HPC_PATTERN = "hpc_ckpt_*.ckpt"


class ResumeError(RuntimeError):
    """A fold has resume checkpoints but none can be used: it is not silently started over."""


def resume_candidates(fold_dir: Path) -> list[Path]:
    """Preemption checkpoints, ``last.ckpt`` and ``last-prev.ckpt`` of a fold, newest first."""
    last = fold_dir / "checkpoints" / "last.ckpt"
    paths = [*fold_dir.glob(HPC_PATTERN), last, previous_path(last)]
    existing = [p for p in paths if p.is_file()]
    return sorted(existing, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _unusable(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from, or None when it can."""
    try:
        checkpoint = load_checkpoint(path, mmap=True)
    except Exception as error:
        return str(error)
    if "state_dict" not in checkpoint or "loops" not in checkpoint:
        return "it is not a Lightning training checkpoint (no state_dict or loops)"
    return None


def resume_checkpoint(fold_dir: Path) -> Path | None:
    """The newest usable resume checkpoint of the fold, or ``None`` when the fold has none.

    A newer file that cannot be used (damaged on disk, written by another program, or holding
    more than tensors and plain values, which is never unpickled) is named in a warning and the
    run falls back to the previous good checkpoint. When every checkpoint is unusable the fold is
    not started over behind the user's back: :class:`ResumeError` names each file, why, and what
    to do. Temporary files of writes cut short by a kill are removed. Called on rank 0 only.

    Raises:
        ResumeError: the fold has resume checkpoints and none can be used.
    """
    for stale in [
        *fold_dir.glob(".*.ckpt.*.tmp"),
        *(fold_dir / "checkpoints").glob(".*.ckpt.*.tmp"),
    ]:
        log.info("Removing %s, a checkpoint write cut short by a kill", stale)
        stale.unlink(missing_ok=True)
    refused: list[str] = []
    for path in resume_candidates(fold_dir):
        reason = _unusable(path)
        if reason is None:
            if refused:
                log.warning(
                    "Resuming %s from %s; the newer checkpoints were not used:\n  %s",
                    fold_dir.name,
                    path,
                    "\n  ".join(refused),
                )
            return path
        refused.append(f"{path}: {reason}")
    if refused:
        raise ResumeError(
            f"{fold_dir} cannot be resumed: none of its checkpoints can be used\n  "
            + "\n  ".join(refused)
            + f"\nTo start this fold over, move these files out of {fold_dir}; to resume, put a "
            "checkpoint written by K-Baselines back as checkpoints/last.ckpt"
        )
    return None
