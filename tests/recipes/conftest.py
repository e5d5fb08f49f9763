"""The real recipes at their real sizes, through ``train.py`` as a user runs them.

Every run's command comes from :func:`recipe_overrides`, the one place it is built: the real
experiment on its family's synthetic twin (``data=<family>_synthetic``), the real recipe's data
settings put back over the twin's (input size, batch, workers: see :func:`recipe_data`), the twin
generated at the recipe's size, stand-in published weights (``paths.weights_dir``), what each
recipe shortens (two steps, one validation and one test batch) and a probe callback that writes
what the network was fed (``input_probe.py``). The twins and the weights are made once per session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from kbaselines.core.builders import build_datamodule
from kbaselines.core.config import PROJECT_ROOT, compose_config

HERE = Path(__file__).resolve().parent
#: a run whose processes hold more than this (GB, proportional set size) is stopped: the tests
#: share a machine (KBASELINES_RECIPE_MAX_GB)
MAX_GB = float(os.environ.get("KBASELINES_RECIPE_MAX_GB", "8"))
#: two optimisation steps, one validation batch and one test batch, no sanity validation
TWO_STEPS = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
)
#: a data setting of the twin's config that stays the twin's: where it is, how it is made, and
#: the names of its categories
TWIN_KEYS = ("root", "synthetic", "category_map")
#: 20 people x 24 images at 128 px (2 sessions, 2 lights, 2 expressions, 3 cameras): 5 folds by
#: person leave 14 training people, 336 images, for two batches of 128
KFACE_TWIN = (
    "data.synthetic.image_size=128",
    "data.synthetic.num_people=20",
    "data.synthetic.sessions=[S001,S002]",
    "data.synthetic.lights=[L1,L2]",
    "data.synthetic.expressions=[E01,E02]",
    "data.synthetic.cameras=[C6,C7,C8]",
)
#: 512x384 frames, people about 260 px tall: the 256x192 crops are cut at about their own scale
POSE_TWIN = (
    "data.synthetic.width=512",
    "data.synthetic.height=384",
    "data.synthetic.focal=600.0",
    "data.synthetic.frames_per_recording=6",
)
#: 1080 px scans, the short side of the real 1920x1080 captures: Faster R-CNN resizes them to
#: 800, YOLO's loader to 640 (square: the twin's scans are square)
XRAY_TWIN = ("data.synthetic.image_size=1080", "data.synthetic.images_per_sample=6")


@dataclass(frozen=True)
class Recipe:
    """A real experiment and how its test run differs from it.

    Args:
        experiment: the real experiment (``configs/experiment/<name>.yaml``).
        twin: ``data.synthetic.*`` settings: the twin at the recipe's size.
        run: what the run shortens (steps, parts) and nothing of its sizes.
        smaller: where CPU memory needs less than the recipe (a batch), with why in a comment.
    """

    experiment: str
    twin: tuple[str, ...]
    run: tuple[str, ...] = TWO_STEPS
    smaller: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        return self.experiment.split("_")[0]


RECIPES = {
    recipe.experiment: recipe
    for recipe in (
        Recipe("kface_lightcnn4", KFACE_TWIN),
        Recipe("kface_lightcnn9", KFACE_TWIN),
        # 128 faces take about 6.5 GB and 40 s a step on a CPU (scripts/profile_recipe.py)
        Recipe("kface_lightcnn29", KFACE_TWIN, smaller=("data.batch_size=64",)),
        Recipe("kface_lightcnn29v2", KFACE_TWIN, smaller=("data.batch_size=64",)),
        # the first phases: 4x4 stabilisation, then the 8x8 block fading in, one batch of 16 each
        # (16 images a phase instead of 800k); the held-out people's faces score the phases
        Recipe(
            "kface_pggan",
            KFACE_TWIN,
            run=(
                "model.fade_kimg=0.016",
                "model.stab_kimg=0.016",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=2",
                "trainer.limit_test_batches=1",
            ),
        ),
        Recipe("pose_simple_baseline", POSE_TWIN),
        # 8 scans take about 17 GB on a CPU (1.9 GB each at 800x800), 16 scans of 640 px 8 GB
        Recipe("xray_faster_rcnn", XRAY_TWIN, smaller=("data.batch_size=2",)),
        Recipe("xray_yolo", XRAY_TWIN, smaller=("data.batch_size=8",)),
        # 3328x2560 DICOMs cached at 1664x1280, 448 px patches fed at 224: two patch steps then
        # two whole-view steps (the stage switch), the validation and test parts whole (their
        # views are few, and the test loader scores the validation views first). 12 cases and 3
        # folds: the recipe's 5 folds with a validation tenth, stratified, need about 40 cases
        Recipe(
            "mammo_resnet34_maps",
            (
                "data.synthetic.num_cases=12",
                "data.synthetic.rows=3328",
                "data.synthetic.columns=2560",
            ),
            run=(
                "trainer.max_epochs=2",
                "data.stage1_epochs=1",
                "trainer.limit_train_batches=2",
                "trainer.num_sanity_val_steps=0",
                "cv.num_folds=3",
                "cv.val_fraction=0.34",
            ),
            # 8 whole views of 1664x1280 take about 11 GB on a CPU (1.2 GB each, measured by
            # scripts/profile_recipe.py); the 32 patches of stage 1 stay the recipe's
            smaller=("data.batch_size=2",),
        ),
    )
}


def _value(value: Any) -> str:
    """A plain config value as a command-line override value."""
    if isinstance(value, list):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def recipe_data(recipe: Recipe) -> list[str]:
    """The real recipe's data settings that the twin's config changes (input size, batches,
    workers, stage lengths), as overrides putting them back; the twin keeps :data:`TWIN_KEYS`."""
    real = compose_config([f"+experiment={recipe.experiment}", "data.root=/real"]).data
    twin = compose_config([f"+experiment={recipe.experiment}", f"data={recipe.family}_synthetic"])
    real, twin = (OmegaConf.to_container(c, resolve=False) for c in (real, twin.data))
    return [
        f"data.{key}={_value(value)}"
        for key, value in real.items()
        if key not in TWIN_KEYS and twin.get(key) != value
    ]


def recipe_overrides(recipe: Recipe, folder: Path, run_name: str, *extra: str) -> list[str]:
    """The command line of a recipe's run (after ``python train.py``): the one place it is built.

    ``folder`` is the session's: ``data/`` (the twins), ``weights/`` (stand-in published
    weights) and ``logs/`` (the runs) under it.
    """
    return [
        f"+experiment={recipe.experiment}",
        f"data={recipe.family}_synthetic",
        *recipe_data(recipe),
        *recipe.twin,
        f"paths.data_dir={folder}/data",
        f"paths.weights_dir={folder}/weights",
        f"paths.log_dir={folder}/logs",
        f"run_name={run_name}",
        "cv.fold=0",
        "callbacks.progress_bar=null",
        "+callbacks.input_probe._target_=input_probe.InputProbe",
        *recipe.run,
        *recipe.smaller,
        *extra,
    ]


@pytest.fixture(scope="session")
def recipe_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's folder of twins, weights and runs."""
    return tmp_path_factory.mktemp("recipes")


@pytest.fixture(scope="session")
def prepared(recipe_folder: Path, write_published_weights):
    """``prepared(recipe)``: its twin generated (once per family and size) and its published
    weights written as stand-ins (once per recipe), as train.py will find them."""
    done: set[str] = set()

    def prepare(recipe: Recipe) -> None:
        overrides = recipe_overrides(recipe, recipe_folder, "prepare")
        cfg = compose_config(overrides)
        twin = json.dumps(OmegaConf.to_container(cfg.data.synthetic, resolve=True))
        if recipe.family + twin not in done:
            build_datamodule(cfg.data).prepare_data()
            done.add(recipe.family + twin)
        if recipe.experiment not in done:
            write_published_weights(overrides, recipe_folder / "weights")
            done.add(recipe.experiment)

    return prepare


@dataclass(frozen=True)
class RecipeRun:
    """A finished run: its fold folder, wall time and the peak memory of its processes (the
    proportional set size, shared pages counted once, and the sum of their RSS, which counts a
    page shared by forked processes in each, as SLURM's process accounting and ``top`` do)."""

    fold: Path
    seconds: float
    peak_gb: float
    peak_rss_gb: float

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.fold / "metrics.json").read_text())

    @property
    def inputs(self) -> dict[str, dict[str, dict[str, list]]]:
        """``input_shapes.json``: per stage and epoch, the batch's and the first convolution's
        input shapes."""
        return json.loads((self.fold / "input_shapes.json").read_text())


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _memory(pid: int) -> tuple[int, int]:
    """PSS and RSS of ``pid`` and its descendants, in bytes."""
    pss = rss = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            lines = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
        except OSError:  # ended meanwhile
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in lines[1:]}
        pss, rss = pss + fields["Pss"] * 1024, rss + fields["Rss"] * 1024
        todo += _children(current)
    return pss, rss


def _run(recipe: Recipe, folder: Path, run_name: str, *extra: str) -> RecipeRun:
    """``python train.py <recipe_overrides>`` from the repository root, its memory sampled every
    half second and the run stopped above :data:`MAX_GB`; fail with its log."""
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "COLUMNS": "120",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, str(PROJECT_ROOT / "train.py")]
    command += recipe_overrides(recipe, folder, run_name, *extra)
    start, peak = time.monotonic(), [0, 0]
    with subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                pss, rss = _memory(process.pid)
                peak[:] = max(peak[0], pss), max(peak[1], rss)
                if pss > MAX_GB * 2**30:
                    os.killpg(process.pid, signal.SIGKILL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            out, err = process.communicate(timeout=3600)
        finally:
            stop.set()
            sampler.join()
    seconds = time.monotonic() - start
    used = f"peak {peak[0] / 2**30:.2f} GB (summed RSS {peak[1] / 2**30:.2f} GB)"
    print(f"{recipe.experiment} {run_name}: {seconds:.0f} s, {used}")
    if peak[0] > MAX_GB * 2**30:
        pytest.fail(f"{recipe.experiment}: stopped at {used}, above {MAX_GB} GB")
    if process.returncode != 0:
        pytest.fail(f"train.py {' '.join(command[2:])} failed:\n{out[-3000:]}\n{err[-6000:]}")
    fold = folder / "logs" / recipe.experiment / run_name / "fold_0"
    return RecipeRun(fold, seconds, peak[0] / 2**30, peak[1] / 2**30)


@pytest.fixture(scope="session")
def run_recipe(recipe_folder: Path, prepared):
    """``run_recipe(name, run_name, *extra)``: the recipe through train.py (twin and weights made
    first), a :class:`RecipeRun`; each run once per session, for every test that asks for it."""
    runs: dict[tuple[str, ...], RecipeRun] = {}

    def run(name: str, run_name: str = "run", *extra: str) -> RecipeRun:
        key = (name, run_name, *extra)
        if key not in runs:
            recipe = RECIPES[name]
            prepared(recipe)
            runs[key] = _run(recipe, recipe_folder, run_name, *extra)
        return runs[key]

    return run
