"""Load weights that come from elsewhere (the authors' releases), and export weights for sharing.

Files are read with ``weights_only=True``: a checkpoint can carry no code. Container keys
(``state_dict``, ``model``) and wrapper prefixes (``module.`` from DataParallel, ``net.`` from our
Lightning tasks) are removed; a classifier of another size (the authors trained on 79,077 or 80,013
identities) is dropped so that the model is fine-tuned on new identities. Anything else that does
not fit is an error that lists the keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["LoadReport", "load_pretrained", "read_state_dict", "save_safetensors"]

PREFIXES = ("module.", "net.")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did."""

    path: Path
    loaded: list[str] = field(default_factory=list)
    dropped_classifier: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors``, ``.pth``/``.pt``/``.pth.tar`` or Lightning ``.ckpt`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (model.weights=...)")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors carry the offending global's name
        raise ValueError(f"{path}: not a weights-only checkpoint ({error})") from error
    for container in ("state_dict", "model"):
        if isinstance(raw, Mapping) and isinstance(raw.get(container), Mapping):
            raw = raw[container]
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: holds a {type(raw).__name__}, not a dict of tensors")
    state = {}
    for key, value in raw.items():
        for prefix in PREFIXES:
            key = key.removeprefix(prefix)
        state[key] = value
    return state


def load_pretrained(model: nn.Module, path: str | Path) -> LoadReport:
    """Copy the weights in ``path`` into ``model``.

    A model may rename foreign keys with a ``checkpoint_key(key) -> key`` method (LightCNN does).

    Raises:
        ValueError: naming the file and the keys that are missing, unexpected or of another shape.
    """
    state = read_state_dict(path)
    rename = getattr(model, "checkpoint_key", lambda key: key)
    state = {rename(key): value for key, value in state.items()}
    own = model.state_dict()
    prefix = _classifier_prefix(model)
    report = LoadReport(Path(path))
    for key in [k for k in state if prefix and k.startswith(prefix)]:
        if key not in own or state[key].shape != own[key].shape:
            report.dropped_classifier.append(f"{key} {tuple(state.pop(key).shape)}")
    classifier_keys = {k for k in own if prefix and k.startswith(prefix)}
    missing = sorted(set(own) - set(state) - classifier_keys)
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if missing or unexpected or mismatched:
        details = [
            f"missing: {missing[:10]}" if missing else "",
            f"unexpected: {unexpected[:10]}" if unexpected else "",
            "other shape: "
            + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:10]
            )
            if mismatched
            else "",
        ]
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: "
            + "; ".join(d for d in details if d)
            + ". Check that the model config (architecture, input size, in_chans) matches the file."
        )
    model.load_state_dict(state, strict=False)
    report.loaded = sorted(state)
    return report


def _classifier_prefix(model: nn.Module) -> str | None:
    """``"fc2."`` for a model whose ``get_classifier()`` is ``model.fc2``; None without one."""
    if not hasattr(model, "get_classifier"):
        return None
    classifier = model.get_classifier()
    name = next((n for n, m in model.named_modules() if m is classifier), None)
    return f"{name}." if name else None


def save_safetensors(model: nn.Module, path: str | Path) -> Path:
    """Export ``model``'s weights as a weights-only ``.safetensors`` file for sharing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path))
    return path
