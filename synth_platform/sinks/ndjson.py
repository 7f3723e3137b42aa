"""Vectorized NDJSON rendering: a block of rows becomes one byte buffer without a Python object per row.

Each line is first laid out at a fixed width in a (rows, width) byte matrix: literal keys, fixed-width text, and
numbers as zero-padded digits written four at a time from a lookup table. A mask then drops the padding (leading
zeros, the sign of non-negative numbers, rows left out) in one compaction. Numbers are written with a fixed number
of decimals ("1.5000"), which is exact JSON for a value rounded to those decimals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LUT4 = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), dtype=np.uint32).copy()
_LUT2 = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint16).copy()
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_ROWS_PER_PASS = 16_384  # one pass per meter-day at 10 s; the byte matrix of a pass stays in cache


@dataclass(frozen=True)
class Text:
    """ASCII text without quotes or backslashes, fixed width: (rows, width) or (1, width) to repeat one value."""

    name: str
    values: np.ndarray


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


def render(fields: list[Field], rows: int, keep: np.ndarray | None = None) -> np.ndarray:
    """NDJSON lines ({"name": value, ...}\\n) for `rows` rows, as a uint8 array; `keep` drops rows."""
    parts = [
        _render_pass(fields, slice(start, min(start + _ROWS_PER_PASS, rows)), keep)
        for start in range(0, rows, _ROWS_PER_PASS)
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint8)


def _render_pass(fields: list[Field], rows: slice, keep: np.ndarray | None) -> np.ndarray:
    n = rows.stop - rows.start
    plan, width = [], 0
    for i, field in enumerate(fields):
        key = (("{" if i == 0 else ",") + f'"{field.name}":').encode()
        if isinstance(field, Text):
            values = field.values if len(field.values) == 1 else field.values[rows]
            plan.append((key, b'"', values, b'"'))
            width += len(key) + values.shape[1] + 2
        else:
            scaled = np.rint(field.values[rows] * 10.0**field.decimals)
            if not np.isfinite(scaled).all() or np.abs(scaled).max(initial=0) >= 2.0**62:
                raise ValueError(f"{field.name}: values must be finite and below 1e18 / 10^decimals")
            scaled = scaled.astype(np.int64)
            whole = np.abs(scaled) // _POW10[field.decimals]
            digits = max(1, int(np.searchsorted(_POW10, whole.max(initial=0), side="right")))
            plan.append((key, scaled, whole, digits, field.decimals))
            width += len(key) + 1 + digits + (1 + field.decimals if field.decimals else 0)
    width += 2  # "}\n"

    buf = np.empty((n, width), dtype=np.uint8)
    mask = np.ones((n, width), dtype=bool)
    col = 0
    for step in plan:
        col = _put_literal(buf, col, step[0])
        if len(step) == 4:
            _, open_quote, values, close_quote = step
            col = _put_literal(buf, col, open_quote)
            buf[:, col : col + values.shape[1]] = values
            col = _put_literal(buf, col + values.shape[1], close_quote)
            continue
        _, scaled, whole, digits, decimals = step
        buf[:, col] = ord("-")
        mask[:, col] = scaled < 0
        col += 1
        _put_digits(buf, col, whole, digits)
        count = np.searchsorted(_POW10, whole, side="right").clip(1)
        for j in range(digits - 1):
            mask[:, col + j] = count >= digits - j
        col += digits
        if decimals:
            buf[:, col] = ord(".")
            _put_digits(buf, col + 1, np.abs(scaled) % _POW10[decimals], decimals)
            col += 1 + decimals
    _put_literal(buf, col, b"}\n")
    if keep is not None:
        mask &= keep[rows, None]
    return buf[mask]


def _put_literal(buf: np.ndarray, col: int, text: bytes) -> int:
    buf[:, col : col + len(text)] = np.frombuffer(text, dtype=np.uint8)
    return col + len(text)


def _column(buf: np.ndarray, col: int, dtype: type) -> np.ndarray:
    """A strided (possibly unaligned) view of bytes col.. of every row, as one integer per row."""
    return np.ndarray((buf.shape[0],), dtype=dtype, buffer=buf, offset=col, strides=(buf.shape[1],))


def _put_digits(buf: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """`width` zero-padded decimal digits of non-negative `values`, ending at col + width."""
    end = col + width
    while width >= 4:
        _column(buf, end - 4, np.uint32)[:] = _LUT4[values % 10_000]
        values, end, width = values // 10_000, end - 4, width - 4
    if width >= 2:
        _column(buf, end - 2, np.uint16)[:] = _LUT2[values % 100]
        values, end, width = values // 100, end - 2, width - 2
    if width:
        buf[:, end - 1] = (values % 10 + ord("0")).astype(np.uint8)
