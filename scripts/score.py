"""Score a predictions file against ground truth with the framework's metrics.

    python scripts/score.py family=xray gt=<COCO json> pred=<COCO results json>
    python scripts/score.py family=pose gt=<2D json> pred=<predictions json>
    python scripts/score.py family=mammo gt=<metadata.csv> pred=<predictions.csv> [pred2=<other.csv>]

Settings: configs/score.yaml, which lists every family's options. ``family`` picks the module
``kbaselines.<family>.scoring``, whose ``main(options)`` prints the metrics and returns the exit
code; it gets the other keys that are set (not null), as strings. No Hydra run folder is written.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import kbaselines

__all__ = ["families", "main", "score"]


def families() -> list[str]:
    """The dataset families that have a scoring module (``kbaselines.<family>.scoring``)."""
    return sorted(
        {
            path.parent.name
            for folder in kbaselines.__path__
            for path in Path(folder).glob("*/scoring.py")
        }
    )


def score(family: str, options: dict[str, str]) -> int:
    """Run ``kbaselines.<family>.scoring.main(options)``; 2 for an unknown family."""
    known = families()
    if family not in known:
        print(
            f"score.py: family={family} has no scoring; known: {', '.join(known)}", file=sys.stderr
        )
        return 2
    return importlib.import_module(f"kbaselines.{family}.scoring").main(options)


@hydra.main(version_base="1.3", config_path="../configs", config_name="score")
def main(cfg: DictConfig) -> None:
    options = {key: str(value) for key, value in cfg.items() if value is not None}
    code = score(options.pop("family"), options)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
