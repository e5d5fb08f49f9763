"""Face recognition: train an identity classifier, evaluate its embedding on unseen people.

Training is cross-entropy over the training fold's identities. Validation and test embed every
image of people the model has never seen and score verification pairs and rank-1 identification
(``kbaselines.kface.verification``), as the K-Face guideline asks. The threshold of best
verification accuracy on the validation people is the run's operating point, kept in checkpoints
for ``predict.py`` and the exported model card.

The test reports ``test/accuracy``, the test pairs' accuracy at a threshold chosen on other people
(``test/threshold``), as face-recognition papers do; ``test/oracle_accuracy``, at the threshold
best on the test pairs themselves, is an upper bound. The threshold is the tested checkpoint's
operating point; a fold without validation people (``cv.val_fraction=0``) has none, and then
chooses it at test time on pairs of a capped sample of its training people's images
(``threshold_images``), embedded by the tested model with the evaluation transform. That source is
not a metric: it is the training people exactly when the checkpoint holds no ``operating_point``
(``predict.py`` then warns), and such a threshold is biased upward, the model having learnt those
people.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from kbaselines.core.data.datamodule import DataInfo
from kbaselines.core.optimization import OptimizerFactory, SchedulerFactory
from kbaselines.core.pretrained import PublishedWeights
from kbaselines.core.task import BaseTask
from kbaselines.core.weights import load_pretrained
from kbaselines.kface.datamodule import KFaceDataModule
from kbaselines.kface.dataset import KFaceDataset
from kbaselines.kface.verification import (
    RECOGNITION_METRICS,
    Pairs,
    accuracy_at,
    cosine_scores,
    make_pairs,
    recognition_metrics,
    verification_metrics,
)

__all__ = ["DECISION_METRICS", "RecognitionTask", "embed"]

#: what the test logs besides :data:`RECOGNITION_METRICS`: the accuracy at the threshold chosen on
#: other people, and that threshold
DECISION_METRICS = ("accuracy", "threshold")

log = logging.getLogger(__name__)


def embed(net: nn.Module, images: torch.Tensor, flip_fusion: bool = False) -> torch.Tensor:
    """A recognition net's embeddings ``[B, embed_dim]`` (its identity classifier left out: it
    knows only the training people). With ``flip_fusion``, the sum of the embeddings of each image
    and of its horizontal mirror, as face-recognition toolkits evaluate."""
    embedding = net.forward_head(net.forward_features(images), pre_logits=True)
    if flip_fusion:
        mirrored = images.flip(-1)
        embedding = embedding + net.forward_head(net.forward_features(mirrored), pre_logits=True)
    return embedding


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
        flip_fusion: embed an image as the sum of its and its mirror's embeddings, in evaluation
            and in ``predict.py``/``export.py`` (training is unchanged).
        threshold_images: cap on the training images embedded at test time to choose the test
            threshold when the tested checkpoint has no validation threshold (no validation people).
        weights: weights from elsewhere to fine-tune from: a file, or the authors' published
            checkpoint found offline (:class:`~kbaselines.core.pretrained.PublishedWeights`);
            loaded with ``weights_only=True``, a classifier of another size dropped.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        max_genuine_pairs: int = 20000,
        pair_seed: int = 0,
        flip_fusion: bool = False,
        threshold_images: int = 2000,
        weights: str | PublishedWeights | None = None,
        info: DataInfo | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, info=info)
        if isinstance(weights, PublishedWeights):
            weights = weights.locate()
            # the checkpoints keep the file's path, not the object: a weights-only load refuses it
            self.hparams["weights"] = str(weights)
        if weights:
            load_pretrained(self.net, weights)
        self.criterion = nn.CrossEntropyLoss()
        self.train_acc = MulticlassAccuracy(num_classes=max(net.num_classes, 2))
        #: the cosine threshold of best accuracy on the last validation's pairs (None before one)
        self.operating_point: float | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, embed_dim]`` of a batch of images ``[B, C, H, W]``."""
        return embed(self.net, images, self.hparams.flip_fusion)

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
        threshold = self.operating_point
        if threshold is None:
            threshold = self._training_threshold()
        accuracy = accuracy_at(scores, pairs.same, threshold)
        self.log_dict({"test/accuracy": accuracy, "test/threshold": threshold}, sync_dist=False)
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
            names = RECOGNITION_METRICS + (DECISION_METRICS if stage == "test" else ())
            self.log_dict({f"{stage}/{k}": float("nan") for k in names})
            return None
        pairs = make_pairs(outputs["label"], self.hparams.max_genuine_pairs, self.hparams.pair_seed)
        metrics = recognition_metrics(
            outputs["embedding"], outputs["label"], outputs["gallery"], pairs
        )
        self.log_dict({f"{stage}/{k}": float(v) for k, v in metrics.items()}, sync_dist=False)
        if stage == "val" and not self.trainer.sanity_checking:
            self.operating_point = float(metrics["oracle_threshold"])
        return outputs["embedding"], pairs

    def _training_threshold(self) -> float:
        """The oracle threshold on pairs of up to ``threshold_images`` training images (drawn with
        ``pair_seed``, evaluation transform, this model): the test threshold of a fold without
        validation people. NaN, with a warning, when the data has no training people to pair
        (``eval.py`` on a whole dataset)."""
        data = self.data_as(KFaceDataModule)
        train = data.datasets.get("train")
        if not isinstance(train, KFaceDataset) or len(set(train.labels)) < 2:
            rank_zero_warn(
                "no validation threshold in the tested checkpoint and no training people to "
                "choose one on: test/accuracy and test/threshold are NaN"
            )
            return float("nan")
        rng = np.random.default_rng(self.hparams.pair_seed)
        count = min(self.hparams.threshold_images, len(train))
        picked = np.sort(rng.choice(len(train), size=count, replace=False))
        sample = KFaceDataset(
            train.tree,
            [train.records[k] for k in picked],
            [train.labels[k] for k in picked],
            input_size=data.input_size,
            in_chans=data.in_chans,
            crop_margin=data.crop_margin,
        )
        embeddings = []
        with self.trainer.precision_plugin.forward_context():
            for batch in data.loader(sample, data.eval_batch_size, shuffle=False):
                embeddings.append(self(batch["image"].to(self.device)).float().cpu().numpy())
        labels = np.asarray(sample.labels)
        pairs = make_pairs(labels, self.hparams.max_genuine_pairs, self.hparams.pair_seed)
        scores = cosine_scores(np.concatenate(embeddings), pairs)
        threshold = verification_metrics(scores, pairs.same)["oracle_threshold"]
        log.info(
            "No validation threshold in the tested checkpoint: test threshold %.6f chosen on %d "
            "pairs of %d training images of %d people",
            threshold,
            len(pairs),
            count,
            len(np.unique(labels)),
        )
        return threshold

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
