"""Shared fixtures: real configs composed once, a synthetic K-Face tree generated once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kbaselines.core.config import PROJECT_ROOT, compose_config

QUICK_EXPERIMENT = "+experiment=kface_lightcnn9_synthetic"


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for tests of tiny tensors: OpenMP threads spin on a busy CPU (a training
    subprocess beside the tests) and turn milliseconds into seconds; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_kface_run(data: Path) -> list[str]:
    """Overrides of a K-Face run of seconds in ``data``: 16 people, 16 px, one epoch of 3 batches."""
    return [
        QUICK_EXPERIMENT,
        f"paths.data_dir={data}",
        f"data.root={data}/kface_tiny",
        f"paths.cache_dir={data}/cache",
        "data.synthetic.num_people=16",
        "data.synthetic.sessions=[S001,S002]",
        "data.synthetic.lights=[L1]",
        "data.input_size=[16,16]",
        "data.batch_size=16",
        "cv.val_fraction=0.25",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
    ]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the synthetic K-Face tree of ``data=kface_synthetic``, made once."""
    from kbaselines.kface.synthetic import ensure_synthetic_kface

    folder = tmp_path_factory.mktemp("data")
    cfg = compose_config([QUICK_EXPERIMENT, f"paths.data_dir={folder}"])
    ensure_synthetic_kface(cfg.data.root, **cfg.data.synthetic)
    return folder


def _run_entry_point(
    script: str, *overrides: str, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``python <script> <overrides>`` from the repository root as a user would; fail with its log."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "120"}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script), *overrides],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{script} {' '.join(overrides)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture(scope="session")
def run_entry_point():
    """``run_entry_point("train.py", "+experiment=...", ...)``: an entry point in a real subprocess."""
    return _run_entry_point


def _execute_notebook(name: str, **env: str) -> int:
    """Run ``notebooks/<name>`` top to bottom with ``env`` set; return how many images it drew.

    The notebooks read the run and the data settings from environment variables, as a user opening
    one in Jupyter sets them.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / name, as_version=4)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(PROJECT_ROOT)}},
        ).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


@pytest.fixture(scope="session")
def execute_notebook():
    """``execute_notebook("kface.ipynb", KFACE_RUN=...)``: run a notebook, get its image count."""
    return _execute_notebook


@pytest.fixture(scope="session")
def tiny_kface_run():
    """``tiny_kface_run(folder)``: the overrides of a K-Face run of seconds with its data there."""
    return _tiny_kface_run


def _write_published_weights(overrides: list[str], weights_dir: Path) -> list[Path]:
    """Stand-in files for every published weights file the composed config names, written where
    :mod:`kbaselines.core.pretrained` looks (``weights_dir``), with the publisher's key layout:
    the architecture of the file, randomly initialised (seed 0). Returns the files written."""
    import hydra
    import timm
    import torch
    import torchvision
    from safetensors.torch import save_file

    from kbaselines.core.pretrained import (
        AuthorsWeights,
        TimmWeights,
        TorchvisionWeights,
        published_weights,
    )

    cfg = compose_config([*overrides, f"paths.weights_dir={weights_dir}"])
    written = []
    for _, node in published_weights(cfg.model, "model"):
        weights = hydra.utils.instantiate(node)
        torch.manual_seed(0)
        if isinstance(weights, TimmWeights):
            state = timm.create_model(weights.architecture, pretrained=False).state_dict()
        elif isinstance(weights, TorchvisionWeights):
            name = next(
                n
                for n in torchvision.models.list_models()
                if torchvision.models.get_model_weights(n) is type(weights.enum)
            )
            state = torchvision.models.get_model(name).state_dict()
        elif isinstance(weights, AuthorsWeights):  # the authors' layout, 10 identities
            net = hydra.utils.instantiate(cfg.model.net, num_classes=10)
            state = {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}
        else:
            raise TypeError(f"no stand-in for {weights!r}")
        path = Path(weights_dir) / weights.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        else:
            torch.save(state, path)
        written.append(path)
    return written


@pytest.fixture(scope="session")
def write_published_weights():
    """``write_published_weights([overrides], folder)``: stand-in published weights files for the
    composed config, where ``paths.weights_dir=folder`` finds them offline."""
    return _write_published_weights


class NetworkAccess(BaseException):
    """Raised by the ``offline`` guard; not an ``Exception``, so that no retry loop or fallback
    (huggingface_hub retries a refused connection with back-off for a minute) swallows it."""


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list:
    """No network and an empty torch hub: a net that fetches weights fails at once, one that would
    find cached ones is not fooled. Gives the list of attempted connections."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise NetworkAccess("a test tried to reach the network (weights?)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return attempts
