"""The guideline's mammography baseline: a ResNet-34 with a cancer map and a benign map.

A timm ResNet (one input channel; from scratch, or from published ImageNet weights with the first
convolution summed over RGB, as timm adapts it) gives the last feature map; two 1x1
convolutions turn it into a cancer logit map and a benign logit map; pooling each map gives the
image's (or patch's) logits. Average pooling is the guideline's (for patches); on a whole breast it
dilutes a small lesion over the whole map, so whole images default to the mean of the top-k cells.
"""

from __future__ import annotations

import torch
from torch import nn

from kbaselines.core.pretrained import TimmWeights, create_timm_model

__all__ = ["POOLINGS", "MammoMapNet", "pool_map", "resnet34_maps", "view_probabilities"]

POOLINGS = ("avg", "max", "topk")


def pool_map(maps: torch.Tensor, pooling: str, top_k: float = 0.05) -> torch.Tensor:
    """Pool logit maps ``[B, M, h, w]`` to ``[B, M]``.

    Args:
        pooling: ``avg``, ``max`` or ``topk`` (mean of the largest ``top_k`` share of cells,
            at least one).
    """
    flat = maps.flatten(2)
    if pooling == "avg":
        return flat.mean(-1)
    if pooling == "max":
        return flat.amax(-1)
    if pooling == "topk":
        k = max(1, round(top_k * int(flat.shape[-1])))  # int: a constant when traced (ONNX)
        return flat.topk(k, dim=-1).values.mean(-1)
    raise ValueError(f"pooling {pooling!r}: one of {', '.join(POOLINGS)}")


def view_probabilities(
    net: MammoMapNet, images: torch.Tensor, pooling: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """What evaluation, prediction and the exported network compute for whole views: the view's
    cancer and benign probabilities ``[B, 2]`` (the pooled logits through a sigmoid) and the
    probability maps ``[B, 2, h, w]``."""
    maps = net.forward_maps(net.forward_features(images))
    return torch.sigmoid(pool_map(maps, pooling, net.top_k)), torch.sigmoid(maps)


class MammoMapNet(nn.Module):
    """Backbone + cancer head + benign head, each a 1x1 convolution.

    Args:
        backbone: a timm model name (``resnet34``: the guideline's).
        in_chans: image channels (1: grayscale mammograms).
        pooling: the default pooling of :meth:`forward` (``avg`` / ``max`` / ``topk``).
        top_k: the share of cells averaged by ``topk`` pooling.
        feature_stride: 32 (the last ResNet stage: the guideline's) or 16 (the third stage, timm
            ``features_only`` with ``out_indices=(3,)``): a finer map for small inputs.
        batch_stats: batch normalisation always uses the batch's statistics (no running
            statistics). Off by default; on for the synthetic quick job, where running statistics
            gathered on stage-1 patches do not fit whole views: measured on 96 synthetic cases,
            whole-view cancer AUC after stage 1 was 1.0 with batch statistics, 0.45-0.6 with
            running ones.
        weights_backbone: published weights of ``backbone`` to start from (e.g.
            ``resnet34.tv_in1k``, torchvision's ImageNet ResNet-34), found offline; None: scratch.
    """

    map_names = ("cancer", "benign")

    def __init__(
        self,
        backbone: str = "resnet34",
        in_chans: int = 1,
        pooling: str = "topk",
        top_k: float = 0.05,
        feature_stride: int = 32,
        batch_stats: bool = False,
        weights_backbone: TimmWeights | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r}: one of {', '.join(POOLINGS)}")
        if feature_stride not in (16, 32):
            raise ValueError(f"feature_stride {feature_stride}: 16 or 32")
        self.feature_stride = feature_stride
        if feature_stride == 32:
            self.backbone = create_timm_model(
                backbone, weights_backbone, in_chans=in_chans, num_classes=0, global_pool=""
            )
            width = self.backbone.num_features
        else:
            self.backbone = create_timm_model(
                backbone, weights_backbone, in_chans=in_chans, features_only=True, out_indices=(3,)
            )
            width = self.backbone.feature_info.channels()[-1]
        if batch_stats:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.track_running_stats = False
                    module.running_mean = module.running_var = module.num_batches_tracked = None
        self.cancer_head = nn.Conv2d(width, 1, kernel_size=1)
        self.benign_head = nn.Conv2d(width, 1, kernel_size=1)
        self.in_chans = in_chans
        self.pooling = pooling
        self.top_k = top_k

    def get_classifier(self) -> nn.ModuleDict:
        """The two map heads (timm's name for the part after the features)."""
        return nn.ModuleDict({"cancer": self.cancer_head, "benign": self.benign_head})

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's feature map ``[B, C, H/s, W/s]`` (``s``: ``feature_stride``)."""
        if self.feature_stride == 32:
            return self.backbone.forward_features(images)
        return self.backbone(images)[-1]

    def forward_maps(self, features: torch.Tensor) -> torch.Tensor:
        """Logit maps ``[B, 2, h, w]``: channel 0 cancer, channel 1 benign."""
        return torch.cat([self.cancer_head(features), self.benign_head(features)], dim=1)

    def forward_head(self, features: torch.Tensor, pooling: str | None = None) -> torch.Tensor:
        """Pooled logits ``[B, 2]`` (cancer, benign)."""
        return pool_map(self.forward_maps(features), pooling or self.pooling, self.top_k)

    def forward(self, images: torch.Tensor, pooling: str | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(images), pooling)


def resnet34_maps(
    in_chans: int = 1,
    pooling: str = "topk",
    top_k: float = 0.05,
    feature_stride: int = 32,
    batch_stats: bool = False,
    weights_backbone: TimmWeights | None = None,
) -> MammoMapNet:
    """The guideline's baseline: ResNet-34 with cancer and benign maps (stride 32 or 16)."""
    return MammoMapNet(
        "resnet34", in_chans, pooling, top_k, feature_stride, batch_stats, weights_backbone
    )
