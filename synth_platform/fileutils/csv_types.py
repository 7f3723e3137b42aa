"""Column types for CSV -> NDJSON, from a schema file or inferred from the values, checked and rendered a column
at a time (pyarrow compute, RE2 patterns).

Types are deliberately few, because JSON has few: string, int, float, bool. An empty field is null for the typed
ones (and for strings only with --empty-as-null). Inference never picks a type that would change what a value
says: "007" stays a string (an int would drop the zeros), "nan"/"inf" are not floats, ints beyond 64 bits are not
ints (JSON readers would round them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pydantic

from synth_platform.fileutils import ndjson_rows
from synth_platform.specs.loader import Spec, load

ColumnType = Literal["string", "int", "float", "bool"]

# Inference refuses leading zeros (they carry meaning, as in "007"); a column declared numeric accepts them.
# RE2's `$` is the end of the text (a value ending in a newline does not match), and no (?i): RE2 case folding
# would let "falſe" pass as a bool.
_INFERRED = {
    "bool": r"^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$",
    "int": r"^[+-]?(0|[1-9][0-9]*)$",
    "float": r"^[+-]?((0|[1-9][0-9]*)(\.[0-9]+)?|\.[0-9]+)([eE][+-]?[0-9]+)?$",
}
_DECLARED = {
    **_INFERRED,
    "int": r"^[+-]?[0-9]+$",
    "float": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$",
}
_TRUE = r"^[Tt][Rr][Uu][Ee]$"
_INT64 = 2**63
_NUMBER = {"int": pa.int64(), "float": pa.float64()}


class CsvSchema(Spec):
    """A schema file: `columns: {name: string|int|float|bool}` (YAML or JSON)."""

    columns: dict[str, ColumnType] = pydantic.Field(min_length=1, description="Type of each CSV column")


def load_schema(file: Path) -> dict[str, ColumnType]:
    return dict(load(CsvSchema, file).columns)


def _fits(values: pa.Array, type_: ColumnType, patterns: dict[str, str]) -> np.ndarray:
    """Whether each (non-empty) value is text of `type_`."""
    ok = pc.match_substring_regex(values, patterns[type_]).to_numpy(zero_copy_only=False)
    if type_ == "int":  # the pattern allows any length; 64 bits are checked in Python for the few long values
        for i in np.flatnonzero(ok & (pc.binary_length(values).to_numpy(zero_copy_only=False) >= 19)):
            ok[i] = -_INT64 <= int(values[int(i)].as_py()) < _INT64
    return ok


class Inference:
    """The narrowest type per column that fits every non-empty value seen so far."""

    def __init__(self, names: list[str]):
        self.names = names
        self.candidates: list[set[ColumnType]] = [{"bool", "int", "float"} for _ in names]

    def fitting(self, table: pa.Table) -> list[set[ColumnType]]:
        """Per column, the candidates still open that every non-empty value of `table` fits. Pure, so blocks can
        be checked in parallel and merged in order with `observe`."""
        result = []
        for column, open_ in zip(table.columns, self.candidates, strict=True):
            values = pc.filter(column, pc.not_equal(column, ""))
            result.append({t for t in set(open_) if len(values) == 0 or _fits(values, t, _INFERRED).all()})
        return result

    def observe(self, fitting: list[set[ColumnType]]) -> None:
        for candidates, fit in zip(self.candidates, fitting, strict=True):
            candidates.intersection_update(fit)

    def types(self) -> dict[str, ColumnType]:
        # No value fits both bool and a number, so a column still holding every candidate had no values at all,
        # and stays a string: nothing says otherwise.
        order: list[ColumnType] = ["bool", "int", "float"]
        return {
            name: "string" if len(cands) == 3 else next((t for t in order if t in cands), "string")
            for name, cands in zip(self.names, self.candidates, strict=True)
        }


class ValueMismatch(ValueError):
    def __init__(self, row: int, value: str, type_: ColumnType):
        super().__init__(f"{value!r} is not {'an' if type_ == 'int' else 'a'} {type_}")
        self.row = row


def json_column(
    column: pa.Array, type_: ColumnType, empty_as_null: bool, checked: bool = False
) -> tuple[pa.Array, int]:
    """Text for `ndjson_rows.render` and how to write it, so each value comes out byte for byte as orjson writes
    the Python value; an empty field is null (for a string only with `empty_as_null`). Unless inference already
    `checked` every value, raises ValueMismatch for the first value that does not fit `type_`."""
    if type_ == "string":
        return column, ndjson_rows.STRING | (ndjson_rows.NULL_IF_EMPTY if empty_as_null else 0)
    empty = pc.equal(column, "")
    if not checked:
        bad = np.flatnonzero(~_fits(column, type_, _DECLARED) & ~empty.to_numpy(zero_copy_only=False))
        if len(bad):
            raise ValueMismatch(int(bad[0]), column[int(bad[0])].as_py(), type_)
    if type_ == "bool":
        return column, ndjson_rows.BOOL | ndjson_rows.NULL_IF_EMPTY
    any_empty = pc.any(empty).as_py()
    digits = pc.if_else(empty, "0", column) if any_empty else column
    if pc.any(pc.starts_with(digits, "+")).as_py():  # Arrow's parser takes no leading "+"
        digits = pc.replace_substring_regex(digits, r"^\+", "")
    numbers = pc.cast(digits, _NUMBER[type_])
    text = pc.cast(numbers, pa.string()) if type_ == "int" else _orjson_floats(numbers)
    return (pc.if_else(empty, "", text) if any_empty else text), ndjson_rows.RAW | ndjson_rows.NULL_IF_EMPTY


def _orjson_floats(numbers: pa.Array) -> pa.Array:
    """Floats as orjson writes them (shortest round trip, `1.0`, `1e+20`, `null` for inf), from one orjson call
    over the whole column, cut at its commas."""
    if len(numbers) == 0:
        return pa.array([], pa.string())
    js = orjson.dumps(numbers.to_numpy(zero_copy_only=False), option=orjson.OPT_SERIALIZE_NUMPY)  # b"[1.5,2.0]"
    offsets = np.empty(len(numbers) + 1, np.int32)
    offsets[0], offsets[-1] = 1, len(js)
    offsets[1:-1] = np.flatnonzero(np.frombuffer(js, np.uint8) == ord(",")) + 1
    with_separator = pa.StringArray.from_buffers(len(numbers), pa.py_buffer(offsets), pa.py_buffer(js))
    return pc.utf8_slice_codeunits(with_separator, 0, -1)  # each piece ends in its "," (the last in "]")
