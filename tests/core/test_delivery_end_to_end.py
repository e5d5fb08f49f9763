"""The delivery form of every synthetic twin (scripts/make_delivery.py): two parts without a shared
group, packed as AI Hub delivers them (TS_/TL_ and VS_/VL_ archives, CP949 member names without
zip's UTF-8 flag, a Korean-named reference file), unpacked back into the generated trees byte for
byte; and train.py cv=official on the unpacked root gives the test metrics of the generated one."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf
from parts_helpers import TRAINING, VALIDATION, official_overlap

from kbaselines.core.config import compose_config
from kbaselines.core.data.delivery import unpack_delivery
from kbaselines.core.data.synthetic_delivery import (
    FILE_LIST,
    SyntheticTwin,
    make_synthetic_delivery,
)

#: data config -> the data.synthetic settings of a twin of seconds
TINY = {
    "kface_synthetic": {
        "num_people": 4,
        "sessions": ["S001"],
        "lights": ["L1"],
        "expressions": ["E01"],
        "cameras": ["C6", "C7"],
        "image_size": 16,
    },
    "xray_synthetic": {
        "num_categories": 2,
        "samples_per_category": 4,
        "images_per_sample": 2,
        "image_size": 64,
    },
    # the Validation part's first recording, 5, does the first action, as recording 0 does: drawn
    # from the same seed, its images would be recording 0's
    "pose_synthetic": {"num_recordings": 5, "frames_per_recording": 2, "num_cameras": 3},
    "mammo_synthetic": {"num_cases": 12, "rows": 64, "columns": 52},
}
#: overrides of a pose run of seconds (the model untrained: 3D errors of a metre tell runs apart)
TINY_POSE_RUN = [
    "+experiment=pose_simple_baseline_synthetic",
    "data.batch_size=8",
    "cv.val_fraction=0.25",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def _twin(data: str, **changes) -> SyntheticTwin:
    """The twin of ``data=<data>`` with the tiny settings, as make_delivery.py gets it."""
    cfg = compose_config([f"data={data}"])
    synthetic = {**OmegaConf.to_container(cfg.data.synthetic), **TINY[data], **changes}
    return hydra.utils.get_class(cfg.data._target_).synthetic_twin(synthetic)


def _files(root: Path) -> dict[str, bytes]:
    """Every visible file below ``root`` (relative posix path -> bytes)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)
    }


def _summary(logs: Path, run_name: str) -> dict:
    (path,) = logs.glob(f"*/{run_name}/cv_summary.json")
    return json.loads(path.read_text())


def _official_runs(run_entry_point, overrides: list[str], roots: dict[str, Path], logs: Path):
    """train.py cv=official on each root (run named after it); the summaries by root name."""
    for name, root in roots.items():
        run_entry_point(
            "train.py",
            *overrides,
            "cv=official",
            f"data.root={root}",
            "data.synthetic=null",
            f"paths.log_dir={logs}",
            f"run_name={name}",
        )
    return {name: _summary(logs, name) for name in roots}


@pytest.mark.parametrize("data", list(TINY))
def test_delivery_unpacks_into_the_generated_parts(data: str, tmp_path: Path) -> None:
    twin = _twin(data)
    made = make_synthetic_delivery(twin, tmp_path / "made", validation_share=0.5, progress=False)
    assert made.arguments[VALIDATION][twin.count] == TINY[data][twin.count] // 2
    delivery = made.delivery / "01.데이터"
    for part, (source, label) in ((TRAINING, ("TS", "TL")), (VALIDATION, ("VS", "VL"))):
        archives = {p.relative_to(delivery / part).as_posix() for p in (delivery / part).rglob("*")}
        zips = {a for a in archives if a.endswith(".zip")}
        assert any(a.startswith(f"원천데이터/{source}_") for a in zips)
        assert all(a.startswith((f"원천데이터/{source}_", f"라벨링데이터/{label}_")) for a in zips)
        with zipfile.ZipFile(delivery / part / "라벨링데이터" / f"{label}_참고자료.zip") as zf:
            (member,) = zf.infolist()
        # written as Windows archivers in Korea do: CP949 bytes, no UTF-8 flag (zipfile: mojibake)
        assert not member.flag_bits & 0x800 and member.filename != FILE_LIST
        assert member.filename.encode("cp437").decode("cp949") == FILE_LIST

    report = unpack_delivery(made.delivery, tmp_path / "root", progress=False)
    assert report.ok and not report.undecoded and report.encodings["cp949"] == 2
    for folder, tree in made.trees.items():
        files = _files(tree)
        assert _files(tmp_path / "root" / folder) == files, f"{folder} differs from its tree"
        listed = csv.reader(io.StringIO(files[FILE_LIST].decode()))
        assert next(listed) == ["경로", "크기"]
        assert {path: int(size) for path, size in listed} == {
            path: len(content) for path, content in files.items() if path != FILE_LIST
        }

    root, cache = tmp_path / "root", tmp_path / "cache"
    settings = [f"data.root={root}", "data.synthetic=null", f"paths.cache_dir={cache}"]
    cfg = compose_config([f"data={data}", *settings])
    table = hydra.utils.instantiate(cfg.data).sample_table()
    overlap = official_overlap(table, val_fraction=0.25)
    assert overlap["groups"] == 0 and overlap["identical_files"] == 0, "nothing in both parts"


def test_the_validation_share_and_its_numbering() -> None:
    twin = _twin("xray_synthetic", samples_per_category=10, first_sample=3)
    parts = twin.parts(0.25)
    assert parts["train"] == dict(twin.arguments)
    changed = {"samples_per_category": 2, "first_sample": 13, "seed": 1}  # the next seed
    assert parts["test"] == {**twin.arguments, **changed}
    assert twin.parts(0.01)["test"]["samples_per_category"] == 1, "at least one group"
    with pytest.raises(ValueError, match="validation_share=0: give the Validation part's size"):
        twin.parts(0)
    with pytest.raises(ValueError, match=r"lack \['first_sample', 'seed'\]: give every"):
        SyntheticTwin(
            twin.generate, {"samples_per_category": 4}, "samples_per_category", "first_sample"
        )


def test_made_again_replaces_its_own_delivery_only(tmp_path: Path) -> None:
    make_synthetic_delivery(_twin("kface_synthetic"), tmp_path / "a", progress=False)
    made = make_synthetic_delivery(
        _twin("kface_synthetic", num_people=2), tmp_path / "a", progress=False
    )
    assert sorted(p.name for p in made.delivery.rglob("TS_*.zip")) == [
        "TS_19062000.zip",
        "TS_19062001.zip",
    ], "no archive of the earlier, larger delivery is left"
    (tmp_path / "b" / "delivery").mkdir(parents=True)
    (tmp_path / "b" / "delivery" / "mine.txt").write_text("not a made delivery")
    with pytest.raises(FileExistsError, match="refusing to replace it"):
        make_synthetic_delivery(_twin("kface_synthetic"), tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "delivery" / "mine.txt").is_file()


def test_korean_part_folders(tmp_path: Path) -> None:
    korean = {"train": "1.학습데이터", "test": "2.검증데이터"}
    made = make_synthetic_delivery(
        _twin("kface_synthetic"), tmp_path, part_folders=korean, wrap=None, progress=False
    )
    assert (made.delivery / "2.검증데이터" / "원천데이터" / "VS_19062004.zip").is_file()
    report = unpack_delivery(made.delivery, tmp_path / "root", progress=False)
    assert report.parts == korean and report.encodings["cp949"] == 2
    for wrong in ({**korean, "test": "3.Test"}, {**korean, "test": "1.Training"}, {"train": "1"}):
        with pytest.raises(ValueError, match="part"):
            make_synthetic_delivery(_twin("kface_synthetic"), tmp_path / "w", part_folders=wrong)
    assert not (tmp_path / "w").exists(), "refused before anything is generated"


@pytest.mark.cli
def test_kface_delivery_through_the_commands_trains_alike(
    tmp_path: Path, run_entry_point, tiny_kface_run
) -> None:
    tiny = tiny_kface_run(tmp_path)
    made = run_entry_point(
        "scripts/make_delivery.py",
        "data=kface_synthetic",
        f"dst={tmp_path}",
        *(o for o in tiny if o.startswith("data.synthetic.")),
        "progress=false",
    )
    unpack = (
        f"scripts/unpack.py data=kface_synthetic src={tmp_path}/delivery dst={tmp_path}/unpacked"
    )
    assert f"python {unpack}\n" in made.stdout, "the command it prints is the one that works"
    run_entry_point(*unpack.split(), "progress=false")
    for part in (TRAINING, VALIDATION):
        assert _files(tmp_path / "unpacked" / part) == _files(tmp_path / "tree" / part)

    overrides = [o for o in tiny if not o.startswith(("data.root=", "data.synthetic."))]
    roots = {"generated": tmp_path / "tree", "unpacked": tmp_path / "unpacked"}
    summaries = _official_runs(run_entry_point, overrides, roots, tmp_path / "logs")
    generated, unpacked = summaries["generated"], summaries["unpacked"]
    assert generated["scheme"] == "official" and generated["official_overlap"]["groups"] == 0
    assert 0.5 < generated["metrics"]["test/roc_auc"]["mean"] < 1.0
    assert unpacked["metrics"] == generated["metrics"]


@pytest.mark.cli
def test_pose_delivery_trains_alike(tmp_path: Path, run_entry_point) -> None:
    made = make_synthetic_delivery(
        _twin("pose_synthetic"), tmp_path, validation_share=0.5, progress=False
    )
    assert unpack_delivery(made.delivery, tmp_path / "unpacked", progress=False).ok
    roots = {"generated": tmp_path / "tree", "unpacked": tmp_path / "unpacked"}
    overrides = [*TINY_POSE_RUN, f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path}/c"]
    summaries = _official_runs(run_entry_point, overrides, roots, tmp_path / "logs")
    generated, unpacked = summaries["generated"], summaries["unpacked"]
    assert generated["official_overlap"]["groups"] == 0
    assert generated["metrics"]["test/mpjpe"]["mean"] > 0  # from the test part's cameras
    assert unpacked["metrics"] == generated["metrics"]
