"""``predict.py`` and ``export.py`` for pose: a fold's test images give its test predictions, a run
folder is a heatmap-averaging ensemble, bad inputs are reported and the rest predicted, 3D from
calibrated views, and the exports (ONNX with a dynamic batch, TorchScript, safetensors) agree with
PyTorch."""

from __future__ import annotations

import csv
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kbaselines.core.config import compose_config
from kbaselines.core.predict.checkpoints import fold_checkpoints, load_task
from kbaselines.core.predict.export import onnx_parity, run_export
from kbaselines.core.predict.run import build_predictor, run_predict
from kbaselines.pose.info import PoseInfo
from kbaselines.pose.joints import JOINTS
from kbaselines.pose.reader import read_2d, read_3d

pytestmark = pytest.mark.cli

EXPERIMENT = "+experiment=pose_simple_baseline_synthetic"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, run_entry_point) -> Path:
    """A run of seconds through train.py: 2 repetitions of the hold-out, 2 training steps each,
    on a synthetic tree of 10 recordings x 2 instants x 4 cameras (80 images of 192x144)."""
    data = tmp_path_factory.mktemp("pose_predict_data")
    logs = tmp_path_factory.mktemp("pose_predict_logs")
    run_entry_point(
        "train.py",
        EXPERIMENT,
        f"paths.data_dir={data}",
        f"paths.log_dir={logs}",
        f"paths.cache_dir={data}/cache",
        f"data.root={data}/pose_tiny",
        "data.synthetic.num_recordings=10",
        "data.synthetic.frames_per_recording=2",
        "cv.val_fraction=0.34",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        "run_name=tiny",
    )
    return logs / "pose_simple_baseline_synthetic" / "tiny"


def _root(run: Path) -> Path:
    import yaml

    return Path(yaml.safe_load((run / "config.yaml").read_text())["data"]["root"])


def _people(root: Path) -> list:
    return [p for f in sorted((root / "annotations").glob("*_2d.json")) for p in read_2d(f).people]


def _boxes(people: list, path: Path, score: float = 1.0) -> Path:
    """The people's boxes as a COCO results file (``[x, y, w, h]``, image_id = img_no)."""
    records = [
        {
            "image_id": p.img_no,
            "category_id": 1,
            "bbox": [p.bbox[0], p.bbox[1], p.bbox[2] - p.bbox[0], p.bbox[3] - p.bbox[1]],
            "score": score,
        }
        for p in people
    ]
    path.write_text(json.dumps(records))
    return path


def _predict(*overrides: str) -> dict:
    """``predict.py`` in this process (the same config and loop as the command)."""
    return run_predict(compose_config([EXPERIMENT, *overrides], config_name="predict"))


def _by_box(document: dict) -> dict:
    return {(a["img_no"], tuple(a["bbox"])): a for a in document["annotations"]}


def test_predict_on_a_folds_test_images_gives_its_test_predictions(
    run: Path, tmp_path: Path, run_entry_point
) -> None:
    """The fold's test people, given as detections of score 1 on the dataset tree, in batches of
    another size than the evaluation's: the same keypoints, scores and joint peaks."""
    test = set(json.loads((run / "splits.json").read_text())["folds"][0]["test"])
    people = [p for p in _people(_root(run)) if p.id in test]
    checkpoint = fold_checkpoints(run)[0]
    out = tmp_path / "out"
    run_entry_point(
        "predict.py",
        EXPERIMENT,
        f"ckpt_path={checkpoint}",
        f"input={_root(run)}",
        f"detections={_boxes(people, tmp_path / 'boxes.json')}",
        f"out={out}",
        "predictor.batch_size=3",
    )
    got = json.loads((out / "predictions_2d.json").read_text())
    expected = json.loads((run / "fold_0" / "predictions_test.json").read_text())
    got_people, expected_people = _by_box(got), _by_box(expected)
    assert set(got_people) == set(expected_people) and len(got_people) == len(people)
    for key, want in expected_people.items():
        np.testing.assert_allclose(got_people[key]["keypoints"], want["keypoints"], atol=1e-4)
        assert got_people[key]["score"] == pytest.approx(want["score"], abs=1e-4)
    rows = {
        (int(r["img_no"]), int(r["person_no"])): r
        for r in csv.DictReader((run / "fold_0" / "predictions_test.csv").open())
    }
    for (img_no, box), want in expected_people.items():
        peaks = [float(rows[(img_no, want["person_no"])][f"{j}_p"]) for j in JOINTS]
        np.testing.assert_allclose(got_people[(img_no, box)]["keypoint_scores"], peaks, atol=1e-4)
    assert got["info"]["checkpoints"][0]["path"] == str(checkpoint)
    report = json.loads((out / "predict_report.json").read_text())
    images = len({p.img_no for p in people})
    assert report["counts"]["images"] == images and report["problems"] == []
    assert report["counts"]["images_without_people"] == 80 - images
    drawn = sorted((out / "skeletons").rglob("*.png"))
    assert len(drawn) == images


def test_a_run_folder_averages_the_folds_heatmaps(run: Path, tmp_path: Path) -> None:
    """Every fold's checkpoint in the report; the ensemble decodes the mean of the models'
    flip-fused heatmaps (not the mean of their joints), so it differs from each fold."""
    root = _root(run)
    single, both = tmp_path / "single", tmp_path / "both"
    common = [f"input={root / 'images' / 'studio_S1' / '20260101' / '1-1'}", "predictor.draw=false"]
    _predict(f"ckpt_path={fold_checkpoints(run)[0]}", f"out={single}", *common)
    report = _predict(f"ckpt_path={run}", f"out={both}", *common)
    assert report["ensemble"] and [c["path"] for c in report["checkpoints"]] == [
        str(p) for p in fold_checkpoints(run)
    ]
    assert len(report["checkpoints"]) == 2 and all(
        len(c["sha256"]) == 64 for c in report["checkpoints"]
    )
    one = json.loads((single / "predictions_2d.json").read_text())["annotations"]
    two = json.loads((both / "predictions_2d.json").read_text())["annotations"]
    assert len(one) == len(two) == 8  # 2 instants x 4 cameras, each image one person
    assert not np.allclose([a["keypoint_scores"] for a in one], [a["keypoint_scores"] for a in two])

    cfg = compose_config([EXPERIMENT, f"ckpt_path={run}", "out=x", *common], config_name="predict")
    predictor = build_predictor(cfg)
    models = [load_task(cfg.model, p, PoseInfo) for p in fold_checkpoints(run)]
    inputs = predictor.read_inputs(root / "images" / "studio_S1" / "20260101" / "1-1")
    batch = torch.utils.data.default_collate([predictor.dataset(inputs.items)[k] for k in (0, 1)])
    with torch.inference_mode():
        fused = [m.task.fused_heatmaps(batch["image"]).numpy() for m in models]
        ensemble = predictor.predict_batch(models, batch)
    joints, peaks = predictor.codec.decode_image(
        (fused[0] + fused[1]) / 2, batch["inverse"].numpy()
    )
    np.testing.assert_allclose([e["joints"] for e in ensemble], joints, atol=1e-9)
    np.testing.assert_allclose([e["peaks"] for e in ensemble], peaks, atol=1e-6)


def test_bad_inputs_are_reported_and_the_rest_predicted(run: Path, tmp_path: Path) -> None:
    """A folder with good frames (one grey), a corrupt and a truncated image and a text file;
    detections naming an unknown image and a box of no area: each problem named, the rest done."""
    import cv2

    sources = sorted((_root(run) / "images").rglob("*.jpg"))[:3]
    folder = tmp_path / "frames"
    (folder / "clip").mkdir(parents=True)
    shutil.copy(sources[0], folder / "frame_1.jpg")
    shutil.copy(sources[1], folder / "clip" / "frame_2.jpg")
    grey = cv2.cvtColor(cv2.imread(str(sources[2])), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(folder / "frame_3.png"), grey)
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "cut.jpg").write_bytes(sources[0].read_bytes()[:600])
    (folder / "notes.txt").write_text("not an image, not an input")
    boxes = [
        {"image_id": "frame_1", "bbox": [10, 10, 60, 100], "score": 0.9},
        {"image_id": "frame_1", "bbox": [100, 20, 50, 90], "score": 0.8},
        {"image_id": "frame_2", "bbox": [40, 20, 50, 100], "score": 0.7},
        {"image_id": "frame_3", "bbox": [40, 20, 50, 100], "score": 0.6},
        {"image_id": "missing", "bbox": [1, 1, 10, 10], "score": 0.9},
        {"image_id": "frame_2", "bbox": [5, 5, 0, 10], "score": 0.9},
        {"image_id": "broken", "bbox": [1, 1, 10, 10], "score": 0.9},
    ]
    detections = tmp_path / "boxes.json"
    detections.write_text(json.dumps(boxes))
    checkpoint = fold_checkpoints(run)[0]
    out = tmp_path / "out"
    report = _predict(
        f"ckpt_path={checkpoint}", f"input={folder}", f"detections={detections}", f"out={out}"
    )
    problems = {(Path(p["item"]).name, p["record"]): p["reason"] for p in report["problems"]}
    assert set(problems) == {
        ("broken.jpg", None),
        ("cut.jpg", None),
        ("boxes.json", "detections[4]"),
        ("boxes.json", "detections[5]"),
        ("boxes.json", "detections[6]"),
    }, problems
    assert "'missing' is no readable image's name" in problems[("boxes.json", "detections[4]")]
    assert "no area" in problems[("boxes.json", "detections[5]")]
    assert report["predicted"] == 4 and report["counts"]["images"] == 3
    document = json.loads((out / "predictions_2d.json").read_text())
    assert sorted(i["img_path"] for i in document["images"]) == [
        "/clip/frame_2.jpg",
        "/frame_1.jpg",
        "/frame_3.png",
    ]
    # the boxes of an image numbered by descending score, as the evaluation numbers detections
    first = next(i["img_no"] for i in document["images"] if i["img_path"] == "/frame_1.jpg")
    numbers = {
        tuple(a["bbox"]): a["person_no"] for a in document["annotations"] if a["img_no"] == first
    }
    assert numbers == {(10, 10, 70, 110): 1001, (100, 20, 150, 110): 1002}
    assert (out / "skeletons" / "clip" / "frame_2.png").is_file()

    # without detections every readable image is one person, its whole frame
    whole = _predict(f"ckpt_path={checkpoint}", f"input={folder}", f"out={tmp_path / 'whole'}")
    assert whole["predicted"] == 3 and len(whole["problems"]) == 2
    document = json.loads((tmp_path / "whole" / "predictions_2d.json").read_text())
    assert {tuple(a["bbox"]) for a in document["annotations"]} == {(0, 0, 192, 144)}


def test_cameras_triangulate_the_instants_of_single_person_views(run: Path, tmp_path: Path) -> None:
    """The written 3D joints are the DLT of the 2D joints: fed the projected ground truth, the
    one-person instants come back within a millimetre or so; the others are listed, not mixed."""
    root = _root(run)
    people = _people(root)
    cfg = compose_config(
        [
            EXPERIMENT,
            "ckpt_path=x",
            "out=x",
            f"detections={_boxes(people, tmp_path / 'boxes.json')}",
            f"cameras={root / 'cameras.json'}",
            "predictor.draw=false",
        ],
        config_name="predict",
    )
    predictor = build_predictor(cfg)
    inputs = predictor.read_inputs(root)
    truth = {(p.img_no, p.bbox): p.keypoints for p in people}
    predictions = [
        {"joints": truth[(p.img_no, p.bbox)][:, :2], "peaks": np.ones(len(JOINTS))}
        for p, _ in inputs.items
    ]
    counts = predictor.write(inputs.items, predictions, [], tmp_path)
    written = json.loads((tmp_path / "predictions_3d.json").read_text())
    poses = {}
    for file in (root / "annotations").glob("*_3d.json"):
        poses.update(read_3d(file)[0])
    single = {instant for instant, n in poses if n == 1 and (instant, 2) not in poses}
    found = {f"{i['recording']}#{i['frame']}": i for i in written["instants"]}
    assert counts["instants_3d"] == len(found) and single <= set(found)
    for key in single:
        error = np.linalg.norm(np.array(found[key]["keypoints"]) - poses[(key, 1)], axis=1)
        assert error.max() < 5, (key, error)  # the 2D truth is rounded to 0.1 px
        assert len(found[key]["views"]) >= 2
    assert all(entry["several_people"] for entry in written["left_out"])
    assert written["joint_names"] == list(JOINTS)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_export_matches_pytorch(run: Path, tmp_path: Path, fmt: str) -> None:
    """A fold's Simple Baseline (the r18 config, 64x64 crops) exported: ONNX Runtime within the
    contract's 1e-4 on a batch of 5 (exported with 2), TorchScript and safetensors reload alike."""
    checkpoint = fold_checkpoints(run)[0]
    cfg = compose_config(
        [EXPERIMENT, f"ckpt_path={checkpoint}", f"format={fmt}", f"out={tmp_path}"],
        config_name="export",
    )
    card = run_export(cfg)
    predictor = build_predictor(cfg)
    model = load_task(cfg.model, checkpoint, PoseInfo)
    contract = predictor.export_contract(model)
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model.task.net(images)
    assert expected.shape == (5, len(JOINTS), 16, 16)
    assert card["preprocessing"]["input_size"] == [64, 64]
    module, _, function = card["postprocessing"]["function"].rpartition(".")
    owner, _, name = module.rpartition(".")
    assert callable(getattr(getattr(importlib.import_module(owner), name), function))
    if fmt == "onnx":
        assert card["parity"]["max_abs_diff"] <= 1e-4
        difference = onnx_parity(contract, tmp_path / "model.onnx", (images,))
        # measured 2e-9 on these heatmaps (peaks near 0.005): about 1e-6 of their scale
        assert difference <= 1e-4 and difference <= 1e-4 * float(expected.abs().max())
    elif fmt == "torchscript":
        with torch.inference_mode():
            got = torch.jit.load(str(tmp_path / "model.pt"))(images)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    else:
        from kbaselines.core.weights import read_state_dict

        fresh = load_task(cfg.model, checkpoint, PoseInfo).task.net
        for parameter in fresh.parameters():
            torch.nn.init.zeros_(parameter)
        fresh.load_state_dict(read_state_dict(tmp_path / "model.safetensors"))
        with torch.inference_mode():
            torch.testing.assert_close(fresh.eval()(images), expected)
