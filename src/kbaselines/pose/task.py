"""Top-down 2D pose (Simple Baseline): heatmap regression, PCKh and OKS AP, multi-view 3D.

Training: MSE between predicted and Gaussian target heatmaps, weighted by joint visibility (the
paper's ``JointsMSELoss``). Evaluation: flip test (the mirrored crop's heatmaps mirrored back and
averaged), decoded by the DataModule's heatmap codec (argmax with a quarter-cell shift), mapped
back to image pixels through the crop's inverse warp; then PCKh@0.5 and OKS AP
(``kbaselines.pose.metrics``) and, where the part holds every camera's view of an instant with
calibration and 3D ground truth, DLT triangulation weighted by the heatmap peaks and MPJPE /
P-MPJPE (``kbaselines.pose.triangulation``). The joints (names, OKS sigmas, head segment, flip
pairs) are the data's :class:`~kbaselines.pose.info.PoseInfo`; what else of the data the task
uses, it takes from its typed :class:`~kbaselines.pose.datamodule.PoseDataModule`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.optimization import OptimizerFactory, SchedulerFactory
from kbaselines.core.task import BaseTask
from kbaselines.pose.codec import flip_back
from kbaselines.pose.datamodule import PoseDataModule, Sample
from kbaselines.pose.info import PoseInfo
from kbaselines.pose.metrics import match_detections, oks_ap, pckh
from kbaselines.pose.triangulation import mpjpe, p_mpjpe, triangulate_views

__all__ = ["PoseTask", "joints_mse", "person_scores"]


def joints_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``0.5 * mean((w * (pred - target))^2)`` over joints and cells (the paper's loss)."""
    return 0.5 * ((pred - target) ** 2 * weight[:, :, None, None] ** 2).mean()


def person_scores(peaks: np.ndarray, box_scores: np.ndarray) -> np.ndarray:
    """Each person's score ``[N]``: the mean of its joints' heatmap peaks ``[N, J]`` times its
    box's score (1 for a ground-truth box), which ranks the people for OKS AP."""
    return peaks.mean(axis=1) * box_scores


def _pair(
    datamodule: PoseDataModule, stage: str, evaluated: list[Sample], scores: np.ndarray
) -> tuple[list[Sample], np.ndarray]:
    """The annotated people that score ``stage`` and, for each, the index of its prediction
    among ``evaluated`` (-1: none): itself with ground-truth boxes, the detection matched by
    box IoU where the part was evaluated on detections."""
    if not datamodule.uses_detections(stage):
        return evaluated, np.arange(len(evaluated))
    truth = datamodule.ground_truth(stage)
    match = match_detections(
        np.array([p.bbox for p, _ in truth]),
        [p.img_no for p, _ in truth],
        np.array([p.bbox for p, _ in evaluated]),
        [p.img_no for p, _ in evaluated],
        scores,
    )
    return truth, match


def _numbered(evaluated: list[Sample], truth: list[Sample], match: np.ndarray) -> list[Sample]:
    """``evaluated`` with each matched detection carrying its person's ``person_no``, so that the
    predictions file scores as the run did (``scripts/score.py`` pairs by ``person_no``)."""
    numbered = list(evaluated)
    for row in np.flatnonzero(match >= 0):
        person, image = evaluated[match[row]]
        numbered[match[row]] = (replace(person, person_no=truth[row][0].person_no), image)
    return numbered


class PoseTask(BaseTask):
    """Heatmap training and 2D/3D pose evaluation of a Simple Baseline net.

    Args:
        net: a model mapping crops ``[B, 3, H, W]`` to heatmaps ``[B, J, H/s, W/s]``, with
            ``num_joints``.
        optimizer: partial optimizer (Adam lr 1e-3 in the paper).
        scheduler: optional partial LR scheduler stepped per epoch (x0.1 at 90 and 120).
        flip_test: average with the mirrored crop's heatmaps at evaluation.
        pckh_threshold: fraction of the head segment for PCKh.
        min_views: views needed to triangulate a person (3D metrics).
        info: the data's :class:`~kbaselines.pose.info.PoseInfo` (joint names, OKS sigmas, head
            segment, flip pairs), from ``PoseDataModule.info``; a task built without it (to check
            a config) cannot evaluate.

    Raises:
        TypeError: ``info`` is given but is not a :class:`~kbaselines.pose.info.PoseInfo`.
        ValueError: the net predicts another number of joints than the data has.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        flip_test: bool = True,
        pckh_threshold: float = 0.5,
        min_views: int = 2,
        info: DataInfo | None = None,
    ) -> None:
        if info is not None:
            if not isinstance(info, PoseInfo):
                raise TypeError(
                    f"{type(self).__name__} needs the PoseInfo of a PoseDataModule as info, "
                    f"not {info!r}"
                )
            if net.num_joints != info.num_joints:
                raise ValueError(
                    f"model.net.num_joints={net.num_joints}, but the data has {info.num_joints} "
                    f"joints ({', '.join(info.joint_names)})"
                )
        super().__init__(net, optimizer, scheduler, info=info)
        self._test_result: dict[str, Any] = {}

    @property
    def pose_info(self) -> PoseInfo:
        """The data's joints, which the flip test and the metrics need."""
        if not isinstance(self.info, PoseInfo):
            raise TypeError(
                f"this {type(self).__name__} was built without the PoseInfo of its data: pass "
                "info=datamodule.info of the PoseDataModule (core.builders.build_task does)"
            )
        return self.info

    @property
    def pose_data(self) -> PoseDataModule:
        """The trainer's DataModule, which must be a :class:`PoseDataModule`: the task decodes
        with its heatmap codec and scores with its ground truth, cameras and 3D poses."""
        return self.data_as(PoseDataModule)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps of a batch of crops."""
        return self.net(images)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = joints_mse(self.net(batch["image"]), batch["target"], batch["weight"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def fused_heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """The heatmaps the evaluation decodes: the crops' ``[B, J, h, w]``, averaged with the
        mirrored crops' mirrored back under ``flip_test`` (``predict.py`` averages these over
        the models of an ensemble)."""
        heatmaps = self.net(images).float()
        if self.hparams.flip_test:
            mirrored = self.net(images.flip(3)).float().cpu().numpy()
            unmirrored = flip_back(mirrored, self.pose_info.flip_permutation()).copy()
            heatmaps = (heatmaps + torch.from_numpy(unmirrored).to(heatmaps)) / 2
        return heatmaps

    def _predict(self, batch: dict[str, torch.Tensor]) -> None:
        heatmaps = self.fused_heatmaps(batch["image"])
        joints, peaks = self.pose_data.codec.decode_image(
            heatmaps.cpu().numpy(), batch["inverse"].cpu().numpy()
        )
        self.collect(
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

    def _evaluate(self, stage: str) -> dict[str, Any]:
        if not self.has_outputs():
            raise RuntimeError(f"no {stage} batches: the {stage} set is empty")
        outputs = self.gathered()
        datamodule = self.pose_data
        info = self.pose_info
        every = datamodule.eval_records(stage)
        evaluated = [every[i] for i in outputs["index"]]  # the loader's items, in output order
        scores = person_scores(outputs["peaks"], np.array([p.score for p, _ in evaluated]))
        truth, match = _pair(datamodule, stage, evaluated, scores)
        found = match >= 0
        joints = np.full((len(truth), *outputs["joints"].shape[1:]), np.inf)
        joints[found] = outputs["joints"][match[found]]
        peaks = np.zeros((len(truth), outputs["peaks"].shape[1]))
        peaks[found] = outputs["peaks"][match[found]]
        gt = np.stack([p.keypoints for p, _ in truth])
        pck = pckh(
            joints, gt, head=info.head, neck=info.neck, threshold=self.hparams.pckh_threshold
        )
        metrics: dict[str, float] = {"pckh": pck["mean"], "matched_people": float(found.mean())}
        metrics.update(
            {
                f"pckh_{j}": float(v)
                for j, v in zip(info.joint_names, pck["per_joint"], strict=True)
                if not np.isnan(v)
            }
        )
        if stage == "test":
            coco = oks_ap(
                gt,
                np.array([p.bbox for p, _ in truth]),
                [p.img_no for p, _ in truth],
                outputs["joints"],
                scores,
                [p.img_no for p, _ in evaluated],
                sigmas=info.sigmas,
            )
            metrics.update(
                {"oks_ap": coco["ap"], "oks_ap50": coco["ap50"], "oks_ap75": coco["ap75"]}
            )
            errors = self._errors_3d(truth, joints, peaks, found)
            if errors is not None:
                metrics["mpjpe"] = float(errors["mpjpe"].mean())
                metrics["p_mpjpe"] = float(errors["p_mpjpe"].mean())
            predicted = _numbered(evaluated, truth, match)
            self._test_result = {
                "samples": truth,
                "joints": joints,
                "predictions": (predicted, outputs["joints"], scores),
                "pckh": pck,
                "errors": errors,
                "image_root": datamodule.image_root,
            }
            self.test_predictions = [
                {
                    "sample": person.id,
                    "img_no": person.img_no,
                    "person_no": person.person_no,
                    "score": float(s),
                    **{
                        f"{j}_{c}": float(v)
                        for k, j in enumerate(info.joint_names)
                        for c, v in zip("xyp", (*xy[k], peak[k]), strict=True)
                    },
                }
                for (person, _), xy, peak, s in zip(
                    predicted, outputs["joints"], outputs["peaks"], scores, strict=True
                )
            ]
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, sync_dist=False)
        return metrics

    def _errors_3d(
        self, truth: list[Sample], joints: np.ndarray, peaks: np.ndarray, found: np.ndarray
    ) -> dict[str, np.ndarray] | None:
        """Per-person-instant MPJPE and P-MPJPE ``[N, J]`` (mm) from the ``joints`` and ``peaks``
        predicted for the people ``truth`` (the views of people marked ``found``), or None
        without 3D data."""
        cameras, poses = self.pose_data.cameras, self.pose_data.poses_3d
        views: dict[tuple[str, int], list[int]] = defaultdict(list)
        for k in np.flatnonzero(found):
            person, image = truth[k]
            if image.camera in cameras and (image.instant, person.person_no) in poses:
                views[(image.instant, person.person_no)].append(k)
        errors: dict[str, list[np.ndarray]] = {"mpjpe": [], "p_mpjpe": []}
        for key, ks in sorted(views.items()):
            if len(ks) < self.hparams.min_views:
                continue
            view_cameras = [cameras[truth[k][1].camera] for k in ks]
            pred = triangulate_views(view_cameras, joints[ks], peaks[ks])
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
        from kbaselines.pose.outputs import write_pose_outputs

        if self._test_result:
            write_pose_outputs(Path(out_dir), stage, **self._test_result)

    def net_sizes(self) -> dict[str, int]:
        """The joint count of the head, so ``eval.py`` can rebuild the net."""
        return {"num_joints": self.net.num_joints}
