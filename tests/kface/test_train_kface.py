"""End to end through the real entry point: learning, CLI, resume and reproducibility.

The learning test is also the CLI test: ``python train.py +experiment=kface_lightcnn9
data=kface_synthetic ...`` runs in a subprocess on the session's synthetic K-Face tree, and its
``cv_summary.json`` must show that LightCNN-9 learned to tell unseen people apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The quick recipe of experiment/kface_lightcnn9_synthetic (32 px, Adam: the test's optimiser differs
# from the paper's SGD recipe, which the kface_lightcnn9 experiment keeps), over 2 folds by person.
QUICK = [
    "+experiment=kface_lightcnn9",
    "data=kface_synthetic",
    "model.weights=null",
    "trainer=cpu",
    "model/optimizer=adam",
    "~model/scheduler",
    "data.input_size=[32,32]",
    "data.batch_size=64",
    "cv.num_folds=2",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def _train(run_entry_point, data_dir: Path, log_dir: Path, run_name: str, *extra: str) -> Path:
    run_entry_point(
        "train.py",
        *QUICK,
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={log_dir}",
        f"run_name={run_name}",
        *extra,
    )
    return log_dir / "kface_lightcnn9" / run_name


@pytest.mark.learning
@pytest.mark.cli
def test_lightcnn9_learns_to_verify_unseen_people(
    run_entry_point, data_dir: Path, tmp_path: Path
) -> None:
    trained = _train(run_entry_point, data_dir, tmp_path, "trained", "trainer.max_epochs=4")
    untrained = _train(
        run_entry_point,
        data_dir,
        tmp_path,
        "untrained",
        "trainer.max_epochs=0",
        "cv.val_fraction=0",
    )
    summary = json.loads((trained / "cv_summary.json").read_text())
    baseline = json.loads((untrained / "cv_summary.json").read_text())
    splits = json.loads((trained / "splits.json").read_text())
    # same test people in both runs (the test folds do not depend on the validation share)
    assert [f["test"] for f in splits["folds"]] == [
        f["test"] for f in json.loads((untrained / "splits.json").read_text())["folds"]
    ]
    people = [len({path.split("/")[0] for path in fold["train"]}) for fold in splits["folds"]]
    assert min(people) >= 40, people
    auc = summary["metrics"]["test/roc_auc"]
    assert summary["num_folds"] == 2 and len(auc["folds"]) == 2
    assert auc["mean"] >= 0.90, summary
    assert auc["mean"] >= baseline["metrics"]["test/roc_auc"]["mean"] + 0.15, (summary, baseline)
    for fold in (trained / "fold_0", trained / "fold_1"):
        assert (fold / "checkpoints" / "last.ckpt").is_file()
        assert (fold / "checkpoints" / "best.ckpt").is_file()
        assert (fold / "roc_test.png").stat().st_size > 0
        assert (fold / "predictions_test.csv").is_file()
    assert (trained / "roc_folds.png").is_file() and (trained / "cv_summary.md").is_file()
