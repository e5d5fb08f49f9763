"""The facts of the pose data a task is built with: joint names, OKS sigmas, head segment, mirror.

The DataModule gives them (:attr:`~kbaselines.pose.datamodule.PoseDataModule.info`) and
``core.builders.build_task`` hands them to the task, so that the task and the metric functions
it calls take the joints from the data they evaluate instead of from module constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.pose.joints import flip_permutation

__all__ = ["PoseInfo"]


@dataclass(frozen=True, kw_only=True)
class PoseInfo(DataInfo):
    """The joints of a pose dataset, as the task's heatmaps, metrics and predictions use them.

    Args:
        class_names: the one category the keypoints belong to.
        joint_names: the joints in heatmap order (the order of the annotation files).
        sigmas: per-joint OKS sigmas, in joint order (OKS AP).
        head: index of the joint at the top of the head segment that PCKh is normalised by.
        neck: index of the joint at its bottom.
        flip_pairs: left/right joint pairs a horizontal mirror swaps (flip test).

    Raises:
        ValueError: the sigmas, head, neck or flip pairs do not fit the joints.
    """

    class_names: tuple[str, ...] = ("person",)
    joint_names: tuple[str, ...]
    sigmas: tuple[float, ...]
    head: int
    neck: int
    flip_pairs: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if len(self.sigmas) != self.num_joints:
            raise ValueError(f"{len(self.sigmas)} OKS sigmas for {self.num_joints} joints")
        indices = (self.head, self.neck, *(j for pair in self.flip_pairs for j in pair))
        if any(not 0 <= j < self.num_joints for j in indices):
            raise ValueError(f"head, neck and flip pairs must index the {self.num_joints} joints")

    @property
    def num_joints(self) -> int:
        """Heatmaps the net must produce."""
        return len(self.joint_names)

    def flip_permutation(self) -> np.ndarray:
        """Index array ``p`` such that ``joints[p]`` is the joint list of the mirrored person."""
        return flip_permutation(self.flip_pairs, self.num_joints)
