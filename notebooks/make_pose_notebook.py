"""Write notebooks/pose.ipynb from the cells below (kept as code so that diffs stay readable).

python notebooks/make_pose_notebook.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_writer import write_notebook

CELLS = [
    new_markdown_cell(
        "# Human pose: the dataset and a finished run\n\n"
        "Explores a pose dataset (the synthetic twin by default; set `POSE_DATA` to "
        "`data=pose data.root=/path`) and a finished run (`POSE_RUN`): counts, people with their "
        "joints, the multi-view rig, the metrics, per-joint PCKh and 3D errors, predicted skeletons.\n\n"
        "Run the quick job first: `python train.py +experiment=pose_simple_baseline_synthetic run_name=demo`."
    ),
    new_code_cell(
        "import json, os\n"
        "from pathlib import Path\n\n"
        "import hydra\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "from PIL import Image\n\n"
        "from kbaselines.core.config import PROJECT_ROOT, compose_config\n"
        "from kbaselines.pose.joints import JOINTS, SKELETON\n\n"
        "DATA_OVERRIDES = os.environ.get('POSE_DATA', 'data=pose_synthetic').split()\n"
        "RUN = Path(os.environ.get('POSE_RUN', PROJECT_ROOT / 'logs/pose_simple_baseline_synthetic/demo'))\n"
        "cfg = compose_config(['+experiment=pose_simple_baseline_synthetic', *DATA_OVERRIDES])\n"
        "datamodule = hydra.utils.instantiate(cfg.data)\n"
        "datamodule.prepare_data()\n"
        "report = datamodule.check()\n"
        "print(report.render())"
    ),
    new_markdown_cell("## Labelled and visible joints\n\nVisibility 2 = visible, 1 = occluded."),
    new_code_cell(
        "pd.DataFrame({'labelled': report.counts['labelled joints per joint'],\n"
        "              'visible': report.counts['visible joints per joint']}).plot.bar(figsize=(9, 3))\n"
        "plt.show()"
    ),
    new_markdown_cell("## One instant seen by every camera, with its 2D joints"),
    new_code_cell(
        "samples = datamodule.samples()\n"
        "first = next(iter(samples.values()))[1]\n"
        "views = [(p, i) for p, i in samples.values() if i.instant == first.instant]\n"
        "fig, axes = plt.subplots(1, len(views), figsize=(3.2 * len(views), 3))\n"
        "for ax, (person, image) in zip(np.atleast_1d(axes), views):\n"
        "    ax.imshow(Image.open(datamodule.image_root / image.path))\n"
        "    k = person.keypoints\n"
        "    for a, b in SKELETON:\n"
        "        if k[a, 2] > 0 and k[b, 2] > 0:\n"
        "            ax.plot(k[[a, b], 0], k[[a, b], 1], 'lime', lw=1)\n"
        "    ax.scatter(k[:, 0], k[:, 1], c=k[:, 2], cmap='cool', s=8)\n"
        "    ax.set_title(f'{image.camera} ({image.action})', fontsize=8); ax.axis('off')\n"
        "plt.show()"
    ),
    new_markdown_cell("## The run: metrics over the test sets"),
    new_code_cell(
        "summary = json.loads((RUN / 'cv_summary.json').read_text())\n"
        "print(summary['scheme'], summary['num_folds'], 'folds')\n"
        "table = pd.DataFrame({k: {'mean': v['mean'], 'std': v['std']}\n"
        "                      for k, v in summary['metrics'].items() if '_' not in k.split('/')[1][:5]})\n"
        "table.T"
    ),
    new_code_cell(
        "per_joint = pd.read_csv(RUN / 'fold_0' / 'per_joint_test.csv').set_index('joint')\n"
        "per_joint.plot.bar(subplots=True, figsize=(9, 2.5 * per_joint.shape[1]), legend=False)\n"
        "plt.show()"
    ),
    new_markdown_cell("## Predicted (red) and true (green) skeletons of the first test set"),
    new_code_cell(
        "plt.figure(figsize=(11, 7)); plt.imshow(Image.open(RUN / 'fold_0' / 'skeletons_test.png'))\n"
        "plt.axis('off'); plt.show()"
    ),
]


def main() -> Path:
    return write_notebook(CELLS, Path(__file__).with_name("pose.ipynb"))


if __name__ == "__main__":
    print(main())
