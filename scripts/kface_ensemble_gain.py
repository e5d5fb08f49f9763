"""Does the fold ensemble verify unseen faces better than its fold models? Measured in one run.

    python scripts/kface_ensemble_gain.py run_dir=logs/kface_lightcnn9_synthetic/<run>

Generates a K-Face twin of people no fold has seen (another generator seed), embeds every image
with each fold's checkpoint alone and with the ensemble of all folds (``predict.py``'s path:
the same predictor, the same averaging), scores the same genuine and impostor pairs, and prints
ROC AUC, EER and the accuracy at each model's validation threshold (the ensemble's: the mean of
the folds'). Settings: configs/kface_ensemble_gain.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
import numpy as np
from omegaconf import DictConfig, open_dict

from kbaselines.core.config import register_configs
from kbaselines.core.predict.checkpoints import fold_checkpoints
from kbaselines.core.predict.run import (
    adopt_run_config,
    build_predictor,
    load_models,
    predict,
    select_device,
)
from kbaselines.core.quiet import silence_known_noise
from kbaselines.kface.predict import ensemble_threshold
from kbaselines.kface.synthetic import generate_kface
from kbaselines.kface.verification import cosine_scores, make_pairs, verification_metrics


def scores_of(cfg: DictConfig, checkpoint: Path, items: list, pairs) -> tuple[dict, float | None]:
    """Verification metrics of one checkpoint or run folder on the pairs, and its threshold."""
    with open_dict(cfg):
        cfg.ckpt_path = str(checkpoint)
    predictor = build_predictor(cfg)
    device = select_device("cpu")
    models = load_models(cfg, predictor, device)
    embeddings = np.asarray(predict(predictor, models, items, device), np.float32)
    scores = cosine_scores(embeddings, pairs)
    threshold = ensemble_threshold(models)
    metrics = verification_metrics(scores, pairs.same)
    if threshold is not None:
        metrics["accuracy_at_val_threshold"] = float(((scores >= threshold) == pairs.same).mean())
    return metrics, threshold


@hydra.main(version_base="1.3", config_path="../configs", config_name="kface_ensemble_gain")
def main(cfg: DictConfig) -> None:
    run = Path(cfg.run_dir)
    with open_dict(cfg):
        cfg.ckpt_path = str(run)
    cfg = adopt_run_config(cfg)
    tree = generate_kface(Path(cfg.test_root), **cfg.unseen)
    predictor = build_predictor(cfg)
    inputs = predictor.read_inputs(tree)
    if inputs.problems:
        raise SystemExit(
            f"{tree}: {len(inputs.problems)} unreadable images, e.g. {inputs.problems[0]}"
        )
    labels = np.asarray([item.name.split("/")[0] for item in inputs.items])
    pairs = make_pairs(labels, cfg.max_genuine_pairs, cfg.pair_seed)
    print(
        f"{len(inputs.items)} images of {len(set(labels))} unseen people, {len(pairs.same)} pairs "
        f"({int(pairs.same.sum())} genuine)"
    )
    keys = ("roc_auc", "eer", "tar_at_far_1e-2", "accuracy_at_val_threshold")
    rows = {}
    for checkpoint in fold_checkpoints(run):
        rows[checkpoint.parent.parent.name] = scores_of(cfg, checkpoint, inputs.items, pairs)[0]
    single = list(rows.values())
    rows["mean of the folds"] = {k: float(np.mean([r[k] for r in single if k in r])) for k in keys}
    rows["ensemble"] = scores_of(cfg, run, inputs.items, pairs)[0]
    print("| model | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, metrics in rows.items():
        print(
            f"| {name} | " + " | ".join(f"{metrics.get(k, float('nan')):.4f}" for k in keys) + " |"
        )


if __name__ == "__main__":
    register_configs()
    silence_known_noise()
    main()
