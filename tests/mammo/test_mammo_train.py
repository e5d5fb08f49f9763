"""The two-stage baseline on synthetic mammograms (learning test), and the entry points and the
notebook on a tiny finished run (24 cases, one stage-1 and one stage-2 epoch of two batches).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from mammo_fixtures import TINY_RUN

EXPERIMENT = "+experiment=mammo_resnet34_maps_synthetic"


def _train(folder: Path, run_entry_point, *overrides: str) -> tuple[Path, list[str]]:
    data = [EXPERIMENT, f"paths.data_dir={folder}/data", *overrides]
    run_entry_point(
        "train.py",
        *data,
        f"paths.log_dir={folder}/logs",
        "run_name=run",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        timeout=3600,
    )
    return folder / "logs" / "mammo_resnet34_maps_synthetic" / "run", data


@pytest.fixture(scope="module")
def mammo_run(tmp_path_factory: pytest.TempPathFactory, run_entry_point) -> tuple[Path, list[str]]:
    """The quick job as a user runs it: 96 cases, 2 folds."""
    return _train(tmp_path_factory.mktemp("mammo_run"), run_entry_point)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, run_entry_point) -> tuple[Path, list[str]]:
    """A run of the whole pipeline in little time: 24 cases, 2 + 2 batches, 20 bootstrap samples."""
    return _train(
        tmp_path_factory.mktemp("mammo_tiny"),
        run_entry_point,
        *TINY_RUN,
    )


@pytest.mark.learning
def test_two_stage_baseline_reaches_case_auc(mammo_run: tuple[Path, list[str]]) -> None:
    """Pooled out-of-fold case-level cancer AUC >= 0.85 and benign-vs-normal AUC >= 0.80 in each
    fold, over 2 folds (the issues' targets).

    The recipe (mammo_resnet34_maps_synthetic): 128x104 views cached at full size, 64 px patches
    fed at 64 px (one scale for both stages), ResNet-34 features at stride 16 (8x7 maps), batch
    normalisation from batch statistics, 4 patch epochs + 6 whole-view epochs, the final weights
    tested. Measured on the committed generator (96 cases, 2 folds), idle machine: cancer AUC 1.000
    in both folds (pooled 1.000), benign AUC 1.000 in both; train.py alone 68 s. With the former
    recipe (1 whole-view epoch, best epoch chosen on cancer AUC) benign AUC was 0.54.
    Before the batch-statistics change the same recipe scored whole views at AUC 0.45-0.6 after
    stage 1 (running statistics gathered on patches do not fit whole views).
    """
    run, _ = mammo_run
    summary = json.loads((run / "cv_summary.json").read_text())
    assert summary["num_folds"] == 2
    pooled = summary["pooled"]["test/roc_auc"]
    assert pooled >= 0.85, summary
    metrics = summary["metrics"]
    assert min(metrics["test/benign_auc"]["folds"]) >= 0.80, metrics["test/benign_auc"]
    assert {
        "test/sensitivity",
        "test/specificity",
        "test/precision",
        "test/benign_auc",
        "test/roc_auc_ci_low",
    } <= set(metrics)
    tested = [
        r["case_id"]
        for fold in ("fold_0", "fold_1")
        for r in csv.DictReader((run / fold / "predictions_test.csv").open())
    ]
    assert sorted(tested) == sorted(set(tested)) and len(tested) == 96


@pytest.mark.cli
def test_run_outputs(tiny_run: tuple[Path, list[str]]) -> None:
    run, _ = tiny_run
    summary = json.loads((run / "cv_summary.json").read_text())
    assert "test/roc_auc" in summary["pooled"]
    assert {"test/sensitivity", "test/specificity", "test/precision", "test/benign_auc"} <= set(
        summary["metrics"]
    )
    tested = []
    for fold in ("fold_0", "fold_1"):
        rows = list(csv.DictReader((run / fold / "predictions_test.csv").open()))
        assert {"case_id", "score", "target", "benign_score", "predicted"} <= set(rows[0])
        tested += [r["case_id"] for r in rows]
        assert len(list((run / fold / "overlays_test").glob("*.png"))) == 4
        assert "| device |" in (run / fold / "subgroups_test.md").read_text()
        assert (run / fold / "roc_test.png").is_file()
    assert sorted(tested) == sorted(set(tested)) and len(tested) == 24  # each case tested once


@pytest.mark.cli
def test_score_script_rescores_predictions(
    tiny_run: tuple[Path, list[str]], run_entry_point, tmp_path: Path
) -> None:
    run, _ = tiny_run
    data_root = run.parents[2] / "data" / "mammo_synthetic"
    prediction = run / "fold_0" / "predictions_test.csv"
    result = run_entry_point(
        "scripts/score.py",
        "family=mammo",
        f"gt={data_root}/metadata.csv",
        f"pred={prediction}",
        f"pred2={run / 'fold_1' / 'predictions_test.csv'}",
        "bootstrap=50",
    )
    fold = json.loads((run / "fold_0" / "metrics.json").read_text())
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("roc_auc:"))
    assert float(line.split(":")[1]) == pytest.approx(fold["test/roc_auc"], abs=1e-4)
    assert "No DeLong test" in result.stdout  # the folds share no case
    rows = list(csv.DictReader(prediction.open()))
    other = tmp_path / "other.csv"
    with other.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case_id", "cancer_score"])
        writer.writeheader()
        writer.writerows(
            {"case_id": r["case_id"], "cancer_score": 1 - float(r["score"])} for r in rows
        )
    result = run_entry_point(
        "scripts/score.py",
        "family=mammo",
        f"gt={data_root}/metadata.csv",
        f"pred={prediction}",
        f"pred2={other}",
        "bootstrap=0",
    )
    assert "DeLong test on the " in result.stdout and "p_value" in result.stdout


@pytest.mark.cli
def test_check_dataset_reports_counts(
    tiny_run: tuple[Path, list[str]], run_entry_point, tmp_path: Path
) -> None:
    run, _ = tiny_run
    root = run.parents[2] / "data" / "mammo_synthetic"
    report_path = tmp_path / "report.json"
    result = run_entry_point(
        "scripts/check_dataset.py",
        "data=mammo",
        f"data.root={root}",
        f"data.cache_dir={tmp_path}/cache",
        f"report_path={report_path}",
    )
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["counts"]["cases per class"] == {
        "cancer": 8,
        "benign": 8,
        "normal": 8,
    }
    assert report["counts"]["views per case"] == {"4": 24} and "lesions per class" in result.stdout


@pytest.mark.cli
def test_notebook_runs_on_the_finished_run(
    tiny_run: tuple[Path, list[str]], execute_notebook
) -> None:
    run, data = tiny_run
    images = execute_notebook("mammo.ipynb", MAMMO_RUN=str(run), MAMMO_DATA=" ".join(data[1:]))
    assert images >= 4
