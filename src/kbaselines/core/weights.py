"""Load weights that come from elsewhere, and export weights for sharing.

Pretrained weights arrive in other people's layouts: the LightCNN authors' ``.pth.tar`` files are
``{"epoch", "arch", "state_dict": {"module.features.0.filter.weight", ...}}`` with a classifier over
79,077 or 80,013 identities; our Lightning checkpoints keep the network under ``net.``. This module
reduces such a file to the model's own key names and loads it, so fine-tuning starts from it.

Rules, chosen so that a wrong file fails loudly rather than training from half-random weights:

* files are read with ``torch.load(..., weights_only=True)`` (or as ``.safetensors``): a
  checkpoint cannot run code on load;
* containers (``state_dict``, ``model``) are unwrapped, and ``module.`` (DataParallel) and
  ``net.`` (our task wrapper) prefixes are stripped when every key carries them;
* the classifier (found through ``model.get_classifier()``) loads only if it matches the model's
  exactly; otherwise it is dropped and reported, and the model keeps its fresh classifier;
* every other missing, unexpected or reshaped key is a ``ValueError`` that names the file and
  the keys (or, with ``strict_backbone=False``, is reported and skipped).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["LoadReport", "fit_problems", "load_pretrained", "read_state_dict", "save_safetensors"]

log = logging.getLogger(__name__)

CONTAINER_KEYS = ("state_dict", "model")
WRAPPER_PREFIXES = ("module.", "net.")
_MAX_LISTED = 10


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        path: the file read.
        loaded: model keys copied from the file.
        dropped_classifier: classifier keys of the file left out, with their shape in the file
            (e.g. ``{"fc2.weight": (79077, 256), "fc2.bias": (79077,)}``).
        missing: model keys the file lacks (only with ``strict_backbone=False``).
        unexpected: file keys the model lacks (only with ``strict_backbone=False``).
        mismatched: keys of another shape, ``key -> (file shape, model shape)`` (only with
            ``strict_backbone=False``).
    """

    path: Path
    loaded: list[str] = field(default_factory=list)
    dropped_classifier: dict[str, tuple[int, ...]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        if self.dropped_classifier:
            shapes = ", ".join(f"{k} {v}" for k, v in self.dropped_classifier.items())
            parts.append(
                f"dropped the classifier ({shapes}); the model's own is freshly initialised"
            )
        for name in ("missing", "unexpected", "mismatched"):
            keys = getattr(self, name)
            if keys:
                parts.append(f"skipped {len(keys)} {name} ({_listing(keys)})")
        return "; ".join(parts)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped and without wrapper prefixes.

    Args:
        path: a ``.safetensors`` file, or anything ``torch.save`` wrote (``.pth``, ``.pth.tar``,
            Lightning ``.ckpt``), holding a state dict directly or under ``state_dict``/``model``.

    Returns:
        Key -> tensor, with ``module.``/``net.`` prefixes stripped when every key has them.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds objects other than tensors and plain containers (refused by
            the weights-only unpickler), or no dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        raw: object = load_file(str(path))
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{path}: refused by the weights-only load, it holds objects other than tensors "
                f"({error}). If you trust the file, re-save just its tensors: "
                f"torch.save(<loaded>['state_dict'], 'clean.pth') or use save_safetensors()."
            ) from error
        except Exception as error:  # a truncated download, an HTML error page, another format
            raise ValueError(f"{path}: not a readable PyTorch checkpoint ({error})") from error
    while isinstance(raw, Mapping):
        inner = next((raw[k] for k in CONTAINER_KEYS if isinstance(raw.get(k), Mapping)), None)
        if inner is None:
            break
        raw = inner
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: holds a {type(raw).__name__}, not a dict of tensors")
    others = sorted(str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor))
    if others:
        raise ValueError(
            f"{path}: found no state dict (a dict of tensors, possibly under 'state_dict' or "
            f"'model'); these entries are not tensors: {_listing(others)}"
        )
    return _strip_prefixes(dict(raw))


def load_pretrained(
    model: nn.Module, path: str | Path, *, strict_backbone: bool = True
) -> LoadReport:
    """Copy the weights in ``path`` into ``model``, dropping a classifier of another size.

    The classifier is ``model.get_classifier()`` (timm's contract) when the model has it; it loads
    only when all its keys and shapes match, so a checkpoint trained on other identities starts a
    fine-tuning with the model's freshly initialised classifier.

    Args:
        model: the model to fill, built with the architecture the file was trained with.
        path: the weights file (see :func:`read_state_dict`).
        strict_backbone: raise on any missing, unexpected or reshaped key outside the
            classifier. False loads what fits and lists the rest in the report.

    Returns:
        A :class:`LoadReport` (also logged at INFO).

    Raises:
        ValueError: naming the file and the keys that are missing, unexpected or of another shape
            (``strict_backbone=True``), or when the file cannot be read as weights.
    """
    path = Path(path)
    state = read_state_dict(path)
    own = model.state_dict()
    report = LoadReport(path)

    prefix = _classifier_prefix(model)
    if prefix is not None:
        theirs = {k for k in state if k.startswith(prefix)}
        ours = {k for k in own if k.startswith(prefix)}
        fits = theirs == ours and all(state[k].shape == own[k].shape for k in theirs)
        if theirs and not fits:
            report.dropped_classifier = {k: tuple(state.pop(k).shape) for k in sorted(theirs)}
        if not fits:
            own = {k: v for k, v in own.items() if k not in ours}  # the model keeps its own

    _compare(state, own, report)
    if strict_backbone and (report.missing or report.unexpected or report.mismatched):
        raise ValueError(_mismatch_message(model, path, report))
    for key in [*report.unexpected, *report.mismatched]:
        del state[key]
    model.load_state_dict(state, strict=False)
    report.loaded = sorted(state)
    log.info("%s", report)
    return report


def save_safetensors(model: nn.Module, path: str | Path) -> Path:
    """Export ``model``'s weights as a ``.safetensors`` file: tensors only, safe to share and load.

    Args:
        model: the model (or its Lightning task's ``net``) whose ``state_dict`` is written.
        path: the file to write; parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share memory (tied or viewed weights)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt", "model": type(model).__name__})
    return path


def fit_problems(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> str:
    """How ``state`` (a file's tensors) fails to fit ``own`` (a model's state dict), one line per
    kind of problem listing the keys; empty when every key and shape fits."""
    report = LoadReport(Path())
    _compare(state, own, report)
    return "\n".join(_problem_lines(report))


def _compare(
    state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], report: LoadReport
) -> None:
    """Fill the report's missing, unexpected and reshaped keys."""
    report.missing = sorted(set(own) - set(state))
    report.unexpected = sorted(set(state) - set(own))
    report.mismatched = {
        k: (tuple(state[k].shape), tuple(own[k].shape))
        for k in sorted(set(state) & set(own))
        if state[k].shape != own[k].shape
    }


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.``/``net.`` while every key starts with one (in any nesting order)."""
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k.removeprefix(prefix): v for k, v in state.items()}
                changed = True
    return state


def _classifier_prefix(model: nn.Module) -> str | None:
    """``"fc2."`` for a model whose ``get_classifier()`` is ``model.fc2``; None without one."""
    get_classifier = getattr(model, "get_classifier", None)
    if get_classifier is None:
        return None
    classifier = get_classifier()
    name = next((n for n, m in model.named_modules() if m is classifier), None)
    return f"{name}." if name else None


def _listing(keys: list[str] | dict) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else "")


def _mismatch_message(model: nn.Module, path: Path, report: LoadReport) -> str:
    lines = [f"{path} does not fit {type(model).__name__}:", *_problem_lines(report)]
    lines.append(
        "Build the model the file was trained with (variant, input_size, in_chans, embed_dim), "
        "or pass strict_backbone=False to load only the keys that fit."
    )
    return "\n".join(lines)


def _problem_lines(report: LoadReport) -> list[str]:
    lines = []
    if report.missing:
        lines.append(f"  missing from the file ({len(report.missing)}): {_listing(report.missing)}")
    if report.unexpected:
        lines.append(
            f"  not in the model ({len(report.unexpected)}): {_listing(report.unexpected)}"
        )
    if report.mismatched:
        shapes = [f"{k} file {a} vs model {b}" for k, (a, b) in report.mismatched.items()]
        lines.append(f"  other shape ({len(shapes)}): {_listing(shapes)}")
    return lines
