"""Column types for CSV -> NDJSON: from a schema file, or inferred from the values themselves.

Types are deliberately few, because JSON has few: string, int, float, bool. An empty field is null for the typed
ones (and for strings only with --empty-as-null). Inference never picks a type that would change what a value
says: "007" stays a string (an int would drop the zeros), "nan"/"inf" are not floats, ints beyond 64 bits are not
ints (JSON readers would round them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pydantic

from synth_platform.specs.loader import Spec, load

ColumnType = Literal["string", "int", "float", "bool"]

# Inference refuses leading zeros (they carry meaning, as in "007"); a column declared numeric accepts them.
_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?((0|[1-9][0-9]*)(\.[0-9]+)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DECLARED_INT = re.compile(r"[+-]?[0-9]+")
_DECLARED_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_BOOLS = {"true": True, "false": False}
_INT64 = 2**63


class CsvSchema(Spec):
    """A schema file: `columns: {name: string|int|float|bool}` (YAML or JSON)."""

    columns: dict[str, ColumnType] = pydantic.Field(min_length=1, description="Type of each CSV column")


def load_schema(file: Path) -> dict[str, ColumnType]:
    return dict(load(CsvSchema, file).columns)


def is_int(text: str) -> bool:
    return bool(_INT.fullmatch(text)) and -_INT64 <= int(text) < _INT64


def is_float(text: str) -> bool:
    return bool(_FLOAT.fullmatch(text))


def is_bool(text: str) -> bool:
    return text.lower() in _BOOLS


# Candidates narrowest first; a value rules out every candidate it does not fit. string always fits.
_FITS: dict[ColumnType, Callable[[str], bool]] = {"bool": is_bool, "int": is_int, "float": is_float}


class Inference:
    """The narrowest type per column that fits every non-empty value seen so far."""

    def __init__(self, names: list[str]):
        self.names = names
        self.candidates: list[set[str]] = [set(_FITS) for _ in names]

    def observe(self, row: list[str]) -> None:
        for value, cands in zip(row, self.candidates, strict=True):
            if value and cands:
                cands.difference_update([t for t in cands if not _FITS[t](value)])

    def types(self) -> dict[str, ColumnType]:
        # No value fits both bool and a number, so a column still holding every candidate had no values at all,
        # and stays a string: nothing says otherwise.
        return {
            name: "string" if cands == set(_FITS) else next((t for t in _FITS if t in cands), "string")
            for name, cands in zip(self.names, self.candidates, strict=True)
        }


class ValueMismatch(ValueError):
    pass


def converter(type_: ColumnType, empty_as_null: bool) -> Callable[[str], Any]:
    """A function from the CSV text of one field to its JSON value; ValueMismatch when it does not fit."""
    if type_ == "string":
        return (lambda v: v or None) if empty_as_null else str

    fits: Callable[[str], bool] = {
        "int": lambda v: bool(_DECLARED_INT.fullmatch(v)) and -_INT64 <= int(v) < _INT64,
        "float": lambda v: bool(_DECLARED_FLOAT.fullmatch(v)),
        "bool": is_bool,
    }[type_]
    parse: Callable[[str], Any] = {"int": int, "float": float, "bool": lambda v: _BOOLS[v.lower()]}[type_]

    def convert(value: str) -> Any:
        if not value:
            return None
        if not fits(value):
            raise ValueMismatch(f"{value!r} is not {'an' if type_ == 'int' else 'a'} {type_}")
        return parse(value)

    return convert
