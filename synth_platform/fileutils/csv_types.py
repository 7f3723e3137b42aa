"""Column types for CSV -> NDJSON, from a schema file or inferred from the values, checked and converted a column
at a time (compiled checks in kernels.py, pyarrow casts, one orjson call per float column).

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

from synth_platform.fileutils import kernels
from synth_platform.specs.loader import Spec, load

ColumnType = Literal["string", "int", "float", "bool"]

# Inference refuses leading zeros (they carry meaning, as in "007"); a column declared numeric accepts them.
# int: [+-]?[0-9]+, float: [+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?, bool: true/false in any case.
_INFERRED = {"bool": kernels.BOOL_TEXT, "int": kernels.INT_STRICT, "float": kernels.FLOAT_STRICT}
_DECLARED = {"bool": kernels.BOOL_TEXT, "int": kernels.INT_TEXT, "float": kernels.FLOAT_TEXT}
# values orjson writes in the digits they have: copied (ints) or copied without trailing zeros (floats)
_CANONICAL = {"int": kernels.INT_CANONICAL, "float": kernels.FLOAT_FIXED}
_COPIED = {"int": kernels.RAW, "float": kernels.DECIMAL}
_INT64 = 2**63
_NUMBER = {"int": pa.int64(), "float": pa.float64()}


class CsvSchema(Spec):
    """A schema file: `columns: {name: string|int|float|bool}` (YAML or JSON)."""

    columns: dict[str, ColumnType] = pydantic.Field(min_length=1, description="Type of each CSV column")


def load_schema(file: Path) -> dict[str, ColumnType]:
    return dict(load(CsvSchema, file).columns)


def _first_misfit(column: pa.Array, type_: ColumnType, grammars: dict[str, int]) -> int:
    """Index of the first non-empty value that is not text of `type_`, or -1."""
    bad = kernels.first_misfit(column, grammars[type_])
    if type_ == "int":  # the grammar allows any length; 64 bits are checked in Python for the few long values
        checked = column.slice(0, bad if bad >= 0 else len(column))
        for i in np.flatnonzero(pc.binary_length(checked).to_numpy(zero_copy_only=False) >= 19).tolist():
            if not -_INT64 <= int(column[i].as_py()) < _INT64:
                return i
    return bad


class Inference:
    """The narrowest type per column that fits every non-empty value seen so far."""

    def __init__(self, names: list[str]):
        self.names = names
        self.candidates: list[set[ColumnType]] = [{"bool", "int", "float"} for _ in names]

    def fitting(self, table: pa.Table) -> list[set[ColumnType]]:
        """Per column, the candidates still open that every non-empty value of `table` fits. Pure, so blocks can
        be checked in parallel and merged in order with `observe`."""
        return [
            {t for t in set(open_) if _first_misfit(column.combine_chunks(), t, _INFERRED) < 0}
            for column, open_ in zip(table.columns, self.candidates, strict=True)
        ]

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
    """Text for `kernels.render` and how to write it, so each value comes out byte for byte as orjson writes
    the Python value; an empty field is null (for a string only with `empty_as_null`). Unless inference already
    `checked` every value, raises ValueMismatch for the first value that does not fit `type_`."""
    if type_ == "string":
        return column, kernels.STRING | (kernels.NULL_IF_EMPTY if empty_as_null else 0)
    if type_ in _CANONICAL and _first_misfit(column, type_, _CANONICAL) < 0:
        return column, _COPIED[type_] | kernels.NULL_IF_EMPTY  # no conversion: the text says it already
    bad = -1 if checked else _first_misfit(column, type_, _DECLARED)
    if bad >= 0:
        raise ValueMismatch(bad, column[bad].as_py(), type_)
    if type_ == "bool":
        return column, kernels.BOOL | kernels.NULL_IF_EMPTY
    empty = pc.equal(column, "")
    any_empty = pc.any(empty).as_py()
    digits = pc.if_else(empty, "0", column) if any_empty else column
    if pc.any(pc.starts_with(digits, "+")).as_py():  # Arrow's parser takes no leading "+"
        digits = pc.replace_substring_regex(digits, r"^\+", "")
    numbers = pc.cast(digits, _NUMBER[type_])
    text = pc.cast(numbers, pa.string()) if type_ == "int" else _orjson_floats(numbers)
    return (pc.if_else(empty, "", text) if any_empty else text), kernels.RAW | kernels.NULL_IF_EMPTY


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
