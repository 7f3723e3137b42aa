"""The compiled pass behind `sinks.ndjson.render` (numba): it appends each kept row's line to a byte buffer.

Literals and fixed-width text are copied as whole 32-byte blocks (a fixed-size memcpy compiles to two vector moves;
the excess is overwritten by what follows, and every buffer carries that much slack). A number below 10^8 is eight
digits from a lookup table packed in one word and stored twice, shifted: once for the integer part, once for the
decimals. Everything is little-endian, like every platform numba supports. Kept apart from `ndjson` so a process
that never renders meter readings does not load the compiler.
"""

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_LUT4 = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), dtype=np.uint32).copy()
_LUT2 = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint16).copy()
_POW10 = np.array([10**i for i in range(20)], dtype=np.uint64)
MAX_DIGITS = 19  # below 2^62, the largest value accepted
_LIMIT = 2.0**62
BLOCK = 32  # bytes per fixed-size copy; buffers carry this much slack after their contents
# unsigned constants: numba turns mixed signed/unsigned integer arithmetic into floats
_ZERO, _TEN, _HUNDRED, _10K = np.uint64(ord("0")), np.uint64(10), np.uint64(100), np.uint64(10_000)
_U32, _EIGHT_DIGITS = np.uint64(32), np.uint64(10**8)


@intrinsic
def _copy_block(typingctx, dst, dst_at, src, src_at):
    """dst[dst_at:dst_at + BLOCK] = src[src_at:src_at + BLOCK]: a fixed-size memcpy, which the compiler turns into
    two vector moves. Callers copy whole blocks past the bytes they need; the next write covers the excess."""

    def codegen(context, builder, sig, args):
        to = context.make_array(sig.args[0])(context, builder, args[0]).data
        frm = context.make_array(sig.args[2])(context, builder, args[2]).data
        size = context.get_constant(types.intp, BLOCK)
        cgutils.raw_memcpy(builder, builder.gep(to, [args[1]]), builder.gep(frm, [args[3]]), size, 1)
        return context.get_dummy_value()

    return types.void(dst, dst_at, src, src_at), codegen


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _copy(out, at, src, src_at, size):
    """out[at:at + size] = src[src_at:src_at + size], writing up to BLOCK - 1 bytes of excess after it."""
    for k in range(0, size, BLOCK):
        _copy_block(out, at + k, src, src_at + k)


@intrinsic
def _store(typingctx, out, at, value):
    """Store an integer's bytes at out[at] (a uint8 array), unaligned: one write for two or four digits."""

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), args[2].type.as_pointer())
        builder.store(args[2], ptr, align=1)
        return context.get_dummy_value()

    return types.void(out, at, value), codegen


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _digits(out, end, value, count, lut4, lut2):
    """The lowest `count` decimal digits of `value`, ending before out[end]; returns the value without them."""
    while count >= 4:
        rest = value // _10K
        _store(out, end - 4, lut4[value - rest * _10K])
        value, end, count = rest, end - 4, count - 4
    if count >= 2:
        rest = value // _HUNDRED
        _store(out, end - 2, lut2[value - rest * _HUNDRED])
        value, end, count = rest, end - 2, count - 2
    if count:
        rest = value // _TEN
        out[end - 1] = _ZERO + (value - rest * _TEN)
        value = rest
    return value


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _short_number(out, c, value, d, pow10, lut4):
    """A value below 10^8 with `d` < 8 decimals at out[c], without a loop: all eight digits in one word, stored once
    for the integer part and once, shifted, for the decimals; returns the end. (Little-endian byte order.)"""
    eight = np.uint64(lut4[value // _10K]) | (np.uint64(lut4[value % _10K]) << _U32)
    digits = 1
    for k in range(1, 8):
        digits += value >= pow10[k]
    length = max(digits, d + 1)  # at least one digit before the point
    _store(out, c, eight >> np.uint64(8 * (8 - length)))
    if d == 0:
        return c + length
    point = c + length - d
    out[point] = 46  # "."
    _store(out, point + 1, eight >> np.uint64(8 * (8 - d)))
    return c + length + 1


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _long_number(out, c, value, d, pow10, lut4, lut2):
    """Any value below 2^62 at out[c], digits from the right; returns the end."""
    length = d + 1
    while length < MAX_DIGITS and value >= pow10[length]:
        length += 1
    if d == 0:
        _digits(out, c + length, value, length, lut4, lut2)
        return c + length
    end = c + length + 1
    out[end - d - 1] = 46  # "."
    _digits(out, end - d - 1, _digits(out, end, value, d, lut4, lut2), length - d, lut4, lut2)
    return end


def render_rows(*arrays: np.ndarray | int) -> int:
    """Append the kept rows' lines to `out`: for each field in order (`kinds`: 0 text, 1 number), its literal, then
    its value; then the closing literal. The bytes written, or -(number field + 1) for a value out of range.
    Takes `_render_rows`' arguments up to `decimals`; the lookup tables are this module's."""
    return _render_rows(*arrays, _POW10, _LUT4, _LUT2)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _render_rows(
    out,
    rows,
    keep,
    literals,
    literal_at,
    kinds,
    text_buf,
    text_at,
    text_shape,
    values,
    scale,
    decimals,
    pow10,
    lut4,
    lut2,
):
    texts = text_shape.shape[0]
    text_row = np.zeros(texts, np.int64)  # which value of each text field this row shows, advanced without division
    text_left = text_shape[:, 2].copy()
    c = 0
    for r in range(rows):
        if keep[r]:
            t = 0
            n = 0
            for f in range(kinds.shape[0]):
                size = literal_at[f + 1] - literal_at[f]
                _copy(out, c, literals, literal_at[f], size)
                c += size
                if kinds[f] == 0:
                    width = text_shape[t, 1]
                    _copy(out, c, text_buf, text_at[t] + text_row[t] * width, width)
                    c += width
                    t += 1
                    continue
                x = np.rint(values[n, r] * scale[n])
                if not abs(x) < _LIMIT:  # NaN fails the test too
                    return -(n + 1)
                if x < 0:
                    out[c] = 45  # "-"
                    c += 1
                value = np.uint64(abs(x))
                d = decimals[n]
                if value < _EIGHT_DIGITS and d < 8:
                    c = _short_number(out, c, value, d, pow10, lut4)
                else:
                    c = _long_number(out, c, value, d, pow10, lut4, lut2)
                n += 1
            size = literal_at[kinds.shape[0] + 1] - literal_at[kinds.shape[0]]
            _copy(out, c, literals, literal_at[kinds.shape[0]], size)
            c += size
        for t in range(texts):
            text_left[t] -= 1
            if text_left[t] == 0:
                text_left[t] = text_shape[t, 2]
                text_row[t] = (text_row[t] + 1) % text_shape[t, 0]
    return c
