"""Speed of prediction, measured in one run: predict.py's loop against the bare network, and ONNX
Runtime against PyTorch.

    python scripts/bench_predict.py +experiment=xray_yolo_synthetic \\
        ckpt_path=logs/xray_yolo_synthetic/r1/fold_0/checkpoints/best.ckpt input=<folder of scans>

The predict loop is timed from the files to the combined predictions (reading, decoding,
preprocessing in ``predictor.num_workers`` workers, the forward pass, post-processing; writing the
outputs is left out). The bare network runs the export contract's module on tensors of the same
batch sizes and shapes, so the ratio is what reading, pre- and post-processing cost on top of
the network. ONNX Runtime (CPU provider) and PyTorch run that module on the same tensors. Each
side runs ``repeats`` times, the best time kept. Settings: configs/bench_predict.yaml.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
import torch
from omegaconf import DictConfig

from kbaselines.core.config import register_configs
from kbaselines.core.predict.export import export_onnx
from kbaselines.core.predict.predictor import ExportContract
from kbaselines.core.predict.run import build_predictor, load_models, predict, select_device
from kbaselines.core.quiet import silence_known_noise


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs (after one warm-up run)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def batch_shapes(
    contract: ExportContract, count: int, batch_size: int
) -> list[tuple[torch.Tensor, ...]]:
    """The contract's example inputs at the batch sizes the predict loop uses for ``count`` items."""
    size = batch_size if contract.dynamic_batch else 1
    sizes = [size] * (count // size) + ([count % size] if count % size else [])
    return [
        tuple(x[:1].repeat(n, *[1] * (x.dim() - 1)) for x in contract.example_inputs) for n in sizes
    ]


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench_predict")
def main(cfg: DictConfig) -> None:
    predictor = build_predictor(cfg)
    device = select_device(cfg.trainer.get("accelerator"))
    models = load_models(cfg, predictor, device)
    inputs = predictor.read_inputs(None if cfg.get("input") is None else Path(cfg.input))
    count = len(inputs.items)
    if not count:
        raise SystemExit(f"input={cfg.input}: nothing to predict")
    contract = predictor.export_contract(models[0])
    batches = batch_shapes(contract, count, predictor.batch_size)
    module = contract.module.eval().to(device)

    def network() -> None:
        with torch.inference_mode():
            for batch in batches:
                module(*(x.to(device) for x in batch))

    ours = best_seconds(lambda: predict(predictor, models, inputs.items, device), cfg.repeats)
    bare = best_seconds(network, cfg.repeats)
    print(f"{count} items, batch {predictor.batch_size}, {predictor.num_workers} workers, {device}")
    print(f"predict.py loop: {count / ours:8.1f} items/s")
    print(f"bare network   : {count / bare:8.1f} items/s")
    print(f"ratio, predict loop time / bare network time: {ours / bare:.2f}  (target <= 1.3)")

    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(contract, Path(folder) / "model.onnx")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def runtime() -> None:
            for batch in batches:
                session.run(
                    None, {n: x.numpy() for n, x in zip(contract.input_names, batch, strict=True)}
                )

        onnx_time = best_seconds(runtime, cfg.repeats)
    module.cpu()
    torch_time = best_seconds(network, cfg.repeats) if device.type == "cpu" else float("nan")
    print(
        f"ONNX Runtime CPU: {count / onnx_time:8.1f} items/s; PyTorch CPU: {count / torch_time:8.1f} items/s"
    )
    print(f"ratio, PyTorch time / ONNX Runtime time: {torch_time / onnx_time:.2f}")


if __name__ == "__main__":
    register_configs()
    silence_known_noise()
    main()
