"""SQL database target: replace a window of rows in one transaction, through each database's bulk path.

PostgreSQL gets COPY of Arrow-rendered CSV, MySQL/MariaDB multi-row INSERTs (the driver batches
executemany into multi-row statements), SQLite executemany in one transaction.
"""

from __future__ import annotations

import functools
import io
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from pydantic import Field

from synth_platform.world.windows import Window

_COPY_BATCH_ROWS = 200_000
_INSERT_BATCH_ROWS = 20_000
_SQL_TIMESTAMP = "%Y-%m-%d %H:%M:%S"  # arrow renders microseconds after %S for timestamp[us]


class DatabaseUnreachable(RuntimeError):
    pass


@dataclass(frozen=True)
class WriteResult:
    rows: int
    deleted: int
    bytes: int
    seconds: float


def redact(url: str | sa.URL) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def database_kind(url: str) -> str:
    """The kind of database a URL reaches, as Dagster's kind tags spell it (postgres, mysql, sqlite)."""
    backend = sa.make_url(url).get_backend_name()
    return {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(backend, backend)


@functools.cache
def _engine(url: str, pool_size: int) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 120})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets the UI and checks read while a partition is being written.
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=1800, pool_size=pool_size)


class DatabaseResource(dg.ConfigurableResource):
    """A SQL database reached through SQLAlchemy (SYNTH_DATABASE_URL)."""

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db")
    connect_attempts: int = Field(5, ge=1, description="Attempts before an unreachable database fails the run")
    retry_backoff_seconds: float = Field(0.5, ge=0, description="First retry delay; doubles per attempt")
    pool_size: int = Field(5, ge=1, le=100, description="Connections kept open per process (not SQLite)")

    @property
    def redacted_url(self) -> str:
        return redact(self.url)

    def qualified_name(self, table: str) -> str:
        """The table's name as the database knows it: database.schema.table on PostgreSQL (the connection's
        default schema), database.table on MySQL/MariaDB, the bare name on SQLite."""
        url = sa.make_url(self.url)
        if self.dialect == "postgresql":
            with self._connect() as conn:
                schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
            return f"{url.database}.{schema}.{table}"
        if self.dialect in ("mysql", "mariadb"):
            return f"{url.database}.{table}"
        return table

    @property
    def dialect(self) -> str:
        return sa.make_url(self.url).get_backend_name()

    @property
    def engine(self) -> sa.Engine:
        return _engine(self.url, self.pool_size)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A transaction, after retrying the connection with exponential backoff."""
        with self._connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        delay = self.retry_backoff_seconds
        for attempt in range(1, self.connect_attempts + 1):
            try:
                conn = self.engine.connect()
                break
            except sa.exc.OperationalError as exc:
                if attempt == self.connect_attempts:
                    reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
                    password = sa.make_url(self.url).password
                    if password:
                        reason = reason.replace(str(password), "***")
                    raise DatabaseUnreachable(
                        f"database {self.redacted_url} unreachable after {attempt} attempts: {reason}"
                    ) from None
                time.sleep(delay)
                delay *= 2
        with conn:
            yield conn

    def ensure_table(self, table: sa.Table) -> None:
        """Create the table and its indexes if missing; never drops anything. Parallel steps may create one table at
        the same moment (the check and the CREATE are not atomic): the loser finds it there and goes on."""
        try:
            with self.begin() as conn:
                table.create(conn, checkfirst=True)
        except sa.exc.DBAPIError:
            if not sa.inspect(self.engine).has_table(table.name, schema=table.schema):
                raise

    def replace(self, table: sa.Table, data: pa.Table, where: sa.ColumnElement[bool] | None = None) -> WriteResult:
        """Delete the rows matching `where` (all rows if None) and insert `data`, in one transaction."""
        started = time.perf_counter()
        with self.begin() as conn:
            stmt = table.delete() if where is None else table.delete().where(where)
            deleted = conn.execute(stmt).rowcount or 0
            self._bulk_insert(conn, table, data)
        return WriteResult(data.num_rows, max(deleted, 0), data.nbytes, time.perf_counter() - started)

    def replace_window(self, table: sa.Table, data: pa.Table, time_column: str, window: Window) -> WriteResult:
        col = table.c[time_column]
        return self.replace(table, data, (col >= window.start) & (col < window.end))

    def delete_before(self, table: sa.Table, time_column: str, cutoff: Any) -> int:
        with self.begin() as conn:
            return max(conn.execute(table.delete().where(table.c[time_column] < cutoff)).rowcount or 0, 0)

    def query(self, sql: str | sa.Executable, params: dict[str, Any] | None = None) -> list[sa.Row]:
        """Rows of a read-only query; parameters are bound, never formatted into SQL."""
        with self._connect() as conn:
            stmt = sa.text(sql) if isinstance(sql, str) else sql
            return list(conn.execute(stmt, {k: self._bind(v) for k, v in (params or {}).items()}))

    def scalar(self, sql: str | sa.Executable, params: dict[str, Any] | None = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def _bind(self, value: Any) -> Any:
        # SQLite keeps timestamps as text in SQLAlchemy's format; a raw datetime would bind in another format
        # and compare wrongly as text.
        if self.dialect == "sqlite" and isinstance(value, datetime):
            return value.astimezone(UTC).strftime(_SQL_TIMESTAMP + ".%f")
        return value

    def _bulk_insert(self, conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        data = data.select([c.name for c in table.columns])
        if self.dialect == "postgresql":
            _copy_postgres(conn, table, data)
        else:
            _executemany(conn, table, data)


def render_csv(batch: pa.RecordBatch | pa.Table) -> memoryview:
    """CSV text for COPY: NULL is an empty unquoted field, timestamps carry their UTC offset."""
    columns = [_timestamp_text(c, "%Y-%m-%d %H:%M:%S%z") if pa.types.is_timestamp(c.type) else c for c in batch.columns]
    buf = io.BytesIO()
    pacsv.write_csv(pa.table(columns, names=batch.schema.names), buf, pacsv.WriteOptions(include_header=False))
    return buf.getbuffer()


def _copy_postgres(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """COPY in PostgreSQL's binary format when every column is fixed-width and non-null (the server then
    parses no text at all), else as CSV."""
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c.name) for c in table.columns)
    codes = _binary_codes(table)
    binary = codes is not None and not any(col.null_count for col in data.columns)
    sql = f"COPY {prep.format_table(table)} ({cols}) FROM STDIN WITH (FORMAT {'binary' if binary else 'csv'})"
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(sql) as copy:
        if binary:
            copy.write(_PG_BINARY_HEADER)
        for batch in data.to_batches(_COPY_BATCH_ROWS):
            copy.write(render_binary(batch, codes) if binary else render_csv(batch))
        if binary:
            copy.write(_PG_BINARY_TRAILER)


_PG_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_PG_BINARY_TRAILER = struct.pack(">h", -1)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's epoch for timestamps and dates
_PG_EPOCH_DAYS = 10_957


def _binary_codes(table: sa.Table) -> list[str] | None:
    """Big-endian numpy codes of each column's binary wire format, or None if a column is variable-width."""
    codes = []
    for column in table.columns:
        t = column.type
        if isinstance(t, sa.SmallInteger):
            return None
        if isinstance(t, sa.BigInteger | sa.DateTime):
            codes.append(">i8")
        elif isinstance(t, sa.Integer | sa.Date):
            codes.append(">i4")
        elif isinstance(t, sa.Double):
            codes.append(">f8")
        elif isinstance(t, sa.Boolean):
            codes.append("u1")
        else:
            return None
    return codes


def render_binary(batch: pa.RecordBatch, codes: list[str]) -> bytes:
    """Tuples of PostgreSQL's binary COPY format (field count, then length and value per field), built as one
    packed numpy record array."""
    fields = [("count", ">i2")]
    for i, code in enumerate(codes):
        fields += [(f"len{i}", ">i4"), (f"val{i}", code)]
    rows = np.empty(batch.num_rows, dtype=np.dtype(fields))
    rows["count"] = len(codes)
    for i, (column, code) in enumerate(zip(batch.columns, codes, strict=True)):
        rows[f"len{i}"] = np.dtype(code).itemsize
        rows[f"val{i}"] = _binary_values(column)
    return rows.tobytes()


def _binary_values(column: pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        micros = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64()).to_numpy()
        return micros - _PG_EPOCH_US
    if pa.types.is_date(column.type):
        return column.cast(pa.date32()).cast(pa.int32()).to_numpy() - _PG_EPOCH_DAYS
    return column.to_numpy(zero_copy_only=False)


def _executemany(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c.name) for c in table.columns)
    marks = ", ".join(["?" if conn.dialect.paramstyle == "qmark" else "%s"] * len(table.columns))
    sql = f"INSERT INTO {prep.format_table(table)} ({cols}) VALUES ({marks})"
    cursor = conn.connection.driver_connection.cursor()
    for batch in data.to_batches(_INSERT_BATCH_ROWS):
        columns = [_python_values(col) for col in batch.columns]
        cursor.executemany(sql, list(zip(*columns, strict=True)))


def _python_values(column: pa.Array) -> list[Any]:
    # Timestamps go as UTC text: the drivers would otherwise drop or mangle the zone.
    if pa.types.is_timestamp(column.type):
        column = _timestamp_text(column, _SQL_TIMESTAMP)
    return column.to_pylist()


def _timestamp_text(column: pa.Array | pa.ChunkedArray, fmt: str) -> pa.Array:
    """Format each distinct timestamp once: time series repeat a timestamp per entity, and strftime is
    the slowest step of rendering rows."""
    utc = column.cast(pa.timestamp("us", tz="UTC"))
    if isinstance(utc, pa.ChunkedArray):
        utc = utc.combine_chunks()
    encoded = pc.dictionary_encode(utc)
    return pc.take(pc.strftime(encoded.dictionary, fmt), encoded.indices)
