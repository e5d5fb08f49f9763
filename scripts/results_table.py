"""Build the README's results table from finished run folders (never typed by hand).

    python scripts/results_table.py runs=[logs/kface_lightcnn9_synthetic/<run>,<more run folders>]
    python scripts/results_table.py runs=logs/kface_lightcnn9_synthetic/<run>

Settings: configs/results_table.yaml. Each row: the experiment, the metric, the guideline's
figure, the original paper's figure (both from the experiment's ``reference`` config block), the
split the figure was measured on (``k-fold``, or ``official``: trained on the dataset's Training
part, tested on its Validation part, with the groups found in both parts), our figure (mean ± std
over the folds, and the data it was measured on), the command that produced the run, and the real
recipe that should reproduce the reference figure (said not run here when the row comes from a
synthetic twin). Rows of one experiment stay together, so that its official-split figure sits
beside its k-fold one. Detection runs add a second table: AP50 per category, mean ± std over the
folds. Exit code 1 when a folder has no ``cv_summary.json`` (an unfinished run). No Hydra run
folder is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import yaml
from omegaconf import DictConfig, ListConfig

from kbaselines.core.cv.splits import OFFICIAL

# overrides that say where a run wrote or how it showed progress, not what it computed
PRESENTATION_ONLY = (
    "cv.fold=",
    "paths.",
    "callbacks.progress_bar=",
    "callbacks.model_summary=",
)


def _command(run_dir: Path) -> str:
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
    overrides = [o for o in overrides if not o.startswith(PRESENTATION_ONLY)]
    return "python train.py " + " ".join(overrides)


def _data_name(config: dict) -> str:
    data = config.get("data", {})
    return "synthetic" if data.get("synthetic") else f"real ({data.get('root')})"


SYNTHETIC_SUFFIX = "_synthetic"


def _real_recipe(config: dict) -> str:
    """The command that should reproduce the paper's or guideline's figure: the experiment without
    ``_synthetic`` on the real data, said not run here when the row was measured on a twin."""
    name = config.get("experiment_name", "")
    real = name.removesuffix(SYNTHETIC_SUFFIX)
    command = f"`python train.py +experiment={real} data.root=<the dataset>`"
    if config.get("data", {}).get("synthetic"):
        return f"{command} (not run here: the data is registered, and this machine has no GPU)"
    return command


def _split(summary: dict) -> str:
    """The split a run's figures come from: its scheme, or for the dataset's official split the
    part it tested on and how many groups its two parts share."""
    scheme = summary.get("scheme", "kfold")
    if scheme != OFFICIAL:
        return {"kfold": "k-fold"}.get(scheme, scheme.replace("_", " "))
    overlap = summary.get("official_overlap") or {}
    shared = overlap.get("groups", 0)
    return f"official (Validation part; {shared} group{'s' if shared != 1 else ''} in both parts)"


def _name(config: dict, summary: dict, run_dir: Path) -> str:
    """The experiment's name; ``(official split)`` added to a column of the official split's."""
    name = config.get("experiment_name", run_dir.parent.name)
    return f"{name} (official split)" if summary.get("scheme") == OFFICIAL else name


def row(run_dir: Path) -> str:
    """One Markdown table row for a finished run folder."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    summary = json.loads((run_dir / "cv_summary.json").read_text())
    reference = config.get("reference") or {}
    key = reference.get("key", "test/roc_auc")
    offset, scale = reference.get("offset", 0.0), reference.get("scale", 1.0)
    stats = summary["metrics"][key]
    mean = offset + scale * stats["mean"]
    spread = "" if stats["std"] is None else f" ± {abs(scale) * stats['std']:.2f}"
    k = summary["num_folds"]
    ours = f"{mean:.2f}{spread} ({_data_name(config)}, {k} fold{'s' if k != 1 else ''})"
    cells = [
        config.get("experiment_name", run_dir.parent.name),
        reference.get("metric", key),
        str(reference.get("guideline") or "not given"),
        str(reference.get("paper") or "not given"),
        _split(summary),
        ours,
        f"`{_command(run_dir)}`",
        _real_recipe(config),
    ]
    return "| " + " | ".join(cells) + " |"


#: per-category metrics of the detection runs: ``test/ap50/<category>`` (VOC AP at IoU 0.5)
PER_CATEGORY = "test/ap50/"


def per_category_table(run_dirs: list[Path]) -> str:
    """AP50 (%) per category, mean ± std over the folds, one column per detection run (the
    guideline reports detectors per category); empty when no run has per-category metrics."""
    columns: dict[str, dict[str, str]] = {}
    for run_dir in run_dirs:
        summary = json.loads((run_dir / "cv_summary.json").read_text())
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        name = _name(config, summary, run_dir)
        cells = {}
        for key, stats in summary["metrics"].items():
            if key.startswith(PER_CATEGORY):
                spread = "" if stats["std"] is None else f" ± {100 * stats['std']:.2f}"
                cells[key[len(PER_CATEGORY) :]] = f"{100 * stats['mean']:.2f}{spread}"
        if cells:
            columns[name] = cells
    if not columns:
        return ""
    categories = sorted({c for cells in columns.values() for c in cells})
    lines = [
        "| category | " + " | ".join(f"{name} AP50 (%)" for name in columns) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    lines += [
        f"| {c} | " + " | ".join(cells.get(c, "-") for cells in columns.values()) + " |"
        for c in categories
    ]
    return "\n".join(lines)


def together(run_dirs: list[Path]) -> list[Path]:
    """The runs in the order given, each experiment's runs moved up beside its first one (a
    k-fold run and an official-split run of one experiment side by side)."""
    names = [
        yaml.safe_load((run_dir / "config.yaml").read_text()).get(
            "experiment_name", run_dir.parent.name
        )
        for run_dir in run_dirs
    ]
    first = {name: names.index(name) for name in names}
    order = sorted(range(len(run_dirs)), key=lambda k: first[names[k]])
    return [run_dirs[k] for k in order]


def table(run_dirs: list[Path]) -> int:
    """Print the table of ``run_dirs`` (and the per-category AP table of the detection runs);
    return the exit code."""
    header = [
        "experiment",
        "metric",
        "guideline",
        "paper",
        "split",
        "ours",
        "command",
        "on the real data",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run_dir in run_dirs:
        if not (run_dir / "cv_summary.json").is_file():
            print(f"{run_dir}: no cv_summary.json (unfinished run?)", file=sys.stderr)
            return 1
    run_dirs = together(run_dirs)
    for run_dir in run_dirs:
        lines.append(row(run_dir))
    print("\n".join(lines))
    categories = per_category_table(run_dirs)
    if categories:
        print("\nPer category (detection runs):\n")
        print(categories)
    return 0


@hydra.main(version_base="1.3", config_path="../configs", config_name="results_table")
def main(cfg: DictConfig) -> None:
    runs = cfg.runs if isinstance(cfg.runs, ListConfig) else [cfg.runs]
    if not runs:
        print("results_table.py: runs=[<run folder>,...] names no run folder", file=sys.stderr)
        sys.exit(2)
    code = table([Path(str(run)) for run in runs])
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
