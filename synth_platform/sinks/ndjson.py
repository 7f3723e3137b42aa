"""Vectorized NDJSON rendering: a block of rows becomes one byte buffer without a Python object per row.

Each line is first laid out at a fixed width in a (rows, width) byte matrix: a template row holds the keys and
punctuation, fixed-width text is copied in, numbers are written as zero-padded digits four at a time from a lookup
table. When some rows need fewer bytes (a shorter integer part, no minus sign, rows left out), one compaction by a
bit mask drops the padding; otherwise the matrix is the output as it stands. Numbers are written with a fixed
number of decimals ("1.5000"), which is exact JSON for a value rounded to those decimals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_LUT4 = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), dtype=np.uint32).copy()
_LUT2 = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint16).copy()
_ROWS_PER_PASS = 16_384  # one pass per meter-day at 10 s; the byte matrix of a pass stays in cache


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


@dataclass(frozen=True)
class _Slot:
    """Where a field's value goes in the fixed-width line; numbers: sign column (or -1), digits, decimals."""

    field: Field
    col: int
    sign: int = -1
    digits: int = 0
    scaled: np.ndarray | None = None  # |value| * 10^decimals as unsigned integers
    negative: np.ndarray | None = None


def render(fields: list[Field], rows: int, keep: np.ndarray | None = None) -> bytes:
    """NDJSON lines ({"name": value, ...}\\n) for `rows` rows; `keep` drops rows."""
    template, slots = _layout(fields, rows)
    parts = []
    for start, stop in _passes(rows, fields):
        buf = np.empty((stop - start, len(template)), dtype=np.uint8)
        buf[:] = template
        mask = _fill(buf, slots, start, stop)
        if keep is not None and mask is None:
            mask = np.repeat(keep[start:stop, None], len(template), axis=1)
        elif keep is not None:
            mask &= keep[start:stop, None]
        parts.append(buf.reshape(-1) if mask is None else _compact(buf, mask))
    return b"".join(parts)  # the one copy of the output


def _passes(rows: int, fields: list[Field]) -> Iterator[tuple[int, int]]:
    """Row ranges of about _ROWS_PER_PASS that follow the longest text cycle, so its rows are one slice."""
    period = max((len(f.values) for f in fields if isinstance(f, Text) and f.every == 1), default=1)
    if period < _ROWS_PER_PASS:
        step = period * (_ROWS_PER_PASS // period)
        yield from ((start, min(start + step, rows)) for start in range(0, rows, step))
        return
    step = -(-period // -(-period // _ROWS_PER_PASS))  # split each cycle evenly
    for cycle in range(0, rows, period):
        end = min(cycle + period, rows)
        yield from ((start, min(start + step, end)) for start in range(cycle, end, step))


def _layout(fields: list[Field], rows: int) -> tuple[np.ndarray, list[_Slot]]:
    """The template line and each field's slot."""
    line, slots = bytearray(), []
    for i, field in enumerate(fields):
        line += (("{" if i == 0 else ",") + f'"{field.name}":').encode()
        if isinstance(field, Text):
            line += b'"'
            slots.append(_Slot(field, len(line)))
            line += bytes(field.values.shape[1]) + b'"'
            continue
        scaled = np.asarray(field.values[:rows], dtype=np.float64) * 10.0**field.decimals
        np.rint(scaled, out=scaled)
        low, high = scaled.min(initial=0), scaled.max(initial=0)
        largest = max(-low, high)
        if not largest < 2.0**62:  # NaN fails the test too
            raise ValueError(f"{field.name}: values must be finite and below 1e18 / 10^decimals")
        negative = None
        if low < 0:
            negative, scaled = scaled < 0, np.abs(scaled)
        scaled = scaled.astype(np.uint32 if max(largest, 10.0**field.decimals) < 2.0**32 else np.uint64)
        digits = len(str(int(largest) // 10**field.decimals))
        sign = -1
        if negative is not None:
            sign = len(line)
            line += b"-"
        slots.append(_Slot(field, len(line), sign, digits, scaled, negative))
        line += b"0" * digits + (b"." + b"0" * field.decimals if field.decimals else b"")
    line += b"}\n"
    return np.frombuffer(bytes(line), dtype=np.uint8), slots


def _fill(buf: np.ndarray, slots: list[_Slot], start: int, stop: int) -> np.ndarray | None:
    """Write the rows [start, stop) into `buf`; the mask of bytes to keep when some line is shorter, else None."""
    mask = None
    for slot in slots:
        field = slot.field
        if isinstance(field, Text):
            buf[:, slot.col : slot.col + field.values.shape[1]] = _text_rows(field, start, stop)
            continue
        value = slot.scaled[start:stop]
        col = slot.col
        if field.decimals:
            unit = value.dtype.type(10**field.decimals)
            whole, frac = value // unit, value % unit
            _put_digits(buf, col + slot.digits + 1, frac, field.decimals)
        else:
            whole = value
        _put_digits(buf, col, whole, slot.digits)
        if slot.digits > 1 or slot.negative is not None:
            if mask is None:
                mask = np.ones(buf.shape, dtype=bool)
            for j in range(slot.digits - 1):  # leading zeros
                mask[:, col + j] = whole >= 10 ** (slot.digits - 1 - j)
            if slot.negative is not None:
                mask[:, slot.sign] = slot.negative[start:stop]
    return mask


def _text_rows(field: Text, start: int, stop: int) -> np.ndarray:
    values, every, m = field.values, field.every, len(field.values)
    if start // every == (stop - 1) // every:
        return values[(start // every) % m]
    first = start % m
    if every == 1 and first + stop - start <= m:
        return values[first : first + stop - start]
    return values[(np.arange(start, stop) // every) % m]


def _compact(buf: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """buf[mask] as a flat array, through Arrow's filter on a bitmap (copies runs of kept bytes at once)."""
    n = buf.size
    bits = pa.py_buffer(np.packbits(mask.reshape(-1), bitorder="little"))
    kept = pc.filter(pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(buf.reshape(-1))]),
                     pa.Array.from_buffers(pa.bool_(), n, [None, bits]))  # fmt: skip
    return np.frombuffer(kept.buffers()[1], dtype=np.uint8, count=len(kept))


def _column(buf: np.ndarray, col: int, dtype: type) -> np.ndarray:
    """A strided (possibly unaligned) view of bytes col.. of every row, as one integer per row."""
    return np.ndarray((buf.shape[0],), dtype=dtype, buffer=buf, offset=col, strides=(buf.shape[1],))


def _put_digits(buf: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """`width` zero-padded decimal digits of non-negative `values` (below 10^width), from column `col`."""
    end = col + width
    while width > 4:
        _column(buf, end - 4, np.uint32)[:] = _LUT4[values % 10_000]
        values, end, width = values // 10_000, end - 4, width - 4
    if width == 4:
        _column(buf, end - 4, np.uint32)[:] = _LUT4[values]
        return
    if width >= 2:
        _column(buf, end - 2, np.uint16)[:] = _LUT2[values % 100 if width > 2 else values]
        values, end, width = values // 100, end - 2, width - 2
    if width:
        buf[:, end - 1] = values + ord("0")
