"""Column expressions (`data:`): Python expression syntax, parsed with `ast`, checked against a whitelist and
compiled into closures that evaluate a whole batch of rows at once. Nothing is ever exec'd or eval'd. What Faker
and python_import functions return is reduced to plain data (values.plain) and every construct that could build
a huge value is bounded first (guards.py), so an expression can neither reach the process nor exhaust memory.

Constant sub-expressions are folded at compile time. Numbers, dates and randomness are numpy operations over
the batch; str/datetime methods, f-strings and python_import functions run row by row over the batch (still
deterministic: every random draw is a hash of (seed, table, column, call site, row id)).
"""

from __future__ import annotations

import ast
import inspect
import math
import operator
import re
import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from synth_platform.specs.tables import DEFAULT_MAX_VALUE_BYTES
from synth_platform.world.tables.clock import reference
from synth_platform.world.tables.guards import check_spec, guarded_binop, guarded_method, parse_format
from synth_platform.world.tables.values import (
    Value,
    ValueTooLarge,
    broadcast,
    elementwise,
    from_objects,
    numpy_scalar,
    plain,
    truthy,
)


class ExpressionError(ValueError):
    """An expression that may not run. `construct` is the offending part of the expression text."""

    def __init__(self, message: str, construct: str):
        self.construct = construct
        super().__init__(f"{message}: `{construct}`")


@dataclass(frozen=True)
class ForeignKeyCall:
    table: str
    column: str
    distribution: str = "uniform"
    param: float | None = None
    parent_attr: str | None = None
    weights: Mapping[str, float] | None = None
    is_unique: bool = False


@dataclass(frozen=True)
class CopyCall:
    parent_table: str
    fk_column: str
    attribute: str


class Runtime(Protocol):
    """What compiled expressions ask of the world: hashed randomness, Faker values and parent rows."""

    def uniform(self, batch: Batch, site: int, draw: int = 0) -> np.ndarray: ...

    def normal(self, batch: Batch, site: int) -> np.ndarray: ...

    def faker_pool(self, batch: Batch, site: int, provider: str, args: tuple, kwargs: dict, unique: bool) -> Value: ...

    def faker_rows(
        self, batch: Batch, site: int, provider: str, args: list, kwargs: dict, unique: bool, check: Any = None
    ) -> Value: ...

    def foreign_key(self, batch: Batch, call: ForeignKeyCall) -> Value: ...

    def copy_from_fk(self, batch: Batch, call: CopyCall) -> Value: ...


@dataclass
class Batch:
    """The rows being evaluated: their ids, event times (append tables) and the columns computed so far."""

    runtime: Runtime
    table: str
    row_ids: np.ndarray
    event_times: np.ndarray | None = None
    values: dict[str, Value] = field(default_factory=dict)
    fk_ids: dict[str, np.ndarray] = field(default_factory=dict)  # FK column -> chosen parent row ids
    column: str = ""

    @property
    def n(self) -> int:
        return len(self.row_ids)


@dataclass(frozen=True)
class Scope:
    """The names an expression of one column may use."""

    table: str
    column: str
    columns: frozenset[str]  # the table's columns
    faker: Any  # a Faker instance of the configured locale, for checking provider names
    modules: Mapping[str, ModuleType] = field(default_factory=dict)  # python_import modules by name
    functions: Mapping[str, Callable] = field(default_factory=dict)  # python_import functions by name
    has_event_time: bool = False
    unique: bool = False  # primary key / is_unique column: Faker values are made unique per row id
    tables: Mapping[str, frozenset[str]] = field(default_factory=dict)  # every declared table -> its columns
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES


@dataclass(frozen=True)
class Expression:
    text: str
    evaluate: Callable[[Batch], Value]
    columns: frozenset[str]  # other columns of the row it reads
    foreign_keys: tuple[ForeignKeyCall, ...]
    copies: tuple[CopyCall, ...]


_NO_CONST = object()


@dataclass(frozen=True)
class _Node:
    fn: Callable[[Batch], Value]
    const: Any = _NO_CONST

    @property
    def is_const(self) -> bool:
        return self.const is not _NO_CONST


def _const(value: Any) -> _Node:
    return _Node(lambda b: value, value)


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_REJECTED: dict[type, str] = {
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Starred: "*-unpacking is not allowed",
}
_GROWING = frozenset({operator.mul, operator.mod, operator.pow})  # may build far more than their operands
# Faker attributes that configure the generator instead of producing values.
_FAKER_INTERNALS = frozenset(
    [
        "seed",
        "seed_instance",
        "seed_locale",
        "add_provider",
        "get_providers",
        "provider",
        "set_formatter",
        "get_formatter",
        "set_arguments",
        "get_arguments",
        "del_arguments",
        "random",
        "unique",
        "optional",
        "items",
        "factories",
        "weights",
        "locales",
    ]
)
_NON_DETERMINISTIC = frozenset({"now", "today", "utcnow"})
_DATETIME_CLASS_METHODS = frozenset({"fromisoformat", "strptime", "combine", "fromtimestamp", "fromordinal"})
_VALUE_METHODS = frozenset(
    [
        "upper",
        "lower",
        "title",
        "capitalize",
        "casefold",
        "swapcase",
        "strip",
        "lstrip",
        "rstrip",
        "replace",
        "zfill",
        "ljust",
        "rjust",
        "center",
        "startswith",
        "endswith",
        "find",
        "count",
        "removeprefix",
        "removesuffix",
        "isdigit",
        "isalpha",
        "isalnum",
        "format",
        "split",
        "join",
        "strftime",
        "isoformat",
        "date",
        "time",
        "weekday",
        "isoweekday",
        "timestamp",
        "toordinal",
        "total_seconds",
    ]
)
_VALUE_ATTRIBUTES = frozenset(
    [
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "microsecond",
        "days",
        "seconds",
        "microseconds",
        "real",
        "imag",
    ]
)
_MATH_CONSTANTS = frozenset({"pi", "e", "tau", "inf", "nan"})
_MATH_AS_NUMPY = {
    "sqrt": np.sqrt, "exp": np.exp, "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "fabs": np.fabs, "atan": np.arctan, "tanh": np.tanh,
}  # fmt: skip
_MATH_TO_INT = {"floor": np.floor, "ceil": np.ceil, "trunc": np.trunc}
# Others allowed by name; math.factorial, comb, perm, prod and friends could run for hours on one constant.
_MATH_FUNCTIONS = frozenset(
    {*_MATH_AS_NUMPY, *_MATH_TO_INT, "log", "pow", "hypot", "atan2", "asin", "acos", "sinh", "cosh", "degrees",
     "radians", "fmod", "copysign", "isfinite", "isnan", "isinf", "isclose"}
)  # fmt: skip
# Providers that read templates naming other providers ("{{name}}", or a bare provider name in data_columns):
# their arguments must be constants naming public providers only.
_TEMPLATE_PROVIDERS = frozenset(
    {"json", "json_bytes", "csv", "tsv", "psv", "dsv", "fixed_width", "xml", "pystr_format"}
)
_TEMPLATE_TOKEN = re.compile(r"\{\{\s*(\w+)")
# Provider arguments that size the value: counts of things, and lengths in characters or bytes.
_COUNT_ARGS = frozenset({"nb", "nb_elements", "nb_words", "nb_sentences", "nb_paragraphs", "nb_texts", "num_rows",
                         "num_files", "count", "digits", "left_digits", "right_digits", "length_of_set"})  # fmt: skip
_LENGTH_ARGS = frozenset({"length", "max_chars", "min_chars", "max_nb_chars", "nb_chars", "max_length",
                          "uncompressed_size", "min_file_size", "size"})  # fmt: skip
MAX_PROVIDER_COUNT = 10_000
_PROBE_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
_FK_DISTRIBUTIONS = frozenset({"uniform", "zipf", "weighted_parent"})
_FK_KEYWORDS = ("distribution", "param", "parent_attr", "weights", "is_unique")


def compile_expression(text: str, scope: Scope) -> Expression:
    """Parse and check one `data:` expression; raise ExpressionError naming the rejected construct."""
    tree = _parse(text)
    compiler = _Compiler(text, scope)
    node = compiler.compile(tree.body)
    return Expression(
        text=text,
        evaluate=node.fn,
        columns=frozenset(compiler.columns),
        foreign_keys=tuple(compiler.foreign_keys),
        copies=tuple(compiler.copies),
    )


def _parse(text: str) -> ast.Expression:
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        pass
    first = text.strip().splitlines()[0] if text.strip() else text
    try:
        statements = ast.parse(text.strip(), mode="exec").body
    except SyntaxError as exc:
        raise ExpressionError(f"not a Python expression ({exc.msg})", first) from None
    kinds = {type(s) for s in statements}
    if kinds & {ast.Import, ast.ImportFrom}:
        raise ExpressionError("imports are not allowed (list modules under config.python_import)", first)
    if kinds & {ast.Return, ast.FunctionDef}:
        raise ExpressionError(
            "function bodies are not supported; put the function in a python_import module and call it", first
        )
    raise ExpressionError("only a single expression is allowed (no statements or assignments)", first)


class _Compiler:
    def __init__(self, text: str, scope: Scope):
        self.text = text.strip()
        self.scope = scope
        self.columns: set[str] = set()
        self.foreign_keys: list[ForeignKeyCall] = []
        self.copies: list[CopyCall] = []
        self.sites = 0

    def error(self, node: ast.AST, message: str) -> ExpressionError:
        return ExpressionError(message, ast.get_source_segment(self.text, node) or ast.unparse(node))

    def site(self) -> int:
        self.sites += 1
        return self.sites

    def compile(self, node: ast.AST) -> _Node:
        if type(node) in _REJECTED:
            raise self.error(node, _REJECTED[type(node)])
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.error(node, f"{type(node).__name__} is not allowed in expressions")
        return method(node)

    # literals ---------------------------------------------------------------------------------------------
    def _Constant(self, node: ast.Constant) -> _Node:
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise self.error(node, f"{type(node.value).__name__} literals are not allowed")
        return _const(node.value)

    def _sequence(self, node: ast.List | ast.Tuple, kind: type) -> _Node:
        items = [self.compile(e) for e in node.elts]
        if all(i.is_const for i in items):
            return _const(kind(i.const for i in items))
        raise self.error(node, "lists and tuples may only hold constants here (random.choice accepts expressions)")

    def _List(self, node: ast.List) -> _Node:
        return self._sequence(node, list)

    def _Tuple(self, node: ast.Tuple) -> _Node:
        return self._sequence(node, tuple)

    def _Set(self, node: ast.Set) -> _Node:
        return self._sequence(node, tuple)  # type: ignore[arg-type]

    def _Dict(self, node: ast.Dict) -> _Node:
        if any(k is None for k in node.keys):
            raise self.error(node, "**-unpacking is not allowed")
        keys = [self.compile(k) for k in node.keys]  # type: ignore[arg-type]
        values = [self.compile(v) for v in node.values]
        if all(n.is_const for n in keys + values):
            return _const({k.const: v.const for k, v in zip(keys, values, strict=True)})
        raise self.error(node, "dictionaries may only hold constants")

    # names ------------------------------------------------------------------------------------------------
    def _Name(self, node: ast.Name) -> _Node:
        name = node.id
        if name.startswith("_"):
            raise self.error(node, "names starting with an underscore (dunders) are not allowed")
        if name in self.scope.columns and name != self.scope.column:
            self.columns.add(name)
            return _Node(lambda b: b.values[name])
        if name == "row_id":
            return _Node(lambda b: b.row_ids)
        if name == "event_time":
            if not self.scope.has_event_time:
                raise self.error(node, "event_time exists only in tables with update_policy append")
            return _Node(lambda b: b.event_times)
        if name in {"fake", "random", "math", "datetime", "date", "timedelta"} | set(self.scope.modules):
            raise self.error(node, f"{name} can only be used to call its functions")
        if name in {*self.scope.functions, "round", "str", "int", "float", "abs", "min", "max", "len", "bool"}:
            raise self.error(node, f"{name} can only be called")
        raise self.error(
            node, f"unknown name {name!r} (not a column of table {self.scope.table!r} nor an allowed function)"
        )

    def _Attribute(self, node: ast.Attribute) -> _Node:
        if node.attr.startswith("_"):
            raise self.error(node, f"access to private or dunder attribute {node.attr!r} is not allowed")
        base = node.value
        if isinstance(base, ast.Name) and base.id == "math" and "math" not in self.scope.columns:
            if node.attr not in _MATH_CONSTANTS:
                raise self.error(node, f"math.{node.attr} is not a math constant (call math functions)")
            return _const(getattr(math, node.attr))
        if node.attr not in _VALUE_ATTRIBUTES:
            raise self.error(
                node, f"attribute {node.attr!r} is not allowed (allowed: {', '.join(sorted(_VALUE_ATTRIBUTES))})"
            )
        value = self.compile(base)
        attr = node.attr
        return self._apply(lambda v: getattr(v, attr), [value])

    # operators --------------------------------------------------------------------------------------------
    def _apply(self, fn: Callable[..., Any], args: list[_Node], vectorized: Callable[..., Any] | None = None) -> _Node:
        """A node computing fn over argument nodes: folded when constant, numpy-vectorized when given,
        else row by row."""
        if all(a.is_const for a in args):
            return self._fold(fn, args)
        fns = [a.fn for a in args]
        if vectorized is not None:
            return _Node(lambda b: vectorized(*(f(b) for f in fns)))
        return _Node(lambda b: elementwise(fn, [f(b) for f in fns], b.n))

    def _fold(self, fn: Callable[..., Any], args: list[_Node]) -> _Node:
        try:
            return _const(fn(*(a.const for a in args)))
        except Exception as exc:
            raise ExpressionError(f"constant part fails: {type(exc).__name__}: {exc}", self.text) from None

    def _BinOp(self, node: ast.BinOp) -> _Node:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.error(node, f"operator {type(node.op).__name__} is not allowed")
        guarded = guarded_binop(op, self.scope.max_value_bytes)
        vectorized = _numpy_binop(op, guarded if op in _GROWING else None)
        return self._apply(guarded, [self.compile(node.left), self.compile(node.right)], vectorized)

    def _UnaryOp(self, node: ast.UnaryOp) -> _Node:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return self._apply(operator.not_, [operand], lambda v: ~truthy(v) if isinstance(v, np.ndarray) else not v)
        op = {ast.USub: operator.neg, ast.UAdd: operator.pos}.get(type(node.op))
        if op is None:
            raise self.error(node, f"operator {type(node.op).__name__} is not allowed")
        return self._apply(op, [operand], op)

    def _BoolOp(self, node: ast.BoolOp) -> _Node:
        values = [self.compile(v) for v in node.values]
        is_and = isinstance(node.op, ast.And)

        def combine(a: Value, b: Value) -> Value:
            if not isinstance(a, np.ndarray) and not isinstance(b, np.ndarray):
                return (a and b) if is_and else (a or b)
            return np.where(truthy(a), b, a) if is_and else np.where(truthy(a), a, b)

        result = values[0]
        for nxt in values[1:]:
            result = self._apply(lambda a, b: (a and b) if is_and else (a or b), [result, nxt], combine)
        return result

    def _Compare(self, node: ast.Compare) -> _Node:
        left = self.compile(node.left)
        parts = []
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.compile(right_node)
            parts.append(self._comparison(op_node, left, right, node))
            left = right
        result = parts[0]
        for nxt in parts[1:]:
            result = self._apply(lambda a, b: a and b, [result, nxt], lambda a, b: truthy(a) & truthy(b))
        return result

    def _comparison(self, op_node: ast.cmpop, left: _Node, right: _Node, node: ast.AST) -> _Node:
        if isinstance(op_node, ast.In | ast.NotIn):
            negate = isinstance(op_node, ast.NotIn)

            def contains(a: Any, b: Any) -> bool:
                return (a not in b) if negate else (a in b)

            if right.is_const and isinstance(right.const, list | tuple | dict):
                members = list(right.const)
                return self._apply(
                    contains, [left, right], lambda a, b: np.isin(a, np.array(members, dtype=object), invert=negate)
                )
            return self._apply(contains, [left, right])
        if isinstance(op_node, ast.Is | ast.IsNot):
            right_is_none = right.is_const and right.const is None
            if not right_is_none:
                raise self.error(node, "`is` is only allowed with None")
            negate = isinstance(op_node, ast.IsNot)

            def is_none(a: Any) -> Any:
                if isinstance(a, np.ndarray):
                    mask = (
                        np.fromiter((v is None for v in a), bool, len(a))
                        if a.dtype == object
                        else np.zeros(len(a), bool)
                    )
                    return ~mask if negate else mask
                return (a is not None) if negate else (a is None)

            return self._apply(is_none, [left], is_none)
        op = _COMPARE[type(op_node)]
        return self._apply(op, [left, right], _numpy_binop(op))

    def _IfExp(self, node: ast.IfExp) -> _Node:
        test, body, orelse = self.compile(node.test), self.compile(node.body), self.compile(node.orelse)
        if test.is_const:
            return body if test.const else orelse

        def choose(b: Batch) -> Value:
            cond = test.fn(b)
            if not isinstance(cond, np.ndarray):
                return body.fn(b) if cond else orelse.fn(b)
            return _where(truthy(cond), broadcast(body.fn(b), b.n), broadcast(orelse.fn(b), b.n))

        return _Node(choose)

    def _Subscript(self, node: ast.Subscript) -> _Node:
        return self._apply(operator.getitem, [self.compile(node.value), self.compile(node.slice)])

    def _Slice(self, node: ast.Slice) -> _Node:
        bounds = [self.compile(p) if p is not None else _const(None) for p in (node.lower, node.upper, node.step)]
        return self._apply(slice, bounds)

    def _JoinedStr(self, node: ast.JoinedStr) -> _Node:
        parts: list[_Node] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(_const(value.value))
                continue
            assert isinstance(value, ast.FormattedValue)
            spec = ""
            if value.format_spec is not None:
                spec_node = self.compile(value.format_spec)
                if not spec_node.is_const:
                    raise self.error(value.format_spec, "format specs must be constant")
                spec = spec_node.const
                try:
                    check_spec(spec, self.scope.max_value_bytes)
                except ValueError as exc:
                    raise self.error(value.format_spec, str(exc)) from None
            convert = {-1: None, 115: str, 114: repr, 97: ascii}[value.conversion]
            parts.append(self._apply(_formatter(convert, spec), [self.compile(value.value)]))
        return self._apply(lambda *xs: "".join(xs), parts, _concat)

    # calls ------------------------------------------------------------------------------------------------
    def _Call(self, node: ast.Call) -> _Node:
        if any(k.arg is None for k in node.keywords):
            raise self.error(node, "**-unpacking is not allowed")
        func = node.func
        if isinstance(func, ast.Name) and not (func.id in self.scope.columns and func.id != self.scope.column):
            return self._call_name(node, func.id)
        if isinstance(func, ast.Attribute):
            if func.attr.startswith("_"):
                raise self.error(func, f"access to private or dunder attribute {func.attr!r} is not allowed")
            owner = func.value
            if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and owner.value.id == "fake":
                if owner.attr != "unique":
                    raise self.error(func, f"fake.{owner.attr} is not allowed (use fake.<provider>() or fake.unique)")
                return self._faker(node, func.attr, unique=True)
            if isinstance(owner, ast.Name) and not (owner.id in self.scope.columns and owner.id != self.scope.column):
                handler = {
                    "fake": lambda: self._faker(node, func.attr, unique=self.scope.unique),
                    "random": lambda: self._random(node, func.attr),
                    "math": lambda: self._math(node, func.attr),
                    "datetime": lambda: self._class_method(node, datetime, func.attr),
                    "date": lambda: self._class_method(node, date, func.attr),
                }.get(owner.id)
                if handler is not None:
                    return handler()
                if owner.id in self.scope.modules:
                    return self._module_function(node, owner.id, func.attr)
            return self._method(node, func)
        self.compile(func)  # a rejected construct inside (a lambda, ...) is the better message
        raise self.error(node, "only calls of allowed functions are allowed")

    def _args(self, node: ast.Call) -> tuple[list[_Node], dict[str, _Node]]:
        return [self.compile(a) for a in node.args], {k.arg: self.compile(k.value) for k in node.keywords}  # type: ignore[misc]

    def _call(self, fn: Callable[..., Any], node: ast.Call) -> _Node:
        """fn called row by row (once when every argument is constant)."""
        args, kwargs = self._args(node)
        names = list(kwargs)
        return self._apply(
            lambda *xs: fn(*xs[: len(args)], **dict(zip(names, xs[len(args) :], strict=True))),
            args + [kwargs[k] for k in names],
        )

    def _call_name(self, node: ast.Call, name: str) -> _Node:
        if name == "foreign_key":
            return self._foreign_key(node)
        if name == "copy_from_fk":
            return self._copy_from_fk(node)
        if name in self.scope.functions:
            return self._call(_plain_result(self.scope.functions[name], self.scope.max_value_bytes), node)
        if name == "timedelta":
            return self._timedelta(node)
        if name in {"datetime", "date"}:
            return self._call({"datetime": datetime, "date": date}[name], node)
        builtin = _BUILTINS.get(name)
        if builtin is None:
            if name.startswith("_"):
                raise self.error(node.func, "names starting with an underscore (dunders) are not allowed")
            raise self.error(node.func, f"unknown function {name!r}")
        python_fn, vectorized = builtin
        args, kwargs = self._args(node)
        if kwargs:
            raise self.error(node, f"{name}() takes no keyword arguments here")
        return self._apply(python_fn, args, vectorized)

    def _faker(self, node: ast.Call, provider: str, unique: bool) -> _Node:
        providers = provider_names(self.scope.faker)
        if provider not in providers:
            raise self.error(node.func, f"fake.{provider} is not a Faker provider")
        args, kwargs = self._args(node)
        site = self.site()
        sizes = provider_size_check(self.scope.faker, provider, self.scope.max_value_bytes)
        if all(a.is_const for a in (*args, *kwargs.values())):
            const_args = tuple(a.const for a in args)
            const_kwargs = {k: v.const for k, v in kwargs.items()}
            try:
                sizes(const_args, const_kwargs)
                if provider in _TEMPLATE_PROVIDERS:
                    _check_templates((const_args, const_kwargs), providers)
            except (TypeError, ValueError) as exc:
                raise self.error(node, str(exc)) from None
            self._probe(node, provider, const_args, const_kwargs)
            return _Node(lambda b: b.runtime.faker_pool(b, site, provider, const_args, const_kwargs, unique))
        if provider in _TEMPLATE_PROVIDERS:
            raise self.error(node, f"fake.{provider}() takes constant arguments (its templates name providers)")

        def per_row(b: Batch) -> Value:
            values = [a.fn(b) for a in args]
            named = {k: v.fn(b) for k, v in kwargs.items()}
            return b.runtime.faker_rows(b, site, provider, values, named, unique, sizes)

        return _Node(per_row)

    def _probe(self, node: ast.Call, provider: str, args: tuple, kwargs: dict) -> None:
        """Call the provider once at load: arguments it rejects, or a value that is not plain data (a tzinfo, a
        generator, ...), fail the spec here instead of at run time."""
        try:
            with reference(_PROBE_INSTANT):
                self.scope.faker.seed_instance(0)
                plain(getattr(self.scope.faker, provider)(*args, **kwargs), self.scope.max_value_bytes)
        except Exception as exc:
            raise self.error(node, f"fake.{provider}() fails: {type(exc).__name__}: {exc}") from None

    def _random(self, node: ast.Call, name: str) -> _Node:
        site = self.site()
        if name == "choice":
            return self._choice(node, site)
        args, kwargs = self._args(node)
        if kwargs:
            raise self.error(node, f"random.{name}() takes positional arguments here")
        expected = {"random": 0, "uniform": 2, "randint": 2, "gauss": 2, "normalvariate": 2}
        if name not in expected:
            raise self.error(node.func, f"random.{name} is not allowed (use {', '.join([*expected, 'choice'])})")
        if len(args) != expected[name]:
            raise self.error(node, f"random.{name}() takes {expected[name]} arguments")
        fns = [a.fn for a in args]
        if name == "random":
            return _Node(lambda b: b.runtime.uniform(b, site))
        if name == "uniform":
            return _Node(lambda b: _uniform(b.runtime.uniform(b, site), fns[0](b), fns[1](b)))
        if name == "randint":
            return _Node(lambda b: _randint(b.runtime.uniform(b, site), fns[0](b), fns[1](b)))
        return _Node(lambda b: fns[0](b) + fns[1](b) * b.runtime.normal(b, site))

    def _choice(self, node: ast.Call, site: int) -> _Node:
        if len(node.args) != 1 or node.keywords:
            raise self.error(node, "random.choice() takes one sequence")
        seq = node.args[0]
        if isinstance(seq, ast.List | ast.Tuple):
            items = [self.compile(e) for e in seq.elts]
        else:
            options = self.compile(seq)
            if not options.is_const:
                raise self.error(seq, "random.choice() needs a list literal or a constant sequence")
            items = [_const(v) for v in options.const]
        if not items:
            raise self.error(node, "random.choice() of an empty sequence")
        if all(i.is_const for i in items):
            pool = from_objects([i.const for i in items])
            return _Node(lambda b: pool[(b.runtime.uniform(b, site) * len(pool)).astype(np.int64)])
        fns = [i.fn for i in items]

        def pick(b: Batch) -> Value:
            index = (b.runtime.uniform(b, site) * len(fns)).astype(np.int64)
            out = broadcast(fns[0](b), b.n).astype(object)
            for k in range(1, len(fns)):
                chosen = index == k
                if chosen.any():
                    out[chosen] = broadcast(fns[k](b), b.n).astype(object)[chosen]
            return from_objects(out.tolist())

        return _Node(pick)

    def _math(self, node: ast.Call, name: str) -> _Node:
        fn = getattr(math, name, None)
        if not callable(fn):
            raise self.error(node.func, f"math.{name} is not a math function")
        if name not in _MATH_FUNCTIONS:
            raise self.error(node.func, f"math.{name} is not allowed (unbounded work or not a plain number function)")
        args, kwargs = self._args(node)
        if kwargs:
            raise self.error(node, f"math.{name}() takes positional arguments")
        if name in _MATH_AS_NUMPY and len(args) == 1:
            return self._apply(fn, args, _MATH_AS_NUMPY[name])
        if name in _MATH_TO_INT and len(args) == 1:
            to_int = _MATH_TO_INT[name]
            return self._apply(fn, args, lambda v: to_int(v).astype(np.int64) if isinstance(v, np.ndarray) else fn(v))
        if name == "log":
            return self._apply(fn, args, lambda v, base=math.e: np.log(v) / np.log(base))
        if name == "pow":
            return self._apply(fn, args, np.power)
        return self._apply(fn, args)

    def _class_method(self, node: ast.Call, cls: type, name: str) -> _Node:
        if name in _NON_DETERMINISTIC:
            raise self.error(
                node, f"{cls.__name__}.{name}() is not deterministic; use event_time or a fixed date instead"
            )
        if name not in _DATETIME_CLASS_METHODS:
            raise self.error(node.func, f"{cls.__name__}.{name} is not allowed")
        return self._call(getattr(cls, name), node)

    def _timedelta(self, node: ast.Call) -> _Node:
        args, kwargs = self._args(node)
        if all(a.is_const for a in (*args, *kwargs.values())):
            return self._call(timedelta, node)
        if args or set(kwargs) - {"days", "seconds", "minutes", "hours", "weeks", "milliseconds", "microseconds"}:
            raise self.error(node, "timedelta() with row values takes keyword arguments (days=..., hours=...)")
        unit_us = {"weeks": 604_800e6, "days": 86_400e6, "hours": 3_600e6, "minutes": 60e6, "seconds": 1e6,
                   "milliseconds": 1e3, "microseconds": 1.0}  # fmt: skip
        only_days = set(kwargs) <= {"days", "weeks"}
        fns = {k: v.fn for k, v in kwargs.items()}

        def build(b: Batch) -> Value:
            values = {k: f(b) for k, f in fns.items()}
            if only_days and all(np.asarray(v).dtype.kind in "iu" for v in values.values()):
                days = sum(np.asarray(v, dtype=np.int64) * (7 if k == "weeks" else 1) for k, v in values.items())
                return np.asarray(days).astype("timedelta64[D]")
            micros = sum(np.asarray(v, dtype=np.float64) * unit_us[k] for k, v in values.items())
            return np.round(micros).astype(np.int64).astype("timedelta64[us]")

        return _Node(build)

    def _module_function(self, node: ast.Call, module: str, name: str) -> _Node:
        owner = self.scope.modules[module]
        fn = vars(owner).get(name)
        # Only functions the module defines itself: a name it imported (os.getenv, ...) is not its function.
        if not isinstance(fn, types.FunctionType) or fn.__module__ != owner.__name__:
            raise self.error(node.func, f"{module}.{name} is not a function defined in python_import module {module!r}")
        return self._call(_plain_result(fn, self.scope.max_value_bytes), node)

    def _method(self, node: ast.Call, func: ast.Attribute) -> _Node:
        owner = self.compile(func.value)  # an unknown name there is the better message
        if func.attr in _NON_DETERMINISTIC:
            raise self.error(node, f".{func.attr}() is not deterministic; use event_time or a fixed date instead")
        if func.attr not in _VALUE_METHODS:
            raise self.error(func, f"method {func.attr!r} is not allowed")
        args, kwargs = self._args(node)
        names = list(kwargs)
        if func.attr == "format" and owner.is_const:
            try:
                parse_format(owner.const, self.scope.max_value_bytes)
            except (TypeError, ValueError) as exc:
                raise self.error(node, str(exc)) from None
        call = guarded_method(func.attr, self.scope.max_value_bytes)
        return self._apply(
            lambda obj, *xs: call(obj, *xs[: len(args)], **dict(zip(names, xs[len(args) :], strict=True))),
            [owner, *args, *(kwargs[k] for k in names)],
        )

    def _constant_args(self, node: ast.Call, what: str) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = self._args(node)
        for part in (*args, *kwargs.values()):
            if not part.is_const:
                raise self.error(node, f"{what}() takes constant arguments")
        return [a.const for a in args], {k: v.const for k, v in kwargs.items()}

    def _foreign_key(self, node: ast.Call) -> _Node:
        args, kwargs = self._constant_args(node, "foreign_key")
        names = ("table", "column", *_FK_KEYWORDS)
        if len(args) > len(names) or set(kwargs) - set(names) or len(args) + len(kwargs) < 2:
            raise self.error(node, f"foreign_key(table, column, {'=..., '.join(_FK_KEYWORDS)}=...) expected")
        values = dict(zip(names, args, strict=False)) | kwargs
        call = ForeignKeyCall(**values)
        if not isinstance(call.table, str) or not isinstance(call.column, str):
            raise self.error(node, "foreign_key() table and column must be strings")
        if call.distribution not in _FK_DISTRIBUTIONS:
            raise self.error(
                node, f"unknown distribution {call.distribution!r} (use {', '.join(sorted(_FK_DISTRIBUTIONS))})"
            )
        if (
            call.distribution == "zipf"
            and call.param is not None
            and not (isinstance(call.param, int | float) and call.param > 0)
        ):
            raise self.error(node, "zipf param must be a positive number")
        if call.distribution == "weighted_parent" and not (
            isinstance(call.parent_attr, str)
            and isinstance(call.weights, dict)
            and all(isinstance(w, int | float) and w >= 0 for w in call.weights.values())
            and any(w > 0 for w in call.weights.values())
        ):
            raise self.error(node, "weighted_parent needs parent_attr='column' and weights={value: weight >= 0}")
        if call.weights is not None:
            call = ForeignKeyCall(**{**values, "weights": {str(k): float(w) for k, w in call.weights.items()}})
        self.foreign_keys.append(call)
        return _Node(lambda b: b.runtime.foreign_key(b, call))

    def _copy_order(self, node: ast.Call, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """table-faker 1.11 writes copy_from_fk(parent_table, fk_column, attribute), its streaming server
        (fk_column, parent_table, attribute): positional arguments are placed by what the names are."""
        values = dict(zip(("parent_table", "fk_column", "attribute"), args, strict=False)) | kwargs
        if len(args) < 2 or not self.scope.tables:
            return values
        first, second = args[0], args[1]
        attribute = values.get("attribute")
        tables, own = self.scope.tables, self.scope.columns

        def fits(parent: str, fk_column: str) -> bool:
            return parent in tables and fk_column in own and (attribute is None or attribute in tables[parent])

        if fits(first, second) and fits(second, first):
            raise self.error(
                node,
                f"copy_from_fk: {first!r} and {second!r} are each a table and a column of {self.scope.table!r}; "
                "name them: copy_from_fk(parent_table=..., fk_column=..., attribute=...)",
            )
        if fits(second, first):
            values |= {"parent_table": second, "fk_column": first}
        return values

    def _copy_from_fk(self, node: ast.Call) -> _Node:
        args, kwargs = self._constant_args(node, "copy_from_fk")
        names = ("parent_table", "fk_column", "attribute")
        if len(args) > 3 or set(kwargs) - set(names) or not all(isinstance(v, str) for v in (*args, *kwargs.values())):
            raise self.error(node, "copy_from_fk(parent_table, fk_column, attribute) takes three strings")
        values = self._copy_order(node, args, kwargs)
        if set(values) != set(names):
            raise self.error(node, "copy_from_fk(parent_table, fk_column, attribute) takes three strings")
        call = CopyCall(**values)
        if call.fk_column not in self.scope.columns or call.fk_column == self.scope.column:
            raise self.error(node, f"copy_from_fk: {call.fk_column!r} is not another column of {self.scope.table!r}")
        self.columns.add(call.fk_column)
        self.copies.append(call)
        return _Node(lambda b: b.runtime.copy_from_fk(b, call))


def _numpy_binop(
    op: Callable[[Any, Any], Any], guarded: Callable[[Any, Any], Any] | None = None
) -> Callable[[Any, Any], Any]:
    """op over batch values with numpy; with `guarded`, objects (strings, lists) go row by row through it instead,
    so a repeat or a %-template is checked before it is built. (Other operators at most add sizes; the column's
    values are bounded once computed.)"""

    def apply(a: Value, b: Value) -> Value:
        if guarded is not None and (_holds_objects(a) or _holds_objects(b)):
            n = len(a) if isinstance(a, np.ndarray) else len(b)
            return elementwise(guarded, [a, b], n)
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            a, b = numpy_scalar(a), numpy_scalar(b)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return op(a, b)

    return apply


def _where(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype != b.dtype and (a.dtype == object or b.dtype == object or a.dtype.kind in "mM" or b.dtype.kind in "mM"):
        a, b = a.astype(object), b.astype(object)
        return from_objects(np.where(cond, a, b).tolist())
    return np.where(cond, a, b)


def _uniform(u: np.ndarray, low: Value, high: Value) -> np.ndarray:
    return low + (np.asarray(high, dtype=np.float64) - low) * u


def _randint(u: np.ndarray, low: Value, high: Value) -> np.ndarray:
    low = np.asarray(low, dtype=np.int64)
    span = np.asarray(high, dtype=np.int64) - low + 1
    return low + (u * span).astype(np.int64)


def _formatter(convert: Callable[[Any], str] | None, spec: str) -> Callable[[Any], str]:
    if convert is None:
        return lambda v: format(v, spec)
    return lambda v: format(convert(v), spec)


def _concat(*parts: Value) -> Value:
    arrays = [p for p in parts if isinstance(p, np.ndarray)]
    out = np.empty(len(arrays[0]), dtype=object)
    out[:] = ""
    for p in parts:
        out = out + p
    return out


def _round(value: Value, digits: int | None = None) -> Value:
    if not isinstance(value, np.ndarray):
        return round(value, digits) if digits is not None else round(value)
    if value.dtype.kind not in "iuf":
        return elementwise(round, [value] if digits is None else [value, digits], len(value))
    if digits is None:
        return np.rint(value).astype(np.int64)
    return np.round(value, digits) if value.dtype.kind == "f" else value


def _to_str(value: Value) -> Value:
    if value.dtype.kind in "iub" or value.dtype.kind == "f":
        return value.astype(str).astype(object)
    return elementwise(str, [value], len(value))


def _to_int(value: Value) -> Value:
    if value.dtype.kind in "iufb":
        return value.astype(np.int64)
    return elementwise(int, [value], len(value))


def _to_float(value: Value) -> Value:
    if value.dtype.kind in "iufb":
        return value.astype(np.float64)
    return elementwise(float, [value], len(value))


def _extreme(python_fn: Callable[..., Any], numpy_fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def apply(*values: Value) -> Value:
        if len(values) < 2:
            return elementwise(python_fn, list(values), len(next(v for v in values if isinstance(v, np.ndarray))))
        result = values[0]
        for v in values[1:]:
            result = numpy_fn(result, v)
        return result

    return apply


def _one_array_arg(vectorized: Callable[[np.ndarray], Value], python_fn: Callable[..., Any]) -> Callable[..., Value]:
    def apply(*values: Value) -> Value:
        if len(values) == 1 and isinstance(values[0], np.ndarray):
            return vectorized(values[0])
        n = len(next(v for v in values if isinstance(v, np.ndarray)))
        return elementwise(python_fn, list(values), n)

    return apply


# name -> (python function for constants and per-row use, vectorized function over arrays)
_BUILTINS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "round": (round, _round),
    "str": (str, _one_array_arg(_to_str, str)),
    "int": (int, _one_array_arg(_to_int, int)),
    "float": (float, _one_array_arg(_to_float, float)),
    "bool": (bool, _one_array_arg(truthy, bool)),
    "abs": (abs, np.abs),
    "min": (min, _extreme(min, np.minimum)),
    "max": (max, _extreme(max, np.maximum)),
    "len": (len, _one_array_arg(lambda v: elementwise(len, [v], len(v)), len)),
}


def _holds_objects(value: Value) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype == object
    return isinstance(value, str | bytes | list | tuple | dict)


def _plain_result(fn: Callable[..., Any], max_bytes: int) -> Callable[..., Any]:
    """A python_import function whose results are reduced to plain data (see values.plain)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return plain(fn(*args, **kwargs), max_bytes)

    return call


_PROVIDER_NAMES: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def provider_names(faker: Any) -> frozenset[str]:
    """Public methods of the Faker instance's providers: what `fake.<name>()` may call. The generator's own
    methods (format, parse, seed_instance, add_provider, ...) are not providers."""
    key = faker
    if key not in _PROVIDER_NAMES:
        names = set()
        for generator in getattr(faker, "factories", [faker]):
            for provider in generator.get_providers():
                names |= {n for n in dir(provider) if not n.startswith("_") and callable(getattr(provider, n))}
        _PROVIDER_NAMES[key] = frozenset(names - _FAKER_INTERNALS - {"generator"})
    return _PROVIDER_NAMES[key]


def provider_size_check(faker: Any, provider: str, max_bytes: int) -> Callable[[Any, Any], None]:
    """A check of one call's arguments: counts (nb=...) at most MAX_PROVIDER_COUNT, lengths at most max_bytes."""
    try:
        signature = inspect.signature(getattr(faker, provider))
    except (TypeError, ValueError):
        return lambda args, kwargs: None

    def check(args: Any, kwargs: Any) -> None:
        try:
            bound = signature.bind_partial(*args, **kwargs).arguments
        except TypeError as exc:
            raise TypeError(f"fake.{provider}(): {exc}") from None
        for name, value in bound.items():
            if isinstance(value, list | tuple) and value and all(isinstance(v, int | float) for v in value):
                value = math.prod(value)  # e.g. an image's (width, height)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if name in _COUNT_ARGS and value > MAX_PROVIDER_COUNT:
                raise ValueTooLarge(f"fake.{provider}({name}={value}): at most {MAX_PROVIDER_COUNT}")
            if name in _LENGTH_ARGS and value > max_bytes:
                raise ValueTooLarge(f"fake.{provider}({name}={value}): more than max_value_bytes ({max_bytes})")

    return check


def _check_templates(value: Any, providers: frozenset[str]) -> None:
    """Strings handed to a template provider may name providers ("{{name}}" or a bare name), nothing else of
    Faker's: a bare identifier that is not a provider but is an attribute of Faker, or starts with '_', is refused."""
    if isinstance(value, dict):
        for item in value.values():
            _check_templates(item, providers)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_templates(item, providers)
    elif isinstance(value, str):
        names = _TEMPLATE_TOKEN.findall(value) if "{{" in value else [value.strip()]
        for name in names:
            if name.startswith("_") or (name in _GENERATOR_ATTRIBUTES and name not in providers):
                raise ValueError(f"template names {name!r}, which is not a Faker provider")
            if "{{" in value and name not in providers:
                raise ValueError(f"template names {name!r}, which is not a Faker provider")


def _generator_attributes() -> frozenset[str]:
    from faker import Faker
    from faker.generator import Generator

    return frozenset(dir(Generator) + dir(Faker) + list(_FAKER_INTERNALS))


_GENERATOR_ATTRIBUTES = _generator_attributes()
