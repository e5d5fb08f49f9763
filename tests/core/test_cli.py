"""Entry points through real subprocesses on a tiny synthetic tree: resume, reproducibility, eval,
folds as separate jobs with aggregation, the results table, the model summary and the notebook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kbaselines.core.config import PROJECT_ROOT

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_kface_run) -> list[str]:
    """Overrides of a run of seconds: 16 people, 16 px, one epoch of three batches."""
    return tiny_kface_run(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="module")
def finished_run(
    tiny: list[str], tmp_path_factory: pytest.TempPathFactory, run_entry_point
) -> Path:
    logs = tmp_path_factory.mktemp("logs")
    run_entry_point("train.py", *tiny, f"paths.log_dir={logs}", "run_name=done")
    return logs / "kface_lightcnn9_synthetic" / "done"


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "cv_summary.json").read_text())["metrics"]


def test_run_folder_layout(finished_run: Path) -> None:
    assert (finished_run / "config.yaml").is_file() and (finished_run / "splits.json").is_file()
    for fold in ("fold_0", "fold_1"):
        assert (finished_run / fold / "metrics.json").is_file()
        assert (finished_run / fold / "checkpoints" / "last.ckpt").is_file()
        header = (finished_run / fold / "predictions_test.csv").read_text().splitlines()[0]
        assert header == "first,second,score,target"
    summary = json.loads((finished_run / "cv_summary.json").read_text())
    assert summary["num_folds"] == 2 and summary["scheme"] == "kfold"
    row = summary["metrics"]["test/roc_auc"]
    assert set(row) == {"mean", "std", "ci95", "folds"} and len(row["folds"]) == 2
    assert "test/roc_auc" in summary["pooled"]


def test_monitored_keys_are_logged(finished_run: Path) -> None:
    import yaml

    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    monitored = {c["monitor"] for c in config["callbacks"].values() if c and c.get("monitor")}
    header = (
        (finished_run / "fold_0" / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    )
    assert monitored and monitored <= set(header), (monitored, header)


def test_same_command_twice_gives_the_same_metrics(
    finished_run: Path, tiny: list[str], tmp_path: Path, run_entry_point
) -> None:
    run_entry_point("train.py", *tiny, f"paths.log_dir={tmp_path}", "run_name=again")
    assert _metrics(tmp_path / "kface_lightcnn9_synthetic" / "again") == _metrics(finished_run)


def test_stopped_run_skips_finished_folds_and_resumes(
    tiny: list[str], tmp_path: Path, run_entry_point
) -> None:
    args = [*tiny, f"paths.log_dir={tmp_path}", "run_name=resume"]
    run_dir = tmp_path / "kface_lightcnn9_synthetic" / "resume"
    run_entry_point("train.py", *args, "cv.fold=0")  # stopped after fold 0
    assert not (run_dir / "fold_1").exists() and not (run_dir / "cv_summary.json").exists()
    stamp = (run_dir / "fold_0" / "metrics.json").stat().st_mtime_ns
    result = run_entry_point("train.py", *args)
    assert "Fold 0 finished earlier" in result.stdout + result.stderr
    assert (run_dir / "fold_0" / "metrics.json").stat().st_mtime_ns == stamp
    assert (run_dir / "fold_1" / "metrics.json").is_file() and (
        run_dir / "cv_summary.json"
    ).is_file()
    # an interrupted fold (checkpoint, no metrics) resumes from last.ckpt
    (run_dir / "fold_1" / "metrics.json").unlink()
    result = run_entry_point("train.py", *args)
    assert "Fold 1: resuming from" in result.stdout + result.stderr
    assert (run_dir / "fold_1" / "metrics.json").is_file()


def test_changed_config_is_refused(tiny: list[str], finished_run: Path) -> None:
    logs = finished_run.parents[1]
    command = [
        sys.executable,
        "train.py",
        *tiny,
        f"paths.log_dir={logs}",
        "run_name=done",
        "trainer.max_epochs=2",
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "trainer.max_epochs: 1 -> 2" in result.stderr


def test_folds_as_jobs_then_aggregate(
    finished_run: Path, tiny: list[str], tmp_path: Path, run_entry_point
) -> None:
    run_entry_point(
        "train.py", "-m", *tiny, f"paths.log_dir={tmp_path}", "run_name=jobs", "cv.fold=0,1"
    )
    run_dir = tmp_path / "kface_lightcnn9_synthetic" / "jobs"
    (run_dir / "cv_summary.json").unlink()
    result = run_entry_point("scripts/aggregate_cv.py", f"run_dir={run_dir}")
    assert "| test/roc_auc |" in result.stdout
    assert _metrics(run_dir) == _metrics(finished_run)


def test_eval_a_checkpoint(
    finished_run: Path, tiny: list[str], tmp_path: Path, run_entry_point
) -> None:
    ckpt = finished_run / "fold_0" / "checkpoints" / "best.ckpt"
    run_entry_point(
        "eval.py",
        *tiny[:6],
        "data.input_size=[16,16]",
        f"ckpt_path={ckpt}",
        f"paths.log_dir={tmp_path}",
        "run_name=eval",
    )
    out = tmp_path / "kface_lightcnn9_synthetic" / "eval"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test/roc_auc"] <= 1.0 and 0.0 <= metrics["test/rank1"] <= 1.0
    assert (out / "roc_test.png").is_file()


def test_results_table(finished_run: Path, run_entry_point) -> None:
    result = run_entry_point("scripts/results_table.py", f"runs=[{finished_run}]")
    mean = _metrics(finished_run)["test/eer"]["mean"]
    row = result.stdout.splitlines()[-1]
    assert row.startswith(
        "| kface_lightcnn9_synthetic | 100 - EER (%) | not given | 98.70 (LFW, 100 - EER) |"
    )
    assert f"{100 - 100 * mean:.2f} ±" in row and "synthetic, 2 folds" in row
    assert row.endswith(
        "| `python train.py +experiment=kface_lightcnn9 data.root=<the dataset>` (not run here: "
        "the data is registered, and this machine has no GPU) |"
    )
    # one folder needs no brackets
    assert (
        run_entry_point("scripts/results_table.py", f"runs={finished_run}").stdout == result.stdout
    )


def test_score_names_the_known_families() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/score.py", "family=kface", "gt=a.json", "pred=b.json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "known: mammo, pose, xray" in result.stderr


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [("kface_lightcnn9", "5,480,864"), ("kface_lightcnn29", "12,573,280")],
)
def test_model_summary(experiment: str, expected: str, run_entry_point) -> None:
    result = run_entry_point("scripts/model_summary.py", f"+experiment={experiment}")
    assert f"embedding:   {expected} parameters" in result.stdout
    assert "input:       1 x 128 x 128" in result.stdout


def test_notebook_runs_on_a_finished_run(
    finished_run: Path, tiny: list[str], execute_notebook
) -> None:
    images = execute_notebook(
        "kface.ipynb", KFACE_RUN=str(finished_run), KFACE_DATA=" ".join(tiny[1:6])
    )
    assert images >= 3
