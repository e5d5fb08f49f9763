"""What an X-ray image's path says: scanner and scenario from the folders, item from the file name.

    <root>/<scanner>/<category>/<scenario>/<family>_<hs code>_<sample>_<image>.png
    e.g. Astrophysics/USB/Single_Default/S_8544-42-2090_001_0200.png

The HS code appears with or without its dot and dash (``9306.30-9000``, ``9306-30-9000`` or ``930630-9000``); it is
normalised to the dotted form so that both spellings of one item fall in one split group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["SCANNERS", "SCENARIOS", "ImageName", "normalise_hs_code", "parse_image_path"]

SCANNERS = ("Astrophysics", "Rapiscan", "Smiths")
SCENARIOS = ("Single_Default", "Single_Other", "Multiple_Categories", "Multiple_Other")

_NAME = re.compile(
    r"^(?P<family>[HS])_(?P<hs>\d{4}[.-]?\d{2}-?\d{4})_(?P<sample>\d{3})_(?P<image>\d{4})$"
)


def normalise_hs_code(code: str) -> str:
    """``930630-9000`` or ``9306.30-9000`` -> ``9306.30-9000``."""
    digits = re.sub(r"\D", "", code)
    if len(digits) != 10:
        raise ValueError(f"an HS code has 10 digits (9306.30-9000), got {code!r}")
    return f"{digits[:4]}.{digits[4:6]}-{digits[6:]}"


@dataclass(frozen=True)
class ImageName:
    """The facts a path gives; fields the path does not carry are None.

    ``sample_key`` (family + HS code + sample number) identifies the physical item, the split
    group; VOC files named with a timestamp have none.
    """

    scanner: str | None
    scenario: str | None
    family: str | None = None
    hs_code: str | None = None
    sample: str | None = None
    image_no: str | None = None

    @property
    def sample_key(self) -> str | None:
        if self.family is None:
            return None
        return f"{self.family}_{self.hs_code}_{self.sample}"


def parse_image_path(path: str) -> ImageName:
    """Scanner and scenario from ``path`` (relative to the root), item numbers from its name.

    A scanner is the first folder of the path; a scenario is the folder holding the image when it
    is one of :data:`SCENARIOS`. Names off the guideline's pattern give no item numbers.
    """
    parts = PurePosixPath(path).parts
    scanner = parts[0] if len(parts) > 1 else None
    scenario = parts[-2] if len(parts) > 1 and parts[-2] in SCENARIOS else None
    match = _NAME.match(PurePosixPath(path).stem)
    if match is None:
        return ImageName(scanner, scenario)
    return ImageName(
        scanner,
        scenario,
        family=match["family"],
        hs_code=normalise_hs_code(match["hs"]),
        sample=match["sample"],
        image_no=match["image"],
    )
