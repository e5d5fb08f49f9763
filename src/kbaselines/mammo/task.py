"""Mammography task: cancer and benign maps trained on patches then views, scored per case.

Training minimises the binary cross-entropy of the pooled cancer and benign logits (patches pool
with ``patch_pooling``, whole views with ``image_pooling``). Evaluation pools each view, combines
views into breasts and breasts into the case (``view_aggregation``, ``case_aggregation``), and
scores cases: cancer vs not-cancer AUC, benign vs normal AUC, and sensitivity / specificity /
precision at an operating point chosen on the validation cases of the same checkpoint (the test
loader scores them first, ``part`` 0), with bootstrap confidence intervals.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.metrics.classification import case_metrics, operating_point, roc_auc
from kbaselines.core.optimization import OptimizerFactory, SchedulerFactory
from kbaselines.core.task import BaseTask
from kbaselines.mammo.datamodule import MammoDataModule
from kbaselines.mammo.resnet_maps import pool_map, view_probabilities

__all__ = ["AGGREGATIONS", "MammoTask", "aggregate_cases", "breast_scores", "case_scores"]

log = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "max")


def _combine(values: list[float], how: str) -> float:
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation {how!r}: one of {', '.join(AGGREGATIONS)}")
    return float(np.max(values) if how == "max" else np.mean(values))


def breast_scores(
    case_ids: Sequence[str],
    lateralities: Sequence[str],
    scores: np.ndarray,
    view_aggregation: str = "mean",
) -> dict[str, dict[str, np.ndarray]]:
    """Per case and side (``L``, ``R``, in order of appearance): the scores ``[K]`` of the
    breast's views (``scores`` is ``[N, K]``, one row per view) combined by ``view_aggregation``."""
    views: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for case, side, score in zip(case_ids, lateralities, scores, strict=True):
        views[case][side].append(score)
    return {
        case: {
            side: np.array(
                [_combine([v[k] for v in rows], view_aggregation) for k in range(scores.shape[1])]
            )
            for side, rows in sides.items()
        }
        for case, sides in views.items()
    }


def case_scores(
    breasts: dict[str, dict[str, np.ndarray]], case_aggregation: str = "max"
) -> dict[str, np.ndarray]:
    """Per case: its breasts' scores (:func:`breast_scores`) combined by ``case_aggregation``."""
    result = {}
    for case, sides in breasts.items():
        per_breast = np.array(list(sides.values()))
        result[case] = np.array(
            [_combine(list(per_breast[:, k]), case_aggregation) for k in range(per_breast.shape[1])]
        )
    return result


def aggregate_cases(
    case_ids: Sequence[str],
    lateralities: Sequence[str],
    scores: np.ndarray,
    view_aggregation: str = "mean",
    case_aggregation: str = "max",
) -> dict[str, np.ndarray]:
    """Per-case scores from per-view scores ``[N, K]``: views -> breast, then breasts -> case."""
    return case_scores(
        breast_scores(case_ids, lateralities, scores, view_aggregation), case_aggregation
    )


class MammoTask(BaseTask):
    """Two-map training and case-level evaluation.

    Args:
        net: a :class:`~kbaselines.mammo.resnet_maps.MammoMapNet` (``forward_features``,
            ``forward_maps``).
        optimizer: a partial optimizer; scheduler: an optional partial LR scheduler (per epoch).
        patch_pooling, image_pooling: pooling of the maps for patches and for whole views.
        view_aggregation: views of a breast combined by ``mean`` or ``max``.
        case_aggregation: breasts of a case combined by ``max`` or ``mean``.
        operating_point: ``youden`` or ``specificity`` (reach ``target_specificity`` on validation).
        num_bootstrap: bootstrap resamples of the confidence intervals (0: none).
        num_overlay_cases: test cases whose four views are drawn with both maps.
        stage2_lr_scale: learning rates are multiplied by it while the DataModule serves whole
            views (its ``stage`` is 2): fine-tuning, not training again from the patch weights.
        seed: seed of the bootstrap.
        info: the data's facts (the two maps, cancer and benign, as class names).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        patch_pooling: str = "avg",
        image_pooling: str = "topk",
        view_aggregation: str = "mean",
        case_aggregation: str = "max",
        operating_point: str = "youden",
        target_specificity: float = 0.8,
        num_bootstrap: int = 1000,
        num_overlay_cases: int = 8,
        stage2_lr_scale: float = 0.1,
        seed: int = 0,
        info: DataInfo | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, info=info)
        for how in (view_aggregation, case_aggregation):
            if how not in AGGREGATIONS:
                raise ValueError(f"aggregation {how!r}: one of {', '.join(AGGREGATIONS)}")
        self._test_maps: dict[int, np.ndarray] = {}
        self._shown: set[int] | None = None
        self.threshold: float | None = None
        self._stage2_started = False

    def forward(self, images: torch.Tensor, pooling: str | None = None) -> torch.Tensor:
        """Pooled logits ``[B, 2]`` (cancer, benign)."""
        return pool_map(
            self.net.forward_maps(self.net.forward_features(images)),
            pooling or self.hparams.image_pooling,
            self.net.top_k,
        )

    @property
    def mammo_data(self) -> MammoDataModule:
        """The trainer's DataModule, which must be a :class:`MammoDataModule`: the task follows
        its training stage and reads its views and image cache."""
        return self.data_as(MammoDataModule)

    def on_train_epoch_start(self) -> None:
        """Scale the learning rates when stage 2 (whole views) starts."""
        if self.mammo_data.stage != 2 or self._stage2_started:
            return
        self._stage2_started = True
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= self.hparams.stage2_lr_scale

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        whole = "part" in batch
        logits = self(
            batch["image"], self.hparams.image_pooling if whole else self.hparams.patch_pooling
        )
        targets = torch.stack([batch["cancer"], batch["benign"]], dim=1).float()
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/stage", 2.0 if whole else 1.0, on_step=False, on_epoch=True)
        return loss

    def _score_step(self, batch: dict[str, torch.Tensor], keep_maps: bool) -> None:
        probs, maps = view_probabilities(self.net, batch["image"], self.hparams.image_pooling)
        self.collect({"probs": probs.float(), "index": batch["index"], "part": batch["part"]})
        if keep_maps:
            shown = self._shown_views()
            for i, index in enumerate(batch["index"].tolist()):
                if index in shown:
                    self._test_maps[index] = maps[i].float().cpu().numpy()

    def _shown_views(self) -> set[int]:
        """Test-loader indices of the views drawn by :meth:`write_test_outputs`: those of the first
        ``num_overlay_cases`` test cases (``part`` 1) in loader order. Only their maps are kept,
        so a test part of thousands of views holds a few maps, not one per view."""
        if self._shown is None:
            items = self.mammo_data.eval_records("test")
            cases = list(dict.fromkeys(it.case_id for it in items if it.part == 1))
            shown = set(cases[: self.hparams.num_overlay_cases])
            self._shown = {i for i, it in enumerate(items) if it.part == 1 and it.case_id in shown}
        return self._shown

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._score_step(batch, keep_maps=False)

    def on_test_epoch_start(self) -> None:
        self._shown = None  # each test (a held-out part too) draws views of its own

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._score_step(batch, keep_maps=True)

    def _case_table(self, stage: str) -> list[dict[str, Any]]:
        """One row per case: ids, labels, cancer and benign scores, and the part (0 val, 1 test)."""
        outputs = self.gathered()
        items = self.mammo_data.eval_records(stage)
        chosen = [items[i] for i in outputs["index"]]
        scores = aggregate_cases(
            [it.case_id for it in chosen],
            [it.laterality for it in chosen],
            outputs["probs"],
            self.hparams.view_aggregation,
            self.hparams.case_aggregation,
        )
        first = {}
        for item in chosen:
            first.setdefault(item.case_id, item)
        return [
            {
                "case_id": case,
                "patient": item.patient,
                "grp": item.grp,
                "score": float(scores[case][0]),
                "target": int(item.grp == "cancer"),
                "benign_score": float(scores[case][1]),
                "device": item.device,
                "birads": item.birads,
                "histology": item.histology,
                "part": item.part,
            }
            for case, item in first.items()
        ]

    def on_validation_epoch_end(self) -> None:
        if not self.has_outputs():
            return
        rows = self._case_table("val")
        cancer, benign = _auc(rows), _benign_auc(rows)
        self.log("val/roc_auc", cancer, sync_dist=False)
        self.log("val/benign_auc", benign, sync_dist=False)
        # what the best checkpoint is chosen by: both maps. On cancer alone a small validation
        # part reaches AUC 1.0 after the first patch epoch and keeps that checkpoint (ties keep the
        # first), before the benign map has learnt anything (benign AUC 0.54 then)
        self.log("val/mean_auc", float(np.nanmean([cancer, benign])), sync_dist=False)
        # kept in the checkpoint of this epoch, for scoring without a validation part (eval.py)
        # and for the decisions of predict.py
        self.threshold = self._operating_point(rows)

    def _operating_point(self, rows: list[dict[str, Any]]) -> float:
        return operating_point(
            np.array([r["score"] for r in rows]),
            np.array([r["target"] for r in rows]),
            self.hparams.operating_point,
            self.hparams.target_specificity,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the operating point chosen on this checkpoint's validation cases."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["operating_point"] = self.threshold
        checkpoint["stage2_started"] = self._stage2_started  # a resumed fit scales once only

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.threshold = checkpoint.get("operating_point")
        self._stage2_started = bool(checkpoint.get("stage2_started", False))

    def on_test_epoch_end(self) -> None:
        if not self.has_outputs():
            raise RuntimeError("no test batches: the test set is empty")
        rows = self._case_table("test")
        val = [r for r in rows if r["part"] == 0]
        test = [r for r in rows if r["part"] == 1]
        if val:
            threshold = self._operating_point(val)
        elif self.threshold is not None:
            threshold = self.threshold
            log.info(
                "no validation cases: the checkpoint's operating point %.4f is used", threshold
            )
        else:
            log.warning("no validation cases nor a stored operating point: a cancer score of 0.5")
            threshold = 0.5
        self.threshold = threshold
        metrics = case_metrics(
            np.array([r["score"] for r in test]),
            np.array([r["target"] for r in test]),
            threshold,
            self.hparams.num_bootstrap,
            self.hparams.seed,
        )
        metrics["benign_auc"] = _benign_auc(test)
        self.log_dict({f"test/{k}": float(v) for k, v in metrics.items()}, sync_dist=False)
        for row in test:
            row["predicted"] = int(row["score"] >= threshold)
            del row["part"]
        self.test_predictions = test

    def write_test_outputs(self, out_dir: Path, stage: str) -> None:
        """Overlays of both maps on the four views of ``num_overlay_cases`` cases; subgroup table."""
        from kbaselines.mammo.outputs import draw_case, subgroup_table

        rows = self.test_predictions
        if not rows:
            return
        datamodule = self.mammo_data
        items = datamodule.eval_records("test")
        shown = {r["case_id"] for r in rows[: self.hparams.num_overlay_cases]}
        for case in sorted(shown):
            views = [(i, it) for i, it in enumerate(items) if it.case_id == case and it.part == 1]
            maps = {it.view: self._test_maps[i] for i, it in views if i in self._test_maps}
            score = next(r["score"] for r in rows if r["case_id"] == case)
            draw_case(
                datamodule.cache,
                {it.view: it.path for _, it in views},
                maps,
                out_dir / f"overlays_{stage}" / f"{case}.png",
                title=f"case {case} ({views[0][1].grp}), cancer score {score:.3f}",
            )
        subgroup_table(rows, float(self.threshold or 0.5), out_dir / f"subgroups_{stage}")
        self._test_maps.clear()


def _auc(rows: list[dict[str, Any]]) -> float:
    return roc_auc(np.array([r["score"] for r in rows]), np.array([r["target"] for r in rows]))


def _benign_auc(rows: list[dict[str, Any]]) -> float:
    """Benign vs normal, on the cases that are not cancer."""
    rest = [r for r in rows if r["grp"] != "cancer"]
    return roc_auc(
        np.array([r["benign_score"] for r in rest]),
        np.array([int(r["grp"] == "benign") for r in rest]),
    )
