"""Pose fixtures: a small synthetic multi-view dataset generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbaselines.core.config import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared" / "real"

#: The generator arguments of the session's dataset (smaller than data=pose_synthetic's).
SMALL = {"num_recordings": 6, "frames_per_recording": 3, "num_cameras": 4, "seed": 1}


@pytest.fixture(scope="session")
def pose_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic pose dataset of 6 recordings x 3 instants x 4 cameras, made once."""
    from kbaselines.pose.synthetic import ensure_synthetic_pose

    return ensure_synthetic_pose(tmp_path_factory.mktemp("pose") / "pose_small", **SMALL)


@pytest.fixture()
def shared_real() -> Path:
    """``/work/shared/real`` (the real reference fixtures), or a clean skip without it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    return SHARED
