"""Fill the image cache with worker processes, resumably, all views or one shard of them.

Decoding a mammogram is CPU bound (a JPEG 2000 file of a large detector takes seconds) and much of
it holds the GIL, so threads do not scale with cores: ``workers`` processes decode one file at a
time each, so each holds one full-resolution image (a few hundred MB at 3328x2560) at a time. The
image cache writes every entry atomically (a temporary file, then a rename; a crop box before its
image), so a killed run leaves no half entry, and a second run decodes only what is missing. A
shard ``i/n`` takes every n-th view of the views sorted by path, the same list in every array task
of a cluster job, so n tasks fill disjoint parts of one cache (``scripts/build_cache.py``).
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
from tqdm.auto import tqdm

from kbaselines.core.data.integrity import default_workers
from kbaselines.mammo.dataset import worker_context

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kbaselines.mammo.cache import ImageCache

__all__ = ["CacheFill", "fill_cache", "parse_shard", "shard_sources"]

_CACHE: ImageCache | None = None  # a worker process's cache, set once by _start_worker


@dataclass(frozen=True)
class CacheFill:
    """What one fill did: views in the shard, newly decoded, found cached, and the failures."""

    views: int
    decoded: int
    cached: int
    seconds: float
    workers: int
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Views decoded per second (wall clock)."""
        return self.decoded / self.seconds if self.seconds > 0 else 0.0


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``"i/n"`` (``0 <= i < n``) as ``(i, n)``; None is the one shard ``(0, 1)``."""
    if shard is None:
        return 0, 1
    index, _, count = str(shard).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(
            f"shard={shard!r}: give i/n with 0 <= i < n, e.g. shard=$SLURM_ARRAY_TASK_ID/8 "
            "for an array job of 8 tasks (--array=0-7)"
        )
    return i, n


def shard_sources(sources: Iterable[str | Path], shard: str | None = None) -> list[Path]:
    """The distinct files of ``sources`` (two paths to one file count once) sorted by resolved
    path, every n-th from the i-th for ``shard`` = ``"i/n"``: n shards partition them."""
    index, count = parse_shard(shard)
    unique = {Path(s).resolve(): Path(s) for s in sources}  # entries are keyed by resolved path
    return [unique[key] for key in sorted(unique, key=str)][index::count]


def _start_worker(cache: ImageCache) -> None:
    global _CACHE
    _CACHE = cache
    cv2.setNumThreads(1)  # one core per worker: the processes are the parallelism


def _fill_one(source: Path) -> None:
    assert _CACHE is not None, "the worker was not started by fill_cache"
    _CACHE.fill(source)


def fill_cache(
    cache: ImageCache,
    sources: Iterable[str | Path],
    workers: int | None = None,
    shard: str | None = None,
    progress: bool = True,
) -> CacheFill:
    """Decode every view of ``shard`` without an entry into ``cache`` with ``workers`` processes.

    A file that cannot be decoded gets its ``.error`` entry (:meth:`ImageCache.fill`) and is listed
    in the result's ``failed`` (with the ones recorded before); anything else stops the fill,
    naming the file.

    Args:
        sources: the DICOM files.
        workers: processes (default one per core, at most 16); 1 decodes in this process.
        shard: ``"i/n"``: only the i-th of n disjoint parts (:func:`shard_sources`); None: all.
        progress: show a progress bar.
    """
    start = time.perf_counter()
    chosen = shard_sources(sources, shard)
    todo = cache.missing(chosen)
    workers = max(1, min(workers or default_workers(), len(todo) or 1))
    desc = f"decoding mammograms into the cache at {cache.size[0]}x{cache.size[1]}"
    if shard is not None:
        desc += f" (shard {shard})"
    with tqdm(total=len(todo), desc=desc, unit=" files", disable=not progress) as bar:
        if workers == 1:
            for source in todo:
                cache.fill(source)
                bar.update()
        elif todo:
            _fill_in_processes(cache, todo, workers, bar)
    failed = [(str(s), reason) for s in chosen if (reason := cache.failure(s)) is not None]
    return CacheFill(
        views=len(chosen),
        decoded=len(todo),
        cached=len(chosen) - len(todo),
        seconds=time.perf_counter() - start,
        workers=workers,
        failed=failed,
    )


def _fill_in_processes(cache: ImageCache, todo: list[Path], workers: int, bar: tqdm) -> None:
    """Decode ``todo`` in ``workers`` processes, two files submitted per worker at a time (one
    decoding, one ready), not all at once."""
    pending: dict[Future, Path] = {}
    queue = iter(todo)
    with ProcessPoolExecutor(
        workers, mp_context=worker_context(), initializer=_start_worker, initargs=(cache,)
    ) as pool:
        while True:
            while len(pending) < 2 * workers and (source := next(queue, None)) is not None:
                pending[pool.submit(_fill_one, source)] = source
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                source = pending.pop(future)
                try:
                    future.result()
                except BrokenProcessPool as error:
                    raise RuntimeError(
                        f"a cache worker died while decoding {source} (out of memory?): run "
                        "again with fewer workers; entries written so far are kept"
                    ) from error
                except Exception as error:
                    raise RuntimeError(
                        f"{source}: decoding into the cache failed: {error}"
                    ) from error
                bar.update()
