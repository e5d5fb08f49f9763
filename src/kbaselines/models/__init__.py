"""Networks as plain ``torch.nn.Module``s, and loading of weights from elsewhere.

One file per model family (``lightcnn.py``), each with one small builder per variant that Hydra
configs name by import path (``_target_: kbaselines.models.lightcnn.lightcnn9``); there is no
registry. Models follow timm's contract: ``forward_features``, ``forward_head(x, pre_logits)``,
``get_classifier``, ``reset_classifier``, ``feature_info``. ``weights.py`` loads foreign
checkpoints (weights-only) and exports ``.safetensors``.
"""

from kbaselines.models.lightcnn import (
    LightCNN,
    MaxFeatureMap,
    lightcnn4,
    lightcnn9,
    lightcnn29,
    lightcnn29v2,
)
from kbaselines.models.weights import LoadReport, load_pretrained, save_safetensors

__all__ = [
    "LightCNN",
    "LoadReport",
    "MaxFeatureMap",
    "lightcnn4",
    "lightcnn9",
    "lightcnn29",
    "lightcnn29v2",
    "load_pretrained",
    "save_safetensors",
]
