"""Rows of the declared tables for any row-id range or time window: a pure function of (seed, spec, range).

Foreign keys are computed, not looked up: a child row picks a parent row id among those that exist by its event
time, then the parent's key (and any copy_from_fk attribute) is recomputed for that id, exactly as the parent
itself produces it. Within a row, columns read each other's values before nulls are applied (as in
table-faker); copy_from_fk returns the parent's value as written, nulls included.

Faker's relative dates resolve against a reference instant, never the clock: an append table's rows use their
own event time (date providers are called per row), a static table its `config.reference_date` (default: the
world's start date, 00:00 UTC).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from synth_platform.specs.table_types import TIMESTAMP
from synth_platform.world import seeding
from synth_platform.world.tables import foreign_keys
from synth_platform.world.tables.cadence import Cadence
from synth_platform.world.tables.catalog import Catalog, CompiledTable, clock_providers
from synth_platform.world.tables.expressions import Batch, CopyCall, ForeignKeyCall
from synth_platform.world.tables.graph import closure
from synth_platform.world.tables.pools import FakerSource, uuid4_values, with_row_id
from synth_platform.world.tables.values import RowError, Value, broadcast, oversized, to_arrow
from synth_platform.world.windows import Window

BATCH_ROWS = 100_000
_SCHEMA_SAMPLE_ROWS = 64


# Providers whose value, for relative arguments only ("-30d", "now", timedeltas), moves with the reference
# instant and nothing else: an append table draws them from a pool at the world's start, shifted to each row's
# event time, instead of calling Faker per row (the same distribution, ~50x faster).
_SHIFTABLE = frozenset(
    {"date_time_between", "date_between", "past_date", "past_datetime", "future_date", "future_datetime"}
)


def _relative(arg: Any) -> bool:
    return arg is None or isinstance(arg, timedelta) or (isinstance(arg, str) and not arg[:1].isdigit())


def _shifted(values: Value, at: datetime, event_times: np.ndarray) -> Value:
    """Pool values drawn at `at` moved to each row's event time (dates by whole days)."""
    if not isinstance(values, np.ndarray) or values.dtype.kind != "M":
        raise TypeError("a relative date provider returned something other than dates")
    origin = np.datetime64(at.replace(tzinfo=None), "us")
    if values.dtype == np.dtype("datetime64[D]"):
        return values + (event_times.astype("datetime64[D]") - origin.astype("datetime64[D]"))
    return values.astype("datetime64[us]") + (event_times.astype("datetime64[us]") - origin)


class TableEvaluationError(RuntimeError):
    pass


class TableWorld:
    """The tables of a catalog bound to a seed and a start date. Holds only per-spec state (keys, Faker pools,
    schemas), never rows."""

    def __init__(self, catalog: Catalog, seed: int, start_date: date):
        self.catalog = catalog
        self.seed = seed
        self.start = datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC)
        self.origin_us = int(self.start.timestamp()) * 10**6
        self._keys: dict[tuple, np.uint64] = {}
        self._sources: dict[str, FakerSource] = {}
        self._schemas: dict[str, pa.Schema] = {}

    # public API -------------------------------------------------------------------------------------------
    def cadence(self, table: str) -> Cadence:
        t = self.catalog[table]
        assert t.spec.cadence is not None, f"{table} is not an append table"
        return Cadence(t.spec.start_row_id, t.spec.row_count, t.spec.cadence.rows_per_minute, self.origin_us)

    def row_ids(self, table: str, window: Window | None = None) -> np.ndarray:
        """All rows of a static table (window None), or the rows of an append table in the window."""
        t = self.catalog[table]
        if t.spec.is_append:
            if window is None:
                raise ValueError(f"table {table!r} appends rows over time; give a window")
            return self.cadence(table).row_ids(window)
        return np.arange(t.spec.start_row_id, t.spec.start_row_id + t.spec.row_count, dtype=np.int64)

    def expected_rows(self, table: str, window: Window | None = None) -> int:
        t = self.catalog[table]
        return self.cadence(table).count(window) if t.spec.is_append and window else t.spec.row_count

    def batches(
        self, table: str, window: Window | None = None, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        ids = self.row_ids(table, window)
        for start in range(0, len(ids), batch_rows):
            yield self.rows(table, ids[start : start + batch_rows])

    def table(self, table: str, window: Window | None = None) -> pa.Table:
        return pa.Table.from_batches(list(self.batches(table, window)), schema=self.schema(table))

    def rows(self, table: str, row_ids: np.ndarray) -> pa.RecordBatch:
        """Every column (nulls applied, declared types) of the given rows, plus the event time of append tables."""
        t = self.catalog[table]
        schema = self.schema(table)
        batch = self._evaluate(t, set(t.columns), np.asarray(row_ids, dtype=np.int64))
        arrays = [
            to_arrow(batch.values[name], batch.n, self._null_mask(t, name, batch.row_ids), schema.field(name).type)
            for name in t.columns
        ]
        if t.spec.cadence is not None:
            arrays.append(pa.array(batch.event_times, TIMESTAMP))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def schema(self, table: str) -> pa.Schema:
        """Declared types, else the types of a sample of rows (a column that is null there: string)."""
        if table not in self._schemas:
            t = self.catalog[table]
            sample = _SCHEMA_SAMPLE_ROWS if t.spec.is_append else max(1, min(t.spec.row_count, _SCHEMA_SAMPLE_ROWS))
            ids = np.arange(t.spec.start_row_id, t.spec.start_row_id + sample, dtype=np.int64)
            batch = self._evaluate(t, set(t.columns), ids)
            fields = []
            for name, col in t.columns.items():
                arrow_type = col.arrow_type or to_arrow(batch.values[name], batch.n, None, None).type
                if pa.types.is_null(arrow_type):
                    arrow_type = pa.string()
                fields.append(pa.field(name, arrow_type, nullable=not col.spec.is_primary_key))
            if t.spec.cadence is not None:
                fields.append(pa.field(t.spec.cadence.time_column, TIMESTAMP, nullable=False))
            self._schemas[table] = pa.schema(fields)
        return self._schemas[table]

    def column(self, table: str, column: str, row_ids: np.ndarray) -> Value:
        """One column's values as written (nulls applied, None where null) for any parent row ids."""
        t = self.catalog[table]
        unique, inverse = np.unique(np.asarray(row_ids, dtype=np.int64), return_inverse=True)
        batch = self._evaluate(t, {column}, unique)
        values = broadcast(batch.values[column], batch.n)
        mask = self._null_mask(t, column, unique)
        if mask is not None and mask.any():
            values = values.astype(object)
            values[mask] = None
        return values[inverse]

    # evaluation -------------------------------------------------------------------------------------------
    def _evaluate(self, t: CompiledTable, wanted: set[str], row_ids: np.ndarray) -> Batch:
        needed = closure(t.deps, wanted)
        event_times = self.cadence(t.name).event_times(row_ids) if t.spec.is_append else None
        batch = Batch(self, t.name, row_ids, event_times)
        for name in t.order:
            if name not in needed:
                continue
            batch.column = name
            expression = t.columns[name].expression
            where = f"{t.file}: table {t.name!r}, column {name!r}"
            try:
                values = broadcast(expression.evaluate(batch), batch.n)
            except TableEvaluationError:
                raise
            except RowError as exc:
                cause = exc.__cause__ or exc
                raise TableEvaluationError(
                    f"{where}, row id {int(row_ids[exc.index])}: `{expression.text}` failed: "
                    f"{type(cause).__name__}: {cause}"
                ) from exc
            except Exception as exc:
                raise TableEvaluationError(f"{where}: `{expression.text}` failed: {type(exc).__name__}: {exc}") from exc
            too_big = oversized(values, t.config.max_value_bytes)
            if too_big is not None:
                raise TableEvaluationError(
                    f"{where}, row id {int(row_ids[too_big])}: `{expression.text}` gives a value longer than "
                    f"max_value_bytes ({t.config.max_value_bytes})"
                )
            batch.values[name] = values
        return batch

    def reference(self, t: CompiledTable) -> datetime:
        """Where a static table's relative dates count from: config.reference_date, else the world's start."""
        ref = t.config.reference_date
        if ref is None:
            return self.start
        if isinstance(ref, datetime):
            return ref if ref.tzinfo else ref.replace(tzinfo=UTC)
        return datetime(ref.year, ref.month, ref.day, tzinfo=UTC)

    def _null_mask(self, t: CompiledTable, column: str, row_ids: np.ndarray) -> np.ndarray | None:
        fraction = t.columns[column].spec.null_fraction
        if fraction <= 0:
            return None
        return seeding.uniform(self._key(t, column, "null"), row_ids) < fraction

    def _key(self, t: CompiledTable, column: str, *names: str | int) -> np.uint64:
        cache_key = (t.name, column, *names)
        if cache_key not in self._keys:
            seed = t.config.seed if t.config.seed is not None else self.seed
            self._keys[cache_key] = seeding.stream_key(seed, "tables", t.name, column, *names)
        return self._keys[cache_key]

    def _source(self, t: CompiledTable) -> FakerSource:
        locale = t.config.locale if isinstance(t.config.locale, str) else tuple(t.config.locale)
        cache_key = f"{locale}|{t.config.pool_size}"
        if cache_key not in self._sources:
            self._sources[cache_key] = FakerSource(locale, t.config.pool_size, t.config.max_value_bytes)
        return self._sources[cache_key]

    # Runtime (called by compiled expressions) -------------------------------------------------------------
    def uniform(self, batch: Batch, site: int, draw: int = 0) -> np.ndarray:
        return seeding.uniform(self._key(self.catalog[batch.table], batch.column, site), batch.row_ids, draw)

    def normal(self, batch: Batch, site: int) -> np.ndarray:
        return seeding.normal(self._key(self.catalog[batch.table], batch.column, site), batch.row_ids)

    def faker_pool(self, batch: Batch, site: int, provider: str, args: tuple, kwargs: dict, unique: bool) -> Value:
        t = self.catalog[batch.table]
        key = self._key(t, batch.column, site)
        if provider == "uuid4" and not args and not kwargs:
            return uuid4_values(key, batch.row_ids)
        shift = False
        if batch.event_times is not None and provider in clock_providers(t):
            shift = provider in _SHIFTABLE and all(_relative(a) for a in (*args, *kwargs.values()))
            if not shift:
                return self.faker_rows(batch, site, provider, list(args), kwargs, unique)  # relative to each row
        at = self.start if shift else self.reference(t)
        try:
            pool = self._source(t).pool(key, provider, args, kwargs, at)
        except Exception as exc:
            raise RowError(0, exc) from exc  # the pool serves every row; the batch's first names it
        values = pool[seeding.integers(key, len(pool), batch.row_ids)]
        if shift:
            values = _shifted(values, at, batch.event_times)
        return with_row_id(values, batch.row_ids) if unique else values

    def faker_rows(
        self, batch: Batch, site: int, provider: str, args: list, kwargs: dict, unique: bool, check: Any = None
    ) -> Value:
        t = self.catalog[batch.table]
        at = batch.event_times if batch.event_times is not None else self.reference(t)
        key = self._key(t, batch.column, site)
        values = self._source(t).per_row(key, batch.row_ids, provider, args, kwargs, at, check)
        return with_row_id(values, batch.row_ids) if unique else values

    def foreign_key(self, batch: Batch, call: ForeignKeyCall) -> Value:
        child, parent = self.catalog[batch.table], self.catalog[call.table]
        key = self._key(child, batch.column, "fk", call.table)
        counts = self._parents_existing(child, parent, batch)
        if call.is_unique:
            index = foreign_keys.permuted_index(key, batch.row_ids - child.spec.start_row_id, parent.spec.row_count)
        elif call.distribution == "uniform":
            index = foreign_keys.uniform_index(seeding.uniform(key, batch.row_ids), counts)
        elif call.distribution == "zipf":
            param = 1.2 if call.param is None else float(call.param)
            index = foreign_keys.zipf_index(seeding.uniform(key, batch.row_ids), counts, param)
        else:
            weights = dict(call.weights or {})
            start = parent.spec.start_row_id

            def weight_of(candidates: np.ndarray) -> np.ndarray:
                values = self.column(parent.name, call.parent_attr, start + candidates)  # type: ignore[arg-type]
                return np.array([weights.get(str(v), 1.0) for v in values.tolist()], dtype=np.float64)

            index = foreign_keys.weighted_index(key, batch.row_ids, counts, weight_of, max(1.0, *weights.values()))
        parent_ids = parent.spec.start_row_id + index
        batch.fk_ids[batch.column] = parent_ids
        return self.column(parent.name, call.column, parent_ids)

    def copy_from_fk(self, batch: Batch, call: CopyCall) -> Value:
        return self.column(call.parent_table, call.attribute, batch.fk_ids[call.fk_column])

    def _parents_existing(self, child: CompiledTable, parent: CompiledTable, batch: Batch) -> np.ndarray | int:
        """Parent rows that exist when each child row happens: a static parent's rows; an append parent's rows
        up to the child's event time (a static child sees the append parent's initial rows)."""
        if not parent.spec.is_append or batch.event_times is None:
            return parent.spec.row_count
        counts = self.cadence(parent.name).rows_existing_at(batch.event_times.astype(np.int64))
        if (counts < 1).any():
            raise ValueError(f"no row of {parent.name!r} exists yet at {batch.event_times[np.argmin(counts)]}")
        return counts
