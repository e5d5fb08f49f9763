"""The guideline's file formats declared once as pydantic models, validated alike by every reader.

A reader declares each record of its format as a :class:`RecordSchema` subclass (required keys,
their types and ranges) and validates the records of a file with :func:`validate_records`: every
problem of every record comes back as a :class:`~kbaselines.core.data.dataset_report.Problem`
naming the file, the record and the key, instead of a bare ``KeyError`` on the first one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from kbaselines.core.data.dataset_report import Problem

__all__ = ["RecordSchema", "require_list", "validate_record", "validate_records"]

Schema = TypeVar("Schema", bound="RecordSchema")


class RecordSchema(BaseModel):
    """A record of a guideline format. Unknown keys are kept (formats grow fields); values are
    checked strictly enough that a string where a number belongs is reported, not coerced."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(record)"
    if error["type"] == "missing":
        return f"key {key!r} is missing"
    given = error.get("input")
    shown = repr(given) if len(repr(given)) <= 40 else f"{type(given).__name__} value"
    return f"key {key!r}: {error['msg']} (got {shown})"


def validate_record(
    schema: type[Schema], raw: Any, file: str, record: str
) -> tuple[Schema | None, list[Problem]]:
    """One record as ``schema``, or None and a problem per invalid key.

    Args:
        schema: the record's model.
        raw: the parsed JSON (or XML-derived) value.
        file: the file, as the report names it.
        record: which record of the file (``"annotations[3]"``, ``"object 2"``).
    """
    if not isinstance(raw, dict):
        return None, [Problem(file, f"is a {type(raw).__name__}, not an object", record)]
    try:
        return schema.model_validate(raw), []
    except ValidationError as error:
        return None, [Problem(file, _describe(e), record) for e in error.errors()]


def validate_records(
    schema: type[Schema], raws: Iterable[Any], file: str, what: str
) -> tuple[list[tuple[int, Schema]], list[Problem]]:
    """Every valid record of a list with its index, and every problem of the others.

    Args:
        schema: the records' model.
        raws: the parsed list.
        file: the file, as the report names it.
        what: the list's name in the file, for the record (``"annotations"`` ->
            ``"annotations[3]"``).
    """
    valid: list[tuple[int, Schema]] = []
    problems: list[Problem] = []
    for index, raw in enumerate(raws):
        record, found = validate_record(schema, raw, file, f"{what}[{index}]")
        if record is not None:
            valid.append((index, record))
        problems += found
    return valid, problems


def require_list(raw: Any, key: str, file: str) -> tuple[Sequence[Any], list[Problem]]:
    """``raw[key]`` when it is a list, else an empty list and the problem."""
    if not isinstance(raw, dict):
        return [], [Problem(file, f"is a JSON {type(raw).__name__}, expected an object")]
    value = raw.get(key)
    if value is None:
        return [], [Problem(file, f"key {key!r} is missing")]
    if not isinstance(value, list):
        return [], [Problem(file, f"key {key!r} is a {type(value).__name__}, expected a list")]
    return value, []
