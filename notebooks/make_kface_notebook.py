"""Write notebooks/kface.ipynb from the cells below (kept as code so that diffs stay readable).

python notebooks/make_kface_notebook.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_writer import write_notebook

CELLS = [
    new_markdown_cell(
        "# K-Face: the dataset and a finished run\n\n"
        "Explores a K-Face tree (the synthetic twin by default; set `DATA` to your real tree) and the "
        "results of a finished cross-validation run (`RUN`): the folds, the ROC curves, example pairs.\n\n"
        "Run the quick job first: `python train.py +experiment=kface_lightcnn9_synthetic run_name=demo`."
    ),
    new_code_cell(
        "import json, os\n"
        "from pathlib import Path\n\n"
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n"
        "from PIL import Image\n\n"
        "from kbaselines.core.config import PROJECT_ROOT, compose_config\n"
        "import hydra\n\n"
        "# Settings: the papermill-style parameters the tests set through environment variables\n"
        "DATA_OVERRIDES = os.environ.get('KFACE_DATA', 'data=kface_synthetic').split()\n"
        "RUN = Path(os.environ.get('KFACE_RUN', PROJECT_ROOT / 'logs/kface_lightcnn9_synthetic/demo'))\n"
        "cfg = compose_config(['+experiment=kface_lightcnn9_synthetic', *DATA_OVERRIDES])\n"
        "datamodule = hydra.utils.instantiate(cfg.data)\n"
        "datamodule.prepare_data()\n"
        "report = datamodule.check()\n"
        "print(report.render())"
    ),
    new_markdown_cell(
        "## Images per facet\n\nEvery person is photographed under every combination of the facets."
    ),
    new_code_cell(
        "for facet, counts in report.counts.items():\n"
        "    if isinstance(counts, dict):\n"
        "        print(facet, dict(sorted(counts.items())))"
    ),
    new_markdown_cell("## One person under several conditions"),
    new_code_cell(
        "table = datamodule.sample_table()\n"
        "person = table.groups[0]\n"
        "paths = [p for p, g in zip(table.ids, table.groups) if g == person][:12]\n"
        "tree = Path(datamodule.tree)\n"
        "fig, axes = plt.subplots(2, 6, figsize=(12, 4.5))\n"
        "for ax, path in zip(axes.flat, paths):\n"
        "    ax.imshow(Image.open(tree / path)); ax.set_title(path.split('/', 1)[1].replace('.jpg', ''), fontsize=7)\n"
        "    ax.axis('off')\n"
        "plt.suptitle(f'person {person}'); plt.show()"
    ),
    new_markdown_cell("## The run: folds, metrics, ROC curves"),
    new_code_cell(
        "splits = json.loads((RUN / 'splits.json').read_text())\n"
        "for fold in splits['folds']:\n"
        "    people = lambda ids: len({i.split('/')[0] for i in ids})\n"
        "    print(f\"fold {fold['index']}: train {people(fold['train'])} people, val {people(fold['val'])}, \"\n"
        "          f\"test {people(fold['test'])}\")\n"
        "summary = json.loads((RUN / 'cv_summary.json').read_text())\n"
        "pd.DataFrame({k: {'mean': v['mean'], 'std': v['std']} for k, v in summary['metrics'].items()}).T"
    ),
    new_code_cell(
        "plt.figure(figsize=(6, 6)); plt.imshow(Image.open(RUN / 'roc_folds.png')); plt.axis('off'); plt.show()"
    ),
    new_markdown_cell("## Example pairs: the most and least similar genuine and impostor pairs"),
    new_code_cell(
        "pairs = pd.read_csv(RUN / 'fold_0' / 'predictions_test.csv')\n"
        "examples = pd.concat([\n"
        "    pairs[pairs.target == 1].nsmallest(2, 'score'), pairs[pairs.target == 1].nlargest(1, 'score'),\n"
        "    pairs[pairs.target == 0].nlargest(2, 'score'), pairs[pairs.target == 0].nsmallest(1, 'score')])\n"
        "fig, axes = plt.subplots(2, len(examples), figsize=(2 * len(examples), 4.5))\n"
        "for column, (_, row) in enumerate(examples.iterrows()):\n"
        "    for r, key in enumerate(['first', 'second']):\n"
        "        axes[r, column].imshow(Image.open(tree / row[key])); axes[r, column].axis('off')\n"
        "    kind = 'genuine' if row.target else 'impostor'\n"
        "    axes[0, column].set_title(f'{kind}\\n{row.score:.2f}', fontsize=8)\n"
        "plt.show()"
    ),
]


def main() -> Path:
    return write_notebook(CELLS, Path(__file__).with_name("kface.ipynb"))


if __name__ == "__main__":
    print(main())
