"""predict.py and export.py on K-Face: the embeddings of a tiny trained run score its test pairs as
its test did, a run folder is a fold ensemble, bad inputs are reported one by one, PGGAN faces
come back for the same seed, and the exported LightCNN and generator match PyTorch."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kbaselines.core.cluster.checkpoint_io import load_checkpoint
from kbaselines.core.config import compose_config
from kbaselines.core.predict.export import run_export
from kbaselines.core.predict.run import run_predict

pytestmark = pytest.mark.usefixtures("one_thread")

#: LightCNN: numbers of order 1 through a few dozen float32 layers; PGGAN: images in [-1, 1]
ONNX_TOLERANCE = 1e-4


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _write_pairs(path: Path, pairs: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["first", "second"])
        writer.writerows(pairs)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_kface_run) -> list[str]:
    return tiny_kface_run(tmp_path_factory.mktemp("kface_predict_data"))


@pytest.fixture(scope="module")
def model_overrides(tiny: list[str]) -> list[str]:
    """What predict.py needs of the training command: the experiment and the data settings
    (callbacks are training's only)."""
    return [o for o in tiny if not o.startswith("callbacks.")]


@pytest.fixture(scope="module")
def tree(tiny: list[str]) -> Path:
    return Path(next(o for o in tiny if o.startswith("data.root=")).split("=", 1)[1])


@pytest.fixture(scope="module")
def run(tiny: list[str], tmp_path_factory: pytest.TempPathFactory, run_entry_point) -> Path:
    """A 2-fold LightCNN-9 run of seconds (16 px, 3 steps a fold), trained through train.py."""
    logs = tmp_path_factory.mktemp("kface_predict_logs")
    run_entry_point("train.py", *tiny, f"paths.log_dir={logs}", "run_name=r")
    return logs / "kface_lightcnn9_synthetic" / "r"


def _tested(fold: Path) -> Path:
    tested = json.loads((fold / "metrics.json").read_text())["tested_checkpoint"]
    return fold / "checkpoints" / f"{tested}.ckpt"


def _predict(model_overrides: list[str], out: Path, **options: object) -> dict:
    """predict.py in this process (the CLI test runs it as a subprocess once)."""
    cfg = compose_config(
        [*model_overrides, *(f"{k}={v}" for k, v in options.items()), f"out={out}"],
        config_name="predict",
    )
    return run_predict(cfg)


def test_predict_scores_the_test_pairs_as_the_test_did(
    run: Path, tree: Path, model_overrides: list[str], tmp_path: Path, run_entry_point
) -> None:
    fold = run / "fold_0"
    tested = _rows(fold / "predictions_test.csv")
    pairs = _write_pairs(tmp_path / "pairs.csv", [(r["first"], r["second"]) for r in tested])
    checkpoint = _tested(fold)
    out = tmp_path / "out"
    run_entry_point(
        "predict.py",
        *model_overrides,
        f"ckpt_path={checkpoint}",
        f"input={tree}",
        f"pairs={pairs}",
        f"out={out}",
    )
    expected = np.array([float(r["score"]) for r in tested])
    assert np.ptp(expected) > 100 * 1e-5  # the scores differ by far more than the tolerance
    scored = _rows(out / "pairs_scores.csv")
    assert [(r["first"], r["second"]) for r in scored] == [
        (r["first"], r["second"]) for r in tested
    ]
    np.testing.assert_allclose([float(r["score"]) for r in scored], expected, rtol=0, atol=1e-5)
    # decided at the fold's validation threshold, kept in its checkpoint
    threshold = load_checkpoint(checkpoint)["operating_point"]
    assert [int(r["decision"]) for r in scored] == [int(s >= threshold) for s in expected]
    embeddings = np.load(out / "embeddings.npy")
    names = [r["file"] for r in _rows(out / "embeddings.csv")]
    assert len(names) == len(embeddings) == len(list(tree.rglob("*.jpg")))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    report = json.loads((out / "predict_report.json").read_text())
    assert report["checkpoints"][0]["path"] == str(checkpoint) and not report["ensemble"]
    assert report["counts"] == {"images": len(names), "pairs": len(tested)}


def _test_accuracy(fold: Path, threshold: float) -> float:
    """The accuracy of the fold's scored test pairs at ``threshold``."""
    rows = _rows(fold / "predictions_test.csv")
    return float(np.mean([(float(r["score"]) >= threshold) == (r["target"] == "1") for r in rows]))


def test_the_test_accuracy_is_at_the_validation_threshold(run: Path) -> None:
    for fold in (run / "fold_0", run / "fold_1"):
        metrics = json.loads((fold / "metrics.json").read_text())
        threshold = load_checkpoint(_tested(fold))["operating_point"]
        assert metrics["test/threshold"] == pytest.approx(threshold, abs=1e-6)
        assert metrics["test/accuracy"] == pytest.approx(_test_accuracy(fold, threshold), abs=1e-6)
        # the validation people's threshold is not the test pairs' own (the oracle's)
        assert abs(metrics["test/oracle_threshold"] - threshold) > 1e-6  # float32: ~6e-8
        assert metrics["test/accuracy"] <= metrics["test/oracle_accuracy"] + 1e-6
        assert _test_accuracy(fold, metrics["test/oracle_threshold"]) == pytest.approx(
            metrics["test/oracle_accuracy"], abs=1e-6
        )


def test_without_validation_the_threshold_comes_from_the_training_people(
    tiny: list[str], tmp_path: Path, run_entry_point
) -> None:
    overrides = [o for o in tiny if not o.startswith("cv.val_fraction=")]
    run_entry_point(
        "train.py", *overrides, "cv.val_fraction=0", f"paths.log_dir={tmp_path}", "run_name=r"
    )
    run = tmp_path / "kface_lightcnn9_synthetic" / "r"
    train = json.loads((run / "splits.json").read_text())["folds"][0]["train"]
    fold = run / "fold_0"
    metrics = json.loads((fold / "metrics.json").read_text())
    assert metrics["tested_checkpoint"] == "last"
    assert "operating_point" not in load_checkpoint(fold / "checkpoints" / "last.ckpt")
    threshold = metrics["test/threshold"]
    assert np.isfinite(threshold)
    assert metrics["test/accuracy"] == pytest.approx(_test_accuracy(fold, threshold), abs=1e-6)
    # every training image of the fold (fewer than threshold_images), of all its people
    people = len({path.split("/")[0] for path in train})
    log = (run / "train.log").read_text()
    assert "No validation threshold in the tested checkpoint: test threshold" in log
    assert f"pairs of {len(train)} training images of {people} people" in log


def test_a_run_folder_is_an_ensemble_of_its_folds(
    run: Path, tree: Path, model_overrides: list[str], tmp_path: Path
) -> None:
    tested = _rows(run / "fold_0" / "predictions_test.csv")
    pairs = _write_pairs(tmp_path / "pairs.csv", [(r["first"], r["second"]) for r in tested])
    gallery = tmp_path / "gallery"
    people = sorted({r["first"].split("/")[0] for r in tested})
    for person in people:  # each test person's K-Face gallery image (S001/L1/E01/C7) and its box
        (gallery / person).mkdir(parents=True)
        for suffix in (".jpg", ".txt"):
            shutil.copy(tree / person / "S001/L1/E01" / f"C7{suffix}", gallery / person)
    folds = [_tested(run / f"fold_{k}") for k in (0, 1)]
    single = []
    for k, checkpoint in enumerate(folds):
        _predict(model_overrides, tmp_path / f"fold_{k}", ckpt_path=checkpoint, input=tree)
        single.append(np.load(tmp_path / f"fold_{k}" / "embeddings.npy"))
    out = tmp_path / "ensemble"
    report = _predict(
        model_overrides, out, ckpt_path=run, input=tree, pairs=pairs, gallery=gallery, top_k=3
    )
    assert report["ensemble"] and [c["path"] for c in report["checkpoints"]] == list(
        map(str, folds)
    )
    assert all(len(c["sha256"]) == 64 for c in report["checkpoints"])
    ensemble = np.load(out / "embeddings.npy")
    assert np.abs(ensemble - single[0]).max() > 1e-3
    mean = (single[0] + single[1]) / 2
    np.testing.assert_allclose(
        ensemble, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5
    )
    # the decision threshold of an ensemble: the mean of the folds' validation thresholds
    threshold = np.mean([load_checkpoint(c)["operating_point"] for c in folds])
    scored = _rows(out / "pairs_scores.csv")
    assert [int(r["decision"]) for r in scored] == [
        int(float(r["score"]) >= threshold) for r in scored
    ]
    # identification: top_k people per probe, best first; a gallery image finds its own person
    ranked = _rows(out / "identification.csv")
    names = [r["file"] for r in _rows(out / "embeddings.csv")]
    assert len(ranked) == 3 * len(names)
    first = {r["file"]: r for r in ranked if r["rank"] == "1"}
    for person in people:
        assert first[f"{person}/S001/L1/E01/C7.jpg"]["identity"] == person
    scores = np.array([float(r["score"]) for r in ranked]).reshape(-1, 3)
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert report["counts"]["gallery_people"] == len(people)


def test_bad_inputs_are_reported_and_the_rest_predicted(
    run: Path, tree: Path, model_overrides: list[str], tmp_path: Path, caplog
) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    source = tree / "19062001/S001/L1/E01"
    shutil.copy(source / "C7.jpg", folder / "good.jpg")
    shutil.copy(source / "C7.txt", folder / "good.txt")
    for name in ("nobox", "badbox", "outside"):
        shutil.copy(source / "C6.jpg", folder / f"{name}.jpg")
    (folder / "badbox.txt").write_text("1 2 three\n")
    (folder / "outside.txt").write_text("500 500 10 10\n")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    listing = ["good.jpg", "missing.jpg", "", "# a comment", "broken.jpg", "badbox.jpg"]
    listing += ["outside.jpg", "nobox.jpg", "good.jpg"]
    (folder / "list.txt").write_text("\n".join(listing) + "\n")
    pairs = [("good.jpg", "nobox.jpg"), ("good.jpg", "broken.jpg"), ("nobox.jpg", "elsewhere.jpg")]
    pairs_csv = _write_pairs(tmp_path / "pairs.csv", pairs)
    # a checkpoint of a run without validation people holds no threshold: scores, no decision
    checkpoint = load_checkpoint(_tested(run / "fold_0"))
    del checkpoint["operating_point"]
    torch.save(checkpoint, tmp_path / "no_threshold.ckpt")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="kbaselines.kface.predict"):
        report = _predict(
            model_overrides,
            out,
            ckpt_path=tmp_path / "no_threshold.ckpt",
            input=folder / "list.txt",
            pairs=pairs_csv,
        )
    assert [r["file"] for r in _rows(out / "embeddings.csv")] == ["good.jpg", "nobox.jpg"]
    assert report["predicted"] == 2 and report["not_predicted"] == 7
    problems = {(p["item"], p["record"]): p["reason"] for p in report["problems"]}
    assert "no such image file" in problems[("missing.jpg", "list.txt line 2")]
    assert "listed twice" in problems[("good.jpg", "list.txt line 9")]
    assert "cannot be decoded" in problems[("broken.jpg", None)]
    assert (
        "height" in problems[("badbox.txt", None)] and "'three'" in problems[("badbox.txt", None)]
    )
    assert "lies outside the 64x64 image" in problems[("outside.txt", None)]
    assert "cannot be decoded" in problems[(str(pairs_csv), "line 3")]
    assert "not among the images" in problems[(str(pairs_csv), "line 4")]
    scored = _rows(out / "pairs_scores.csv")
    assert list(scored[0]) == ["first", "second", "score"] and len(scored) == 1
    assert "hold no operating_point" in caplog.text


def _pggan_checkpoint(path: Path, images_seen: int) -> Path:
    """A tiny PGGAN task's checkpoint written by its own hook, ``images_seen`` into training."""
    from kbaselines.core.builders import build_task
    from kbaselines.core.data.datamodule import DataInfo

    cfg = compose_config(_PGGAN, config_name="predict")
    torch.manual_seed(images_seen)
    task = build_task(cfg.model, info=DataInfo())
    for average in task.ema.parameters():  # an EMA that differs from the trained generator
        average.data.add_(0.1)
    task.images_seen = images_seen
    checkpoint = {"state_dict": task.state_dict()}
    task.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


_PGGAN = [
    "+experiment=kface_pggan",
    "model.resolution=8",
    "model.net.latent_size=16",
    "model.net.fmap_max=16",
    "model.fade_kimg=0.064",
    "model.stab_kimg=0.064",
]


def test_pggan_writes_the_same_face_for_a_seed_at_the_checkpoints_phase(tmp_path: Path) -> None:
    checkpoint = _pggan_checkpoint(tmp_path / "g.ckpt", images_seen=100)  # 8x8, fading in
    report = _predict(_PGGAN, tmp_path / "a", ckpt_path=checkpoint, seeds="[3,7]")
    assert report["counts"] == {"images": 2} and report["predicted"] == 2
    names = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert names == ["grid.png", "seed0003.png", "seed0007.png"]
    face = (tmp_path / "a" / "seed0003.png").read_bytes()
    with Image.open(tmp_path / "a" / "seed0003.png") as image:
        assert image.size == (8, 8) and image.mode == "RGB"
    assert face != (tmp_path / "a" / "seed0007.png").read_bytes()
    _predict(_PGGAN, tmp_path / "b", ckpt_path=checkpoint, num=4)  # in another batch
    assert (tmp_path / "b" / "seed0003.png").read_bytes() == face
    _predict(_PGGAN, tmp_path / "raw", ckpt_path=checkpoint, seeds="[3]", raw=True)
    assert (tmp_path / "raw" / "seed0003.png").read_bytes() != face
    with pytest.raises(ValueError, match="reads no input"):
        _predict(_PGGAN, tmp_path / "c", ckpt_path=checkpoint, input=tmp_path)


def test_pggan_refuses_a_fold_ensemble(tmp_path: Path) -> None:
    for k in (0, 1):
        _pggan_checkpoint(tmp_path / "run" / f"fold_{k}" / "checkpoints" / "best.ckpt", 100)
    with pytest.raises(ValueError, match="averaging the images of different GANs"):
        _predict(_PGGAN, tmp_path / "out", ckpt_path=tmp_path / "run", num=2)


def _zeroed_contract_module(cfg, checkpoint: Path) -> torch.nn.Module:
    """The exported module of the checkpoint with every weight zeroed (safetensors must refill it)."""
    from kbaselines.core.predict.checkpoints import load_task
    from kbaselines.core.predict.run import build_predictor

    predictor = build_predictor(cfg)
    module = predictor.export_contract(load_task(cfg.model, checkpoint, predictor.info_type)).module
    for parameter in module.parameters():
        torch.nn.init.zeros_(parameter)
    return module


def _exported_outputs(fmt: str, card: dict, out: Path, inputs: torch.Tensor, fresh) -> np.ndarray:
    """What the exported file gives for ``inputs``: ONNX Runtime, the TorchScript module, or the
    safetensors weights loaded into ``fresh()`` (a network with other weights, returned with the
    function that runs it)."""
    written = out / card["file"]
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(written), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0]
    if fmt == "torchscript":
        return torch.jit.load(str(written))(inputs).detach().numpy()
    from safetensors.torch import load_file

    net, call = fresh()
    net.load_state_dict(load_file(written))
    with torch.inference_mode():
        return call(net, inputs).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_lightcnn_export_gives_the_embedding(
    run: Path, model_overrides: list[str], tmp_path: Path, fmt: str
) -> None:
    from kbaselines.core.data.datamodule import DataInfo
    from kbaselines.core.predict.checkpoints import load_task

    checkpoint = _tested(run / "fold_0")
    cfg = compose_config(
        [*model_overrides, f"ckpt_path={checkpoint}", f"format={fmt}", f"out={tmp_path}"],
        config_name="export",
    )
    card = run_export(cfg)
    task = load_task(cfg.model, checkpoint, DataInfo).task
    images = torch.rand(3, 1, 16, 16)  # another batch size than the traced one (2)
    with torch.inference_mode():
        expected = task(images).numpy()

    def fresh():
        return _zeroed_contract_module(cfg, checkpoint), lambda n, x: n(x)

    got = _exported_outputs(fmt, card, tmp_path, images, fresh)
    np.testing.assert_allclose(got, expected, rtol=0, atol=ONNX_TOLERANCE)
    if fmt == "onnx":
        assert card["parity"]["max_abs_diff"] <= ONNX_TOLERANCE
    assert card["outputs"] == ["embedding"] and card["preprocessing"]["center_crop"] == [16, 16]
    threshold = load_checkpoint(checkpoint)["operating_point"]
    assert card["operating_point"] == card["postprocessing"]["operating_point"] == threshold


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_pggan_export_gives_the_generator_at_its_phase(tmp_path: Path, fmt: str) -> None:
    from kbaselines.core.data.datamodule import DataInfo
    from kbaselines.core.predict.checkpoints import load_task

    checkpoint = _pggan_checkpoint(tmp_path / "g.ckpt", images_seen=100)
    progress = load_checkpoint(checkpoint)["pggan_progress"]
    assert progress["level"] == 1 and 0 < progress["alpha"] < 1  # fading in to 8x8
    cfg = compose_config(
        [*_PGGAN, f"ckpt_path={checkpoint}", f"format={fmt}", f"out={tmp_path / 'out'}"],
        config_name="export",
    )
    card = run_export(cfg)
    task = load_task(cfg.model, checkpoint, DataInfo).task
    generator = task.ema
    latents = torch.randn(3, 16)
    with torch.inference_mode():
        expected = generator(latents, progress["level"], progress["alpha"]).numpy()
    assert expected.shape == (3, 3, 8, 8)

    def fresh():
        return _zeroed_contract_module(cfg, checkpoint), lambda n, z: n(z)

    got = _exported_outputs(fmt, card, tmp_path / "out", latents, fresh)
    np.testing.assert_allclose(got, expected, rtol=0, atol=ONNX_TOLERANCE)
    post = card["postprocessing"]
    assert (post["level"], post["alpha"], post["resolution"]) == (1, progress["alpha"], 8)
