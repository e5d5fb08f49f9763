"""Scale-out fixtures: a tiny synthetic K-Face run and a fake ``scontrol``."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def scale_tiny(tmp_path_factory: pytest.TempPathFactory, tiny_kface_run) -> list[str]:
    """Overrides of a run of seconds: 16 people, 16 px, one epoch of three batches, no bars."""
    return tiny_kface_run(tmp_path_factory.mktemp("scale_data"))


@pytest.fixture()
def fake_scontrol(tmp_path: Path) -> tuple[Path, Path]:
    """A ``scontrol`` that records its arguments and, like SLURM requeueing a job, kills the
    process that called it. Returns (folder to put first on PATH, the record file)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    record = tmp_path / "scontrol.log"
    script = folder / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{record}"\nkill -KILL $PPID\n')
    script.chmod(0o755)
    return folder, record
