"""Pick the checkpoint a restarted fold resumes from: the newest one that loads."""

from __future__ import annotations

import logging
from pathlib import Path

from kbaselines.core.cluster.checkpoint_io import load_checkpoint, previous_path

__all__ = ["resume_candidates", "resume_checkpoint"]

log = logging.getLogger(__name__)

# written by the preemption handler in the fold folder (Lightning's naming, hpc_ckpt_<n>.ckpt)
HPC_PATTERN = "hpc_ckpt_*.ckpt"


def resume_candidates(fold_dir: Path) -> list[Path]:
    """Preemption checkpoints, ``last.ckpt`` and ``last-prev.ckpt`` of a fold, newest first."""
    last = fold_dir / "checkpoints" / "last.ckpt"
    paths = [*fold_dir.glob(HPC_PATTERN), last, previous_path(last)]
    existing = [p for p in paths if p.is_file()]
    return sorted(existing, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _readable(path: Path) -> bool:
    try:
        checkpoint = load_checkpoint(path, mmap=True)
    except Exception as error:
        log.warning("Checkpoint %s cannot be read (%s): skipped", path, error)
        return False
    if "state_dict" not in checkpoint or "loops" not in checkpoint:
        log.warning("Checkpoint %s is not a Lightning training checkpoint: skipped", path)
        return False
    return True


def resume_checkpoint(fold_dir: Path) -> Path | None:
    """The newest readable resume checkpoint of the fold, or ``None`` to start from scratch.

    An unreadable newer file (damaged on disk, written by another program, or holding more than
    tensors and plain values, which is never unpickled) is skipped with a warning, so the run falls back to the previous good checkpoint instead of failing or starting
    over. Temporary files of writes cut short by a kill are removed. Called on rank 0 only.
    """
    for stale in [
        *fold_dir.glob(".*.ckpt.*.tmp"),
        *(fold_dir / "checkpoints").glob(".*.ckpt.*.tmp"),
    ]:
        log.info("Removing %s, a checkpoint write cut short by a kill", stale)
        stale.unlink(missing_ok=True)
    candidates = resume_candidates(fold_dir)
    for rank, path in enumerate(candidates):
        if _readable(path):
            if rank:
                log.warning(
                    "Falling back to %s: the newer %s could not be read",
                    path,
                    ", ".join(str(p) for p in candidates[:rank]),
                )
            return path
    return None
