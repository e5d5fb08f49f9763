"""Write notebooks/mammo.ipynb from the cells below (kept as code so that diffs stay readable).

python notebooks/make_mammo_notebook.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_writer import write_notebook

CELLS = [
    new_markdown_cell(
        "# Mammography: the dataset and a finished run\n\n"
        "Explores a mammography tree (the synthetic twin by default; set `MAMMO_DATA` to "
        "`data=mammo data.root=/your/tree`) and the results of a finished cross-validation run "
        "(`MAMMO_RUN`): the four views of a case with its contours, the class balance, the folds, "
        "the ROC curves, the cancer/benign map overlays and the subgroup table.\n\n"
        "Run the quick job first: `python train.py +experiment=mammo_resnet34_maps_synthetic run_name=demo`."
    ),
    new_code_cell(
        "import json, os\n"
        "from pathlib import Path\n\n"
        "import hydra\n"
        "import matplotlib.pyplot as plt\n"
        "import matplotlib.patches as patches\n"
        "import pandas as pd\n"
        "from PIL import Image\n\n"
        "from kbaselines.core.config import PROJECT_ROOT, compose_config\n"
        "from kbaselines.mammo.dicom import read_pixels\n\n"
        "DATA_OVERRIDES = os.environ.get('MAMMO_DATA', 'data=mammo_synthetic').split()\n"
        "RUN = Path(os.environ.get('MAMMO_RUN', PROJECT_ROOT / 'logs/mammo_resnet34_maps_synthetic/demo'))\n"
        "cfg = compose_config(['+experiment=mammo_resnet34_maps_synthetic', *DATA_OVERRIDES])\n"
        "datamodule = hydra.utils.instantiate(cfg.data)\n"
        "datamodule.prepare_data()\n"
        "report = datamodule.check()\n"
        "print(report.render())"
    ),
    new_markdown_cell(
        "## Four views of a cancer case\n\n"
        "Read from the DICOM files (modality LUT, window, MONOCHROME1 inverted, right breasts "
        "flipped so every chest wall is on the left); the lesion boxes come from the contours."
    ),
    new_code_cell(
        "cases = datamodule.cases()\n"
        "case = next(c for c in cases if c.grp == 'cancer')\n"
        "fig, axes = plt.subplots(1, 4, figsize=(12, 4))\n"
        "for ax, view in zip(axes, ['rcc', 'lcc', 'rmlo', 'lmlo']):\n"
        "    pixels, header = read_pixels(datamodule.index.root / case.views[view])\n"
        "    ax.imshow(pixels, cmap='gray', vmin=0, vmax=1); ax.axis('off')\n"
        "    ax.set_title(f'{view.upper()} ({header.source})', fontsize=8)\n"
        "    rows, columns = pixels.shape\n"
        "    for lesion in (l for l in case.lesions if l.view == view):\n"
        "        x0, y0, x1, y1 = lesion.box\n"
        "        ax.add_patch(patches.Rectangle((x0 * columns, y0 * rows), (x1 - x0) * columns,\n"
        "                     (y1 - y0) * rows, fill=False, color='red' if lesion.cls == 'cancer' else 'lime'))\n"
        "plt.suptitle(f'case {case.case_id}: {case.grp}, breasts {case.breasts}'); plt.show()"
    ),
    new_markdown_cell("## Classes, BI-RADS and devices"),
    new_code_cell(
        "fig, axes = plt.subplots(1, 3, figsize=(12, 3))\n"
        "for ax, key in zip(axes, ['cases per class', 'BI-RADS', 'devices']):\n"
        "    counts = report.counts[key]\n"
        "    ax.bar([str(k)[:18] for k in counts], list(counts.values())); ax.set_title(key)\n"
        "    ax.tick_params(axis='x', labelsize=7, rotation=20)\n"
        "plt.tight_layout(); plt.show()"
    ),
    new_markdown_cell("## The run: folds, metrics, ROC curves"),
    new_code_cell(
        "splits = json.loads((RUN / 'splits.json').read_text())\n"
        "for fold in splits['folds']:\n"
        "    print(f\"fold {fold['index']}: train {len(fold['train'])} cases, val {len(fold['val'])}, \"\n"
        "          f\"test {len(fold['test'])}\")\n"
        "summary = json.loads((RUN / 'cv_summary.json').read_text())\n"
        "pd.DataFrame({k: {'mean': v['mean'], 'std': v['std']} for k, v in summary['metrics'].items()}).T"
    ),
    new_code_cell(
        "plt.figure(figsize=(6, 6)); plt.imshow(Image.open(RUN / 'roc_folds.png')); plt.axis('off'); plt.show()\n"
        "print('pooled:', summary.get('pooled'))"
    ),
    new_markdown_cell(
        "## Case predictions, maps and subgroups\n\n"
        "Red: the cancer map; green: the benign map (probabilities above 0.2)."
    ),
    new_code_cell(
        "predictions = pd.concat(pd.read_csv(p, dtype={'case_id': str}) for p in sorted(RUN.glob('fold_*/predictions_test.csv')))\n"
        "print(predictions.groupby('grp')[['score', 'benign_score']].mean())\n"
        "overlay = sorted(RUN.glob('fold_0/overlays_test/*.png'))[0]\n"
        "plt.figure(figsize=(12, 4.5)); plt.imshow(Image.open(overlay)); plt.axis('off'); plt.show()\n"
        "print((RUN / 'fold_0' / 'subgroups_test.md').read_text())"
    ),
]


def main() -> Path:
    return write_notebook(CELLS, Path(__file__).with_name("mammo.ipynb"))


if __name__ == "__main__":
    print(main())
