"""The run folder's frozen config: a run is resumed only with the config it started with."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

__all__ = ["ConfigChangedError", "config_differences", "freeze_config"]

log = logging.getLogger(__name__)

FROZEN_CONFIG = "config.yaml"
# Keys that say what to do in this start, not what the run is: they may change between starts, and
# the settings that derive from them (a fold's checkpoint folder) are frozen in their masked form.
RUN_CONTROL_KEYS = ("cv.fold", "force", "paths.fold_dir")
MASK = "<set at each start>"
# Keys that only name the run folder. The folder is the run: a start that names it another way
# (hydra.run.dir=<folder> instead of run_name=<name>, whose timestamp default then differs) is
# compared with the frozen names, so that they and the settings derived from them (a logger's run
# name) never count as differences.
FOLDER_KEYS = ("run_name", "paths.output_dir")


class ConfigChangedError(RuntimeError):
    """The run folder was started with another config."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines ``key: old -> new`` for every setting that differs."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(flat_old) | set(flat_new)):
        before, after = flat_old.get(key, "<absent>"), flat_new.get(key, "<absent>")
        if before != after:
            lines.append(f"{key}: {before!r} -> {after!r}")
    return lines


def freeze_config(run_dir: Path, cfg: DictConfig, force: bool = False) -> None:
    """Write the resolved config at the first start; at a later start, refuse a different one.

    The first writer wins (exclusive create), so folds started as separate jobs at the same time
    agree on one frozen config.

    Raises:
        ConfigChangedError: listing the differences, unless ``force`` is set.
    """
    path = Path(run_dir) / FROZEN_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    # masked before resolving, so that what derives from them (a fold's checkpoint folder) is
    # frozen in its masked form too; on a plain copy, which the typed cv schema does not bind
    snapshot = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for key in RUN_CONTROL_KEYS:
        OmegaConf.update(snapshot, key, MASK, force_add=True)
    text = yaml.safe_dump(OmegaConf.to_container(snapshot, resolve=True), sort_keys=False)
    try:
        with open(path, "x") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        return
    except FileExistsError:
        pass
    frozen = yaml.safe_load(path.read_text())
    frozen_flat = _flatten(frozen)
    for key in FOLDER_KEYS:
        if key in frozen_flat:
            OmegaConf.update(snapshot, key, frozen_flat[key], force_add=True)
    differences = config_differences(frozen, OmegaConf.to_container(snapshot, resolve=True))
    if not differences:
        return
    listing = "\n  ".join(differences)
    if force:
        log.warning("Config differs from the frozen %s (force=true):\n  %s", path, listing)
        return
    raise ConfigChangedError(
        f"{path.parent} was started with another config; differences:\n  {listing}\n"
        "Start a new run (run_name=<new name>) or pass force=true to go on with the new config."
    )
