"""Top-down 2D pose (Simple Baseline): heatmap regression, PCKh and OKS AP, multi-view 3D.

Training: MSE between predicted and Gaussian target heatmaps, weighted by joint visibility (the
paper's ``JointsMSELoss``). Evaluation: flip test (the mirrored crop's heatmaps mirrored back and
averaged), argmax with a quarter-cell shift, mapped back to image pixels through the crop's
inverse warp; then PCKh@0.5 and OKS AP (``kbaselines.metrics.pose``) and, where the part holds
every camera's view of an instant with calibration and 3D ground truth, DLT triangulation
weighted by the heatmap peaks and MPJPE / P-MPJPE (``kbaselines.metrics.triangulation``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from kbaselines.data.pose.joints import JOINTS
from kbaselines.data.pose.transforms import (
    decode_heatmaps,
    flip_back,
    from_heatmap,
    transform_points,
)
from kbaselines.metrics.pose import oks_ap, pckh
from kbaselines.metrics.triangulation import mpjpe, p_mpjpe, triangulate_pose

__all__ = ["PoseTask", "joints_mse"]

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def joints_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``0.5 * mean((w * (pred - target))^2)`` over joints and cells (the paper's loss)."""
    return 0.5 * ((pred - target) ** 2 * weight[:, :, None, None] ** 2).mean()


class PoseTask(pl.LightningModule):
    """Heatmap training and 2D/3D pose evaluation of a Simple Baseline net.

    Args:
        net: a model mapping crops ``[B, 3, H, W]`` to heatmaps ``[B, J, H/s, W/s]``.
        optimizer: partial optimizer (Adam lr 1e-3 in the paper).
        scheduler: optional partial LR scheduler stepped per epoch (x0.1 at 90 and 120).
        flip_test: average with the mirrored crop's heatmaps at evaluation.
        pckh_threshold: fraction of the head segment for PCKh.
        min_views: views needed to triangulate a person (3D metrics).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        flip_test: bool = True,
        pckh_threshold: float = 0.5,
        min_views: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self._outputs: list[dict[str, torch.Tensor]] = []
        self.test_predictions: list[dict[str, Any]] = []
        self._test_result: dict[str, Any] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps of a batch of crops."""
        return self.net(images)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = joints_mse(self.net(batch["image"]), batch["target"], batch["weight"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def _predict(self, batch: dict[str, torch.Tensor]) -> None:
        heatmaps = self.net(batch["image"]).float()
        if self.hparams.flip_test:
            mirrored = self.net(batch["image"].flip(3)).float().cpu().numpy()
            heatmaps = (heatmaps + torch.from_numpy(flip_back(mirrored).copy()).to(heatmaps)) / 2
        cells, peaks = decode_heatmaps(heatmaps.cpu().numpy())
        crop = from_heatmap(cells, batch["image"].shape[-1] // heatmaps.shape[-1])
        inverse = batch["inverse"].cpu().numpy()
        joints = np.stack([transform_points(c, m) for c, m in zip(crop, inverse, strict=True)])
        self._outputs.append(
            {
                "joints": torch.from_numpy(joints).to(self.device),
                "peaks": torch.from_numpy(peaks).to(self.device),
                "index": batch["index"],
            }
        )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._predict(batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._predict(batch)

    def _gathered(self, stage: str) -> dict[str, np.ndarray]:
        if not self._outputs:
            raise RuntimeError(f"no {stage} batches: the {stage} set is empty")
        outputs = {k: torch.cat([o[k] for o in self._outputs]) for k in self._outputs[0]}
        self._outputs.clear()
        if self.trainer.world_size > 1:
            gathered = self.all_gather(outputs)
            outputs = {k: v.reshape(-1, *v.shape[2:]) for k, v in gathered.items()}
        index = outputs["index"].cpu().numpy()
        _, first = np.unique(index, return_index=True)
        return {k: v.cpu().numpy()[first] for k, v in outputs.items()}

    def _evaluate(self, stage: str) -> dict[str, Any]:
        outputs = self._gathered(stage)
        every = self.trainer.datamodule.eval_samples(stage)
        samples = [every[i] for i in outputs["index"]]  # all of them, but for the sanity check
        gt = np.stack([p.keypoints for p, _ in samples])
        pck = pckh(outputs["joints"], gt, self.hparams.pckh_threshold)
        metrics: dict[str, float] = {"pckh": pck["mean"]}
        metrics.update(
            {
                f"pckh_{j}": float(v)
                for j, v in zip(JOINTS, pck["per_joint"], strict=True)
                if not np.isnan(v)
            }
        )
        scores = outputs["peaks"].mean(axis=1)
        if stage == "test":
            coco = oks_ap(
                gt,
                np.array([p.bbox for p, _ in samples]),
                [p.img_no for p, _ in samples],
                outputs["joints"],
                scores,
            )
            metrics.update(
                {"oks_ap": coco["ap"], "oks_ap50": coco["ap50"], "oks_ap75": coco["ap75"]}
            )
            errors = self._errors_3d(samples, outputs)
            if errors is not None:
                metrics["mpjpe"] = float(errors["mpjpe"].mean())
                metrics["p_mpjpe"] = float(errors["p_mpjpe"].mean())
            self._test_result = {
                "samples": samples,
                "outputs": outputs,
                "pckh": pck,
                "errors": errors,
                "image_root": self.trainer.datamodule.image_root,
            }
            self.test_predictions = [
                {
                    "sample": person.id,
                    "img_no": person.img_no,
                    "person_no": person.person_no,
                    "score": float(s),
                    **{
                        f"{j}_{c}": float(v)
                        for k, j in enumerate(JOINTS)
                        for c, v in zip("xyp", (*xy[k], peak[k]), strict=True)
                    },
                }
                for (person, _), xy, peak, s in zip(
                    samples, outputs["joints"], outputs["peaks"], scores, strict=True
                )
            ]
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, sync_dist=False)
        return metrics

    def _errors_3d(
        self, samples: list, outputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        """Per-person-instant MPJPE and P-MPJPE ``[N, J]`` (mm), or None without 3D data."""
        datamodule = self.trainer.datamodule
        cameras, poses = getattr(datamodule, "cameras", {}), getattr(datamodule, "poses_3d", {})
        views: dict[tuple[str, int], list[int]] = defaultdict(list)
        for k, (person, image) in enumerate(samples):
            if image.camera in cameras and (image.instant, person.person_no) in poses:
                views[(image.instant, person.person_no)].append(k)
        errors: dict[str, list[np.ndarray]] = {"mpjpe": [], "p_mpjpe": []}
        for key, rows in sorted(views.items()):
            if len(rows) < self.hparams.min_views:
                continue
            projections = np.stack([cameras[samples[k][1].camera].P for k in rows])
            pred = triangulate_pose(
                projections, outputs["joints"][rows], np.maximum(outputs["peaks"][rows], 1e-3)
            )
            errors["mpjpe"].append(mpjpe(pred, poses[key]))
            errors["p_mpjpe"].append(p_mpjpe(pred, poses[key]))
        if not errors["mpjpe"]:
            return None
        return {k: np.stack(v) for k, v in errors.items()}

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val")

    def on_test_epoch_end(self) -> None:
        self._evaluate("test")

    def write_test_outputs(self, out_dir: Path, stage: str) -> None:
        """Predictions JSON in the dataset's format, per-joint tables and the plots."""
        from kbaselines.reports.pose import write_pose_outputs

        if self._test_result:
            write_pose_outputs(Path(out_dir), stage, **self._test_result)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the joint count, so ``eval.py`` can rebuild the net."""
        checkpoint["net_sizes"] = {"num_joints": self.net.num_joints}

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
