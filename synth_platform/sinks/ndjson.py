"""NDJSON rendering: a block of rows becomes one byte buffer without a Python object per row.

A line is a fixed sequence of literals (keys and punctuation) and values. One compiled pass (`ndjson_kernel`) walks
the rows and appends each line. numpy could only express this as a fixed-width byte matrix plus a compaction for
numbers of varying width, some thirty passes over memory; the single pass is several times faster and releases the
GIL, so blocks render in parallel. Numbers are written with a fixed number of decimals ("1.5000"), which is exact
JSON for a value rounded to those decimals.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

_scratch = threading.local()  # each rendering thread's output buffer, reused: fresh pages cost a fault each


@dataclass(frozen=True)
class Text:
    """ASCII text without quotes or backslashes, at a fixed width. Row r shows values[(r // every) % len(values)]:
    one value for every row, a cycle (each meter's timestamps) or runs (a meter's id on its readings), no copy."""

    name: str
    values: np.ndarray  # (m, width) uint8
    every: int = 1


@dataclass(frozen=True)
class Number:
    name: str
    values: np.ndarray  # (rows,) float
    decimals: int


Field = Text | Number


def iso_seconds(epoch_s: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DDTHH:MM:SSZ' per epoch second, as a (n, 20) byte matrix for `Text`."""
    text = np.datetime_as_string(np.asarray(epoch_s, dtype="datetime64[s]"), unit="s")
    out = np.empty((len(text), 20), dtype=np.uint8)
    out[:, :19] = np.frombuffer(text.astype("S19").tobytes(), dtype=np.uint8).reshape(-1, 19)
    out[:, 19] = ord("Z")
    return out


def render(fields: list[Field], rows: int, keep: np.ndarray | None = None) -> bytes:
    """NDJSON lines ({"name": value, ...}\n) for `rows` rows; `keep` drops rows."""
    from synth_platform.sinks import ndjson_kernel  # loads numba: only processes that render pay for it

    texts = [f for f in fields if isinstance(f, Text)]
    numbers = [f for f in fields if isinstance(f, Number)]
    literals = _literals(fields)
    slack = bytes(ndjson_kernel.BLOCK)  # room for the excess of the last block copy
    text_buf = np.frombuffer(
        b"".join([*(np.ascontiguousarray(t.values, np.uint8).tobytes() for t in texts), slack]), dtype=np.uint8
    )
    text_shape = np.array([(len(t.values), t.values.shape[1], t.every) for t in texts], np.int64).reshape(-1, 3)
    values = np.empty((len(numbers), rows), dtype=np.float64)
    for row, field in zip(values, numbers, strict=True):
        row[:] = field.values[:rows]
    line_bound = sum(map(len, literals)) + int(text_shape[:, 1].sum()) + len(numbers) * (ndjson_kernel.MAX_DIGITS + 2)
    out = _buffer(rows * line_bound + ndjson_kernel.BLOCK)
    written = ndjson_kernel.render_rows(
        out,
        rows,
        np.ones(rows, np.bool_) if keep is None else np.asarray(keep, np.bool_),
        np.frombuffer(b"".join([*literals, slack]), np.uint8),
        np.cumsum([0, *map(len, literals)]),
        np.array([isinstance(f, Number) for f in fields], np.int64),
        text_buf,
        np.cumsum([0, *(t.values.size for t in texts)])[:-1],
        text_shape,
        values,
        np.array([10.0**f.decimals for f in numbers]),
        np.array([f.decimals for f in numbers], np.int64),
    )
    if written < 0:
        raise ValueError(f"{numbers[-written - 1].name}: values must be finite and below 1e18 / 10^decimals")
    return out[:written].tobytes()  # bytes: google_crc32c takes nothing else


def _buffer(size: int) -> np.ndarray:
    """This thread's scratch buffer of at least `size` bytes (render copies its result out, so reuse is safe)."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < size:
        buf = _scratch.buf = np.empty(size, dtype=np.uint8)
    return buf


def _literals(fields: list[Field]) -> list[bytes]:
    """The constant text before each field's value and after the last: keys, quotes and punctuation."""
    literals, after_text = [], False
    for i, field in enumerate(fields):
        quote = '"' if isinstance(field, Text) else ""
        literals.append(('"' if after_text else "") + ("{" if i == 0 else ",") + f'"{field.name}":' + quote)
        after_text = bool(quote)
    return [s.encode() for s in [*literals, ('"' if after_text else "") + "}\n"]]
