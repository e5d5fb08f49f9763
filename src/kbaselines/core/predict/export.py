"""Export a trained network with its model card: ONNX (dynamic batch), TorchScript or safetensors.

The card (``model_card.json``) is the network's contract for whoever deploys it: the input
(size, channels, normalisation), the outputs and what follows them (decoding, NMS, thresholds),
the class names, the run's operating point, the SHA-256 of the exported file, the training config
and the cross-validation summary of its run. ONNX exports are checked against PyTorch with ONNX
Runtime on the example inputs (``parity`` in the card).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from kbaselines.core.io import write_json_atomic
from kbaselines.core.predict.checkpoints import LoadedTask, file_sha256, load_task
from kbaselines.core.predict.predictor import ExportContract
from kbaselines.core.predict.run import adopt_run_config, build_predictor
from kbaselines.core.weights import save_safetensors

__all__ = ["FORMATS", "ONNX_OPSET", "export_model", "onnx_parity", "run_export"]

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript", "safetensors")
#: Opset 18: supported by every ONNX Runtime since 1.14 and by TensorRT 8.6+, and has every
#: operator these networks need.
ONNX_OPSET = 18


def _outputs(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    with torch.inference_mode():
        result = module(*inputs)
    result = result if isinstance(result, list | tuple) else [result]
    return [r.detach().cpu().numpy() for r in result]


def export_onnx(contract: ExportContract, path: Path) -> Path:
    """The network as ONNX at :data:`ONNX_OPSET`, the batch axis (and the contract's other axes)
    dynamic."""
    dynamic_axes: dict[str, dict[int, str]] = {}
    if contract.dynamic_batch:
        dynamic_axes = {
            name: {0: "batch"} for name in (*contract.input_names, *contract.output_names)
        }
    for name, axes in contract.dynamic_axes.items():
        dynamic_axes.setdefault(name, {}).update(axes)
    with warnings.catch_warnings():
        # the TorchScript-based exporter is deprecated, and still the one that traces torchvision's
        # detectors and our networks; a contract can ask for torch.export instead
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, message=".*legacy TorchScript"
        )
        torch.onnx.export(
            contract.module,
            contract.example_inputs,
            str(path),
            input_names=list(contract.input_names),
            output_names=list(contract.output_names),
            dynamic_axes=None if contract.dynamo else dynamic_axes or None,
            dynamic_shapes=_dynamic_shapes(contract) if contract.dynamo else None,
            opset_version=ONNX_OPSET,
            dynamo=contract.dynamo,
        )
    return path


def _dynamic_shapes(contract: ExportContract) -> tuple[dict[int, Any], ...] | None:
    if not contract.dynamic_batch:
        return None
    batch = torch.export.Dim("batch")
    return tuple({0: batch} for _ in contract.example_inputs)


def onnx_parity(
    contract: ExportContract, path: Path, inputs: tuple[torch.Tensor, ...] | None = None
) -> float:
    """The largest absolute difference between ONNX Runtime and PyTorch on the same inputs."""
    import onnxruntime

    inputs = contract.example_inputs if inputs is None else inputs
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: t.cpu().numpy() for name, t in zip(contract.input_names, inputs, strict=True)}
    got = session.run(list(contract.output_names), feeds)
    expected = _outputs(contract.module, inputs)
    return max(
        float(np.abs(g - e).max()) if e.size else 0.0 for g, e in zip(got, expected, strict=True)
    )


def _run_files(checkpoint: Path) -> dict[str, Path]:
    """The run's config and CV summary beside a ``<run>/fold_<k>/checkpoints/<name>.ckpt``."""
    run = checkpoint.resolve().parent.parent.parent
    return {
        name: run / name for name in ("config.yaml", "cv_summary.json") if (run / name).is_file()
    }


def export_model(
    model: LoadedTask, contract: ExportContract, fmt: str, out: Path
) -> dict[str, Any]:
    """Write the network in ``fmt`` and its card into ``out``; return the card."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}: choose one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    contract.module.eval()
    parity = None
    if fmt == "onnx":
        path = export_onnx(contract, out / "model.onnx")
        parity = {"max_abs_diff": onnx_parity(contract, path), "tolerance": contract.tolerance}
        if parity["max_abs_diff"] > contract.tolerance:
            raise RuntimeError(
                f"{path}: ONNX Runtime differs from PyTorch by {parity['max_abs_diff']:.3g} "
                f"(tolerance {contract.tolerance:g}); the export is not faithful"
            )
    elif fmt == "torchscript":
        path = out / "model.pt"
        with torch.inference_mode():
            torch.jit.save(torch.jit.trace(contract.module, contract.example_inputs), str(path))
    else:
        path = save_safetensors(contract.module, out / "model.safetensors")
    copied = {}
    for name, source in _run_files(model.path).items():
        shutil.copyfile(source, out / name)
        copied[name] = name
    card = {
        "format": fmt,
        "file": path.name,
        "sha256": file_sha256(path),
        "checkpoint": {"path": str(model.path), "sha256": model.sha256},
        "inputs": [
            {
                "name": n,
                "shape": _shape(contract, n, t),
                "dtype": str(t.dtype).removeprefix("torch."),
            }
            for n, t in zip(contract.input_names, contract.example_inputs, strict=True)
        ],
        "outputs": list(contract.output_names),
        "preprocessing": dict(contract.preprocessing),
        "postprocessing": dict(contract.postprocessing),
        "class_names": list(model.task.info.class_names),
        "data_info": json.loads(json.dumps(dataclasses.asdict(model.task.info))),
        "operating_point": model.extras.get("operating_point"),
        "opset": ONNX_OPSET if fmt == "onnx" else None,
        "parity": parity,
        "run_files": copied,
    }
    if "cv_summary.json" in copied:
        card["cv_summary"] = json.loads((out / "cv_summary.json").read_text())
    write_json_atomic(out / "model_card.json", card)
    return card


def _shape(contract: ExportContract, name: str, tensor: torch.Tensor) -> list[int | str]:
    """A tensor's shape for the card, its dynamic axes named."""
    axes = {0: "batch"} if contract.dynamic_batch else {}
    axes.update(contract.dynamic_axes.get(name, {}))
    return [axes.get(k, size) for k, size in enumerate(tensor.shape)]


def run_export(cfg: DictConfig) -> dict[str, Any]:
    """``export.py``: one checkpoint, one format, into ``cfg.out``."""
    cfg = adopt_run_config(cfg)
    predictor = build_predictor(cfg)
    checkpoint = Path(cfg.ckpt_path)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"ckpt_path={checkpoint} is not a file: export one fold's .ckpt")
    model = load_task(cfg.model, checkpoint, predictor.info_type)
    card = export_model(model, predictor.export_contract(model), str(cfg.format), Path(cfg.out))
    log.info(
        "Exported %s as %s into %s (sha256 %s)", checkpoint, cfg.format, cfg.out, card["sha256"]
    )
    return card
