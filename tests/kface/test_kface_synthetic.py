"""The synthetic K-Face tree: the real format, generated once, identities learnable but not readable
from raw pixels."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from kface_helpers import scan_tree
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from kbaselines.kface import synthetic
from kbaselines.kface.datamodule import KFaceDataModule
from kbaselines.kface.dataset import crop_face
from kbaselines.kface.reader import KFaceFormatError
from kbaselines.kface.synthetic import MARKER, ensure_synthetic_kface, generate_kface

SMALL = {
    "num_people": 4,
    "sessions": ["S001", "S002"],
    "lights": ["L1", "L2"],
    "cameras": ["C7"],
    "image_size": 32,
}
ALL = {"sessions": "all", "lights": "all", "expressions": "all", "cameras": "all"}


def test_tree_follows_the_spec(tmp_path: Path) -> None:
    root = generate_kface(tmp_path / "kface", **SMALL)
    records, problems = scan_tree(root)
    assert problems == []
    assert len(records) == 4 * 2 * 2 * 3 * 1
    assert sorted(p.name for p in root.iterdir()) == [
        MARKER,
        "19062000",
        "19062001",
        "19062002",
        "19062003",
    ]
    assert sorted(p.name for p in (root / "19062001/S002/L2/E03").iterdir()) == ["C7.jpg", "C7.txt"]
    for record in records:
        x, y, w, h = record.box
        with Image.open(root / record.path) as image:
            assert image.size == (32, 32) and image.format == "JPEG"
        assert x >= 0 and y >= 0 and x + w <= 32 and y + h <= 32 and w > 8 and h > 8
    assert json.loads((root / MARKER).read_text()) == {
        "generator_version": synthetic.GENERATOR_VERSION,
        **SMALL,
        "expressions": ["E01", "E02", "E03"],
        "seed": 0,
        "boxes": True,
        "first_person": 0,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["kface"], "no temporary folder left"


def test_without_boxes_the_whole_image_is_used(tmp_path: Path) -> None:
    root = generate_kface(tmp_path / "kface", **{**SMALL, "num_people": 1}, boxes=False)
    records, _ = scan_tree(root)
    assert records and all(r.box is None for r in records)
    assert not list(root.rglob("*.txt"))


def test_generated_once_and_again_when_arguments_change(tmp_path: Path) -> None:
    root = tmp_path / "kface"
    ensure_synthetic_kface(root, **SMALL)
    stamp = (root / MARKER).stat().st_mtime_ns
    ensure_synthetic_kface(root, **SMALL, seed=0, boxes=True)  # the defaults, spelled out
    assert (root / MARKER).stat().st_mtime_ns == stamp
    ensure_synthetic_kface(root, **{**SMALL, "num_people": 5})
    assert json.loads((root / MARKER).read_text())["num_people"] == 5
    assert len({r.person for r in scan_tree(root)[0]}) == 5
    ensure_synthetic_kface(root, **{**SMALL, "num_people": 2})
    assert len({r.person for r in scan_tree(root)[0]}) == 2, "the old tree is replaced, not merged"


def _ensure_in_a_process(root: str) -> None:
    ensure_synthetic_kface(root, **SMALL)


def test_processes_generating_at_once_make_one_tree(tmp_path: Path) -> None:
    """As DDP ranks that all call prepare_data: one generates, the others find the tree."""
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_ensure_in_a_process, args=(str(tmp_path / "kface"),))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    records, problems = scan_tree(tmp_path / "kface")
    assert len(records) == 48 and problems == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".kface.lock", "kface"]


def test_a_tree_of_an_older_generator_is_made_again(tmp_path: Path) -> None:
    root = generate_kface(tmp_path / "kface", **SMALL)
    marker = json.loads((root / MARKER).read_text())
    (root / MARKER).write_text(json.dumps({**marker, "generator_version": 1}))
    ensure_synthetic_kface(root, **SMALL)
    assert json.loads((root / MARKER).read_text()) == marker


def test_a_tree_without_marker_is_not_taken_as_complete(tmp_path: Path) -> None:
    root = generate_kface(tmp_path / "kface", **SMALL)
    (root / MARKER).unlink()
    with pytest.raises(FileExistsError, match="refusing to replace"):
        ensure_synthetic_kface(root, **SMALL)


def test_a_folder_it_did_not_make_is_left_alone(tmp_path: Path) -> None:
    real = tmp_path / "kface"
    (real / "19061801").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a generated K-Face tree"):
        generate_kface(real, **SMALL)
    assert (real / "19061801").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (generate_kface(empty, **SMALL) / MARKER).is_file(), "an empty folder may be filled"


def test_an_interrupted_generation_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = synthetic._render

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_render", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_kface(tmp_path / "kface", **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_facets_out_of_the_spec_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KFaceFormatError, match="camera 'C21'"):
        generate_kface(tmp_path / "kface", **{**SMALL, "cameras": ["C21"]})
    assert list(tmp_path.iterdir()) == []


def test_same_seed_same_images(tmp_path: Path) -> None:
    first = generate_kface(tmp_path / "a", **SMALL)
    second = generate_kface(tmp_path / "b", **SMALL)
    other = generate_kface(tmp_path / "c", **{**SMALL, "seed": 1})
    path = "19062001/S002/L2/E03/C7"
    for suffix in (".jpg", ".txt"):
        assert (first / path).with_suffix(suffix).read_bytes() == (second / path).with_suffix(
            suffix
        ).read_bytes()
    assert (first / path).with_suffix(".jpg").read_bytes() != (other / path).with_suffix(
        ".jpg"
    ).read_bytes()


def test_an_image_depends_only_on_its_person_and_facets(tmp_path: Path) -> None:
    few = generate_kface(tmp_path / "few", **SMALL)
    more = generate_kface(
        tmp_path / "more", **{**SMALL, "num_people": 6, "cameras": ["C6", "C7"], "lights": ["L2"]}
    )
    path = "19062003/S002/L2/E01/C7.jpg"
    assert (few / path).read_bytes() == (more / path).read_bytes()


def test_first_person_numbers_a_tree_after_another(tmp_path: Path) -> None:
    """A second part of a delivery: its people numbered on, drawn as in one larger tree."""
    whole = generate_kface(tmp_path / "whole", **{**SMALL, "lights": ["L1"], "num_people": 3})
    later = generate_kface(
        tmp_path / "later", **{**SMALL, "lights": ["L1"], "num_people": 2}, first_person=1
    )
    assert sorted(p.name for p in later.iterdir() if p.is_dir()) == ["19062001", "19062002"]
    for path in ("19062001/S002/L1/E03/C7.jpg", "19062002/S001/L1/E01/C7.txt"):
        assert (later / path).read_bytes() == (whole / path).read_bytes()
    with pytest.raises(ValueError, match="first_person=-1: person ids have 8 digits"):
        generate_kface(tmp_path / "bad", **SMALL, first_person=-1)


@pytest.fixture(scope="module")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, list]:
    """20 people (all 81 conditions each) as cropped 32 px RGB faces, labels and records."""
    root = generate_kface(
        tmp_path_factory.mktemp("kface") / "t", num_people=20, image_size=32, seed=5
    )
    records, _ = scan_tree(root)
    faces = []
    for record in records:
        with Image.open(root / record.path) as image:
            face = crop_face(image.convert("RGB"), record.box, 0.1).resize((32, 32))
        faces.append(np.asarray(face, np.float64))
    return np.stack(faces), np.array([r.person for r in records]), records


def _pair_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Verification ROC AUC over every pair of images, from a square score matrix."""
    upper = np.triu_indices(len(labels), 1)
    return float(roc_auc_score((labels[:, None] == labels[None])[upper], scores[upper]))


def test_identity_is_not_readable_from_raw_pixels(unseen) -> None:
    """Lights, accessories, expressions and head turns dominate the raw pixels.

    Measured (seeds 0, 1, 5; 20 people, every condition): cosine on centred grayscale pixels
    ROC AUC 0.57-0.58; mean brightness 0.56-0.57; mean colour of the face centre (skin tone, the
    strongest single cue) 0.72-0.77; raw-pixel nearest-neighbour rank-1 from the S001/L1/E01/C7
    gallery, probes at other cameras and lights, 0.19-0.26 (chance 0.05). A small CNN trained on
    other people reaches 0.94-0.96 (below); LightCNN-9 through train.py 0.94 (test_train_kface.py).
    """
    faces, labels, records = unseen
    gray = faces.mean(-1).reshape(len(faces), -1)
    centred = gray - gray.mean(1, keepdims=True)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    assert _pair_auc(unit @ unit.T, labels) < 0.70
    brightness = gray.mean(1)
    assert _pair_auc(-np.abs(brightness[:, None] - brightness[None]), labels) < 0.65
    colour = faces[:, 12:20, 12:20].reshape(len(faces), -1, 3).mean(1)
    assert _pair_auc(-np.linalg.norm(colour[:, None] - colour[None], axis=-1), labels) < 0.85
    conditions = [(r.session, r.light, r.expression, r.camera) for r in records]
    gallery = np.array([c == ("S001", "L1", "E01", "C7") for c in conditions])
    probes = np.array([r.camera != "C7" and r.light != "L1" for r in records])
    distances = ((gray[probes][:, None] - gray[gallery][None]) ** 2).sum(-1)
    rank1 = float((labels[gallery][distances.argmin(1)] == labels[probes]).mean())
    assert rank1 < 0.45, rank1


def _embedding_net() -> nn.Module:
    def block(inputs: int, outputs: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, padding=1),
            nn.BatchNorm2d(outputs),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        block(1, 16), block(16, 32), block(32, 64), nn.Flatten(), nn.Linear(64 * 4 * 4, 64)
    )


@pytest.mark.learning
def test_a_small_cnn_learns_to_verify_unseen_people(tmp_path: Path) -> None:
    """Measured (torch seeds 0-3): untrained 0.62-0.67, trained 0.94-0.96 ROC AUC (3 epochs on 28
    people, 32 px, 12 unseen people), in about 8 s."""
    root = generate_kface(tmp_path / "kface", num_people=40, image_size=32, seed=0)
    table = KFaceDataModule(root=str(root), **ALL).sample_table()
    known = set(sorted(set(table.groups))[:28])
    split = {
        "train": [i for i, g in zip(table.ids, table.groups, strict=True) if g in known],
        "val": [],
        "test": [i for i, g in zip(table.ids, table.groups, strict=True) if g not in known],
    }
    module = KFaceDataModule(root=str(root), input_size=(32, 32), batch_size=32, split=split, **ALL)
    module.setup("fit")
    torch.manual_seed(0)
    net, head = _embedding_net(), nn.Linear(64, module.info.num_classes)

    def verification_auc() -> float:
        net.eval()
        with torch.no_grad():
            batches = [(net(b["image"]), b["label"]) for b in module.test_dataloader()]
        embeddings = nn.functional.normalize(torch.cat([e for e, _ in batches]), dim=1).numpy()
        return _pair_auc(embeddings @ embeddings.T, torch.cat([y for _, y in batches]).numpy())

    untrained = verification_auc()
    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], 2e-3)
    for _ in range(3):
        net.train()
        for batch in module.train_dataloader():
            loss = nn.functional.cross_entropy(head(net(batch["image"])), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    trained = verification_auc()
    assert trained >= 0.90, (untrained, trained)
    assert trained >= untrained + 0.15, (untrained, trained)
