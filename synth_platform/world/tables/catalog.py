"""Compiling the table files at load time: python_import modules, every expression, the column order within a
row, foreign keys and copy_from_fk against their parents, and the table order by foreign key. Every problem is a
SpecError naming the file, the key path, the table, the column and the rejected construct."""

from __future__ import annotations

import functools
import importlib.util
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pyarrow as pa

from synth_platform.specs.loader import SpecError
from synth_platform.specs.table_types import ARROW_TYPES
from synth_platform.specs.tables import ColumnSpec, TablesConfig, TablesFile, TableSpec
from synth_platform.world.tables import clock
from synth_platform.world.tables.expressions import (
    CopyCall,
    Expression,
    ExpressionError,
    ForeignKeyCall,
    Scope,
    compile_expression,
)
from synth_platform.world.tables.graph import CycleError, dependency_order
from synth_platform.world.tables.pools import faker_for


@dataclass(frozen=True)
class CompiledColumn:
    spec: ColumnSpec
    expression: Expression

    @property
    def name(self) -> str:
        return self.spec.column_name

    @property
    def arrow_type(self) -> pa.DataType | None:
        return ARROW_TYPES[self.spec.type] if self.spec.type else None

    @property
    def foreign_key(self) -> ForeignKeyCall | None:
        """The column's foreign key when its expression has exactly one foreign_key() call."""
        fks = self.expression.foreign_keys
        return fks[0] if len(fks) == 1 else None


@dataclass(frozen=True)
class CompiledTable:
    file: Path
    spec: TableSpec
    config: TablesConfig
    columns: dict[str, CompiledColumn]  # declaration order
    order: tuple[str, ...]  # evaluation order: every column after the columns it reads
    deps: dict[str, frozenset[str]]

    @property
    def name(self) -> str:
        return self.spec.table_name

    @property
    def parents(self) -> frozenset[str]:
        return frozenset(fk.table for c in self.columns.values() for fk in c.expression.foreign_keys)

    def foreign_keys(self) -> list[tuple[str, ForeignKeyCall]]:
        return [(c.name, fk) for c in self.columns.values() for fk in c.expression.foreign_keys]


@dataclass(frozen=True)
class Catalog:
    tables: dict[str, CompiledTable]  # parents before children

    def __getitem__(self, name: str) -> CompiledTable:
        return self.tables[name]


@dataclass(frozen=True)
class TablesDomain:
    """Every file of config/tables/, compiled: tables in foreign-key order, expressions checked."""

    files: tuple[tuple[Path, TablesFile], ...]
    catalog: Catalog

    def specs(self) -> list[TablesFile]:
        return [spec for _, spec in self.files]


def build_catalog(files: Sequence[tuple[Path, TablesFile]]) -> Catalog:
    declared: dict[str, tuple[Path, int, TableSpec]] = {}
    for file, spec in files:
        for i, table in enumerate(spec.tables):
            if table.table_name in declared:
                other = declared[table.table_name][0]
                raise SpecError(file, [(f"tables[{i}].table_name", f"table {table.table_name!r} is also in {other}")])
            declared[table.table_name] = (file, i, table)
    columns = {name: frozenset(c.column_name for c in t.columns) for name, (_, _, t) in declared.items()}
    compiled: dict[str, CompiledTable] = {}
    for file, spec in files:
        compiled |= _compile_file(file, spec, columns)
    for table in compiled.values():
        _check_references(table, compiled, declared[table.name][1])
    try:
        order = dependency_order({name: t.parents for name, t in compiled.items()})
    except CycleError as exc:
        file, i, _ = declared[exc.cycle[0]]
        raise SpecError(file, [(f"tables[{i}]", f"foreign keys form a cycle: {exc}")]) from None
    return Catalog({name: compiled[name] for name in order})


def _locale(config: TablesConfig) -> str | tuple[str, ...]:
    return config.locale if isinstance(config.locale, str) else tuple(config.locale)


def clock_providers(table: CompiledTable) -> frozenset[str]:
    """Faker providers of the table's locale whose values depend on now (called per row in append tables)."""
    return _clock_providers(_locale(table.config))


@functools.cache
def _clock_providers(locale: str | tuple[str, ...]) -> frozenset[str]:
    return clock.clock_providers(faker_for(locale))


def _compile_file(
    file: Path, spec: TablesFile, declared_columns: dict[str, frozenset[str]]
) -> dict[str, CompiledTable]:
    problems: list[tuple[str, str]] = []
    modules, functions = _imports(file, spec.config, problems)
    locale = _locale(spec.config)
    try:
        faker = faker_for(locale)
    except AttributeError as exc:
        raise SpecError(file, [("config.locale", f"unknown Faker locale: {exc}")]) from None
    tables = {}
    for i, table in enumerate(spec.tables):
        names = frozenset(c.column_name for c in table.columns)
        columns: dict[str, CompiledColumn] = {}
        for j, col in enumerate(table.columns):
            scope = Scope(
                table=table.table_name,
                column=col.column_name,
                columns=names,
                faker=faker,
                modules=modules,
                functions=functions,
                has_event_time=table.is_append,
                unique=col.unique,
                tables=declared_columns,
                max_value_bytes=spec.config.max_value_bytes,
            )
            try:
                columns[col.column_name] = CompiledColumn(col, compile_expression(col.expression, scope))
            except ExpressionError as exc:
                problems.append(
                    (f"tables[{i}].columns[{j}].data", f"table {table.table_name!r}, column {col.column_name!r}: {exc}")
                )
        if len(columns) != len(table.columns):
            continue
        deps = {name: c.expression.columns for name, c in columns.items()}
        try:
            order = dependency_order(deps)
        except CycleError as exc:
            problems.append(
                (f"tables[{i}].columns", f"table {table.table_name!r}: columns read each other in a cycle: {exc}")
            )
            continue
        tables[table.table_name] = CompiledTable(file, table, spec.config, columns, tuple(order), deps)
    if problems:
        raise SpecError(file, problems)
    return tables


def _imports(
    file: Path, config: TablesConfig, problems: list[tuple[str, str]]
) -> tuple[dict[str, ModuleType], dict[str, Callable]]:
    """python_import modules by their last name, and their functions marked with table-faker's @tf_expose (only
    functions the module defines itself)."""
    modules: dict[str, ModuleType] = {}
    functions: dict[str, Callable] = {}
    for k, name in enumerate(config.python_import):
        try:
            module = _import(file.parent, name)
        except Exception as exc:
            problems.append((f"config.python_import[{k}]", f"cannot import {name!r}: {type(exc).__name__}: {exc}"))
            continue
        modules[module.__name__.rsplit(".", 1)[-1]] = module
        for attr in dir(module):
            obj = getattr(module, attr)
            own = isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__
            if not attr.startswith("_") and own and getattr(obj, "__tf_exported__", False):
                functions[getattr(obj, "__tf_export_name__", attr)] = obj
    return modules, functions


def _import(directory: Path, name: str) -> ModuleType:
    """A .py file next to the YAML (`helpers` or `helpers.py`). Installed modules are refused: `os` or
    `subprocess` would hand expressions the process, while a file in the config folder is code reviewed as such."""
    path = directory / (name if name.endswith(".py") else f"{name}.py")
    if not path.is_file() or path.resolve().parent != directory.resolve():
        raise ImportError(
            f"no file {path.name} next to the YAML; python_import takes .py files of the config folder only "
            "(installed modules such as os would give expressions the process)"
        )
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_references(table: CompiledTable, tables: dict[str, CompiledTable], index: int) -> None:
    problems: list[tuple[str, str]] = []
    for j, col in enumerate(table.columns.values()):
        where = f"tables[{index}].columns[{j}].data"
        prefix = f"table {table.name!r}, column {col.name!r}"
        for fk in col.expression.foreign_keys:
            reason = _foreign_key_problem(table, fk, tables)
            if reason:
                problems.append((where, f"{prefix}: foreign_key({fk.table!r}, {fk.column!r}): {reason}"))
        for copy in col.expression.copies:
            reason = _copy_problem(table, copy, tables)
            if reason:
                problems.append((where, f"{prefix}: copy_from_fk({copy.parent_table!r}, {copy.fk_column!r}, "
                                        f"{copy.attribute!r}): {reason}"))  # fmt: skip
    if problems:
        raise SpecError(table.file, problems)


def _foreign_key_problem(child: CompiledTable, fk: ForeignKeyCall, tables: dict[str, CompiledTable]) -> str | None:
    parent = tables.get(fk.table)
    if parent is None:
        return f"unknown table {fk.table!r}"
    column = parent.columns.get(fk.column)
    if column is None or not column.spec.is_primary_key:
        return f"{fk.table}.{fk.column} is not a primary key column (is_primary_key: true)"
    if fk.distribution == "weighted_parent" and fk.parent_attr not in parent.columns:
        return f"parent_attr {fk.parent_attr!r} is not a column of {fk.table!r}"
    if fk.is_unique:
        if parent.spec.is_append or child.spec.is_append:
            return "is_unique needs both tables static (update_policy disabled or replace)"
        if child.spec.row_count > parent.spec.row_count:
            return f"is_unique: {child.spec.row_count} rows but only {parent.spec.row_count} parents"
    if parent.spec.row_count == 0 and not (parent.spec.is_append and child.spec.is_append):
        return f"{fk.table!r} has no rows (row_count 0) to point at"
    return None


def _copy_problem(child: CompiledTable, copy: CopyCall, tables: dict[str, CompiledTable]) -> str | None:
    parent = tables.get(copy.parent_table)
    if parent is None:
        return f"unknown table {copy.parent_table!r}"
    fk = child.columns[copy.fk_column].foreign_key
    if fk is None or fk.table != copy.parent_table:
        return f"column {copy.fk_column!r} is not a foreign_key() to {copy.parent_table!r}"
    if copy.attribute not in parent.columns:
        return f"{copy.attribute!r} is not a column of {copy.parent_table!r}"
    return None
