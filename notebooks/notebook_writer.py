"""Notebooks written from code: ``notebooks/make_<name>_notebook.py`` keeps the cells as Python."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

__all__ = ["write_notebook"]


def write_notebook(cells: list[nbformat.NotebookNode], path: Path) -> Path:
    """Write ``cells`` as an unexecuted Python 3 notebook at ``path``; return the path."""
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path
