"""Aggregate the folds of a run: per-fold values, mean, std (ddof 1), Student-t 95% interval.

Reads only what the folds wrote (``fold_<k>/metrics.json`` and ``fold_<k>/predictions_test.csv``)
and ``splits.json`` (the scheme, and the official split's overlap of the parts), so the same summary
comes out of an in-process fold loop and of folds run as separate jobs.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from kbaselines.core.io import write_json_atomic, write_text_atomic
from kbaselines.core.plots import plot_roc

__all__ = [
    "IncompleteRunError",
    "describe",
    "read_predictions",
    "summarize_run",
]

FOLD_PREFIX = "fold_"


class IncompleteRunError(RuntimeError):
    """Some folds of the run have not finished (no ``metrics.json``)."""


def describe(values: list[float]) -> dict[str, Any]:
    """Mean, standard deviation (ddof 1) and Student-t 95% interval of per-fold values.

    With one fold the spread is undefined: ``std`` and ``ci95`` are ``None``.
    """
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if len(array) < 2:
        return {"mean": mean, "std": None, "ci95": None, "folds": list(values)}
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.975, df=len(array) - 1)) * std / math.sqrt(len(array))
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "folds": list(values)}


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """Columns ``score`` and ``target`` of a fold's predictions CSV (the binary-ranking columns)."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return {
        "score": np.array([float(row["score"]) for row in rows]),
        "target": np.array([int(row["target"]) for row in rows]),
    }


def _has_ranking_columns(path: Path) -> bool:
    """True when a predictions CSV has the ``score`` and ``target`` columns of a binary ranking."""
    with open(path, newline="") as file:
        header = next(csv.reader(file), [])
    return {"score", "target"} <= set(header)


def summarize_run(run_dir: Path, plot: bool = True) -> dict[str, Any]:
    """Write ``cv_summary.json``, ``cv_summary.md`` and ``roc_folds.png`` for a finished run.

    Raises:
        IncompleteRunError: when a fold named in ``splits.json`` has no ``metrics.json``.
    """
    run_dir = Path(run_dir)
    splits = json.loads((run_dir / "splits.json").read_text())
    num_folds = splits["num_folds"]
    missing = [
        k for k in range(num_folds) if not (run_dir / f"{FOLD_PREFIX}{k}" / "metrics.json").exists()
    ]
    if missing:
        raise IncompleteRunError(
            f"{run_dir}: folds {missing} of {num_folds} have not finished; run them "
            f"(cv.fold=<k> with the same run_name) and aggregate again"
        )
    fold_metrics = [
        json.loads((run_dir / f"{FOLD_PREFIX}{k}" / "metrics.json").read_text())
        for k in range(num_folds)
    ]
    # numbers only: a fold also says which checkpoint it tested ("tested_checkpoint": "best")
    names = sorted(
        {name for metrics in fold_metrics for name, value in metrics.items() if _is_number(value)}
    )
    summary: dict[str, Any] = {
        "scheme": splits["scheme"],
        "num_folds": num_folds,
        "metrics": {
            name: describe([m[name] for m in fold_metrics])
            for name in names
            if all(_is_number(m.get(name)) for m in fold_metrics)
        },
        "pooled": {},
    }
    if splits.get("official_overlap") is not None:
        summary["official_overlap"] = splits["official_overlap"]
    curves = {}
    for k in range(num_folds):
        path = run_dir / f"{FOLD_PREFIX}{k}" / "predictions_test.csv"
        if path.exists() and _has_ranking_columns(path):
            predictions = read_predictions(path)
            curves[f"fold {k}"] = (predictions["score"], predictions["target"])
    if len(curves) == num_folds:
        scores = np.concatenate([score for score, _ in curves.values()])
        targets = np.concatenate([target for _, target in curves.values()])
        summary["pooled"]["test/roc_auc"] = float(roc_auc_score(targets, scores))
        if plot:
            curves["pooled"] = (scores, targets)
            plot_roc(curves, run_dir / "roc_folds.png", title=f"ROC, {num_folds} folds")
    write_json_atomic(run_dir / "cv_summary.json", summary)
    write_text_atomic(run_dir / "cv_summary.md", render_markdown(summary))
    return summary


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def render_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table: one row per metric, one column per fold."""
    k = summary["num_folds"]
    header = ["metric", "mean", "std", "95% CI", *[f"fold {i}" for i in range(k)]]
    lines = [
        f"Cross-validation: {summary['scheme']}, {k} folds",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, row in summary["metrics"].items():
        ci = "–" if row["ci95"] is None else f"[{row['ci95'][0]:.4f}, {row['ci95'][1]:.4f}]"
        cells = [name, _fmt(row["mean"]), _fmt(row["std"]), ci, *[_fmt(v) for v in row["folds"]]]
        lines.append("| " + " | ".join(cells) + " |")
    if summary["pooled"]:
        lines += ["", "Pooled over the out-of-fold predictions:", ""]
        lines += [f"- {name}: {value:.4f}" for name, value in summary["pooled"].items()]
    overlap = summary.get("official_overlap")
    if overlap is not None:
        examples = f" (e.g. {', '.join(overlap['examples'])})" if overlap["examples"] else ""
        lines += [
            "",
            "Official split (tested on the dataset's Validation part): "
            f"{overlap['groups']} groups{examples} have samples in both the Training and the "
            f"Validation part ({overlap['test_samples']} test samples); "
            f"{overlap['identical_files']} test files are byte-identical to training files.",
        ]
    return "\n".join(lines) + "\n"
