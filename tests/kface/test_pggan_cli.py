"""PGGAN entry points in real subprocesses: a tiny train.py run, generate.py, the model summary
and the notebook on the finished run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A run of seconds: 16 people, 8x8 faces, three phases of 64 images."""
    data = tmp_path_factory.mktemp("pggan_data")
    return [
        "+experiment=kface_pggan_synthetic",
        f"paths.data_dir={data}",
        f"data.root={data}/kface_tiny",
        f"paths.cache_dir={data}/cache",
        "data.synthetic.num_people=16",
        "data.synthetic.sessions=[S001,S002]",
        "data.synthetic.lights=[L1]",
        "cv.test_size=0.2",
        "model.resolution=8",
        "model.fade_kimg=0.064",
        "model.stab_kimg=0.064",
        "model.final_kimg=0.064",
        "model.metric_images=32",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
    ]


@pytest.fixture(scope="module")
def finished_run(
    tiny: list[str], tmp_path_factory: pytest.TempPathFactory, run_entry_point
) -> Path:
    logs = tmp_path_factory.mktemp("pggan_logs")
    run_entry_point("train.py", *tiny, f"paths.log_dir={logs}", "run_name=done")
    return logs / "kface_pggan_synthetic" / "done"


def test_run_folder_has_phases_samples_and_metrics(finished_run: Path) -> None:
    fold = finished_run / "fold_0"
    summary = json.loads((finished_run / "cv_summary.json").read_text())
    assert summary["scheme"] == "holdout" and summary["num_folds"] == 1
    assert {"test/swd", "test/ms_ssim"} <= set(summary["metrics"])
    rows = (fold / "phase_metrics.csv").read_text().splitlines()
    assert rows[0] == "phase,resolution,kind,kimg,swd,ms_ssim" and len(rows) == 4
    grids = sorted(p.name for p in (fold / "samples").iterdir())
    assert grids == ["phase00_4px_stab.png", "phase01_8px_fade.png", "phase02_8px_stab.png"]
    assert (fold / "samples_test.png").is_file() and (fold / "phase_metrics.png").is_file()


def test_generate_writes_one_image_per_seed(
    finished_run: Path, tmp_path: Path, run_entry_point
) -> None:
    from PIL import Image

    ckpt = finished_run / "fold_0" / "checkpoints" / "last.ckpt"
    run_entry_point(
        "scripts/generate.py", f"ckpt_path={ckpt}", f"out_dir={tmp_path}", "seeds=[3,7]"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "grid.png",
        "predict_report.json",
        "seed0003.png",
        "seed0007.png",
    ]
    report = json.loads((tmp_path / "predict_report.json").read_text())
    assert report["checkpoints"][0]["path"] == str(ckpt)
    first = Image.open(tmp_path / "seed0003.png")
    assert first.size == (8, 8) and first.mode == "RGB"
    again = tmp_path / "again"
    run_entry_point("scripts/generate.py", f"ckpt_path={ckpt}", f"out_dir={again}", "num=4")
    assert len(list(again.glob("seed*.png"))) == 4
    # the same seed gives the same face
    assert (again / "seed0003.png").read_bytes() == (tmp_path / "seed0003.png").read_bytes()


def test_model_summary_at_1024(run_entry_point) -> None:
    result = run_entry_point(
        "scripts/model_summary.py", "+experiment=kface_pggan", "model.resolution=1024"
    )
    assert "generator:     23,086,795 parameters" in result.stdout
    assert "discriminator: 23,087,249 parameters" in result.stdout


def test_notebook_runs_on_a_finished_run(
    finished_run: Path, tiny: list[str], execute_notebook
) -> None:
    images = execute_notebook(
        "pggan.ipynb",
        PGGAN_RUN=str(finished_run),
        PGGAN_DATA=" ".join([*tiny[1:6], "model.resolution=8"]),
    )
    assert images >= 4


def test_same_command_twice_gives_the_same_metrics(
    finished_run: Path, tiny: list[str], tmp_path: Path, run_entry_point
) -> None:
    run_entry_point("train.py", *tiny, f"paths.log_dir={tmp_path}", "run_name=again")
    again = tmp_path / "kface_pggan_synthetic" / "again"
    first = json.loads((finished_run / "cv_summary.json").read_text())["metrics"]
    assert json.loads((again / "cv_summary.json").read_text())["metrics"] == first
