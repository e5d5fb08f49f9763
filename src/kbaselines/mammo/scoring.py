"""Score any mammography predictions file with the framework's case-level metrics.

    python scripts/score.py family=mammo gt=<metadata.csv> pred=<predictions.csv> [pred2=<other.csv>]
        [threshold=<cancer score>] [operating_point=youden|specificity] [target_specificity=0.8]
        [bootstrap=1000] [seed=0]

``pred`` is a CSV with ``case_id``, a cancer score (``score`` or ``cancer_score``) and optionally
``benign_score`` (a run's ``fold_<k>/predictions_test.csv`` is one). Without ``threshold`` the
operating point is chosen on these same cases (optimistic: say so when you report it). With
``pred2`` the two cancer AUCs are compared on the cases both files score (DeLong's test).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from kbaselines.core.metrics.classification import (
    case_metrics,
    delong_test,
    operating_point,
    roc_auc,
)
from kbaselines.mammo.index import CLASSES, read_metadata

__all__ = ["main", "read_predictions", "score"]

_SCORE_COLUMNS = ("score", "cancer_score")


def read_predictions(path: Path) -> dict[str, tuple[float, float | None]]:
    """``case_id`` to (cancer score, benign score or None).

    Raises:
        ValueError: a missing column, a value that is not a number, a case listed twice.
    """
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        column = next((c for c in _SCORE_COLUMNS if c in columns), None)
        if "case_id" not in columns or column is None:
            raise ValueError(
                f"{path}: needs columns case_id and score (or cancer_score); has {columns}"
            )
        result: dict[str, tuple[float, float | None]] = {}
        for number, row in enumerate(reader, start=2):
            case = row["case_id"].strip()
            if case in result:
                raise ValueError(f"{path} [row {number}]: case {case} listed twice")
            try:
                benign = row.get("benign_score")
                result[case] = (
                    float(row[column]),
                    float(benign) if benign not in (None, "") else None,
                )
            except ValueError as error:
                raise ValueError(f"{path} [row {number}]: {error}") from error
    return result


def _truth(path: Path) -> dict[str, str]:
    truth = {}
    for number, row in enumerate(read_metadata(path), start=2):
        case, grp = row.get("case_id") or row.get("recvid"), row.get("grp")
        if grp not in CLASSES:
            raise ValueError(f"{path} [row {number}]: grp {grp!r}, expected one of {CLASSES}")
        truth[str(case)] = grp
    return truth


def score(
    truth: dict[str, str],
    predictions: dict[str, tuple[float, float | None]],
    threshold: float | None = None,
    method: str = "youden",
    target_specificity: float = 0.8,
    num_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Case metrics of ``predictions`` (every predicted case must be in ``truth``)."""
    unknown = sorted(set(predictions) - set(truth))
    if unknown:
        raise ValueError(
            f"{len(unknown)} predicted cases are not in the ground truth, e.g. {unknown[:5]}"
        )
    cases = sorted(predictions)
    scores = np.array([predictions[c][0] for c in cases])
    targets = np.array([int(truth[c] == "cancer") for c in cases])
    if threshold is None:
        threshold = operating_point(scores, targets, method, target_specificity)
    metrics = case_metrics(scores, targets, threshold, num_bootstrap, seed)
    rest = [c for c in cases if truth[c] != "cancer" and predictions[c][1] is not None]
    if rest:
        metrics["benign_auc"] = roc_auc(
            np.array([predictions[c][1] for c in rest]),
            np.array([int(truth[c] == "benign") for c in rest]),
        )
    metrics["cases"] = float(len(cases))
    return metrics


def main(options: dict[str, str]) -> int:
    """Print the metrics of ``pred`` (and of ``pred2`` with the DeLong comparison)."""
    try:
        truth = _truth(Path(options["gt"]))
        files = [Path(options[k]) for k in ("pred", "pred2") if k in options]
        if not files:
            raise KeyError("pred")
        threshold = float(options["threshold"]) if "threshold" in options else None
        runs = [read_predictions(f) for f in files]
        for path, predictions in zip(files, runs, strict=True):
            metrics = score(
                truth,
                predictions,
                threshold,
                options.get("operating_point", "youden"),
                float(options.get("target_specificity", 0.8)),
                int(options.get("bootstrap", 1000)),
                int(options.get("seed", 0)),
            )
            missing = len(set(truth) - set(predictions))
            chosen = "given" if threshold is not None else "chosen on these cases (optimistic)"
            print(
                f"{path}: {len(predictions)} cases scored ({missing} cases of the ground truth not predicted); operating point {chosen}"
            )
            for name, value in metrics.items():
                print(f"  {name}: {value:.4f}")
        if len(runs) == 2:
            common = sorted(set(runs[0]) & set(runs[1]))
            targets = np.array([int(truth[c] == "cancer") for c in common])
            if len(set(targets)) < 2:
                print("No DeLong test: the two files share no cases of both classes")
                return 0
            test = delong_test(
                np.array([runs[0][c][0] for c in common]),
                np.array([runs[1][c][0] for c in common]),
                targets,
            )
            print(f"DeLong test on the {len(common)} cases both files score:")
            for name, value in test.items():
                print(f"  {name}: {value:.4f}")
    except KeyError as error:
        print(
            f"score.py family=mammo: missing option {error}: gt=<metadata.csv> pred=<predictions.csv>",
            file=sys.stderr,
        )
        return 2
    except (OSError, ValueError) as error:
        print(f"score.py family=mammo: {error}", file=sys.stderr)
        return 1
    return 0
