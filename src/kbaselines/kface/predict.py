"""Use a trained K-Face baseline: face embeddings (LightCNN) and generated faces (PGGAN).

:class:`FacePredictor` embeds face images prepared exactly as evaluation prepares them (the face
box of a ``.txt`` beside the image, enlarged by the crop margin; grayscale; resize and centre
crop; pixels in [0, 1]: :func:`~kbaselines.kface.dataset.read_face` and
:func:`~kbaselines.kface.dataset.face_tensor`) and embedded as evaluation embeds them (the task's
forward: :func:`~kbaselines.kface.recognition.embed`, with the mirror's embedding added under
``model.flip_fusion``), scores pairs by the cosine similarity verification
uses, decides them at the run's validation threshold, and identifies probes against a gallery.
A fold ensemble averages the folds' L2-normalised embeddings and normalises the mean again.

:class:`GeneratorPredictor` writes one face per latent seed from a PGGAN generator (its moving
average, or the raw one) at the checkpoint's current phase. It refuses a fold ensemble: averaging
the images of different GANs gives no face of either.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.integrity import FORMATS_BY_SUFFIX, inspect_files
from kbaselines.core.predict.checkpoints import LoadedTask
from kbaselines.core.predict.predictor import ExportContract, Inputs, Predictor
from kbaselines.kface.dataset import (
    RESIZE_FACTOR,
    box_outside,
    face_tensor,
    make_transform,
    read_face,
)
from kbaselines.kface.reader import Box, KFaceFormatError, parse_box_file
from kbaselines.kface.recognition import embed
from kbaselines.kface.sample_grids import save_grid, to_uint8
from kbaselines.kface.verification import Pairs, cosine_scores

__all__ = [
    "Embedding",
    "FaceImage",
    "FacePredictor",
    "GeneratorAt",
    "GeneratorPredictor",
    "list_images",
]

log = logging.getLogger(__name__)

#: The image files a folder's walk picks up (box ``.txt`` files and others are left alone).
IMAGE_SUFFIXES = tuple(FORMATS_BY_SUFFIX)


# -- face images --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceImage:
    """One image to embed.

    Args:
        name: how the outputs and ``pairs=`` name it: the path relative to ``input=`` (or as the
            list file writes it); for a gallery image, its path.
        path: the file.
        box: the face box of the ``.txt`` beside it, or None (the whole image).
        person: the gallery identity (its person folder), None for an input image.
    """

    name: str
    path: Path
    box: Box | None
    person: str | None = None


def _clean(name: str) -> str:
    """A path as written in a list file or a pairs CSV, with ``/`` separators and no ``./``."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def list_images(source: Path) -> tuple[list[tuple[str, Path]], list[Problem]]:
    """``(name, path)`` of the images of a folder (walked recursively, in path order, hidden names
    left out) or of a list file (one path a line, relative to the list's folder; blank lines and
    ``#`` comments skipped), and the problems of the lines naming no file.

    Raises:
        FileNotFoundError: ``source`` does not exist.
    """
    if source.is_dir():
        found = sorted(
            path
            for path in source.rglob("*")
            if path.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in path.relative_to(source).parts)
            and path.is_file()
        )
        return [(path.relative_to(source).as_posix(), path) for path in found], []
    if not source.is_file():
        raise FileNotFoundError(
            f"input={source} does not exist: give a folder of face images or a list file (one "
            "image path a line)"
        )
    images: list[tuple[str, Path]] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    lines = source.read_text(encoding="utf-8-sig").splitlines()
    for number, line in enumerate(lines, 1):
        name = _clean(line)
        if not name or name.startswith("#"):
            continue
        path = Path(name) if Path(name).is_absolute() else source.parent / name
        where = f"{source.name} line {number}"
        if name in seen:
            problems.append(Problem(name, "listed twice; the first one is predicted", where))
        elif not path.is_file():
            problems.append(
                Problem(name, f"no such image file ({path}); fix or remove the line", where)
            )
        else:
            seen.add(name)
            images.append((name, path))
    return images, problems


def check_faces(
    named: Sequence[tuple[str, Path]],
) -> tuple[list[FaceImage], dict[str, Problem]]:
    """The images that decode and whose box file (if any) is valid and lies on them, and the
    problem of each other image, keyed by its name (as training checks its images before an
    epoch; a box problem names the box file)."""
    facts = inspect_files([path for _, path in named], desc=f"Checking {len(named):,} images")
    faces: list[FaceImage] = []
    problems: dict[str, Problem] = {}
    for name, path in named:
        fact = facts[str(path)]
        box_name = name[: -len(path.suffix)] + ".txt"
        if fact.error:
            problems[name] = Problem(name, fact.error)
            continue
        try:
            box = parse_box_file(path.with_suffix(".txt"))
        except KFaceFormatError as error:
            problems[name] = Problem(box_name, error.reason)
            continue
        reason = None if box is None else box_outside(box, fact.width, fact.height)
        if reason is not None:
            fix = "fix the box, or delete the file to use the whole image"
            problems[name] = Problem(box_name, f"{reason}: {fix}")
            continue
        faces.append(FaceImage(name, path, box))
    return faces, problems


def read_pairs(
    path: Path, known: set[str], not_predicted: dict[str, str]
) -> tuple[list[tuple[str, str]], list[Problem]]:
    """The pairs of a CSV with columns ``first,second`` (image names as ``input=`` gives them)
    whose images are both predicted, and a problem for each other pair (naming its line).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file lacks the columns.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"pairs={path} does not exist: give a CSV with columns first,second"
        )
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        if not {"first", "second"} <= set(columns):
            raise ValueError(
                f"pairs={path} has the columns {columns}, not first,second: write a header "
                "first,second and one pair of image paths (relative to input=) a line"
            )
        pairs, problems = [], []
        for number, row in enumerate(reader, 2):
            first, second = _clean(row["first"] or ""), _clean(row["second"] or "")
            absent = [name for name in (first, second) if name not in known]
            if absent:
                why = not_predicted.get(absent[0], "not among the images of input=")
                problems.append(
                    Problem(
                        str(path),
                        f"{absent[0]!r} is not predicted ({why}): the pair is not scored",
                        f"line {number}",
                    )
                )
            else:
                pairs.append((first, second))
    return pairs, problems


class FaceImages(Dataset):
    """Face images prepared as the evaluation set prepares them, as ``{"image", "index"}``."""

    def __init__(
        self,
        faces: Sequence[FaceImage],
        input_size: tuple[int, int],
        in_chans: int,
        crop_margin: float,
    ) -> None:
        self.faces = list(faces)
        self.in_chans = in_chans
        self.crop_margin = crop_margin
        self.transform = make_transform(input_size, train=False, seed=0)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        face = self.faces[index]
        pixels = read_face(face.path, face.box, self.in_chans, self.crop_margin)
        return {"image": face_tensor(self.transform, pixels), "index": index}


class Embedding(nn.Module):
    """A recognition net from images to embeddings (not normalised, the mirror's added under
    ``flip_fusion``, as the task embeds): what export.py exports."""

    def __init__(self, net: nn.Module, flip_fusion: bool = False) -> None:
        super().__init__()
        self.net = net
        self.flip_fusion = flip_fusion

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return embed(self.net, images, self.flip_fusion)


def ensemble_embeddings(models: Sequence[LoadedTask], images: torch.Tensor) -> torch.Tensor:
    """Each model's embedding L2-normalised, averaged over the models and normalised again (one
    model: its unit embedding, whose cosine similarities are the ones verification computes)."""
    units = [F.normalize(model.task(images).float(), dim=1) for model in models]
    return F.normalize(torch.stack(units).mean(dim=0), dim=1)


def ensemble_threshold(models: Sequence[LoadedTask]) -> float | None:
    """The models' validation threshold (``operating_point``); for a fold ensemble, the mean of
    the folds' thresholds (an approximation: the ensemble's own scores were never validated).
    None, with a warning, when a checkpoint holds none."""
    points = [model.extras.get("operating_point") for model in models]
    lacking = [str(m.path) for m, point in zip(models, points, strict=True) if point is None]
    if lacking:
        log.warning(
            "%s hold no operating_point (trained without validation people, or before it was "
            "stored): pairs_scores.csv gets scores without a decision column",
            ", ".join(lacking),
        )
        return None
    threshold = float(np.mean([float(point) for point in points]))
    if len(models) > 1:
        log.info(
            "Decision threshold %.6f: the mean of the %d folds' validation thresholds %s",
            threshold,
            len(models),
            ", ".join(f"{float(p):.6f}" for p in points),
        )
    return threshold


def identify(
    probes: np.ndarray, gallery: np.ndarray, people: Sequence[str], top_k: int
) -> list[list[tuple[str, float]]]:
    """The ``top_k`` gallery identities of each probe by cosine similarity, best first.

    A person's template is the normalised mean of their gallery embeddings (with one image per
    person, as K-Face's identification, the image itself). Ties keep the person order.
    """
    names = sorted(set(people))
    number = {name: k for k, name in enumerate(names)}
    owner = np.array([number[p] for p in people])
    templates = np.stack([gallery[owner == k].mean(axis=0) for k in range(len(names))])
    templates /= np.maximum(np.linalg.norm(templates, axis=1, keepdims=True), 1e-12)
    similarity = probes.astype(np.float64) @ templates.T.astype(np.float64)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :top_k]
    return [
        [(names[k], float(row[k])) for k in ranks]
        for row, ranks in zip(similarity, order, strict=True)
    ]


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


class FacePredictor(Predictor):
    """Face images in, L2-normalised embeddings out; pairs scored and decided, probes identified.

    Outputs in ``out``: ``embeddings.npy`` (``float32 [N, D]``, unit rows) and ``embeddings.csv``
    (``row,file``); with ``pairs``, ``pairs_scores.csv`` (``first,second,score[,decision]``: the
    cosine similarity, and 1 when it is at least the run's validation threshold); with
    ``gallery``, ``identification.csv`` (``file,rank,identity,score``, ``top_k`` rows a probe).

    Args:
        input_size: ``(height, width)`` of the network input (``data.input_size``).
        in_chans: 1 (grayscale) or 3 (``data.in_chans``).
        crop_margin: margin around the face box (``data.crop_margin``).
        pairs: a CSV ``first,second`` of image paths as ``input=`` names them.
        gallery: a folder of person folders (``<gallery>/<person>/**/<image>``), each person's
            images (with their boxes) making their template.
        top_k: identities written per probe.
        batch_size: images per batch.
        num_workers: data-loader workers.
    """

    def __init__(
        self,
        *,
        input_size: Sequence[int] = (128, 128),
        in_chans: int = 1,
        crop_margin: float = 0.1,
        pairs: str | None = None,
        gallery: str | None = None,
        top_k: int = 5,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        if top_k < 1:
            raise ValueError(f"top_k={top_k} must be at least 1")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.in_chans = int(in_chans)
        self.crop_margin = float(crop_margin)
        self.pairs = None if pairs is None else Path(pairs)
        self.gallery = None if gallery is None else Path(gallery)
        self.top_k = top_k
        self._pairs: list[tuple[str, str]] = []

    def read_inputs(self, source: Path | None) -> Inputs:
        """The input images, then the gallery's; each unreadable image or box is a problem, and
        so is each pair naming an image that is not predicted."""
        if source is None:
            raise ValueError("input= is required: a folder of face images, or a list file")
        named, problems = list_images(source)
        faces, damaged = check_faces(named)
        problems += damaged.values()
        if self.gallery is not None:
            gallery, gallery_problems = self._read_gallery(self.gallery)
            faces += gallery
            problems += gallery_problems
        if self.pairs is not None:
            known = {face.name for face in faces if face.person is None}
            why = {name: problem.reason for name, problem in damaged.items()}
            self._pairs, pair_problems = read_pairs(self.pairs, known, why)
            problems += pair_problems
        return Inputs(faces, problems)

    @staticmethod
    def _read_gallery(gallery: Path) -> tuple[list[FaceImage], list[Problem]]:
        """The gallery's images, named by their path, each with its person folder."""
        if not gallery.is_dir():
            raise FileNotFoundError(
                f"gallery={gallery} is not a folder: give a folder of person folders "
                "(<gallery>/<person>/<images>)"
            )
        named, problems = list_images(gallery)
        loose = [name for name, _ in named if "/" not in name]
        faces, damaged = check_faces([(n, p) for n, p in named if "/" in n])
        problems += [
            Problem(name, "not in a person folder: move it into <gallery>/<person>/")
            for name in loose
        ]
        problems += damaged.values()
        if not faces:
            raise ValueError(
                f"gallery={gallery} holds no readable image in a person folder: put each "
                "person's images into <gallery>/<person>/"
            )
        root = gallery.as_posix()
        faces = [
            replace(face, name=f"{root}/{face.name}", person=face.name.split("/")[0])
            for face in faces
        ]
        return faces, [replace(p, file=f"{root}/{p.file}") for p in problems]

    def dataset(self, items: Sequence[FaceImage]) -> Dataset:
        return FaceImages(items, self.input_size, self.in_chans, self.crop_margin)

    def predict_batch(self, models: Sequence[LoadedTask], batch: dict[str, Any]) -> list[Any]:
        return list(ensemble_embeddings(models, batch["image"]).cpu().numpy())

    def write(
        self,
        items: Sequence[FaceImage],
        predictions: Sequence[Any],
        models: Sequence[LoadedTask],
        out: Path,
    ) -> dict[str, int]:
        embed_dim = int(models[0].task.net.embed_dim)
        inputs = [k for k, face in enumerate(items) if face.person is None]
        names = [items[k].name for k in inputs]
        embeddings = np.asarray([predictions[k] for k in inputs], np.float32).reshape(-1, embed_dim)
        np.save(out / "embeddings.npy", embeddings)
        _write_csv(out / "embeddings.csv", ["row", "file"], list(enumerate(names)))
        counts = {"images": len(inputs)}
        if self.pairs is not None:
            counts["pairs"] = self._write_pairs(names, embeddings, models, out)
        if self.gallery is not None:
            held = [k for k, face in enumerate(items) if face.person is not None]
            people = [items[k].person or "" for k in held]
            gallery = np.asarray([predictions[k] for k in held], np.float32)
            ranked = identify(embeddings, gallery, people, self.top_k) if len(names) else []
            rows = [
                (name, rank, person, score)
                for name, best in zip(names, ranked, strict=True)
                for rank, (person, score) in enumerate(best, 1)
            ]
            _write_csv(out / "identification.csv", ["file", "rank", "identity", "score"], rows)
            counts |= {"gallery_images": len(held), "gallery_people": len(set(people))}
        return counts

    def _write_pairs(
        self,
        names: Sequence[str],
        embeddings: np.ndarray,
        models: Sequence[LoadedTask],
        out: Path,
    ) -> int:
        """``pairs_scores.csv``: each pair's cosine similarity (as verification computes it) and,
        when the checkpoints hold their validation threshold, the decision at it."""
        row_of = {name: k for k, name in enumerate(names)}
        first = np.array([row_of[a] for a, _ in self._pairs], np.int64)
        second = np.array([row_of[b] for _, b in self._pairs], np.int64)
        scores = cosine_scores(embeddings, Pairs(first, second, np.zeros(len(first), bool)))
        threshold = ensemble_threshold(models)
        header = ["first", "second", "score"] + ([] if threshold is None else ["decision"])
        rows = [
            [a, b, float(s)] + ([] if threshold is None else [int(s >= threshold)])
            for (a, b), s in zip(self._pairs, scores, strict=True)
        ]
        _write_csv(out / "pairs_scores.csv", header, rows)
        return len(rows)

    def export_contract(self, model: LoadedTask) -> ExportContract:
        """The net up to its embedding (image -> ``embedding [B, D]``, not normalised; the
        identity classifier is left out: it only knows the training people)."""
        height, width = self.input_size
        threshold = model.extras.get("operating_point")
        flip_fusion = bool(model.task.hparams.flip_fusion)
        return ExportContract(
            module=Embedding(model.task.net, flip_fusion).eval(),
            example_inputs=(torch.rand(2, self.in_chans, height, width),),
            input_names=["image"],
            output_names=["embedding"],
            preprocessing={
                "input": f"float32 [batch, {self.in_chans}, {height}, {width}], pixels / 255 "
                "in [0, 1], no mean or std",
                "channels": self.in_chans,
                "color": "grayscale (PIL convert('L'))" if self.in_chans == 1 else "RGB",
                "crop": "the face box x y width height of the .txt beside the image, enlarged "
                "by crop_margin x its width (left, right) and height (top, bottom), clipped to "
                "the image; the whole image without a box",
                "crop_margin": self.crop_margin,
                "resize": [round(height * RESIZE_FACTOR), round(width * RESIZE_FACTOR)],
                "resize_interpolation": "bilinear (OpenCV INTER_LINEAR, albumentations Resize)",
                "center_crop": [height, width],
            },
            postprocessing={
                "flip_fusion": flip_fusion,
                "embedding": "L2-normalise each row (under flip_fusion the graph has already "
                "added the embedding of the horizontally mirrored image)",
                "score": "cosine similarity of two normalised embeddings",
                "decision": "same person when score >= operating_point (the cosine threshold of "
                "best accuracy on the run's validation people)",
                "operating_point": threshold,
                "ensemble": "mean of the folds' normalised embeddings, normalised again; "
                "threshold the mean of their operating points",
            },
        )


# -- generated faces ----------------------------------------------------------------------------
class GeneratorAt(nn.Module):
    """A PGGAN generator at one level and fade-in alpha: latent ``[B, L]`` -> image ``[B, C, S, S]``
    in [-1, 1]; what predict.py runs and export.py exports."""

    def __init__(self, generator: nn.Module, level: int, alpha: float) -> None:
        super().__init__()
        self.generator = generator
        self.level = level
        self.alpha = alpha

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z, self.level, self.alpha)


def latent(seed: int, size: int) -> torch.Tensor:
    """The latent ``[1, size]`` of a seed, drawn from its own generator: the same face always."""
    return torch.randn(1, size, generator=torch.Generator().manual_seed(seed))


class GeneratorPredictor(Predictor):
    """One face per latent seed: ``seed<NNNN>.png`` and ``grid.png`` in ``out``.

    The generator is taken at the checkpoint's phase (its level and fade-in alpha; the final
    resolution once training has finished), as its test samples were.

    Args:
        seeds: the latent seeds (null: ``0 .. num - 1``).
        num: how many images: without seeds, seeds ``0 .. num - 1`` (null: 16); with seeds, the
            first ``num`` of them (null: all).
        raw: the trained generator instead of its moving average.
        batch_size: seeds per batch.
        num_workers: data-loader workers.
    """

    def __init__(
        self,
        *,
        seeds: Sequence[int] | None = None,
        num: int | None = None,
        raw: bool = False,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        if seeds is None:
            self.seeds = list(range(16 if num is None else int(num)))
        else:
            self.seeds = [int(s) for s in seeds][: None if num is None else int(num)]
        if any(seed < 0 for seed in self.seeds):
            raise ValueError(f"seeds={self.seeds}: latent seeds are non-negative integers")
        self.raw = bool(raw)

    def read_inputs(self, source: Path | None) -> Inputs:
        if source is not None:
            raise ValueError(
                f"input={source}: PGGAN reads no input, it generates from latent seeds; leave "
                "input unset and give seeds=[...] or num=<count>"
            )
        return Inputs(list(self.seeds))

    def dataset(self, items: Sequence[int]) -> Dataset:
        return [{"seed": seed, "index": k} for k, seed in enumerate(items)]  # type: ignore[return-value]

    def generator(self, models: Sequence[LoadedTask]) -> GeneratorAt:
        """The one model's (EMA or raw) generator at its checkpoint's phase.

        Raises:
            ValueError: several checkpoints (a run folder of several folds), or not a PGGAN one.
        """
        if len(models) > 1:
            raise ValueError(
                f"ckpt_path gives {len(models)} checkpoints ({', '.join(str(m.path) for m in models)})"
                ": averaging the images of different GANs gives no face of either; generate "
                "with one fold's checkpoint (ckpt_path=<run>/fold_<k>/checkpoints/last.ckpt)"
            )
        model = models[0]
        progress = model.extras.get("pggan_progress")
        if progress is None:
            raise ValueError(f"{model.path}: not a PGGAN checkpoint (no pggan_progress)")
        network = model.task.net.generator if self.raw else model.task.ema
        return GeneratorAt(network, int(progress["level"]), float(progress["alpha"])).eval()

    def predict_batch(self, models: Sequence[LoadedTask], batch: dict[str, Any]) -> list[Any]:
        """Each seed's image in [0, 1], one latent at a time so that a seed's face does not
        depend on the batch it came in."""
        generator = self.generator(models)
        device = next(generator.parameters()).device
        size = generator.generator.latent_size
        return [
            generator(latent(int(seed), size).to(device)).add(1).div(2).clamp(0, 1)[0].cpu()
            for seed in batch["seed"]
        ]

    def write(
        self,
        items: Sequence[int],
        predictions: Sequence[Any],
        models: Sequence[LoadedTask],
        out: Path,
    ) -> dict[str, int]:
        self.generator(models)  # refuses an ensemble even when there is nothing to generate
        if not predictions:
            return {"images": 0}
        batch = torch.stack(list(predictions))
        for seed, pixels in zip(items, to_uint8(batch), strict=True):
            image = pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels
            Image.fromarray(image).save(out / f"seed{seed:04d}.png")
        save_grid(batch, out / "grid.png", scale=max(1, 64 // batch.shape[-1]))
        return {"images": len(predictions)}

    def export_contract(self, model: LoadedTask) -> ExportContract:
        """The generator at the checkpoint's phase, latent -> image in [-1, 1]."""
        generator = self.generator([model])
        size = generator.generator.latent_size
        resolution = 4 * 2**generator.level
        return ExportContract(
            module=generator,
            example_inputs=(torch.randn(2, size),),
            input_names=["latent"],
            output_names=["image"],
            preprocessing={
                "input": f"float32 [batch, {size}] drawn from N(0, 1)",
                "latent_size": size,
                "seed": "predict.py's seed<NNNN>.png comes from "
                "torch.randn(1, latent_size, generator=torch.Generator().manual_seed(seed))",
            },
            postprocessing={
                "image": f"[batch, {model.task.net.channels}, {resolution}, {resolution}] in "
                "[-1, 1]",
                "to_uint8": "round(clamp((image + 1) / 2, 0, 1) * 255), NCHW -> NHWC",
                "generator": "raw" if self.raw else "moving average (EMA)",
                "level": generator.level,
                "alpha": generator.alpha,
                "resolution": resolution,
            },
        )
