"""Faker's relative dates ("now", "today", "-30d", "+1y", timedeltas, ages) resolved against a reference instant
instead of the wall clock.

Faker reads the clock through `datetime.now()`, `date.today()` and friends inside its provider methods. Each
provider class whose methods do so gets a subclass on our own Faker instances whose copies of those methods see
`datetime` and `date` classes that answer now/today with the reference instant of the current call (a context
variable). Nothing is patched process-wide: the real classes, Faker's modules and every other Faker instance are
untouched. A call without a reference fails rather than silently reading the clock.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import functools
import types
from collections.abc import Iterator
from typing import Any

_REFERENCE: contextvars.ContextVar[_dt.datetime | None] = contextvars.ContextVar("faker_reference", default=None)
_CLOCK_NAMES = frozenset({"now", "today", "utcnow"})


def _reference() -> _dt.datetime:
    value = _REFERENCE.get()
    if value is None:
        raise RuntimeError("a Faker date provider ran without a reference instant")
    return value


@contextlib.contextmanager
def reference(instant: _dt.datetime) -> Iterator[None]:
    """Within the block, Faker's now is `instant` (aware, UTC) on instances prepared by `referenced_faker`."""
    token = _REFERENCE.set(instant.astimezone(_dt.UTC))
    try:
        yield
    finally:
        _REFERENCE.reset(token)


class _Kind(type):
    """isinstance() against the stand-ins answers as for the real classes (Faker checks its arguments)."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.__mro__[1])

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.__mro__[1])


class _Datetime(_dt.datetime, metaclass=_Kind):
    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> _dt.datetime:  # type: ignore[override]
        ref = _reference()
        # A naive now is in the frame Faker's naive arithmetic (mktime/fromtimestamp) round-trips: UTC wall time.
        return ref.astimezone(tz) if tz is not None else ref.replace(tzinfo=None)

    @classmethod
    def today(cls) -> _dt.datetime:  # type: ignore[override]
        return cls.now()

    @classmethod
    def utcnow(cls) -> _dt.datetime:  # type: ignore[override]
        return _reference().replace(tzinfo=None)


class _Date(_dt.date, metaclass=_Kind):
    @classmethod
    def today(cls) -> _dt.date:  # type: ignore[override]
        return _reference().date()


_MODULE = types.SimpleNamespace(**{**vars(_dt), "datetime": _Datetime, "date": _Date})
_STAND_INS = {id(_dt.datetime): _Datetime, id(_dt.date): _Date, id(_dt): _MODULE}


def _reads_clock(code: types.CodeType) -> bool:
    if _CLOCK_NAMES & set(code.co_names):
        return True
    return any(isinstance(c, types.CodeType) and _reads_clock(c) for c in code.co_consts)


def _rebound(fn: types.FunctionType) -> types.FunctionType:
    """A copy of fn whose globals see the stand-ins for datetime, date and the datetime module."""
    scope = {k: _STAND_INS.get(id(v), v) for k, v in fn.__globals__.items()}
    copy = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__qualname__, copy.__doc__ = fn.__qualname__, fn.__doc__
    return copy


@functools.cache
def _referenced_class(cls: type) -> type | None:
    """A subclass of a provider class with every clock-reading method rebound; None when none reads the clock."""
    methods: dict[str, Any] = {}
    for klass in cls.__mro__:
        for name, attr in vars(klass).items():
            if name in methods:
                continue
            wrapper = type(attr) if isinstance(attr, classmethod | staticmethod) else None
            fn = attr.__func__ if wrapper else attr
            if isinstance(fn, types.FunctionType) and _reads_clock(fn.__code__):
                methods[name] = wrapper(_rebound(fn)) if wrapper else _rebound(fn)
            else:
                methods[name] = None  # defined here first: a subclass's own version wins over a base's
    rebound = {k: v for k, v in methods.items() if v is not None}
    return type(cls.__name__, (cls,), rebound) if rebound else None


def clock_providers(faker: Any) -> frozenset[str]:
    """Names of providers whose values depend on now: those reading the clock, and (to a fixed point) those
    calling one of them."""
    codes: dict[str, set[str]] = {}
    for generator in getattr(faker, "factories", [faker]):
        for provider in generator.get_providers():
            for klass in type(provider).__mro__:
                for name, attr in vars(klass).items():
                    fn = getattr(attr, "__func__", attr)
                    if isinstance(fn, types.FunctionType):
                        codes.setdefault(name, set()).update(_names(fn.__code__))
    reading = set(_CLOCK_NAMES)
    while True:
        more = {name for name, used in codes.items() if used & reading} - reading
        if not more:
            return frozenset(n for n in reading if not n.startswith("_") and n in codes)
        reading |= more


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def referenced_faker(faker: Any) -> Any:
    """Prepare a Faker instance (in place) so its providers read `reference()` instead of the clock."""
    for generator in getattr(faker, "factories", [faker]):
        for provider in list(generator.get_providers()):
            cls = _referenced_class(type(provider))
            if cls is not None:
                generator.add_provider(cls)
    return faker
