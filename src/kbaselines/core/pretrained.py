"""Published weights a model starts from, found offline: a folder, the libraries' caches, never a
surprise download.

The papers start from published weights: Simple Baseline from an ImageNet ResNet-50, torchvision's
detectors from ImageNet or COCO, LightCNN fine-tuning from the authors' files. The clusters and
hospitals that hold these datasets are often offline, so a config names the weights as a
:class:`PublishedWeights` node, and :meth:`PublishedWeights.locate` looks, in order, in

1. ``paths.weights_dir`` (where ``scripts/fetch_weights.py`` puts them on a machine with internet),
2. the library's own cache (the Hugging Face hub cache for timm, ``$TORCH_HOME/hub/checkpoints``),

and downloads only when the config allows it (``allow_download: true``). Before any data is read,
:func:`check_published_weights` locates every node of the run's model config, so that a missing
file is an error naming the file, the setting and the fetch command, not a crash an hour later.
Files are read weights-only (:func:`~kbaselines.core.weights.read_state_dict`).
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import timm
import torch
import torchvision
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig
from torch import nn

from kbaselines.core.weights import fit_problems, read_state_dict

__all__ = [
    "AuthorsWeights",
    "MissingWeightsError",
    "PublishedWeights",
    "TimmWeights",
    "TorchvisionWeights",
    "check_published_weights",
    "create_timm_model",
    "published_weights",
    "sha256",
    "unset_published_weights",
]

log = logging.getLogger(__name__)

FETCH_COMMAND = "python scripts/fetch_weights.py +experiment=<name>"


class MissingWeightsError(FileNotFoundError):
    """Published weights that are in none of the places looked at."""


class PublishedWeights(ABC):
    """A published weights file, by the name its publisher gives it.

    Args:
        weights_dir: the folder looked at first (``paths.weights_dir``); None: the caches only.
        allow_download: download into ``weights_dir`` (or the library's cache) when not found.
    """

    def __init__(self, weights_dir: str | Path | None = None, allow_download: bool = False) -> None:
        self.weights_dir = None if weights_dir is None else Path(weights_dir)
        self.allow_download = allow_download

    @property
    @abstractmethod
    def description(self) -> str:
        """What the weights are, for messages (``timm resnet50.tv_in1k``)."""

    @property
    @abstractmethod
    def file_name(self) -> str:
        """The file's path under ``weights_dir``."""

    @abstractmethod
    def cached_files(self) -> list[Path]:
        """Where the publishing library's own cache would hold the file."""

    @abstractmethod
    def download(self, folder: Path) -> Path:
        """Fetch the file into ``folder`` (at :attr:`file_name`) and return its path."""

    def candidates(self) -> list[Path]:
        """Every place :meth:`locate` looks, in order."""
        own = [] if self.weights_dir is None else [self.weights_dir / self.file_name]
        return own + self.cached_files()

    def locate(self) -> Path:
        """The weights file, from ``weights_dir`` or a cache (downloaded only if allowed).

        Raises:
            MissingWeightsError: naming every place looked at and how to get the file there.
        """
        found = next((path for path in self.candidates() if path.is_file()), None)
        if found is not None:
            return found
        if self.allow_download:
            if self.weights_dir is None:
                raise MissingWeightsError(
                    f"{self.description}: allow_download needs a folder to download into: set "
                    f"paths.weights_dir"
                )
            log.info("Downloading %s into %s", self.description, self.weights_dir)
            return self.download(self.weights_dir)
        raise MissingWeightsError(self.missing_message())

    def missing_message(self, setting: str | None = None, experiment: str | None = None) -> str:
        """Why the file is missing and the three ways to provide it."""
        places = "\n".join(f"  {path}" for path in self.candidates())
        where = f" (set by {setting})" if setting else ""
        setting = setting or "<setting>"
        folder = self.weights_dir or "paths.weights_dir"
        fetch = FETCH_COMMAND.replace("<name>", experiment or "<name>")
        return (
            f"The weights {self.description}{where} are not on this machine; looked at:\n{places}\n"
            f"On a machine with internet, run `{fetch}` and copy the folder it fills to {folder} "
            f"here (or point paths.weights_dir at it); or allow a download here with "
            f"{setting}.allow_download=true; or start from scratch with {setting}=null."
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The file's tensors (weights-only read)."""
        return read_state_dict(self.locate())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, weights_dir={self.weights_dir})"


class TimmWeights(PublishedWeights):
    """A timm pretrained config: ``resnet50.tv_in1k`` is torchvision's ImageNet ResNet-50.

    The file is the one timm publishes on the Hugging Face hub (``timm/<name>``,
    ``model.safetensors``), kept under ``weights_dir/timm/<name>/``.
    """

    hub_file = "model.safetensors"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.config = timm.models.get_pretrained_cfg(name)
        if self.config is None or "." not in name:
            raise ValueError(
                f"{name!r} is not a timm pretrained config: give architecture.tag, e.g. "
                f"resnet50.tv_in1k (timm.list_pretrained('resnet50*') lists them)"
            )

    @property
    def architecture(self) -> str:
        return self.name.split(".")[0]

    @property
    def description(self) -> str:
        return f"timm {self.name}"

    @property
    def file_name(self) -> str:
        return f"timm/{self.name}/{self.hub_file}"

    def cached_files(self) -> list[Path]:
        from huggingface_hub import try_to_load_from_cache

        hub_id = self.config.hf_hub_id
        cached = try_to_load_from_cache(hub_id, self.hub_file) if hub_id else None
        return [Path(cached)] if isinstance(cached, str) else []

    def download(self, folder: Path) -> Path:
        from huggingface_hub import hf_hub_download

        target = folder / self.file_name
        hf_hub_download(self.config.hf_hub_id, self.hub_file, local_dir=target.parent)
        return target


class TorchvisionWeights(PublishedWeights):
    """A torchvision weights enum, by name: ``ResNet50_Weights.IMAGENET1K_V1`` or
    ``FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1``; the file keeps torchvision's name."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            self.enum = torchvision.models.get_weight(name)
        except (ValueError, KeyError, AttributeError) as error:
            raise ValueError(
                f"{name!r} is not a torchvision weights enum (e.g. ResNet50_Weights.IMAGENET1K_V1): "
                f"{error}"
            ) from error
        self.name = name

    @property
    def description(self) -> str:
        return f"torchvision {self.name}"

    @property
    def file_name(self) -> str:
        return f"torchvision/{Path(self.enum.url).name}"

    @property
    def num_classes(self) -> int:
        return len(self.enum.meta["categories"])

    def cached_files(self) -> list[Path]:
        return [Path(torch.hub.get_dir()) / "checkpoints" / Path(self.enum.url).name]

    def download(self, folder: Path) -> Path:
        target = folder / self.file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        # torchvision's file names end in the first hex digits of their SHA-256
        prefix = Path(self.enum.url).stem.rsplit("-", 1)[-1]
        torch.hub.download_url_to_file(self.enum.url, str(target), hash_prefix=prefix)
        return target


class AuthorsWeights(PublishedWeights):
    """A file the authors publish on a page no script can download from (LightCNN's are on
    Google Drive): it is found in ``weights_dir`` only, and fetching it means a download by hand.

    Args:
        file_name: its path under ``weights_dir``.
        page: where the authors link it.
    """

    def __init__(self, file_name: str, page: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._file_name = file_name
        self.page = page

    @property
    def description(self) -> str:
        return f"{Path(self._file_name).name} (the authors' file, {self.page})"

    @property
    def file_name(self) -> str:
        return self._file_name

    def cached_files(self) -> list[Path]:
        return []

    def download(self, folder: Path) -> Path:
        raise MissingWeightsError(
            f"no script can download it: download it by hand from {self.page} into "
            f"{folder / self._file_name}"
        )


def create_timm_model(
    architecture: str, weights: TimmWeights | None = None, **kwargs: Any
) -> nn.Module:
    """``timm.create_model(architecture, **kwargs)``, initialised from ``weights`` when given.

    timm adapts the weights as it does for its own downloads (the first convolution summed for one
    input channel, the classifier dropped for another class count, feature-only models cut), but
    from the state dict read here (weights-only) instead of a download. The file must fit the
    architecture it was published for: a missing, unexpected or reshaped key is an error.

    Raises:
        ValueError: ``weights`` are of another architecture, or the file does not fit it.
    """
    if weights is None:
        return timm.create_model(architecture, pretrained=False, **kwargs)
    if weights.architecture != architecture:
        raise ValueError(
            f"{weights.description} are weights of {weights.architecture}, not {architecture}: "
            f"choose a {architecture}.<tag> config"
        )
    path = weights.locate()
    state = read_state_dict(path)
    with torch.device("meta"):
        published = timm.create_model(architecture, pretrained=False)
    problems = fit_problems(state, published.state_dict())
    if problems:
        raise ValueError(f"{path} does not fit {weights.description}:\n{problems}")
    log.info("Initialising %s from %s", architecture, path)
    return timm.create_model(
        weights.name, pretrained=True, pretrained_cfg_overlay={"state_dict": state}, **kwargs
    )


def published_weights(node: Any, prefix: str = "") -> list[tuple[str, DictConfig]]:
    """Every :class:`PublishedWeights` node under ``node``, with its dotted setting name."""
    found: list[tuple[str, DictConfig]] = []
    if isinstance(node, DictConfig):
        target = node.get("_target_") if "_target_" in node else None
        if isinstance(target, str) and _is_published(target):
            return [(prefix, node)]
        for key in node:
            found += published_weights(node._get_node(key), f"{prefix}.{key}" if prefix else key)
    return found


def check_published_weights(cfg: DictConfig) -> list[Path]:
    """Locate every published weights file the model config names, before any data is read.

    Returns:
        The files found, in config order (logged).

    Raises:
        MissingWeightsError: the first missing file, naming it, its setting and the fetch command.
    """
    files = []
    for setting, node in published_weights(cfg.get("model"), "model"):
        weights: PublishedWeights = instantiate(node)
        try:
            files.append(weights.locate())
        except MissingWeightsError:
            if weights.allow_download:
                raise
            raise MissingWeightsError(
                weights.missing_message(setting, cfg.get("experiment_name"))
            ) from None
        log.info("%s: %s from %s", setting, weights.description, files[-1])
    return files


def unset_published_weights(model_cfg: DictConfig) -> dict[str, Any]:
    """Instantiation overrides (nested keyword arguments) that set every published-weights node of
    a model config to None, e.g. ``{"net": {"weights_backbone": None}}``."""
    overrides: dict[str, Any] = {}
    for setting, _ in published_weights(model_cfg):
        *parents, leaf = setting.split(".")
        node = overrides
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = None
    return overrides


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file, to compare a copy with the original."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _is_published(target: str) -> bool:
    try:
        cls = get_object(target)
    except Exception:  # a target that does not import fails where it is built, with its error
        return False
    return isinstance(cls, type) and issubclass(cls, PublishedWeights)
