"""Write notebooks/pggan.ipynb from the cells below (kept as code so that diffs stay readable).

python notebooks/make_pggan_notebook.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_writer import write_notebook

CELLS = [
    new_markdown_cell(
        "# PGGAN on K-Face: the training faces and a finished run\n\n"
        "Shows the faces the GAN learns from (the synthetic twin by default; set `PGGAN_DATA` to "
        "your real tree's overrides) and a finished run (`PGGAN_RUN`): the phase metrics, the "
        "sample grids of every phase, the final samples next to held-out real faces, and images "
        "from chosen latent seeds.\n\n"
        "Run the quick job first: `python train.py +experiment=kface_pggan_synthetic run_name=demo`."
    ),
    new_code_cell(
        "import json, os\n"
        "from pathlib import Path\n\n"
        "import hydra\n"
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n"
        "import torch\n"
        "from PIL import Image\n\n"
        "from kbaselines.core.config import PROJECT_ROOT, compose_config\n"
        "from kbaselines.kface.sample_grids import save_grid\n\n"
        "# Settings: the parameters the tests set through environment variables\n"
        "DATA_OVERRIDES = os.environ.get('PGGAN_DATA', 'data=kface_synthetic').split()\n"
        "RUN = Path(os.environ.get('PGGAN_RUN', PROJECT_ROOT / 'logs/kface_pggan_synthetic/demo'))\n"
        "cfg = compose_config(['+experiment=kface_pggan_synthetic', *DATA_OVERRIDES])\n"
        "datamodule = hydra.utils.instantiate(cfg.data)\n"
        "datamodule.prepare_data()\n"
        "table = datamodule.sample_table()\n"
        "print(f'{len(table.ids)} selected faces of {len(set(table.groups))} people')"
    ),
    new_markdown_cell(
        "## The training faces\n\nCropped by their boxes and resized to the GAN's final "
        "resolution, as the DataModule gives them (the task rescales them per phase)."
    ),
    new_code_cell(
        "datamodule = hydra.utils.instantiate(cfg.data, split={'test': table.ids[:64]})\n"
        "datamodule.setup('test')\n"
        "faces = torch.stack([datamodule.datasets['test'][i]['image'] for i in range(64)])\n"
        "save_grid(faces, Path('/tmp/pggan_real.png'), scale=max(1, 64 // faces.shape[-1]))\n"
        "plt.figure(figsize=(6, 6)); plt.imshow(Image.open('/tmp/pggan_real.png')); plt.axis('off')\n"
        "plt.title('real faces'); plt.show()"
    ),
    new_markdown_cell(
        "## The run: metrics at the end of each phase\n\nSWD (x 1e3, lower is better) of the "
        "EMA generator against real faces at the phase's resolution; MS-SSIM among samples "
        "(lower is more diverse)."
    ),
    new_code_cell(
        "fold = RUN / 'fold_0'\n"
        "phases = pd.read_csv(fold / 'phase_metrics.csv')\n"
        "display(phases)\n"
        "plt.figure(figsize=(8, 3.5)); plt.imshow(Image.open(fold / 'phase_metrics.png'))\n"
        "plt.axis('off'); plt.show()"
    ),
    new_markdown_cell("## Samples from the fixed latents at the end of every phase"),
    new_code_cell(
        "grids = sorted((fold / 'samples').glob('*.png'))\n"
        "fig, axes = plt.subplots(1, len(grids), figsize=(3 * len(grids), 3.4), squeeze=False)\n"
        "for ax, path in zip(axes[0], grids):\n"
        "    ax.imshow(Image.open(path)); ax.set_title(path.stem, fontsize=8); ax.axis('off')\n"
        "plt.show()"
    ),
    new_markdown_cell("## Test metrics against the held-out people, and the final samples"),
    new_code_cell(
        "summary = json.loads((RUN / 'cv_summary.json').read_text())\n"
        "display(pd.DataFrame({k: {'value': v['mean']} for k, v in summary['metrics'].items()}).T)\n"
        "plt.figure(figsize=(6, 6)); plt.imshow(Image.open(fold / 'samples_test.png'))\n"
        "plt.axis('off'); plt.title('EMA generator, fixed latents'); plt.show()"
    ),
    new_markdown_cell(
        "## Images for chosen latent seeds\n\n"
        "With `python scripts/generate.py ckpt_path=<ckpt> out_dir=<folder> seeds=[...]` (the same as `predict.py +experiment=kface_pggan`)."
    ),
    new_code_cell(
        "import subprocess, sys, tempfile\n\n"
        "out = Path(tempfile.mkdtemp(prefix='pggan_generated_'))\n"
        "subprocess.run([sys.executable, str(PROJECT_ROOT / 'scripts' / 'generate.py'),\n"
        "                f\"ckpt_path={fold / 'checkpoints' / 'last.ckpt'}\", f'out_dir={out}', 'seeds=[0,1,2,3]'],\n"
        "               check=True)\n"
        "paths = sorted(out.glob('seed*.png'))\n"
        "fig, axes = plt.subplots(1, len(paths), figsize=(2.5 * len(paths), 2.8))\n"
        "for ax, path in zip(axes, paths):\n"
        "    ax.imshow(Image.open(path)); ax.set_title(path.stem); ax.axis('off')\n"
        "plt.show()"
    ),
]


def main() -> Path:
    return write_notebook(CELLS, Path(__file__).with_name("pggan.ipynb"))


if __name__ == "__main__":
    print(main())
