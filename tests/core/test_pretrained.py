"""Published weights: found offline through the experiment config, loaded as they were published,
refused when missing or misfit, with the error before any data is read. No test touches the network:
the files are made here (``write_published_weights``)."""

from __future__ import annotations

import pickle
from pathlib import Path

import hydra
import pytest
import timm
import torch
from hydra.errors import InstantiationException
from safetensors.torch import load_file, save_file

from kbaselines.core.builders import build_task
from kbaselines.core.config import CONFIG_DIR, compose_config
from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.pretrained import (
    MissingWeightsError,
    TimmWeights,
    check_published_weights,
    published_weights,
    unset_published_weights,
)

POSE = ["+experiment=pose_simple_baseline", "data=pose_synthetic"]
DETECTOR = ["+experiment=xray_faster_rcnn", "data=xray_synthetic"]
# the real recipes and the initialisation their papers start from; the others start from scratch
PAPER_INIT = {
    "kface_lightcnn9": {"model.weights": "LightCNN_9Layers_checkpoint.pth.tar"},
    "kface_lightcnn29": {"model.weights": "LightCNN_29Layers_checkpoint.pth.tar"},
    "kface_lightcnn29v2": {"model.weights": "LightCNN_29Layers_V2_checkpoint.pth.tar"},
    "pose_simple_baseline": {"model.net.weights_backbone": "resnet50.tv_in1k"},
    "xray_faster_rcnn": {"model.net.weights": "FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1"},
    "mammo_resnet34_maps": {"model.net.weights_backbone": "resnet34.tv_in1k"},
}
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_real_recipes_start_from_their_papers_weights(experiment: str) -> None:
    cfg = compose_config([f"+experiment={experiment}"])
    found = {
        setting: node.get("name") or Path(node.get("file_name")).name
        for setting, node in published_weights(cfg.model, "model")
    }
    assert found == PAPER_INIT.get(experiment, {})


def test_timm_weights_are_those_of_the_file(
    tmp_path: Path, offline: list, write_published_weights
) -> None:
    (path,) = write_published_weights(POSE, tmp_path)
    cfg = compose_config([*POSE, f"paths.weights_dir={tmp_path}"])
    net = hydra.utils.instantiate(cfg.model.net)
    state = load_file(str(path))
    for key in ("conv1.weight", "layer3.2.conv2.weight", "layer4.0.bn1.running_var"):
        assert torch.equal(net.backbone.state_dict()[key], state[key]), key
    assert not offline


def test_one_channel_model_gets_the_summed_first_convolution(
    tmp_path: Path, write_published_weights
) -> None:
    """timm's adaptation of RGB weights to a grey input, as for its own downloads."""
    overrides = ["+experiment=mammo_resnet34_maps", "data=mammo_synthetic"]
    (path,) = write_published_weights(overrides, tmp_path)
    net = hydra.utils.instantiate(
        compose_config([*overrides, f"paths.weights_dir={tmp_path}"]).model.net
    )
    rgb = load_file(str(path))["conv1.weight"]
    assert torch.allclose(net.backbone.conv1.weight, rgb.sum(dim=1, keepdim=True))


def test_coco_detector_keeps_all_but_its_box_predictor(
    tmp_path: Path, offline: list, write_published_weights
) -> None:
    (path,) = write_published_weights(DETECTOR, tmp_path)
    cfg = compose_config([*DETECTOR, f"paths.weights_dir={tmp_path}"])
    net = hydra.utils.instantiate(cfg.model.net, num_classes=5)
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = net.state_dict()
    assert torch.equal(own["rpn.head.conv.0.0.weight"], state["rpn.head.conv.0.0.weight"])
    assert torch.equal(
        own["backbone.fpn.inner_blocks.0.0.weight"], state["backbone.fpn.inner_blocks.0.0.weight"]
    )
    assert own["roi_heads.box_predictor.cls_score.weight"].shape[0] == 6  # 5 classes + background
    # torchvision trains 3 of the 5 ResNet stages of a pretrained backbone
    frozen = {n.split(".")[2] for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "bn1", "layer1"}
    assert not offline


def test_imagenet_backbone_of_a_detector(tmp_path: Path, write_published_weights) -> None:
    overrides = [
        *DETECTOR,
        "model.net.weights=null",
        "model.net.weights_backbone={_target_: kbaselines.core.pretrained.TorchvisionWeights,"
        "name: ResNet50_Weights.IMAGENET1K_V1, weights_dir: '${paths.weights_dir}'}",
    ]
    (path,) = write_published_weights(overrides, tmp_path)
    cfg = compose_config([*overrides, f"paths.weights_dir={tmp_path}"])
    net = hydra.utils.instantiate(cfg.model.net, num_classes=5)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(net.backbone.body.layer2[1].conv2.weight, state["layer2.1.conv2.weight"])


def test_missing_weights_stop_the_run_before_any_data_is_read(
    tmp_path: Path, offline: list
) -> None:
    """The acceptance: offline, the error names the file, the setting and the fetch command."""
    cfg = compose_config([*POSE, f"paths.weights_dir={tmp_path}/weights"])
    with pytest.raises(MissingWeightsError) as error:
        check_published_weights(cfg)
    message = str(error.value)
    assert f"{tmp_path}/weights/timm/resnet50.tv_in1k/model.safetensors" in message
    assert "model.net.weights_backbone" in message
    assert "python scripts/fetch_weights.py +experiment=pose_simple_baseline" in message
    assert not offline, "a missing file must not trigger a download unless allowed"


@pytest.mark.cli
def test_train_refuses_missing_weights_before_reading_data(tmp_path: Path) -> None:
    """Through the CLI: the run stops at once, and no synthetic data was generated."""
    import subprocess
    import sys

    from kbaselines.core.config import PROJECT_ROOT

    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "train.py"),
            *POSE,
            f"paths.weights_dir={tmp_path}/weights",
            f"paths.data_dir={tmp_path}/data",
            f"paths.log_dir={tmp_path}/logs",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "MissingWeightsError" in result.stderr and "model.net.weights_backbone" in result.stderr
    assert not (tmp_path / "data").exists()


def test_weights_of_another_architecture_are_refused_with_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "timm" / "resnet50.tv_in1k" / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file(timm.create_model("resnet18").state_dict(), str(path))
    with pytest.raises(ValueError, match=r"(?s)does not fit.*missing from the file.*conv3"):
        from kbaselines.core.pretrained import create_timm_model

        create_timm_model("resnet50", TimmWeights("resnet50.tv_in1k", weights_dir=tmp_path))


def test_detector_file_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    cfg = compose_config([*DETECTOR, f"paths.weights_dir={tmp_path}"])
    weights = hydra.utils.instantiate(cfg.model.net.weights)
    path = tmp_path / weights.file_name
    path.parent.mkdir(parents=True)
    torch.save({"backbone.body.conv1.weight": torch.zeros(1)}, path)
    # Hydra wraps the builder's ValueError
    with pytest.raises(InstantiationException, match=r"(?s)does not fit.*missing from the file"):
        hydra.utils.instantiate(cfg.model.net, num_classes=5)


def test_a_pickled_payload_in_place_of_weights_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    cfg = compose_config([*DETECTOR, f"paths.weights_dir={tmp_path}"])
    weights = hydra.utils.instantiate(cfg.model.net.weights)
    path = tmp_path / weights.file_name
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"state_dict": Payload()}))
    with pytest.raises(InstantiationException, match=r"weights-only|not a readable"):
        hydra.utils.instantiate(cfg.model.net, num_classes=5)
    assert not marker.exists()


def test_a_checkpoint_is_restored_without_the_published_files(tmp_path: Path) -> None:
    """eval.py, predict.py and export.py build the net only to load a checkpoint into it."""
    cfg = compose_config(["+experiment=kface_lightcnn9", f"paths.weights_dir={tmp_path}/none"])
    info = DataInfo(class_names=("a", "b", "c"))
    with pytest.raises(MissingWeightsError, match="are not on this machine"):
        build_task(cfg.model, info=info)
    task = build_task(cfg.model, info=info, published_weights=False)
    assert task.net.num_classes == 3
    assert unset_published_weights(cfg.model) == {"weights": None}


def test_fetch_lists_files_with_their_sha256_and_what_must_be_fetched_by_hand(
    tmp_path: Path, offline: list, write_published_weights
) -> None:
    import hashlib
    import runpy

    from kbaselines.core.config import PROJECT_ROOT

    fetch = runpy.run_path(str(PROJECT_ROOT / "scripts" / "fetch_weights.py"))["fetch"]
    (path,) = write_published_weights(POSE, tmp_path)
    cfg = compose_config([*POSE, f"dst={tmp_path}"], config_name="fetch_weights")
    present, missing = fetch(cfg)
    assert present == [("model.net.weights_backbone", path)] and not missing
    assert hashlib.sha256(path.read_bytes()).hexdigest()

    cfg = compose_config(
        ["+experiment=kface_lightcnn9", f"dst={tmp_path}"], config_name="fetch_weights"
    )
    present, missing = fetch(cfg)
    assert not present
    assert "by hand from https://github.com/AlfredXiangWu/LightCNN" in missing[0]
    assert str(tmp_path / "lightcnn" / "LightCNN_9Layers_checkpoint.pth.tar") in missing[0]
    assert not offline


def test_lightcnn_fine_tunes_from_the_authors_file(tmp_path: Path, write_published_weights) -> None:
    overrides = ["+experiment=kface_lightcnn9", "data=kface_synthetic"]
    (path,) = write_published_weights(overrides, tmp_path)
    cfg = compose_config([*overrides, f"paths.weights_dir={tmp_path}"])
    info = DataInfo(class_names=[f"p{i}" for i in range(4)])
    task = build_task(cfg.model, info=info)
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(
        task.net.state_dict()["features.0.filter.weight"], state["module.features.0.filter.weight"]
    )
