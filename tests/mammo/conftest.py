"""Mammography fixtures: a small synthetic tree made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbaselines.mammo.synthetic import generate_mammo


@pytest.fixture(scope="session")
def mammo_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-case synthetic tree (4 cancer, 4 benign, 4 normal), generated once."""
    return generate_mammo(tmp_path_factory.mktemp("mammo") / "tree", num_cases=12, seed=0)
