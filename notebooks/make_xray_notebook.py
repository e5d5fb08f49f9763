"""Write notebooks/xray.ipynb from the cells below (kept as code so that diffs stay readable).

python notebooks/make_xray_notebook.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_writer import write_notebook

CELLS = [
    new_markdown_cell(
        "# X-ray baggage: the dataset and a finished detection run\n\n"
        "Explores an X-ray tree (the synthetic twin by default; set `XRAY_DATA` to e.g. "
        "`data=xray data.root=/data/xray`) and the results of a finished run (`XRAY_RUN`): folds, "
        "COCO metrics, per-class AP, precision-recall curves, detections drawn on scans.\n\n"
        "Run the quick job first: `python train.py +experiment=xray_faster_rcnn_synthetic run_name=demo`."
    ),
    new_code_cell(
        "import json, os\n"
        "from pathlib import Path\n\n"
        "import hydra\n"
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n"
        "from matplotlib.patches import Rectangle\n"
        "from PIL import Image\n\n"
        "from kbaselines.core.config import PROJECT_ROOT, compose_config\n\n"
        "DATA_OVERRIDES = os.environ.get('XRAY_DATA', 'data=xray_synthetic').split()\n"
        "RUN = Path(os.environ.get('XRAY_RUN', PROJECT_ROOT / 'logs/xray_faster_rcnn_synthetic/demo'))\n"
        "cfg = compose_config(['+experiment=xray_faster_rcnn_synthetic', *DATA_OVERRIDES])\n"
        "datamodule = hydra.utils.instantiate(cfg.data)\n"
        "datamodule.prepare_data()\n"
        "report = datamodule.check()\n"
        "print(report.render())"
    ),
    new_markdown_cell(
        "## Categories, scanners, scenarios\n\n"
        "Objects per category and scans per scanner make and scenario: the class balance and the "
        "domains of a cross-scanner split (`cv=leave_one_group_out`)."
    ),
    new_code_cell(
        "tables = {k: v for k, v in report.counts.items() if isinstance(v, dict)}\n"
        "fig, axes = plt.subplots(1, len(tables), figsize=(4 * len(tables), 3.2))\n"
        "for ax, (name, counts) in zip(axes, tables.items()):\n"
        "    ax.bar(list(counts), list(counts.values())); ax.set_title(name, fontsize=9)\n"
        "    ax.tick_params(axis='x', rotation=45, labelsize=7)\n"
        "plt.tight_layout(); plt.show()"
    ),
    new_markdown_cell("## Scans of one physical item (one split group) with their boxes"),
    new_code_cell(
        "images = datamodule.images()\n"
        "group = images[0].group\n"
        "scans = [i for i in images if i.group == group][:8]\n"
        "fig, axes = plt.subplots(2, 4, figsize=(12, 6))\n"
        "for ax, scan in zip(axes.flat, scans):\n"
        "    ax.imshow(Image.open(Path(datamodule.root) / scan.path))\n"
        "    for o in scan.objects:\n"
        "        x0, y0, x1, y1 = o.box\n"
        "        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec='red'))\n"
        "        ax.text(x0, y0, o.category, color='red', fontsize=7)\n"
        "    ax.set_title(f'{scan.name.scanner} / {scan.name.scenario}', fontsize=7); ax.axis('off')\n"
        "plt.suptitle(f'sample {group}'); plt.show()"
    ),
    new_markdown_cell("## The run: folds and metrics"),
    new_code_cell(
        "splits = json.loads((RUN / 'splits.json').read_text())\n"
        "for fold in splits['folds']:\n"
        "    print(f\"fold {fold['index']}: train {len(fold['train'])} scans, val {len(fold['val'])}, \"\n"
        "          f\"test {len(fold['test'])}\")\n"
        "folds = sorted(p for p in RUN.glob('fold_*') if (p / 'metrics.json').is_file())\n"
        "metrics = pd.DataFrame({p.name: json.loads((p / 'metrics.json').read_text()) for p in folds})\n"
        "metrics.loc[[k for k in metrics.index if '/' in k and k.count('/') == 1]]"
    ),
    new_code_cell("pd.read_csv(folds[0] / 'per_class_test.csv')"),
    new_markdown_cell("## Per-class AP, precision-recall curves, detections"),
    new_code_cell(
        "for name in ('ap_per_class_test.png', 'pr_curves_test.png', 'detections_test.png'):\n"
        "    plt.figure(figsize=(10, 6)); plt.imshow(Image.open(folds[0] / name)); plt.axis('off')\n"
        "    plt.show()"
    ),
]


def main() -> Path:
    return write_notebook(CELLS, Path(__file__).with_name("xray.ipynb"))


if __name__ == "__main__":
    print(main())
