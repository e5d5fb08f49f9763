"""X-ray predict.py and export.py: the evaluation's detections again, fold ensembles, bad scans,
and exports that give what PyTorch gives.

One tiny YOLO run (2 folds, a 24-scan tree of 64 px, two training steps per fold) is trained once
through ``train.py``: the point is equality with its evaluation, not quality. Faster R-CNN is
exported from a random initialisation of the smallest config.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from kbaselines.core.builders import build_task
from kbaselines.core.config import compose_config
from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.predict.checkpoints import LoadedTask, file_sha256, load_task
from kbaselines.core.predict.export import export_model, onnx_parity
from kbaselines.core.predict.run import run_predict
from kbaselines.xray.predict import DetectionPredictor, fuse_detections
from kbaselines.xray.yolo.letterbox import boxes_from_letterbox, letterbox
from kbaselines.xray.yolo.postprocess import decode_detections

YOLO_EXPERIMENT = "+experiment=xray_yolo_synthetic"
#: the tiny run's net, rebuilt here without its run folder
MODEL = [YOLO_EXPERIMENT, "model.net.image_size=64"]
TINY = [
    *MODEL,
    "data.synthetic.num_categories=3",
    "data.synthetic.samples_per_category=2",
    "data.synthetic.images_per_sample=4",
    "data.synthetic.image_size=64",
    "cv.num_folds=2",
    "cv.val_fraction=0.34",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]
#: the evaluation's batch (data.batch_size) and thread count: the same batches, the same numbers
EVAL_BATCH = 8
#: detections against the fold's coco_results_test.json
EQUAL = 1e-3

# tracing torchvision's detector warns about every shape it records
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, run_entry_point) -> SimpleNamespace:
    """The tiny run's folder and its data root (trained once for this module)."""
    data, logs = tmp_path_factory.mktemp("xray_tiny_data"), tmp_path_factory.mktemp("logs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        run_entry_point(
            "train.py", *TINY, f"paths.data_dir={data}", f"paths.log_dir={logs}", "run_name=tiny"
        )
    return SimpleNamespace(
        folder=logs / "xray_yolo_synthetic" / "tiny", root=data / "xray_synthetic"
    )


@pytest.fixture(scope="module")
def run(tiny: SimpleNamespace) -> Path:
    return tiny.folder


@pytest.fixture(scope="module")
def test_scans(tiny: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fold 0's test scans, copied (with their relative paths) into a folder of their own."""
    folder = tmp_path_factory.mktemp("scans")
    gt = json.loads((tiny.folder / "fold_0" / "coco_gt_test.json").read_text())
    for image in gt["images"]:
        (folder / image["file_name"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny.root / image["file_name"], folder / image["file_name"])
    return folder


@pytest.fixture(scope="module")
def single(run: Path, test_scans: Path, tmp_path_factory: pytest.TempPathFactory, run_entry_point):
    """predict.py with fold 0's checkpoint on its test scans (a real subprocess)."""
    out = tmp_path_factory.mktemp("predicted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # as the evaluation ran
        run_entry_point(
            "predict.py",
            YOLO_EXPERIMENT,  # the net's and data's settings come from the run's config.yaml
            f"ckpt_path={run / 'fold_0' / 'checkpoints' / 'best.ckpt'}",
            f"input={test_scans}",
            f"out={out}",
            f"predictor.batch_size={EVAL_BATCH}",
        )
    return out


def _by_file(results_file: Path, images_file: Path) -> dict[str, list[tuple]]:
    """COCO results per file name, each sorted: (category, score, x, y, w, h)."""
    names = {i["id"]: i["file_name"] for i in json.loads(images_file.read_text())["images"]}
    out: dict[str, list[tuple]] = {name: [] for name in names.values()}
    for r in json.loads(results_file.read_text()):
        out[names[r["image_id"]]].append((r["category_id"], r["score"], *r["bbox"]))
    return {name: sorted(rows, key=lambda t: (t[0], -t[1], *t[2:])) for name, rows in out.items()}


def _predict(ckpt: Path, scans: Path, out: Path, *extra: str) -> dict:
    cfg = compose_config(
        [YOLO_EXPERIMENT, f"ckpt_path={ckpt}", f"input={scans}", f"out={out}", *extra],
        config_name="predict",
    )
    return run_predict(cfg)


@pytest.mark.cli
def test_predict_gives_the_folds_test_detections(run: Path, single: Path) -> None:
    fold = run / "fold_0"
    expected = _by_file(fold / "coco_results_test.json", fold / "coco_gt_test.json")
    got = _by_file(single / "detections.json", single / "coco_images.json")
    assert got.keys() == expected.keys() and len(got) == 12
    for name, rows in expected.items():
        assert len(got[name]) == len(rows) > 0, name
        assert [r[0] for r in got[name]] == [r[0] for r in rows], name
        assert np.abs(np.array(got[name]) - np.array(rows)).max() <= EQUAL, name
    header = json.loads((single / "coco_images.json").read_text())
    assert [c["name"] for c in header["categories"]] == ["Gun", "Knife", "Scissors"]
    checkpoint = fold / "checkpoints" / "best.ckpt"
    assert header["info"]["checkpoints"] == [
        {"path": str(checkpoint), "sha256": file_sha256(checkpoint)}
    ]
    with (single / "detections.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(map(len, got.values()))
    assert set(rows[0]) == {"image", "category", "score", "x_min", "y_min", "x_max", "y_max"}
    assert {r["category"] for r in rows} <= {"Gun", "Knife", "Scissors"}
    drawn = sorted(p.relative_to(single / "drawn").as_posix() for p in single.rglob("*.png"))
    assert drawn == sorted(got)
    report = json.loads((single / "predict_report.json").read_text())
    assert report["predicted"] == 12 and report["counts"]["detections"] == len(rows)


def test_run_folder_fuses_every_fold(
    run: Path, single: Path, test_scans: Path, tmp_path: Path
) -> None:
    report = _predict(run, test_scans, tmp_path, "predictor.draw=false")
    folds = [run / f"fold_{k}" / "checkpoints" / "best.ckpt" for k in (0, 1)]
    assert report["ensemble"] and report["checkpoints"] == [
        {"path": str(f), "sha256": file_sha256(f)} for f in folds
    ]
    header = json.loads((tmp_path / "coco_images.json").read_text())
    assert "NMS" in header["info"]["fusion"] and len(header["info"]["checkpoints"]) == 2
    fused = _by_file(tmp_path / "detections.json", tmp_path / "coco_images.json")
    alone = _by_file(single / "detections.json", single / "coco_images.json")
    assert fused.keys() == alone.keys() and fused != alone
    assert not (tmp_path / "drawn").exists()


def test_fusion_is_classwise_nms_over_the_union() -> None:
    def detections(boxes, labels, scores):
        return {
            "boxes": np.array(boxes, dtype=np.float64).reshape(-1, 4),
            "labels": np.array(labels),
            "scores": np.array(scores),
        }

    a = detections([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1], [0.9, 0.3])
    b = detections([[1, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], [1, 2, 1], [0.8, 0.7, 0.6])
    assert fuse_detections([a], 0.5) is a
    fused = fuse_detections([a, b], 0.5)
    # b's first box overlaps a's (same class): dropped; the class-2 box and the far box stay; at
    # most 3 (the most a single model returned)
    assert fused["scores"].tolist() == [0.9, 0.7, 0.6]
    assert fused["labels"].tolist() == [1, 2, 1]
    assert fused["boxes"][2].tolist() == [50, 50, 60, 60]


def test_bad_scans_are_reported_and_the_rest_predicted(
    run: Path, test_scans: Path, tmp_path: Path
) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    colour = next(test_scans.rglob("*.png"))
    shutil.copy(colour, scans / "colour.png")
    grey = (np.asarray(Image.open(colour).convert("L").resize((70, 50)))).copy()
    Image.fromarray(grey, mode="L").save(scans / "grey.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(scans / "grey_as_rgb.png")
    Image.fromarray(np.stack([grey, grey], -1), mode="LA").save(scans / "grey_alpha.png")
    (scans / "broken.png").write_bytes(b"not an image at all")
    (scans / "notes.txt").write_text("not a scan, not read")
    out = tmp_path / "out"
    report = _predict(run / "fold_0" / "checkpoints" / "best.ckpt", scans, out)
    problems = {p["item"]: p["reason"] for p in report["problems"]}
    assert set(problems) == {"broken.png", "grey_alpha.png"}
    assert "cannot read the image" in problems["broken.png"]
    assert "2 channels" in problems["grey_alpha.png"] and "RGB" in problems["grey_alpha.png"]
    assert report["predicted"] == 3 and report["not_predicted"] == 2
    images = json.loads((out / "coco_images.json").read_text())["images"]
    assert [(i["file_name"], i["width"], i["height"]) for i in images] == [
        ("colour.png", 64, 64),
        ("grey.png", 70, 50),
        ("grey_as_rgb.png", 70, 50),
    ]
    found = _by_file(out / "detections.json", out / "coco_images.json")
    # a greyscale scan is read as its channel repeated: the same detections as the RGB copy
    assert found["grey.png"] == found["grey_as_rgb.png"] and found["grey.png"]
    assert all(max(r[2] + r[4] for r in rows) <= 70 for rows in found.values())
    assert sorted(p.name for p in (out / "drawn").iterdir()) == [
        "colour.png",
        "grey.png",
        "grey_as_rgb.png",
    ]


def test_yolo_export_contract(run: Path, tmp_path: Path) -> None:
    cfg = compose_config(MODEL, config_name="export")
    model = load_task(cfg.model, run / "fold_0" / "checkpoints" / "best.ckpt", DataInfo)
    predictor = DetectionPredictor()
    contract = predictor.export_contract(model)
    card = export_model(model, contract, "onnx", tmp_path / "onnx")
    assert card["parity"]["max_abs_diff"] <= contract.tolerance == 1e-4  # measured 1.9e-6
    assert card["class_names"] == ["Gun", "Knife", "Scissors"]
    assert card["inputs"][0]["shape"] == ["batch", 3, 64, 64]
    post = card["postprocessing"]
    assert post["function"] == "kbaselines.xray.yolo.postprocess.decode_detections"
    assert post["nms"] == "outside the graph"
    # dynamic batch: three images where the example had two
    batch = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert onnx_parity(contract, tmp_path / "onnx" / "model.onnx", (batch,)) <= 1e-4

    # the card's post-processing after ONNX Runtime gives the network's own detections
    session = onnxruntime.InferenceSession(
        str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    image = torch.rand(3, 40, 64, generator=torch.Generator().manual_seed(2))
    square, params = letterbox(image, card["preprocessing"]["image_size"])
    cls_logits, box_logits = session.run(None, {"images": square[None].numpy()})
    decoded = decode_detections(
        torch.from_numpy(cls_logits), torch.from_numpy(box_logits), **post["arguments"]
    )[0]
    with torch.inference_mode():
        expected = model.task.net([image])[0]
    assert len(decoded["scores"]) == len(expected["scores"]) > 0
    assert torch.equal(decoded["labels"], expected["labels"])
    assert torch.allclose(decoded["scores"], expected["scores"], atol=1e-4)
    assert torch.allclose(
        boxes_from_letterbox(decoded["boxes"], params), expected["boxes"], atol=1e-3
    )

    jit = export_model(model, contract, "torchscript", tmp_path / "ts")
    with torch.inference_mode():
        loaded = torch.jit.load(str(tmp_path / "ts" / jit["file"]))
        for traced, eager in zip(loaded(batch), contract.module(batch), strict=True):
            assert torch.allclose(traced, eager, atol=1e-5)
    _safetensors_round_trip(model, contract, tmp_path, cfg.model, (batch,))


def _safetensors_round_trip(model, contract, tmp_path: Path, model_cfg, inputs) -> None:
    """The safetensors weights, loaded into a freshly built network, give the same outputs."""
    card = export_model(model, contract, "safetensors", tmp_path / "st")
    fresh = build_task(model_cfg, info=model.task.info, net_sizes=model.task.net_sizes()).net
    fresh_contract = DetectionPredictor().export_contract(
        LoadedTask(SimpleNamespace(net=fresh), model.path, model.sha256, {})
    )
    fresh_contract.module.load_state_dict(load_file(str(tmp_path / "st" / card["file"])))
    with torch.inference_mode():
        for loaded, original in zip(
            fresh_contract.module.eval()(*inputs), contract.module(*inputs), strict=True
        ):
            assert torch.equal(loaded, original)


def _sorted(outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Detections ``boxes, labels, scores`` ordered by label, then box."""
    boxes, labels, scores = outputs
    order = np.lexsort((boxes[:, 1], boxes[:, 0], labels))
    return [boxes[order], labels[order], scores[order]]


def test_faster_rcnn_export_contract(tmp_path: Path) -> None:
    cfg = compose_config(
        [
            "+experiment=xray_faster_rcnn_synthetic",
            "model.net.min_size=64",
            "model.net.max_size=64",
        ],
        config_name="export",
    )
    torch.manual_seed(0)
    task = build_task(cfg.model, info=DataInfo(class_names=("Gun", "Knife", "Scissors"))).eval()
    model = LoadedTask(task, tmp_path / "random.ckpt", "0" * 64, {})
    contract = DetectionPredictor().export_contract(model)
    card = export_model(model, contract, "onnx", tmp_path / "onnx")
    # measured 1.1e-5 (boxes in pixels); one image of any size: said in the card
    assert card["parity"]["max_abs_diff"] <= contract.tolerance == 1e-2
    assert card["inputs"][0]["shape"] == [3, "height", "width"] and not contract.dynamic_batch
    assert card["postprocessing"]["nms"].startswith("inside the graph")
    assert "one image per call" in card["postprocessing"]["batch"]
    # images of another size: the same detections, sorted by label and box (random weights
    # give equal scores), within the tolerance
    session = onnxruntime.InferenceSession(
        str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    for seed, (height, width) in enumerate([(64, 64), (48, 80), (96, 40)]):
        image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(3 + seed))
        got = _sorted(session.run(None, {"image": image.numpy()}))
        with torch.inference_mode():
            want = _sorted([t.numpy() for t in contract.module(image)])
        assert len(want[2]) == len(got[2]) > 0
        assert (got[1] == want[1]).all()
        for g, w in ((got[0], want[0]), (got[2], want[2])):
            assert np.abs(g - w).max() <= 1e-3  # measured 7.6e-6

    other = (torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3)),)
    with torch.inference_mode():
        boxes, labels, scores = contract.module(*other)

    jit = export_model(model, contract, "torchscript", tmp_path / "ts")
    with torch.inference_mode():
        loaded = torch.jit.load(str(tmp_path / "ts" / jit["file"]))
        for traced, eager in zip(loaded(*other), (boxes, labels, scores), strict=True):
            assert torch.allclose(traced.float(), eager.float(), atol=1e-4)
    _safetensors_round_trip(model, contract, tmp_path, cfg.model, other)


def test_an_unknown_detector_is_not_exported() -> None:
    model = LoadedTask(SimpleNamespace(net=torch.nn.Linear(2, 2)), Path("x.ckpt"), "", {})
    with pytest.raises(TypeError, match=r"x\.ckpt: cannot export a Linear"):
        DetectionPredictor().export_contract(model)
