"""Compiled passes (numba) over Arrow string data: the type check of a column and the rendering of NDJSON lines.

Type checks: whether each value is the text of an int, a float or a bool, by the same grammar as Python's
`int`/`float` restricted to plain decimal notation (see csv_types.py), one pass over the column's bytes where a
regular expression engine took several times longer.

Rendering: NDJSON lines from typed CSV columns in one pass, as `sinks/ndjson.py` does for meter readings.
Each column arrives as Arrow string data plus how to write it: as is (numbers, already in orjson's spelling), as a
decimal (a float's text without trailing zeros after the point, `.0` added to a whole number), as a JSON string
(quoted, escaped as orjson escapes: `\\"`, `\\\\`, the short escapes, other control characters as \\u00XX,
everything else unchanged) or as a bool (`true` when the text starts with t/T, the text being a checked
true/false). An empty field is `null` when the column says so. Joining the columns with pyarrow compute took a
pass per column and per escaped character; this pass reads each field once and releases the GIL, so blocks
render on several threads. The first call in a fresh checkout compiles for a few seconds and caches the result.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

RAW, STRING, BOOL, DECIMAL = 0, 1, 2, 3
NULL_IF_EMPTY = 8

_SHORT = {ord('"'): ord('"'), ord("\\"): ord("\\"), 8: ord("b"), 9: ord("t"), 10: ord("n"), 12: ord("f"), 13: ord("r")}
# bytes each input byte takes inside a JSON string, and the letter of its short escape
_ESCAPED_SIZE = np.array([(2 if b in _SHORT else 6) if b < 0x20 or b in _SHORT else 1 for b in range(256)], np.int64)
_SHORT_LETTER = np.array([_SHORT.get(b, 0) for b in range(256)], np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8).copy()


# what `first_misfit` checks. STRICT: no leading zeros ("007"). CANONICAL: an int as orjson writes it (no "+",
# no leading zeros, no "-0"), copied into the output as it is. FIXED: a float orjson writes in the same digits
# (see `_fixed_decimal`), rendered as DECIMAL.
BOOL_TEXT, INT_TEXT, INT_STRICT, FLOAT_TEXT, FLOAT_STRICT, INT_CANONICAL, FLOAT_FIXED = 1, 2, 3, 4, 5, 6, 7


def first_misfit(column: pa.Array, grammar: int) -> int:
    """Index of the first non-empty value of `column` that is not text of `grammar`, or -1."""
    _, column_offsets, data = column.buffers()
    if data is None:
        return -1
    at = np.frombuffer(column_offsets, np.int32)[column.offset : column.offset + len(column) + 1]
    return _first_misfit(np.frombuffer(data, np.uint8), at, grammar)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _first_misfit(data, offsets, grammar):
    for r in range(offsets.shape[0] - 1):
        lo, hi = offsets[r], offsets[r + 1]
        if hi > lo and not _fits(data, lo, hi, grammar):
            return r
    return -1


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _digits(data, i, hi):
    while i < hi and 48 <= data[i] <= 57:
        i += 1
    return i


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _fits(data, lo, hi, grammar):
    if grammar == BOOL_TEXT:  # true/false in any case: only ASCII letters OR 32 to these lowercase letters
        n = hi - lo
        if n == 4:
            return (
                data[lo] | 32 == 116
                and data[lo + 1] | 32 == 114
                and data[lo + 2] | 32 == 117
                and data[lo + 3] | 32 == 101
            )
        return (
            n == 5
            and data[lo] | 32 == 102
            and data[lo + 1] | 32 == 97
            and data[lo + 2] | 32 == 108
            and data[lo + 3] | 32 == 115
            and data[lo + 4] | 32 == 101
        )
    if grammar == FLOAT_FIXED:
        return _fixed_decimal(data, lo, hi)
    if grammar == INT_CANONICAL:
        i = lo + 1 if data[lo] == 45 else lo  # -
        if i < hi and data[i] == 48:  # 0
            return hi - lo == 1
        return i < hi and _digits(data, i, hi) == hi
    i = lo + 1 if data[lo] == 43 or data[lo] == 45 else lo  # + -
    start = i
    i = _digits(data, i, hi)
    whole = i - start
    if grammar in (INT_STRICT, FLOAT_STRICT) and whole > 1 and data[start] == 48:
        return False  # a leading zero
    if grammar in (INT_TEXT, INT_STRICT):
        return whole > 0 and i == hi
    point = i < hi and data[i] == 46  # .
    fraction = 0
    if point:
        i += 1
        fraction = _digits(data, i, hi) - i
        i += fraction
    if grammar == FLOAT_STRICT:
        mantissa = (whole > 0 and (not point or fraction > 0)) or (whole == 0 and fraction > 0)
    else:
        mantissa = whole > 0 or fraction > 0
    if not mantissa:
        return False
    if i < hi and (data[i] == 101 or data[i] == 69):  # e E
        i += 1
        if i < hi and (data[i] == 43 or data[i] == 45):
            i += 1
        exponent = _digits(data, i, hi) - i
        if exponent == 0:
            return False
        i += exponent
    return i == hi


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _fixed_decimal(data, lo, hi):
    """Whether data[lo:hi] is -?(0|[1-9][0-9]*)(.[0-9]+)? with at most 15 digits before the point, at most 15
    significant digits and, unless it is zero, at least 0.0001. The float read from such a text has the text's
    digits as its shortest round trip (any decimal of at most 15 significant digits does), and orjson writes it in
    fixed notation (it does from 1e-5 to below 1e16): the text without trailing zeros after the point is what
    orjson writes (`_decimal_end`)."""
    i = lo + 1 if data[lo] == 45 else lo  # -
    start = i
    i = _digits(data, i, hi)
    whole = i - start
    if whole == 0 or whole > 15 or (whole > 1 and data[start] == 48):
        return False
    if i == hi:
        return True
    fraction = i + 1
    if data[i] != 46 or fraction == hi or _digits(data, fraction, hi) != hi:
        return False
    end = hi
    while end > fraction and data[end - 1] == 48:
        end -= 1
    if whole > 1 or data[start] != 48:
        return whole + end - fraction <= 15
    first = fraction  # 0.xxx: its first significant digit
    while first < end and data[first] == 48:
        first += 1
    return first == end or (first - fraction <= 3 and end - first <= 15)


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _decimal_end(data, lo, hi):
    """For a FLOAT_FIXED text: the end of what is copied (trailing zeros after the point left out) and what
    follows it, as orjson writes the float: 0 nothing, 1 "0" (the point was kept), 2 ".0" (there was no point)."""
    point = lo
    while point < hi and data[point] != 46:
        point += 1
    if point == hi:
        return hi, 2
    end = hi
    while end > point + 1 and data[end - 1] == 48:
        end -= 1
    return (end, 0) if end > point + 1 else (end, 1)


def render(columns: list[tuple[pa.Array, int]], literals: list[bytes]) -> np.ndarray:
    """The lines, literals[0] value0 literals[1] value1 ... literals[-1] per row, as one byte array."""
    rows = len(columns[0][0])
    datas, offsets, base = [], np.empty((len(columns), rows + 1), np.int64), 0
    for i, (column, _) in enumerate(columns):
        validity, column_offsets, data = column.buffers()
        at = np.frombuffer(column_offsets, np.int32)[column.offset : column.offset + rows + 1]
        piece = np.frombuffer(data, np.uint8)[at[0] : at[-1]] if data is not None else np.zeros(0, np.uint8)
        offsets[i] = at - at[0] + base
        datas.append(piece)
        base += len(piece)
    data = np.concatenate(datas) if datas else np.zeros(0, np.uint8)
    kinds = np.array([kind for _, kind in columns], np.int64)
    literal_at = np.cumsum([0, *map(len, literals)], dtype=np.int64)
    literal_bytes = np.frombuffer(b"".join(literals), np.uint8)
    # room for the longest the lines can be: a value takes at most 5 bytes more than its text (`false`, `null`,
    # quotes, `.0`), a string byte at most 6 (\u00XX). Only the pages written are ever touched, so this costs no
    # memory, where a first pass to size the output exactly took a fifth of the rendering time.
    most = rows * (len(literal_bytes) + 5 * len(columns)) + 6 * len(data)
    out = np.empty(most, np.uint8)
    written = _write(out, data, offsets, kinds, literal_bytes, literal_at, _ESCAPED_SIZE, _SHORT_LETTER, _HEX)
    return out[:written]


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _write(out, data, offsets, kinds, literals, literal_at, escaped_size, short_letter, hex_digits):
    columns, rows = offsets.shape[0], offsets.shape[1] - 1
    c = 0
    for r in range(rows):
        for f in range(columns + 1):
            for i in range(literal_at[f], literal_at[f + 1]):
                out[c] = literals[i]
                c += 1
            if f == columns:
                break
            kind, nullable = kinds[f] & 7, kinds[f] & NULL_IF_EMPTY
            lo, hi = offsets[f, r], offsets[f, r + 1]
            if hi == lo and nullable:
                out[c], out[c + 1], out[c + 2], out[c + 3] = 110, 117, 108, 108  # null
                c += 4
            elif kind == RAW:
                for i in range(lo, hi):
                    out[c] = data[i]
                    c += 1
            elif kind == BOOL:
                if data[lo] | 32 == 116:
                    out[c], out[c + 1], out[c + 2], out[c + 3] = 116, 114, 117, 101  # true
                    c += 4
                else:
                    out[c], out[c + 1], out[c + 2], out[c + 3], out[c + 4] = 102, 97, 108, 115, 101  # false
                    c += 5
            elif kind == DECIMAL:
                end, suffix = _decimal_end(data, lo, hi)
                for i in range(lo, end):
                    out[c] = data[i]
                    c += 1
                if suffix == 2:
                    out[c] = 46  # .
                    c += 1
                if suffix:
                    out[c] = 48  # 0
                    c += 1
            else:
                out[c] = 34
                c += 1
                for i in range(lo, hi):
                    b = data[i]
                    size = escaped_size[b]
                    if size == 1:
                        out[c] = b
                    elif size == 2:
                        out[c] = 92
                        out[c + 1] = short_letter[b]
                    else:  # \u00XX
                        out[c], out[c + 1], out[c + 2], out[c + 3] = 92, 117, 48, 48
                        out[c + 4] = hex_digits[b >> 4]
                        out[c + 5] = hex_digits[b & 15]
                    c += size
                out[c] = 34
                c += 1
    return c
