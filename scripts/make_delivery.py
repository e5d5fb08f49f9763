"""Make the delivery form of a synthetic twin: its Training and Validation parts packed as AI Hub
delivers a dataset, to try ``scripts/unpack.py`` and ``cv=official`` without a real delivery.

    python scripts/make_delivery.py data=kface_synthetic dst=deliveries/kface
    python scripts/make_delivery.py data=xray_synthetic dst=deliveries/xray validation_share=0.5

Generates the twin's two parts with disjoint groups (the DataModule's ``synthetic_twin`` says
which generator arguments count and number them) into ``<dst>/tree/<part>`` and packs them into
``<dst>/delivery`` (:func:`kbaselines.core.data.synthetic_delivery.make_synthetic_delivery`):
``TS_``/``TL_`` archives (``VS_``/``VL_`` for the Validation part) under ``원천데이터`` and
``라벨링데이터``, member names in CP949 without zip's UTF-8 flag. Prints what it made and the
commands that unpack and check it. Settings: configs/make_delivery.yaml.
"""

from __future__ import annotations

import os
import shlex
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from kbaselines.core.data.synthetic_delivery import make_synthetic_delivery

__all__ = ["main"]

COMPRESSION = {"deflated": zipfile.ZIP_DEFLATED, "stored": zipfile.ZIP_STORED}


@hydra.main(version_base="1.3", config_path="../configs", config_name="make_delivery")
def main(cfg: DictConfig) -> None:
    """Generate the parts, pack them, print what was made and the next commands."""
    dataset = HydraConfig.get().runtime.choices["data"]
    if cfg.data.get("synthetic") is None:
        sys.exit(f"data={dataset} sets no data.synthetic: use its twin, data={dataset}_synthetic")
    if cfg.compression not in COMPRESSION:
        sys.exit(f"compression={cfg.compression}: choose {' or '.join(COMPRESSION)}")
    module = hydra.utils.get_class(cfg.data._target_)
    twin = module.synthetic_twin(OmegaConf.to_container(cfg.data.synthetic, resolve=True))
    made = make_synthetic_delivery(
        twin,
        cfg.dst,
        validation_share=cfg.validation_share,
        part_folders=OmegaConf.to_container(cfg.part_folders),
        wrap=cfg.wrap,
        encoding=cfg.encoding,
        compression=COMPRESSION[cfg.compression],
        part_names=OmegaConf.to_container(cfg.data.parts),
        progress=cfg.progress,
    )
    print(f"Synthetic delivery of data={dataset} ({twin.count} counts the groups):")
    for folder, tree in made.trees.items():
        arguments = made.arguments[folder]
        files = sum(1 for p in tree.rglob("*") if p.is_file() and not p.name.startswith("."))
        print(
            f"  {tree}: {twin.count}={arguments[twin.count]} from {twin.first}="
            f"{arguments[twin.first]}, {files:,} files"
        )
    size = sum((made.delivery / a).stat().st_size for a in made.archives)
    print(
        f"  {made.delivery}: {len(made.archives)} archives, {size / 1e6:,.1f} MB, member names "
        f"in {cfg.encoding}"
    )
    src, root = shlex.quote(str(made.delivery)), shlex.quote(str(Path(cfg.dst) / "unpacked"))
    print("next, unpack it and check the parts (the tree beside it is what they must hold):")
    print(f"  python scripts/unpack.py data={dataset} src={src} dst={root}")
    print(f"  python scripts/check_dataset.py data={dataset} data.root={root} data.synthetic=null")


if __name__ == "__main__":
    main()
