"""Score a predictions file against ground truth with the framework's metrics.

    python scripts/score.py task=detection gt=<COCO json> pred=<COCO results json>
    python scripts/score.py task=pose gt=<2D json> pred=<predictions json>
    python scripts/score.py task=mammo gt=<metadata.csv> pred=<predictions.csv> [pred2=<other.csv>]

Every argument is ``key=value``; ``task`` picks the module ``kbaselines.scoring.<task>``, whose
``main(options)`` prints the metrics and returns the exit code. The other keys are that task's.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import kbaselines.scoring

__all__ = ["main", "parse_options"]


def tasks() -> list[str]:
    """The tasks that have a scoring module."""
    return sorted(m.name for m in pkgutil.iter_modules(kbaselines.scoring.__path__))


def parse_options(argv: list[str]) -> dict[str, str]:
    """``["task=pose", "gt=a.json"]`` -> ``{"task": "pose", "gt": "a.json"}``.

    Raises:
        SystemExit: on an argument without ``=``.
    """
    options = {}
    for argument in argv:
        key, sep, value = argument.partition("=")
        if not sep or not key:
            raise SystemExit(f"score.py: arguments are key=value, got {argument!r}\n{__doc__}")
        options[key] = value
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    task = options.pop("task", None)
    if task not in tasks():
        print(f"score.py: set task=<one of {', '.join(tasks())}>, got {task!r}", file=sys.stderr)
        return 2
    return importlib.import_module(f"kbaselines.scoring.{task}").main(options)


if __name__ == "__main__":
    sys.exit(main())
