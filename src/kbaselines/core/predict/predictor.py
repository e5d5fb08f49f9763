"""The seam between ``predict.py`` / ``export.py`` and a dataset family.

A family subclasses :class:`Predictor` once per task (face embeddings, generated faces, pose
keypoints, detections, mammography case scores). The core reads nothing itself: the predictor
reads the inputs (without labels), prepares them as the task was trained, combines the outputs
of one or several models (a fold ensemble), writes them, and states the network's export contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.predict.checkpoints import LoadedTask

__all__ = ["ExportContract", "Inputs", "Predictor"]


@dataclass
class Inputs:
    """What a predictor read from ``input=``: the items to predict and the problems of the others.

    Args:
        items: one record per item to predict (a file, a study, a seed), in output order.
        problems: items that cannot be predicted (unreadable, a study missing a view), each named;
            the others are still predicted.
    """

    items: list[Any]
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class ExportContract:
    """How a deployed network is called: what ``export.py`` writes into the model card.

    Args:
        module: the network to export, from the (batched) input tensors to raw output tensors.
        example_inputs: inputs of the right shape and type (batch 2), for tracing and parity.
        input_names: one name per input tensor.
        output_names: one name per output tensor.
        preprocessing: input size, channels, normalisation... as plain values.
        postprocessing: what the outputs mean and what is done after the network (decoding,
            NMS, thresholds), as plain values; ``function`` names a shipped helper when there is one.
        dynamic_batch: the first axis of every input and output may vary.
        dynamic_axes: further axes that may vary, by tensor name (``{"image": {1: "height"}}``;
            a detector taking one image of any size).
        tolerance: the largest absolute difference allowed between ONNX Runtime and PyTorch.
        dynamo: export with torch.export (``dynamo=True``) instead of the TorchScript-based
            exporter, for networks the latter cannot trace.
    """

    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: Sequence[str]
    output_names: Sequence[str]
    preprocessing: Mapping[str, Any]
    postprocessing: Mapping[str, Any]
    dynamic_batch: bool = True
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    tolerance: float = 1e-4
    dynamo: bool = False


class Predictor:
    """A task's side of prediction and export; the family subclasses it.

    Args:
        batch_size: items per batch.
        num_workers: data-loader workers that read and prepare the inputs.
    """

    #: the DataInfo class the checkpoints' ``data_info`` is rebuilt as.
    info_type: type[DataInfo] = DataInfo
    #: batches items of varying size (None: the default collate).
    collate_fn: Callable[[list[Any]], Any] | None = None

    def __init__(self, *, batch_size: int = 8, num_workers: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"predictor.batch_size={batch_size} must be positive")
        self.batch_size = batch_size
        self.num_workers = num_workers

    def read_inputs(self, source: Path | None) -> Inputs:
        """The items of ``input=`` (a folder, a list file, a dataset tree), and the problems."""
        raise NotImplementedError(f"{type(self).__name__} must define read_inputs(source)")

    def dataset(self, items: Sequence[Any]) -> Dataset:
        """The items prepared as the task was trained; item ``i`` carries ``"index": i``."""
        raise NotImplementedError(f"{type(self).__name__} must define dataset(items)")

    def predict_batch(self, models: Sequence[LoadedTask], batch: Any) -> list[Any]:
        """One prediction per item of the batch, combined over the models (a fold ensemble)."""
        raise NotImplementedError(f"{type(self).__name__} must define predict_batch()")

    def write(
        self,
        items: Sequence[Any],
        predictions: Sequence[Any],
        models: Sequence[LoadedTask],
        out: Path,
    ) -> dict[str, int]:
        """Write the outputs into ``out``; return counts for the report (``{"images": 12}``)."""
        raise NotImplementedError(f"{type(self).__name__} must define write()")

    def export_contract(self, model: LoadedTask) -> ExportContract:
        """The network to export and how it is called."""
        raise NotImplementedError(f"{type(self).__name__} must define export_contract(model)")
