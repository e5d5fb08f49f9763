"""Predict mammography studies with a trained baseline, and its export contract.

``input=`` is a folder holding one folder per study (case) of DICOM files. A study's four views are
found as the dataset reader finds them (:func:`~kbaselines.mammo.index.case_views`: the ``*.dcm``
files' headers, then their names), decoded into an image cache under ``out/`` exactly as training
caches them, and served by the evaluation's :class:`~kbaselines.mammo.dataset.ViewDataset`. A study
with a missing view or a ``.dcm`` file that cannot be read or decoded is reported (study and file)
and the others are predicted; files of other suffixes are ignored, as the reader ignores them.

Written into ``out``: ``cases.csv`` (per study the cancer and benign scores of the case, of each
breast and of each view, the decision at the run's operating point, the overlay's file),
``decision.json`` (the operating point, how it was chosen, the checkpoints and the aggregation) and
``overlays/<study>.png`` (the four views with both maps, drawn as the test overlays are).

A fold ensemble (a run folder) averages, over the models, each model's case, breast and view
scores and its probability maps; the decision uses the mean of the folds' operating points.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.io import write_text_atomic
from kbaselines.core.predict.checkpoints import LoadedTask
from kbaselines.core.predict.predictor import ExportContract, Inputs, Predictor
from kbaselines.mammo.cache import ImageCache
from kbaselines.mammo.dataset import ViewDataset, ViewItem
from kbaselines.mammo.dicom import VIEWS
from kbaselines.mammo.headers import HeaderCache
from kbaselines.mammo.index import case_views
from kbaselines.mammo.outputs import draw_case
from kbaselines.mammo.resnet_maps import MammoMapNet, view_probabilities
from kbaselines.mammo.task import breast_scores, case_scores

__all__ = ["MammoPredictor", "Study", "ViewScorer"]

log = logging.getLogger(__name__)

SIDES = {"L": "left", "R": "right"}
#: ONNX Runtime against PyTorch on the probabilities (measured with random weights: at most 2e-7,
#: at 96x64, 128x104 with batch statistics and the full 1664x1280).
ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Study:
    """One study to predict: its folder's name and its four views (view name to DICOM file)."""

    case_id: str
    views: dict[str, str]


class _Studies(Dataset):
    """Studies as evaluation prepares their views: ``{"image": [4, C, H, W], "index": i}``, the
    views in :data:`~kbaselines.mammo.dicom.VIEWS` order."""

    def __init__(self, views: ViewDataset) -> None:
        self.views = views

    def __len__(self) -> int:
        return len(self.views) // len(VIEWS)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        first = index * len(VIEWS)
        images = [self.views[first + k]["image"] for k in range(len(VIEWS))]
        return {"image": torch.stack(images), "index": torch.tensor(index)}


class ViewScorer(nn.Module):
    """The exported network: whole views ``[B, C, H, W]`` in [0, 1] to the views' cancer and benign
    probabilities ``[B, 2]`` (top-k pooled logits through a sigmoid) and probability maps
    ``[B, 2, h, w]`` (:func:`~kbaselines.mammo.resnet_maps.view_probabilities`)."""

    def __init__(self, net: MammoMapNet, pooling: str) -> None:
        super().__init__()
        self.net = net
        self.pooling = pooling

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return view_probabilities(self.net, images, self.pooling)


class _BatchStatistics(nn.Module):
    """A BatchNorm without running statistics (``batch_stats``) written as plain operations: the
    same normalisation by the batch's mean and (biased) variance, which the TorchScript-based ONNX
    exporter traces with a dynamic batch, where it refuses ``batch_norm`` in training mode."""

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            x = x * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return x


def _uses_batch_statistics(net: nn.Module) -> bool:
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.track_running_stats
        for m in net.modules()
    )


def _exportable(net: MammoMapNet) -> MammoMapNet:
    """``net`` itself, or a copy whose batch-statistics BatchNorms are :class:`_BatchStatistics`."""
    if not _uses_batch_statistics(net):
        return net
    net = copy.deepcopy(net)
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.BatchNorm2d) and not module.track_running_stats:
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent), child, _BatchStatistics(module))
    return net


class MammoPredictor(Predictor):
    """Case-level scores, decisions and map overlays of mammography studies.

    Args:
        workdir: the views are decoded into ``<workdir>/image_cache`` (``predict.py``'s ``out``:
            new studies need no training cache, a second run into the same ``out`` reuses it;
            delete it when done); None: a temporary folder, removed when the predictor is.
        cache_size, image_size, flip_right: the data settings the run was trained with (the
            experiment's ``data.cache_size``, ``data.image_size``, ``data.flip_right``).
        crop: ``data.crop`` of the run (``breast``: each view cut to the breast before resizing).
        batch_size: studies per batch (four views each).
        num_workers: data-loader workers.
    """

    def __init__(
        self,
        workdir: str | None,
        cache_size: Sequence[int],
        image_size: Sequence[int],
        flip_right: bool = True,
        crop: str = "none",
        *,
        batch_size: int = 2,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self._temporary = None if workdir else tempfile.TemporaryDirectory(prefix="mammo_predict_")
        folder = Path(workdir or self._temporary.name) / "image_cache"  # type: ignore[union-attr]
        size = (int(cache_size[0]), int(cache_size[1]))
        self.cache = ImageCache(folder, size, flip_right, crop=crop)
        self.image_size = (int(image_size[0]), int(image_size[1]))

    # -- inputs -----------------------------------------------------------------------------------
    def read_inputs(self, source: Path | None) -> Inputs:
        """The studies of ``source`` whose four views are read and decoded; the others' problems.

        Raises:
            FileNotFoundError: ``source`` is not a folder, or holds no study folder.
        """
        if source is None or not source.is_dir():
            raise FileNotFoundError(
                f"input={source} is not a folder: give a folder holding one folder per study "
                "(input=<folder>, with <folder>/<study>/*.dcm)"
            )
        entries = sorted(source.iterdir())
        folders = [p for p in entries if p.is_dir()]
        if not folders:
            raise FileNotFoundError(
                f"input={source} holds no study folder: put each study's DICOM files in a folder "
                "of its own (<folder>/<study>/*.dcm) and give <folder>"
            )
        problems = [
            Problem(p.name, "is not in a study folder: move it into its study's folder, or away")
            for p in entries
            if not p.is_dir()
        ]
        headers = HeaderCache(None)
        studies = []
        for folder in folders:
            found: list[Problem] = []
            views, _ = case_views(source, folder, found, headers)
            problems += found
            if not found:
                studies.append(Study(folder.name, {v: str(source / views[v]) for v in VIEWS}))
        self.cache.build([path for study in studies for path in study.views.values()])
        items = []
        for study in studies:
            failed = [
                Problem(Path(path).relative_to(source).as_posix(), reason)
                for path in study.views.values()
                if (reason := self.cache.failure(path))
            ]
            problems += failed
            if not failed:
                items.append(study)
        return Inputs(items, problems)

    def dataset(self, items: Sequence[Study]) -> Dataset:
        """Each study's four views, decoded, cached and resized as evaluation does."""
        views = [
            ViewItem(
                path=study.views[view],
                case_id=study.case_id,
                patient=study.case_id,
                view=view,
                grp="",
                breast="",
                device="",
                birads="",
                histology="",
            )
            for study in items
            for view in VIEWS
        ]
        return _Studies(ViewDataset(self.cache, views, self.image_size))

    # -- prediction -------------------------------------------------------------------------------
    @staticmethod
    def _scores(model: LoadedTask, images: torch.Tensor) -> list[dict[str, Any]]:
        """One model's view, breast and case scores and maps of ``images`` ``[B, 4, C, H, W]``,
        aggregated as its task aggregates test cases."""
        hp = model.task.hparams
        probs, maps = view_probabilities(model.task.net, images.flatten(0, 1), hp.image_pooling)
        probs = probs.float().cpu().numpy()
        maps = maps.float().cpu().numpy()
        studies = [str(i) for i in range(images.shape[0]) for _ in VIEWS]
        sides = [view[0].upper() for _ in range(images.shape[0]) for view in VIEWS]
        breasts = breast_scores(studies, sides, probs, hp.view_aggregation)
        cases = case_scores(breasts, hp.case_aggregation)
        n = len(VIEWS)
        return [
            {
                "case": cases[str(i)],
                "breasts": breasts[str(i)],
                "views": dict(zip(VIEWS, probs[i * n : (i + 1) * n], strict=True)),
                "maps": dict(zip(VIEWS, maps[i * n : (i + 1) * n], strict=True)),
            }
            for i in range(images.shape[0])
        ]

    def predict_batch(
        self, models: Sequence[LoadedTask], batch: dict[str, torch.Tensor]
    ) -> list[dict[str, Any]]:
        """Per study, the mean over the models of each model's case, breast and view scores
        (``[cancer, benign]``) and probability maps: with case aggregation ``max`` the ensemble's
        case score is the mean of the models' case scores, not the aggregate of mean views."""
        per_model = [self._scores(model, batch["image"]) for model in models]

        def mean(values: list[Any]) -> Any:
            if isinstance(values[0], dict):
                return {key: mean([v[key] for v in values]) for key in values[0]}
            return np.mean(values, axis=0)

        return [mean(list(study)) for study in zip(*per_model, strict=True)]

    # -- outputs ----------------------------------------------------------------------------------
    @staticmethod
    def operating_point(models: Sequence[LoadedTask]) -> tuple[float, str]:
        """The decision threshold on the case cancer score, and how it was chosen."""
        points = [model.extras.get("operating_point") for model in models]
        if any(point is None for point in points):
            missing = ", ".join(
                str(m.path) for m, p in zip(models, points, strict=True) if p is None
            )
            log.warning("no operating point stored in %s: a cancer score of 0.5 is used", missing)
            return 0.5, f"0.5: no operating point stored in {missing}"
        if len(points) == 1:
            return float(
                points[0]
            ), "the checkpoint's operating point, chosen on its validation cases"
        return float(np.mean(points)), (
            f"the mean of the {len(points)} folds' operating points, each chosen on its fold's "
            "validation cases"
        )

    def write(
        self,
        items: Sequence[Study],
        predictions: Sequence[dict[str, Any]],
        models: Sequence[LoadedTask],
        out: Path,
    ) -> dict[str, int]:
        """``cases.csv``, ``decision.json`` and ``overlays/<study>.png``; counts for the report."""
        threshold, rule = self.operating_point(models)
        rows = []
        for study, prediction in zip(items, predictions, strict=True):
            score, benign = (float(v) for v in prediction["case"])
            overlay = Path("overlays") / f"{study.case_id}.png"
            decision = "cancer" if score >= threshold else "not cancer"
            draw_case(
                self.cache,
                study.views,
                prediction["maps"],
                out / overlay,
                title=f"study {study.case_id}: cancer score {score:.3f}, benign score "
                f"{benign:.3f}; {decision} at operating point {threshold:.3f}",
            )
            row: dict[str, Any] = {
                "case_id": study.case_id,
                "score": score,
                "benign_score": benign,
                "predicted": int(score >= threshold),
            }
            for side, name in SIDES.items():
                row[f"{name}_score"], row[f"{name}_benign_score"] = prediction["breasts"][side]
            for view in VIEWS:
                row[f"{view}_score"], row[f"{view}_benign_score"] = prediction["views"][view]
            row["overlay"] = overlay.as_posix()
            rows.append({k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()})
        self._write_csv(rows, out / "cases.csv")
        self._write_decision(models, threshold, rule, out / "decision.json")
        return {
            "cases": len(rows),
            "cancer_decisions": sum(r["predicted"] for r in rows),
            "overlays": len(rows),
        }

    @staticmethod
    def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
        text = io.StringIO()
        if rows:
            writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        write_text_atomic(path, text.getvalue())

    @staticmethod
    def _write_decision(
        models: Sequence[LoadedTask], threshold: float, rule: str, path: Path
    ) -> None:
        batch_stats = any(_uses_batch_statistics(m.task.net) for m in models)
        if batch_stats:
            log.warning(
                "the network normalises with each batch's statistics (model.net.batch_stats): a "
                "study's scores depend on the studies batched with it (predictor.batch_size)"
            )
        hp = models[0].task.hparams
        document = {
            "operating_point": threshold,
            "how": rule,
            "decision": "predicted = 1 (cancer) when the case cancer score >= operating_point",
            "checkpoints": [
                {
                    "path": str(m.path),
                    "sha256": m.sha256,
                    "operating_point": m.extras.get("operating_point"),
                }
                for m in models
            ],
            "ensemble": (
                "case, breast and view scores and maps: the mean over the models of each model's"
                if len(models) > 1
                else None
            ),
            "pooling": hp.image_pooling,
            "view_aggregation": hp.view_aggregation,
            "case_aggregation": hp.case_aggregation,
            "batch_statistics": batch_stats,
        }
        write_text_atomic(path, json.dumps(document, indent=2) + "\n")

    # -- export -----------------------------------------------------------------------------------
    def export_contract(self, model: LoadedTask) -> ExportContract:
        """The maps network with top-k pooling inside the graph; breast, case and decision after it.

        A net trained with batch statistics (``batch_stats``, the synthetic quick job) is exported
        with them written as plain operations (:class:`_BatchStatistics`): its outputs depend on
        the batch, as in PyTorch.
        """
        task = model.task
        net: MammoMapNet = task.net  # type: ignore[assignment]
        hp = task.hparams
        rows, columns = self.image_size
        return ExportContract(
            module=ViewScorer(_exportable(net), hp.image_pooling).eval(),
            example_inputs=(torch.rand(2, net.in_chans, rows, columns),),
            input_names=("image",),
            output_names=("view_scores", "maps"),
            preprocessing={
                "input": f"image [batch, {net.in_chans}, {rows}, {columns}] float32, one view each",
                "size": [rows, columns],
                "channels": net.in_chans,
                "steps": [
                    "DICOM pixels through the modality LUT, then the VOI LUT or window",
                    "the VOI output range scaled to [0, 1]; MONOCHROME1 inverted",
                    "right breasts flipped left-right" if self.cache.flip_right else "no flip",
                    "cut to the breast (kbaselines.mammo.crop.find_breast)"
                    if self.cache.crop == "breast"
                    else "no crop",
                    f"resized to {list(self.cache.size)} (OpenCV INTER_AREA), rounded to uint16 "
                    "(x 65535)",
                    f"resized to {[rows, columns]} (INTER_AREA) when different, divided by 65535",
                ],
                "normalisation": "none beyond [0, 1] (no mean or standard deviation)",
                "functions": "kbaselines.mammo.cache.decode_view, "
                "kbaselines.mammo.dataset.ViewDataset",
                "batch_statistics": _uses_batch_statistics(net),
            },
            postprocessing={
                "view_scores": "[batch, 2] the view's cancer and benign probabilities: sigmoid "
                f"of each logit map pooled by {hp.image_pooling} (topk: the mean of the largest "
                f"{net.top_k:g} share of the cells), in the graph",
                "maps": f"[batch, 2, h, w] cancer and benign probability maps (stride "
                f"{net.feature_stride})",
                "pooling": hp.image_pooling,
                "top_k": net.top_k,
                "view_aggregation": hp.view_aggregation,
                "case_aggregation": hp.case_aggregation,
                "breast": "view_aggregation of the breast's CC and MLO view scores",
                "case": "case_aggregation of the two breasts' scores",
                "decision": "cancer when the case cancer score >= operating_point",
                "operating_point": model.extras.get("operating_point"),
                "function": "kbaselines.mammo.task.aggregate_cases",
            },
            tolerance=ONNX_TOLERANCE,
        )
