"""predict.py and export.py for mammography: a tiny run's fold predicts its test studies as its
test did, a run folder is a fold ensemble, bad studies are reported and the rest predicted, and the
exported network (ONNX with a dynamic batch, TorchScript, safetensors) computes what PyTorch does.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mammo_fixtures import TINY_RUN
from safetensors.torch import load_file

from kbaselines.core.builders import build_task
from kbaselines.core.cluster.checkpoint_io import load_checkpoint
from kbaselines.core.config import compose_config
from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.predict.checkpoints import LoadedTask
from kbaselines.core.predict.export import export_model, onnx_parity
from kbaselines.core.predict.run import build_predictor, run_predict
from kbaselines.mammo.predict import ONNX_TOLERANCE
from kbaselines.mammo.resnet_maps import view_probabilities

EXPERIMENT = "+experiment=mammo_resnet34_maps_synthetic"
#: the tiny overrides of test_mammo_train.py (24 cases, 2 folds, one patch and one view epoch of
#: two batches) with running statistics: with batch statistics a view's scores depend on the views
#: batched with it, and the test loader batches other views than predict.py does
TINY = [
    *TINY_RUN,
    "model.num_overlay_cases=1",
    "model.net.batch_stats=false",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, run_entry_point) -> Path:
    """A finished 2-fold run (about 50 s); predict.py takes its model and data settings from it."""
    folder = tmp_path_factory.mktemp("mammo_predict")
    run_entry_point(
        "train.py",
        EXPERIMENT,
        f"paths.data_dir={folder}/data",
        *TINY,
        f"paths.log_dir={folder}/logs",
        "run_name=run",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
    )
    return folder / "logs" / "mammo_resnet34_maps_synthetic" / "run"


def _rows(path: Path) -> dict[str, dict[str, str]]:
    return {row["case_id"]: row for row in csv.DictReader(path.open())}


def _checkpoint(run: Path, fold: int) -> Path:
    tested = json.loads((run / f"fold_{fold}" / "metrics.json").read_text())["tested_checkpoint"]
    return run / f"fold_{fold}" / "checkpoints" / f"{tested}.ckpt"


def _studies(run: Path, fold: int, into: Path, count: int | None = None) -> list[str]:
    """Copy the DICOM folders of the fold's first ``count`` test cases into ``into``."""
    images = run.parents[2] / "data" / "mammo_synthetic" / "images"
    cases = list(_rows(run / f"fold_{fold}" / "predictions_test.csv"))[:count]
    for case in cases:
        shutil.copytree(images / case, into / case)
    return cases


@pytest.mark.cli
def test_predict_gives_the_fold_test_predictions(
    tiny_run: Path, run_entry_point, tmp_path: Path
) -> None:
    run = tiny_run
    cases = _studies(run, 0, tmp_path / "studies")
    out = tmp_path / "out"
    run_entry_point(
        "predict.py",
        EXPERIMENT,
        f"ckpt_path={_checkpoint(run, 0)}",
        f"input={tmp_path / 'studies'}",
        f"out={out}",
    )
    expected = _rows(run / "fold_0" / "predictions_test.csv")
    got = _rows(out / "cases.csv")
    assert sorted(got) == sorted(cases) == sorted(expected)
    for case, row in expected.items():
        for key in ("score", "benign_score"):
            assert float(got[case][key]) == pytest.approx(float(row[key]), abs=1e-5), (case, key)
        assert got[case]["predicted"] == row["predicted"], case
        assert (out / got[case]["overlay"]).stat().st_size > 0
    # the case score is the max over breasts of the mean over each breast's views (the task's)
    row = got[cases[0]]
    left = np.mean([float(row["lcc_score"]), float(row["lmlo_score"])])
    right = np.mean([float(row["rcc_score"]), float(row["rmlo_score"])])
    assert float(row["left_score"]) == pytest.approx(left, abs=1e-6)
    assert float(row["score"]) == pytest.approx(max(left, right), abs=1e-6)
    decision = json.loads((out / "decision.json").read_text())
    metrics = json.loads((run / "fold_0" / "metrics.json").read_text())
    assert decision["operating_point"] == pytest.approx(metrics["test/threshold"], abs=1e-6)
    report = json.loads((out / "predict_report.json").read_text())
    assert report["predicted"] == len(cases) and not report["ensemble"]


def _break(studies: Path, case: str, name: str, damage) -> str:
    """A copy of ``case`` named ``name`` with its first DICOM file damaged; that file's name."""
    shutil.copytree(studies / case, studies / name)
    victim = sorted((studies / name).glob("*.dcm"))[0]
    damage(victim)
    return f"{name}/{victim.name}"


@pytest.mark.cli
def test_run_folder_is_an_ensemble_and_bad_studies_are_reported(
    tiny_run: Path, tmp_path: Path
) -> None:
    run = tiny_run
    studies = tmp_path / "studies"
    good = _studies(run, 0, studies, count=2)
    _break(studies, good[0], "missing_view", Path.unlink)
    truncated = _break(
        studies, good[0], "truncated", lambda p: p.write_bytes(p.read_bytes()[:-300])
    )
    not_dicom = _break(
        studies, good[1], "not_dicom", lambda p: p.write_text("a report, not a scan")
    )
    (studies / "notes.txt").write_text("stray")
    out = tmp_path / "out"
    cfg = compose_config(
        [EXPERIMENT, f"ckpt_path={run}", f"input={studies}", f"out={out}"], config_name="predict"
    )
    report = run_predict(cfg)

    folds = [_checkpoint(run, 0), _checkpoint(run, 1)]
    assert report["ensemble"] and [c["path"] for c in report["checkpoints"]] == list(
        map(str, folds)
    )
    assert report["predicted"] == 2 and report["counts"]["cases"] == 2
    problems = {p["item"]: p["reason"] for p in report["problems"]}
    assert problems["missing_view"].startswith("missing view(s) rcc")
    assert "pixel data" in problems[truncated].lower()  # cut inside its (encapsulated) pixels
    assert "not a DICOM file" in problems[not_dicom] and "missing view(s)" in problems["not_dicom"]
    assert "not in a study folder" in problems["notes.txt"]

    got = _rows(out / "cases.csv")
    single = _rows(run / "fold_0" / "predictions_test.csv")
    assert sorted(got) == sorted(good)
    for case in good:  # the mean of two folds' models, not fold 0's
        assert abs(float(got[case]["score"]) - float(single[case]["score"])) > 1e-4
    points = [load_checkpoint(path)["operating_point"] for path in folds]
    decision = json.loads((out / "decision.json").read_text())
    assert decision["operating_point"] == pytest.approx(np.mean(points))
    assert "mean of the 2 folds' operating points" in decision["how"]
    assert [c["path"] for c in decision["checkpoints"]] == list(map(str, folds))


@pytest.mark.parametrize(
    "experiment",
    [
        # the real config (stride 32, running statistics) at a small input size
        ["+experiment=mammo_resnet34_maps"],
        # the quick job: stride 16 and batch statistics (written as plain operations for ONNX)
        [EXPERIMENT],
    ],
    ids=["running_stats", "batch_stats"],
)
def test_export_matches_pytorch_with_a_dynamic_batch(
    experiment: list[str], tmp_path: Path, one_thread
) -> None:
    """Random weights; ONNX Runtime within ONNX_TOLERANCE of PyTorch on a batch of 3 (traced with 2),
    compared with the trained net itself; TorchScript and safetensors load back to the same outputs."""
    torch.manual_seed(0)
    cfg = compose_config(
        [*experiment, "data.image_size=[96,64]", "ckpt_path=x", f"out={tmp_path}"],
        config_name="export",
    )
    task = build_task(
        cfg.model, info=DataInfo(class_names=("cancer", "benign")), published_weights=False
    ).eval()
    model = LoadedTask(task, tmp_path / "fold.ckpt", "0" * 64, {"operating_point": 0.4})
    contract = build_predictor(cfg).export_contract(model)
    images = torch.rand(3, 1, 96, 64)
    with torch.inference_mode():
        expected = view_probabilities(task.net, images, task.hparams.image_pooling)

    card = export_model(model, contract, "onnx", tmp_path / "onnx")
    assert card["inputs"][0]["shape"] == ["batch", 1, 96, 64]
    assert card["operating_point"] == 0.4 and card["parity"]["max_abs_diff"] <= ONNX_TOLERANCE
    assert card["postprocessing"]["case_aggregation"] == "max"
    assert onnx_parity(contract, tmp_path / "onnx" / "model.onnx", (images,)) <= ONNX_TOLERANCE
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    scores, maps = session.run(None, {"image": images.numpy()})
    assert np.abs(scores - expected[0].numpy()).max() <= ONNX_TOLERANCE
    assert np.abs(maps - expected[1].numpy()).max() <= ONNX_TOLERANCE

    export_model(model, contract, "torchscript", tmp_path / "ts")
    with torch.inference_mode():
        traced = torch.jit.load(str(tmp_path / "ts" / "model.pt"))(images)
    torch.testing.assert_close(traced, expected, atol=1e-5, rtol=0)

    export_model(model, contract, "safetensors", tmp_path / "st")
    fresh = build_task(cfg.model, info=task.info, published_weights=False).eval()
    scorer = build_predictor(cfg).export_contract(LoadedTask(fresh, model.path, "", {})).module
    scorer.load_state_dict(load_file(str(tmp_path / "st" / "model.safetensors")))
    with torch.inference_mode():
        torch.testing.assert_close(scorer(images), expected, atol=1e-6, rtol=0)
