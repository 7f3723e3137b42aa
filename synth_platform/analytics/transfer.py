"""A Tinybird pipe endpoint pulled into a database table, incrementally on its event time.

Each pull asks for [watermark - lookback, now) page by page (limit/offset, in the pipe's time order) and upserts
every page on the key, so re-reading rows (the lookback, a retried run, a restart) never duplicates them. The new
watermark is the newest event time seen; the caller keeps it (in Dagster, as the asset's metadata). A page shorter
than asked is the end only when the endpoint says no more rows match: an endpoint that caps its answers below the
page size fails loudly instead of truncating the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.sinks.tinybird import CappedEndpoint, TinybirdResource
from synth_platform.specs.analytics import TransferSpec
from synth_platform.world.windows import Window, utc


class TransferError(RuntimeError):
    pass


def arrow_type(clickhouse: str) -> tuple[pa.DataType, bool]:
    """A pipe column's type (Tinybird `meta`) as (arrow type, nullable)."""
    m = re.fullmatch(r"(Nullable|LowCardinality)\((.+)\)", clickhouse)
    if m:
        inner, nullable = arrow_type(m[2])
        return inner, nullable or m[1] == "Nullable"
    if re.fullmatch(r"U?Int(8|16|32|64)", clickhouse):
        return pa.int64(), False
    if re.fullmatch(r"Float(32|64)|Decimal.*", clickhouse):
        return pa.float64(), False
    if clickhouse.startswith("DateTime"):
        return pa.timestamp("us", tz="UTC"), False
    if clickhouse in ("Date", "Date32"):
        return pa.date32(), False
    if clickhouse in ("Bool", "Boolean"):
        return pa.bool_(), False
    return pa.string(), False  # String, UUID, and anything richer kept as its JSON text


def schema_from_meta(meta: list[dict], spec: TransferSpec) -> pa.Schema:
    fields = []
    for column in meta:
        type_, nullable = arrow_type(column["type"])
        fields.append(pa.field(column["name"], type_, nullable=nullable and column["name"] not in spec.key))
    names = {f.name for f in fields}
    missing = [c for c in [*spec.key, spec.time_column] if c not in names]
    if missing:
        raise TransferError(f"pipe {spec.pipe} has no column(s) {missing}; its columns are {sorted(names)}")
    return pa.schema(fields)


def column_descriptions(spec: TransferSpec) -> dict[str, str]:
    """What the pulled table's own columns mean; the others are the pipe's."""
    described = {k: f"Part of the upsert key ({', '.join(spec.key)})" for k in spec.key}
    return {**described, spec.time_column: f"Event time; the watermark is its newest value pulled ({spec.pipe})"}


def table_for(spec: TransferSpec, schema: pa.Schema) -> sa.Table:
    return sql_table(spec.table, schema, primary_key=spec.key, indexes=[[spec.time_column]])


def iso(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pages(tinybird: TinybirdResource, pipe: str, params: dict[str, Any], page_size: int) -> Iterator[dict]:
    """The pipe's answers page by page; a capped endpoint fails (see TinybirdResource.pipe_pages)."""
    try:
        yield from tinybird.pipe_pages(pipe, params, page_size)
    except CappedEndpoint as exc:
        raise TransferError(f"{exc}; lower transfer.page_size to that cap") from None


def to_arrow(rows: list[dict], schema: pa.Schema) -> pa.Table:
    columns = {}
    for f in schema:
        values = [r.get(f.name) for r in rows]
        if pa.types.is_timestamp(f.type):
            values = [None if v is None else parse_time(v) for v in values]
        elif pa.types.is_date(f.type):
            values = [None if v is None else datetime.fromisoformat(v).date() for v in values]
        elif pa.types.is_string(f.type):
            values = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
        columns[f.name] = pa.array(values, type=f.type)
    return pa.table(columns, schema=schema)


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace(" ", "T"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def upsert_statement(table: sa.Table, dialect: str) -> sa.Insert:
    """INSERT that updates the non-key columns of a row whose key exists (each dialect's own spelling)."""
    keys = [c.name for c in table.primary_key]
    others = [c.name for c in table.columns if c.name not in keys]
    if dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in others or keys})
    module = {"postgresql": postgresql, "sqlite": sqlite}.get(dialect)
    if module is None:
        raise TransferError(f"no upsert for database {dialect!r} (PostgreSQL, MySQL/MariaDB or SQLite)")
    stmt = module.insert(table)
    if not others:
        return stmt.on_conflict_do_nothing(index_elements=keys)
    return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in others})


def upsert(database: DatabaseResource, table: sa.Table, data: pa.Table) -> int:
    """Upsert rows in one transaction; duplicates of a key inside `data` collapse to the last one."""
    keys = [c.name for c in table.primary_key]
    rows = {tuple(r[k] for k in keys): r for r in data.to_pylist()}
    if not rows:
        return 0
    if database.dialect != "postgresql":  # MySQL and SQLite columns hold naive UTC
        for r in rows.values():
            for k, v in r.items():
                if isinstance(v, datetime):
                    r[k] = v.astimezone(UTC).replace(tzinfo=None)
    with database.begin() as conn:
        conn.execute(upsert_statement(table, database.dialect), list(rows.values()))
    return len(rows)


@dataclass
class Pulled:
    rows: int = 0
    pages: int = 0
    start: datetime | None = None
    end: datetime | None = None
    watermark: datetime | None = None
    newest: list[dict] = field(default_factory=list)


def pull(
    tinybird: TinybirdResource,
    database: DatabaseResource,
    spec: TransferSpec,
    watermark: datetime | None,
    now: datetime | None = None,
) -> Pulled:
    """Upsert every row of the pipe with event time in [watermark - lookback, now), page by page."""
    end = utc(now or datetime.now(UTC))
    start = watermark - timedelta(seconds=spec.lookback_seconds) if watermark else parse_time(spec.start)
    result = Pulled(start=start, end=end, watermark=watermark)
    table: sa.Table | None = None
    for answer in pages(tinybird, spec.pipe, {"start": iso(start), "end": iso(end)}, spec.page_size):
        result.pages += 1
        rows = answer.get("data", [])
        if not rows:
            continue
        if table is None:
            schema = schema_from_meta(answer.get("meta", []), spec)
            table = table_for(spec, schema)
            database.ensure_table(table)
        result.rows += upsert(database, table, to_arrow(rows, schema))
        newest = max(parse_time(r[spec.time_column]) for r in rows)
        result.watermark = max(result.watermark or newest, newest)
        result.newest = rows[-3:]
    return result


def pipe_span(tinybird: TinybirdResource, spec: TransferSpec) -> Window:
    """From the pipe's first event (its rows come in time order) to now; the last day when it is empty."""
    now = datetime.now(UTC)
    first = tinybird.query_pipe(spec.pipe, {"limit": 1}).get("data", [])
    start = parse_time(first[0][spec.time_column]) if first else now - timedelta(days=1)
    return Window(min(start, now - timedelta(minutes=1)), now)
