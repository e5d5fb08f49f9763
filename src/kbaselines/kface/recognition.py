"""Face recognition: train an identity classifier, evaluate its embedding on unseen people.

Training is cross-entropy over the training fold's identities. Validation and test embed every
image of people the model has never seen and score verification pairs and rank-1 identification
(``kbaselines.kface.verification``), as the K-Face guideline asks. The threshold of best
verification accuracy on the validation people is the run's operating point, kept in checkpoints
for ``predict.py`` and the exported model card.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.optimization import OptimizerFactory, SchedulerFactory
from kbaselines.core.task import BaseTask
from kbaselines.core.weights import load_pretrained
from kbaselines.kface.verification import (
    RECOGNITION_METRICS,
    Pairs,
    cosine_scores,
    make_pairs,
    recognition_metrics,
)

__all__ = ["RecognitionTask", "embed"]


def embed(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A recognition net's embeddings ``[B, embed_dim]`` (its identity classifier left out: it
    knows only the training people)."""
    return net.forward_head(net.forward_features(images), pre_logits=True)


class RecognitionTask(BaseTask):
    """Identity classification for training, embedding verification for evaluation.

    Args:
        net: a model with ``forward`` returning logits, ``forward_features`` and
            ``forward_head(x, pre_logits=True)`` returning the embedding, and ``num_classes``.
        optimizer: a partial optimizer (``_partial_: true`` in the config), called with the parameters.
        scheduler: an optional partial LR scheduler, stepped once per epoch.
        info: the data's facts (the training people as class names).
        max_genuine_pairs: cap on genuine verification pairs per evaluation (as many impostors).
        pair_seed: seed of the pair sampling, so that TAR@FAR compares between runs.
        weights: optional file of weights from elsewhere (the authors' checkpoints); loaded with
            ``weights_only=True``, a classifier of another size dropped.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        max_genuine_pairs: int = 20000,
        pair_seed: int = 0,
        weights: str | None = None,
        info: DataInfo | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, info=info)
        if weights:
            load_pretrained(self.net, weights)
        self.criterion = nn.CrossEntropyLoss()
        self.train_acc = MulticlassAccuracy(num_classes=max(net.num_classes, 2))
        #: the cosine threshold of best accuracy on the last validation's pairs (None before one)
        self.operating_point: float | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, embed_dim]`` of a batch of images ``[B, C, H, W]``."""
        return embed(self.net, images)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.net(batch["image"])
        loss = self.criterion(logits, batch["label"])
        self.train_acc(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _embed_step(self, batch: dict[str, torch.Tensor]) -> None:
        self.collect(
            {
                "embedding": self(batch["image"]).float(),
                "label": batch["label"],
                "gallery": batch["gallery"],
                "index": batch["index"],
            }
        )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._embed_step(batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._embed_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        scored = self._log_metrics("test")
        if scored is None:
            return
        embeddings, pairs = scored
        scores = cosine_scores(embeddings, pairs)
        records = self.data.eval_records("test")
        self.test_predictions = pairs.to_rows(names=[r.path for r in records], scores=scores)

    def _log_metrics(self, stage: str) -> tuple[np.ndarray, Pairs] | None:
        """Log the stage's recognition metrics; return the embeddings and the scored pairs, or
        None when the evaluated images show one person (no impostor pair: NaN metrics, with a
        warning outside the sanity check, whose first batches of a large part often do)."""
        if not self.has_outputs():
            raise RuntimeError(f"no {stage} batches: the {stage} set is empty")
        outputs = self.gathered()
        people = len(np.unique(outputs["label"]))
        if people < 2:
            if not self.trainer.sanity_checking:  # its few batches often show one person
                rank_zero_warn(
                    f"the {len(outputs['label'])} {stage} images evaluated show {people} person, "
                    f"and verification pairs need two: every {stage}/ recognition metric is NaN "
                    "(a fold whose validation metric is never a number tests its last weights). "
                    f"Evaluate more batches (trainer.limit_{stage}_batches=null) or put more "
                    "people in the part (cv.val_fraction, cv.num_folds)"
                )
            self.log_dict({f"{stage}/{k}": float("nan") for k in RECOGNITION_METRICS})
            return None
        pairs = make_pairs(outputs["label"], self.hparams.max_genuine_pairs, self.hparams.pair_seed)
        metrics = recognition_metrics(
            outputs["embedding"], outputs["label"], outputs["gallery"], pairs
        )
        self.log_dict({f"{stage}/{k}": float(v) for k, v in metrics.items()}, sync_dist=False)
        if stage == "val" and not self.trainer.sanity_checking:
            self.operating_point = float(metrics["best_threshold"])
        return outputs["embedding"], pairs

    def net_sizes(self) -> dict[str, int]:
        """The identity count of the classifier, so ``eval.py`` can rebuild the net."""
        return {"num_classes": self.net.num_classes}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The base's facts, and the validation threshold as ``operating_point`` (when there was a
        validation): the decision threshold ``predict.py`` applies to new pairs."""
        super().on_save_checkpoint(checkpoint)
        if self.operating_point is not None:
            checkpoint["operating_point"] = self.operating_point

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.operating_point = checkpoint.get("operating_point")
