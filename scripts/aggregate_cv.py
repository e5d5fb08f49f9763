"""Combine the folds of a run into cv_summary.json / cv_summary.md / roc_folds.png.

For folds trained as separate jobs:
    python train.py -m +experiment=kface_lightcnn9 run_name=r1 cv.fold=0,1,2,3,4
    python scripts/aggregate_cv.py logs/kface_lightcnn9/r1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kbaselines.core.cv.summary import IncompleteRunError, summarize_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "run_dir", type=Path, help="the run folder (holds splits.json and fold_<k>/)"
    )
    args = parser.parse_args(argv)
    if not (args.run_dir / "splits.json").is_file():
        print(f"{args.run_dir}: no splits.json; is this a run folder?", file=sys.stderr)
        return 2
    try:
        summarize_run(args.run_dir)
    except IncompleteRunError as error:
        print(error, file=sys.stderr)
        return 1
    print((args.run_dir / "cv_summary.md").read_text())
    print(f"written: {args.run_dir / 'cv_summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
