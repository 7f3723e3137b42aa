"""Bounds on what an expression may build: str.format without lookups, format specs and printf templates with
bounded widths, string repeats and integer powers within max_value_bytes, methods only on plain built-in types.

Each check runs before the work it guards, so an expression can neither reach an object's attributes through a
format field nor ask for a gigabyte string; constant parts are checked when the spec loads (they are folded
then), the rest row by row.
"""

from __future__ import annotations

import operator
import re
import string
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from synth_platform.world.tables.values import MAX_INT_BITS, ValueTooLarge

# The only types whose methods expressions may call (every value is one of these, see values.plain).
PLAIN_TYPES = (str, bytes, bool, int, float, Decimal, date, datetime, time, timedelta, list, dict)
_WIDTH_METHODS = frozenset({"zfill", "ljust", "rjust", "center"})
_FIELD = re.compile(r"^(\d+|[A-Za-z_][A-Za-z0-9_]*)?$")  # positional index or keyword name, nothing after
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
_CONVERSIONS: dict[str | None, Callable[[Any], Any]] = {None: lambda v: v, "s": str, "r": repr, "a": ascii}


def check_spec(spec: str, max_bytes: int) -> None:
    """A format spec (after ':') with no nested fields and widths/precisions within max_bytes."""
    if "{" in spec or "}" in spec:
        raise ValueError(f"nested fields in the format spec {spec!r} are not allowed")
    for number in re.findall(r"\d+", spec):
        if int(number) > max_bytes:
            raise ValueTooLarge(f"format spec {spec!r} asks for more than max_value_bytes ({max_bytes})")


def parse_format(template: str, max_bytes: int) -> list[tuple[str, str | None, str, str | None]]:
    """str.format's template as (literal, field, spec, conversion) parts. Fields are positions or names only:
    `{0.attr}`, `{0[key]}` and nested specs are rejected, so formatting never looks anything up."""
    parts = []
    auto = manual = False
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if field is not None:
            if not _FIELD.match(field):
                raise ValueError(f"format field {{{field}}} is not allowed: only {{}}, {{0}} or {{name}}")
            check_spec(spec or "", max_bytes)
            auto, manual = auto or field == "", manual or field != ""
        parts.append((literal, field, spec or "", conversion))
    if auto and manual:
        raise ValueError("format fields mix automatic {} and numbered {0} fields")
    return parts


def safe_format(max_bytes: int) -> Callable[..., str]:
    """str.format restricted as parse_format says; the result is bounded by max_bytes."""

    def format_(template: Any, *args: Any, **kwargs: Any) -> str:
        if not isinstance(template, str):
            raise TypeError(f"format() is a str method, not one of {type(template).__name__}")
        out, position = [], 0
        for literal, field, spec, conversion in parse_format(template, max_bytes):
            out.append(literal)
            if field is None:
                continue
            if field == "":
                field, position = str(position), position + 1
            value = args[int(field)] if field.isdigit() else kwargs[field]
            out.append(format(_CONVERSIONS[conversion](value), spec))
        return bounded("".join(out), max_bytes)

    return format_


def check_printf(template: str, max_bytes: int) -> None:
    for match in _PRINTF.finditer(template):
        width, precision = match.group(1), match.group(2)
        if "*" in (width, precision):
            raise ValueError("'*' widths in %-formatting are not allowed")
        if any(p and int(p) > max_bytes for p in (width, precision)):
            raise ValueTooLarge(f"%-format {match.group(0)!r} asks for more than max_value_bytes ({max_bytes})")


def bounded(value: Any, max_bytes: int) -> Any:
    if isinstance(value, str | bytes) and len(value) > max_bytes:
        raise ValueTooLarge(f"a value of {len(value)} characters exceeds max_value_bytes ({max_bytes})")
    return value


def guarded_binop(op: Callable[[Any, Any], Any], max_bytes: int) -> Callable[[Any, Any], Any]:
    """A Python operator that refuses results beyond the bounds before computing them."""

    def apply(a: Any, b: Any) -> Any:
        if op is operator.mul:
            for seq, times in ((a, b), (b, a)):
                sized = isinstance(seq, str | bytes | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > max_bytes:
                    raise ValueTooLarge(f"repeating {len(seq)} items {times} times exceeds max_value_bytes")
        elif op is operator.pow and isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
            if (abs(a).bit_length() - 1) * b > MAX_INT_BITS:
                raise ValueTooLarge(f"{a} ** {b} has more than {MAX_INT_BITS} bits")
        elif op is operator.mod and isinstance(a, str | bytes):
            check_printf(a if isinstance(a, str) else a.decode("latin-1"), max_bytes)
        return bounded(op(a, b), max_bytes)

    return apply


def guarded_method(name: str, max_bytes: int) -> Callable[..., Any]:
    """obj.name(*args, **kwargs) for a plain obj, with widths and replacements bounded beforehand."""
    if name == "format":
        return safe_format(max_bytes)

    def call(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(obj, PLAIN_TYPES):
            raise TypeError(f"method {name!r} of a {type(obj).__name__} is not allowed")
        if name in _WIDTH_METHODS and args and isinstance(args[0], int) and args[0] > max_bytes:
            raise ValueTooLarge(f"{name}({args[0]}) exceeds max_value_bytes ({max_bytes})")
        if name == "replace" and isinstance(obj, str | bytes) and len(args) >= 2:
            old, new = args[0], args[1]
            grow = len(new) - len(old)
            if grow > 0 and len(obj) + (obj.count(old) if old else len(obj) + 1) * grow > max_bytes:
                raise ValueTooLarge(f"replace() would exceed max_value_bytes ({max_bytes})")
        if name == "join" and isinstance(obj, str | bytes) and args:
            items = args[0]
            total = sum(len(i) for i in items if isinstance(i, str | bytes)) + len(obj) * max(len(items) - 1, 0)
            if total > max_bytes:
                raise ValueTooLarge(f"join() would exceed max_value_bytes ({max_bytes})")
        return bounded(getattr(obj, name)(*args, **kwargs), max_bytes)

    return call
