"""One compiled pass (numba) over a block of CSV or NDJSON bytes: where its records end, and whether the block is
what that pass assumes (RFC 4180 quoting, LF or CRLF line ends, UTF-8).

CSV records end at newlines outside quotes: in RFC 4180 a quote opens or closes a quoted field or is half of an
escaped `""`, so a newline is outside quotes exactly when an even number of quotes precede it in the block. That
holds only if every quote sits where RFC 4180 puts it (an opening quote starts a field or follows a closing one, a
closing quote is followed by a quote, the delimiter, a line end or the end of the file) and no CR outside quotes
ends a line on its own; the pass reports whether that fails before the last record end, and whether the bytes up
to there are valid UTF-8. NDJSON records end at every LF. Blank lines (empty ones for CSV, as csv.reader sees them;
whitespace-only ones for NDJSON) are not records.

The pass takes 64 bytes at a time: bit masks of the quotes, LFs, CRs, delimiters and non-ASCII bytes (built eight
bytes at a time in 64-bit words), and a prefix XOR of the quote mask, which sets the bits inside quotes. Only
record ends and non-ASCII characters are visited one by one. It releases the GIL, so the next block is scanned
while this one is written. A byte-at-a-time loop with a branch per quote or newline ran at a third of the speed.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

MORE, DONE, IRREGULAR = 0, 1, 2  # no record ends in the bytes yet; records found; not RFC 4180 as assumed

_QUOTE, _LF, _CR = ord('"'), ord("\n"), ord("\r")
_WHITESPACE = np.isin(np.arange(256), [ord(c) for c in " \t\n\r\x0b\x0c"])  # what bytes.strip() removes


class Scan(NamedTuple):
    state: int  # MORE, DONE or IRREGULAR
    stop: int  # offset after the last record (the rest waits for the next block)
    starts: np.ndarray  # int64 offsets of the records in data[:stop], blank lines left out
    ends: np.ndarray
    breaks: int  # line breaks in data[:stop], as Python counts lines (a CR inside quotes counts)
    utf8: bool  # data[:stop] is valid UTF-8


class Scanner:
    """Scans the blocks of one file, CSV (the delimiter one ASCII byte) or NDJSON. Its work space for the record
    offsets is kept from block to block: a fresh one per block cost more in page faults than the scan."""

    def __init__(self, csv: bool, delimiter: int = ord(",")):
        self.csv, self.delimiter = csv, delimiter
        self._offsets = np.empty((2, 0), np.int64)

    def __call__(self, data: bytes, final: bool) -> Scan:
        """The records of `data`, which starts on a record boundary (`final`: the file ends with it)."""
        most = len(data) // 2 + 1  # a record that is not blank has 2 bytes or more, or is the unended last one
        if self._offsets.shape[1] < most:
            self._offsets = np.empty((2, most), np.int64)
        starts, ends = self._offsets
        n = len(data)
        a = np.frombuffer(data, np.uint8)
        if final:  # whole chunks, and one byte after the data: a delimiter, as the end of the data ends a field
            padded = np.zeros(n + 64 - n % 64, np.uint8)  # uint8, as the pass reads it 8 bytes at a time
            padded[:n], padded[n] = a, self.delimiter
            a = padded
            a.flags.writeable = False  # the same type as the blocks before, so one compiled version
        else:  # whole chunks; the bytes after them wait for the next block
            a = a[: n - n % 64]
            n = len(a)
        state, stop, count, breaks, utf8 = _scan(a, n, self.csv, self.delimiter, final, starts, ends)
        return Scan(state, stop, starts[:count].copy(), ends[:count].copy(), breaks, utf8)


@intrinsic
def _popcount(typingctx, x):
    """The set bits of a uint64, as one instruction (numba has no spelling for it)."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


_ZERO, _ONE, _ALL, _63 = np.uint64(0), np.uint64(1), np.uint64(2**64 - 1), np.uint64(63)
_BUT_LAST = _ALL >> _ONE  # bits 0..62: those whose next byte is in the same chunk


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scan(a, n, csv, delim, final, starts, ends):
    """The records of a[:n]; `a` is whole 64-byte chunks (a byte at a[n] is only looked at as what follows
    a[n - 1])."""
    inside_before = _ZERO  # all ones when the chunk starts inside quotes
    sep_before = _ONE  # the byte before the chunk ends a field (the data starts on a record boundary)
    # the previous chunk's last byte, checked once the byte after it is known: a closing quote, a CR outside
    # quotes, a CR inside quotes
    closing_last = cr_out_last = cr_in_last = _ZERO
    lfs = bare_crs = 0  # in earlier chunks (bare CRs: those inside quotes, line breaks for the line numbers)
    count = stop = breaks = start = 0
    irregular = bad_utf8 = n  # first offending offset
    utf8_next = 0  # where the next UTF-8 character starts
    words, delims = a.view(np.uint64), _BYTES * np.uint64(delim)
    for chunk in range(a.shape[0] // 64):  # (a range with step 64 compiled to a loop three times slower)
        base = chunk * 64
        quote, lf, cr, dl, high = _masks(words, chunk, delims)
        bare_in = _ZERO
        if csv:
            inside = _prefix_xor(quote) ^ inside_before  # bit j: odd quotes up to j (so a quote at j opens)
            inside_before = _ZERO - (inside >> _63)
            sep = quote | lf | cr | dl
            late = (closing_last & ~sep | cr_out_last & ~lf) & _ONE
            bare_crs += np.int64(cr_in_last & ~lf & _ONE)
            closing = quote & ~inside
            bad = quote & inside & ~((sep << _ONE) | sep_before)  # an opening quote that does not start a field
            bad |= closing & ~(sep >> _ONE) & _BUT_LAST  # a closing quote followed by text
            bare = cr & ~(lf >> _ONE) & _BUT_LAST  # a CR not followed by LF
            bad |= bare & ~inside  # outside quotes it ends a record for the csv module
            bare_in = bare & inside  # inside it is text, and a line break for the line numbers
            closing_last, cr_out_last, cr_in_last = closing >> _63, (cr & ~inside) >> _63, (cr & inside) >> _63
            sep_before = sep >> _63
            if (bad | late) and irregular == n:
                irregular = base - 1 if late else base + np.int64(trailing_zeros(bad))
            ended = lf & ~inside
        else:
            ended = lf
        if ended:
            while ended:
                end = base + np.int64(trailing_zeros(ended)) + 1
                ended &= ended - _ONE
                count += _record(a, csv, start, end, starts, ends, count)
                start = end
            stop = start
            upto = _ALL >> np.uint64(64 - (stop - base))  # bits 0 .. stop - base - 1
            breaks = lfs + bare_crs + np.int64(_popcount(lf & upto) + _popcount(bare_in & upto))
        lfs += np.int64(_popcount(lf))
        bare_crs += np.int64(_popcount(bare_in))
        while high and bad_utf8 == n:
            at = base + np.int64(trailing_zeros(high))
            high &= high - _ONE
            if at >= utf8_next:
                width = _utf8_width(a, at, n)
                if width == 0:
                    bad_utf8 = at
                utf8_next = at + width
    if final:
        if inside_before:
            return IRREGULAR, 0, 0, 0, True  # an unterminated quote: the csv module names its line
        if start < n:  # the last record has no line ending
            count += _record(a, csv, start, n, starts, ends, count)
        stop, breaks = n, lfs + bare_crs
    elif stop == 0:
        return MORE, 0, 0, 0, True
    if irregular < stop:
        return IRREGULAR, 0, 0, 0, True
    return DONE, stop, count, breaks, bad_utf8 >= stop


_LOW7, _BYTES = np.uint64(0x7F7F7F7F7F7F7F7F), np.uint64(0x0101010101010101)
_GATHER, _7, _56 = np.uint64(0x0102040810204080), np.uint64(7), np.uint64(56)
_QUOTES, _LFS, _CRS = _BYTES * np.uint64(_QUOTE), _BYTES * np.uint64(_LF), _BYTES * np.uint64(_CR)


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _masks(words, chunk, delims):
    """Bit j set where byte j of the chunk (words[8 * chunk:][:8]) is a quote, LF, CR, the delimiter (`delims`:
    it in every byte), a non-ASCII byte. Eight bytes at a time in a 64-bit word: a byte-per-iteration loop was
    not vectorized and ran at a third of the speed."""
    quote = lf = cr = dl = high = _ZERO
    for k in range(8):
        w = words[8 * chunk + k]
        shift = np.uint64(8 * k)
        quote |= _gather(_equal(w, _QUOTES)) << shift
        lf |= _gather(_equal(w, _LFS)) << shift
        cr |= _gather(_equal(w, _CRS)) << shift
        dl |= _gather(_equal(w, delims)) << shift
        high |= _gather(w) << shift
    return quote, lf, cr, dl, high


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _equal(w, pattern):
    """The high bit of each byte of `w` that equals the same byte of `pattern` (exact: no carry crosses bytes)."""
    x = w ^ pattern
    return ~(((x & _LOW7) + _LOW7) | x | _LOW7)


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _gather(t):
    """Bit k set where byte k of `t` has its high bit set."""
    return (((t >> _7) & _BYTES) * _GATHER) >> _56


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _prefix_xor(x):
    """Bit j: the parity of bits 0..j of x."""
    for shift in (1, 2, 4, 8, 16, 32):
        x ^= x << np.uint64(shift)
    return x


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _record(a, csv, start, end, starts, ends, count):
    """Store the line a[start:end] as record `count` unless it is blank; 1 if stored."""
    if csv:
        blank = a[end - 1] == _LF and (end - start == 1 or (end - start == 2 and a[start] == _CR))
    else:
        blank = True
        for j in range(start, end):
            if not _WHITESPACE[a[j]]:
                blank = False
                break
    if blank:
        return 0
    starts[count], ends[count] = start, end
    return 1


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _utf8_width(a, i, n):
    """Bytes of the UTF-8 character starting at a[i] (not ASCII), or 0 when it is not valid UTF-8 as Python's strict
    decoder reads it: no overlong forms, no surrogates, nothing above U+10FFFF, no character cut short."""
    b = a[i]
    if 0xC2 <= b <= 0xDF:
        width, lo, hi = 2, 0x80, 0xBF
    elif 0xE0 <= b <= 0xEF:
        width, lo, hi = 3, 0x80, 0xBF
        if b == 0xE0:
            lo = 0xA0
        elif b == 0xED:
            hi = 0x9F
    elif 0xF0 <= b <= 0xF4:
        width, lo, hi = 4, 0x80, 0xBF
        if b == 0xF0:
            lo = 0x90
        elif b == 0xF4:
            hi = 0x8F
    else:
        return 0
    if i + width > n or not lo <= a[i + 1] <= hi:
        return 0
    for j in range(i + 2, i + width):
        if not 0x80 <= a[j] <= 0xBF:
            return 0
    return width
