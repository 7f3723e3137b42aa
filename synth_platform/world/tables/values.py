"""Column values during evaluation: a Python scalar (one value for every row) or a numpy array of the batch.

Strings and mixed values live in object arrays, numbers in int64/float64/bool arrays, datetimes in
datetime64[us] (UTC, naive), dates in datetime64[D], durations in timedelta64.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from synth_platform.specs.table_types import TIMESTAMP
from synth_platform.specs.tables import DEFAULT_MAX_VALUE_BYTES

Value = Any  # a Python scalar or an np.ndarray of the batch length

MAX_INT_BITS = 4096  # far beyond int64 (which is all a column can hold as a number)
_MAX_DEPTH = 16


class ValueTooLarge(ValueError):
    pass


class RowError(Exception):
    """A per-row evaluation failed; `index` is the row's position in the batch (the cause is chained)."""

    def __init__(self, index: int, cause: BaseException):
        self.index = index
        super().__init__(f"{type(cause).__name__}: {cause}")


def plain(value: Any, max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> Any:
    """A value from outside the expression language (a Faker provider, a python_import function) as plain data:
    exact str, int, float, bool, None, Decimal, date, datetime (UTC), time, timedelta, bytes, and lists and dicts of
    these (UUIDs become their string, tuples and sets lists). Anything else is a TypeError naming only its type,
    and more than `max_bytes` of strings, bytes and items in all is ValueTooLarge. So nothing an expression
    touches afterwards has attributes or methods beyond those of these built-in types."""
    budget = [max_bytes]

    def spend(n: int) -> None:
        budget[0] -= n
        if budget[0] < 0:
            raise ValueTooLarge(f"value larger than max_value_bytes ({max_bytes})")

    def walk(v: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueTooLarge(f"value nested deeper than {_MAX_DEPTH} levels")
        spend(8)
        if v is None or isinstance(v, bool | np.bool_):
            return None if v is None else bool(v)
        if isinstance(v, np.generic):
            return walk(v.item(), depth)
        if isinstance(v, int):
            number = int.__int__(v)
            if number.bit_length() > MAX_INT_BITS:
                raise ValueTooLarge(f"integer of more than {MAX_INT_BITS} bits")
            return number
        if isinstance(v, float):
            return float.__float__(v)
        if isinstance(v, str):
            spend(len(v))
            return str.__str__(v)
        if isinstance(v, bytes | bytearray | memoryview):
            spend(memoryview(v).nbytes)
            return bytes(memoryview(v))
        if isinstance(v, Decimal):
            return v if type(v) is Decimal else Decimal(Decimal.__str__(v))
        if isinstance(v, datetime):
            if v.tzinfo is not None and v.utcoffset() is not None:
                v = v.astimezone(UTC)
            tz = UTC if v.tzinfo is not None else None
            return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tz)
        if isinstance(v, date):
            return date(v.year, v.month, v.day)
        if isinstance(v, time):
            return time(v.hour, v.minute, v.second, v.microsecond)
        if isinstance(v, timedelta):
            return timedelta(v.days, v.seconds, v.microseconds)
        if isinstance(v, uuid.UUID):
            return uuid.UUID.__str__(v)
        if isinstance(v, list | tuple):
            return [walk(x, depth + 1) for x in v]
        if isinstance(v, set | frozenset):
            return sorted((walk(x, depth + 1) for x in v), key=repr)  # set order varies with hash seeds
        if isinstance(v, dict):
            return {walk(k, depth + 1): walk(x, depth + 1) for k, x in v.items()}
        raise TypeError(f"returned a {type(v).__name__}, which is not plain data (str, numbers, dates, lists, dicts)")

    return walk(value, 0)


def oversized(values: Value, max_bytes: int) -> int | None:
    """Position of the first str/bytes value longer than max_bytes (None when all fit)."""
    if not isinstance(values, np.ndarray):
        return 0 if isinstance(values, str | bytes) and len(values) > max_bytes else None
    if values.dtype != object:
        return None
    for i, v in enumerate(values.tolist()):
        if isinstance(v, str | bytes) and len(v) > max_bytes:
            return i
    return None


def numpy_scalar(value: Any) -> Any:
    """datetime/date/timedelta scalars as numpy scalars, so they combine with arrays of the batch."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return np.datetime64(value, "us")
    if isinstance(value, date):
        return np.datetime64(value, "D")
    if isinstance(value, timedelta):
        whole_days = not (value.seconds or value.microseconds)
        return np.timedelta64(value.days, "D") if whole_days else np.timedelta64(value, "us")
    return value


def broadcast(value: Value, n: int) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    value = numpy_scalar(value)
    if isinstance(value, np.generic) or isinstance(value, bool | int | float) and not _too_big(value):
        return np.full(n, value)
    out = np.empty(n, dtype=object)
    out[:] = [value] * n if isinstance(value, list | tuple | dict) else value
    return out


def _too_big(value: int | float | bool) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63


def objects(value: Value, n: int) -> list[Any]:
    """Python objects per row (for per-row calls): datetime64 become datetime/date, numbers int/float."""
    if not isinstance(value, np.ndarray):
        return [value] * n
    if value.dtype.kind == "M" and value.dtype != np.dtype("datetime64[D]"):
        value = value.astype("datetime64[us]")
    return value.tolist()


def from_objects(values: Sequence[Any]) -> np.ndarray:
    """The tightest array for Python values: numbers, datetimes and dates get numpy dtypes, the rest object."""
    kinds = {type(v) for v in values}
    if kinds and kinds <= {bool, np.bool_}:
        return np.asarray(values, dtype=bool)
    if kinds and kinds <= {int, np.int64} and all(-(2**63) <= v < 2**63 for v in values):
        return np.asarray(values, dtype=np.int64)
    if kinds and kinds <= {int, float, np.int64, np.float64}:
        return np.asarray(values, dtype=np.float64)
    if kinds and all(issubclass(k, datetime) for k in kinds):
        return np.array([numpy_scalar(v) for v in values], dtype="datetime64[us]")
    if kinds and all(issubclass(k, date) and not issubclass(k, datetime) for k in kinds):
        return np.array(values, dtype="datetime64[D]")
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def elementwise(fn: Callable[..., Any], args: Sequence[Value], n: int, kwargs: dict[str, Value] | None = None) -> Value:
    """Apply a Python function row by row; with only constant arguments it is called once."""
    kwargs = kwargs or {}
    if not any(isinstance(a, np.ndarray) for a in (*args, *kwargs.values())):
        return fn(*args, **kwargs)
    columns = [objects(a, n) for a in args]
    named = {k: objects(v, n) for k, v in kwargs.items()}
    out = []
    for i in range(n):
        try:
            out.append(fn(*(c[i] for c in columns), **{k: v[i] for k, v in named.items()}))
        except RowError:
            raise
        except Exception as exc:
            raise RowError(i, exc) from exc
    return from_objects(out)


def truthy(value: Value) -> Value:
    if not isinstance(value, np.ndarray):
        return bool(value)
    if value.dtype == bool:
        return value
    if value.dtype.kind in "iuf":
        return value != 0
    return np.frompyfunc(bool, 1, 1)(value).astype(bool)


def to_arrow(values: Value, n: int, null_mask: np.ndarray | None, arrow_type: pa.DataType | None) -> pa.Array:
    """Arrow array of the batch; None values and `null_mask` rows become nulls. Without a declared type the
    type is inferred; values Arrow cannot hold become their str()."""
    values = broadcast(values, n)
    mask = null_mask  # None in object arrays becomes null as well
    if values.dtype.kind == "M" and values.dtype != np.dtype("datetime64[D]"):
        values = values.astype("datetime64[us]")
    try:
        array = pa.array(values, mask=mask, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        array = pa.array([None if v is None else str(v) for v in values], pa.string(), mask=mask)
    if pa.types.is_timestamp(array.type) and array.type.tz is None:
        array = array.cast(TIMESTAMP)
    if arrow_type is not None and array.type != arrow_type:
        array = cast(array, arrow_type)
    return array


def cast(array: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), arrow_type)
    if pa.types.is_string(arrow_type) and (pa.types.is_timestamp(array.type) or pa.types.is_date(array.type)):
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())
    if pa.types.is_integer(arrow_type) and pa.types.is_floating(array.type):
        return array.cast(arrow_type, safe=False)  # as pandas' astype(int): truncate
    return array.cast(arrow_type)
