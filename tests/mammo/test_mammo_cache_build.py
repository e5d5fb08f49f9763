"""The image cache filled by worker processes: the same bytes as serially, shards, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbaselines.mammo.cache import ImageCache
from kbaselines.mammo.cache_build import fill_cache, parse_shard, shard_sources
from kbaselines.mammo.synthetic import generate_mammo


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The 12 DICOM files of three synthetic cases, and a broken one."""
    root = generate_mammo(tmp_path_factory.mktemp("build") / "tree", num_cases=3, breast_scale=0.6)
    files = sorted(root.glob("images/*/*.dcm"))
    broken = root / "broken.dcm"
    broken.write_bytes(files[0].read_bytes()[:2000])  # pixel data cut short
    return [*files, broken]


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_parallel_fill_writes_the_serial_bytes_and_a_second_run_skips_all(
    views: list[Path], tmp_path: Path
) -> None:
    serial = ImageCache(tmp_path / "serial", (64, 52), crop="breast")
    parallel = ImageCache(tmp_path / "parallel", (64, 52), crop="breast")
    one = fill_cache(serial, views, workers=1, progress=False)
    two = fill_cache(parallel, views, workers=2, progress=False)
    assert (one.decoded, two.decoded, two.workers) == (13, 13, 2)
    contents = _contents(parallel.folder)
    assert contents == _contents(serial.folder)
    # every view: an image and its crop box; the broken file: its reason
    assert sum(name.endswith(".npy") for name in contents) == 12
    assert sum(name.endswith(".crop.json") for name in contents) == 12
    assert [Path(f).name for f, _ in two.failed] == ["broken.dcm"]
    assert "export the image again" in two.failed[0][1] and two.failed == one.failed
    again = fill_cache(parallel, views, workers=2, progress=False)
    assert (again.decoded, again.cached, len(again.failed)) == (0, 13, 1)


def test_shards_partition_the_views(views: list[Path], tmp_path: Path) -> None:
    # two paths to one file are one view
    shards = [
        shard_sources(
            [*views, views[3].parent / ".." / views[3].parent.name / views[3].name], f"{i}/3"
        )
        for i in range(3)
    ]
    names = [{p.resolve() for p in shard} for shard in shards]
    assert sum(len(n) for n in names) == len(views) == len(set().union(*names))
    # the same partition whatever the order the views come in
    resolved = [p.resolve() for p in shard_sources(views[::-1], "1/3")]
    assert resolved == [p.resolve() for p in shards[1]] and names[1] != names[0]
    cache = ImageCache(tmp_path / "cache", (32, 26))
    fills = [fill_cache(cache, views, workers=1, shard=f"{i}/3", progress=False) for i in range(3)]
    assert [f.decoded for f in fills] == [len(s) for s in shards]
    assert fill_cache(cache, views, workers=1, progress=False).decoded == 0


@pytest.mark.parametrize("shard", ["3/3", "-1/2", "1", "a/b"])
def test_a_bad_shard_names_the_setting(shard: str) -> None:
    with pytest.raises(ValueError, match=r"shard=.*i/n with 0 <= i < n"):
        parse_shard(shard)


@pytest.mark.cli
def test_build_cache_script_fills_its_shard(run_entry_point, tmp_path: Path) -> None:
    result = run_entry_point(
        "scripts/build_cache.py",
        "data=mammo_synthetic",
        f"paths.data_dir={tmp_path}",
        f"data.cache_dir={tmp_path}/cache",
        "data.synthetic.num_cases=3",
        "data.crop=breast",
        "workers=2",
        "shard=1/2",
        "progress=false",
    )
    assert "6 views of shard 1/2: 6 decoded, 0 already cached, 0 cannot be decoded" in result.stdout
    assert len(list((tmp_path / "cache").rglob("*.crop.json"))) == 6
