"""The 16 body joints of the pose dataset (MPII order), their flip pairs, skeleton and OKS sigmas.

Written in one place so that the reader, the augmentation, the metrics and the plots agree.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FLIP_PAIRS",
    "HEAD",
    "JOINTS",
    "NECK",
    "NUM_JOINTS",
    "OKS_SIGMAS",
    "SKELETON",
    "flip_permutation",
]

#: Joint names in the order of pose.md (the MPII order).
JOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "neck",
    "head",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
NUM_JOINTS = len(JOINTS)
NECK = JOINTS.index("neck")
HEAD = JOINTS.index("head")

#: Left/right pairs swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

#: Bones drawn by the plots and rendered by the synthetic figure.
SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1),
    (1, 2),
    (2, 6),
    (3, 6),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (8, 9),
    (7, 12),
    (12, 11),
    (11, 10),
    (7, 13),
    (13, 14),
    (14, 15),
)

#: Per-joint OKS sigmas (pose.md): COCO's for the joints COCO has (ankles .089, knees .087,
#: hips .107, shoulders .079, elbows .072, wrists .062), pelvis as the hips, thorax as the
#: shoulders, neck and head .079 (as CrowdPose scores its head and neck).
OKS_SIGMAS = np.array(
    [
        0.089,
        0.087,
        0.107,
        0.107,
        0.087,
        0.089,
        0.107,
        0.079,
        0.079,
        0.079,
        0.062,
        0.072,
        0.079,
        0.079,
        0.072,
        0.062,
    ]
)


def flip_permutation(
    flip_pairs: tuple[tuple[int, int], ...] = FLIP_PAIRS, num_joints: int = NUM_JOINTS
) -> np.ndarray:
    """Index array ``p`` such that ``joints[p]`` is the joint list of the mirrored person.

    Args:
        flip_pairs: the left/right pairs (the dataset's by default; a task passes its
            :class:`~kbaselines.pose.info.PoseInfo`'s).
        num_joints: how many joints a person has.
    """
    perm = np.arange(num_joints)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm
