"""The SQL sink against real databases: window replacement, existing tables kept, unreachable servers."""

import time
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import sqlalchemy as sa

from synth_platform.sinks.database import DatabaseResource, DatabaseUnreachable
from synth_platform.sinks.sql_schema import sql_table
from synth_platform.world.windows import Window
from synth_platform_tests.concurrency import at_once

SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("k", pa.int64(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("amount", pa.float64()),
    ]
)


def rows(day: str, n: int, label: str) -> pa.Table:
    start = Window.for_day(day).start_s * 1_000_000
    return pa.table(
        {
            "ts": pa.array([start + i * 3_600_000_000 for i in range(n)]).cast(pa.timestamp("us", tz="UTC")),
            "k": list(range(n)),
            "label": [None if i % 3 == 0 else f'{label} "q",\n{i} é' for i in range(n)],
            "amount": [i / 7 for i in range(n)],
        },
        schema=SCHEMA,
    )


def test_replace_window_replaces_only_that_window(database_url):
    db = DatabaseResource(url=database_url)
    table = sql_table("sink_probe", SCHEMA, primary_key=["k", "ts"])
    db.ensure_table(table)
    d1, d2 = Window.for_day("2026-04-01"), Window.for_day("2026-04-02")
    db.replace_window(table, rows("2026-04-01", 10, "a"), "ts", d1)
    db.replace_window(table, rows("2026-04-02", 10, "a"), "ts", d2)
    result = db.replace_window(table, rows("2026-04-02", 4, "b"), "ts", d2)
    assert (result.rows, result.deleted) == (4, 10)

    db2 = DatabaseResource(url=database_url)  # a fresh resource must not drop what is there
    db2.ensure_table(sql_table("sink_probe", SCHEMA, primary_key=["k", "ts"]))
    got = db2.query("SELECT ts, k, label, amount FROM sink_probe ORDER BY ts, k")
    assert len(got) == 14
    assert [r.label for r in got[10:]] == [None, 'b "q",\n1 é', 'b "q",\n2 é', None]  # quotes, newlines, NULLs
    first = got[10].ts if isinstance(got[10].ts, datetime) else datetime.fromisoformat(got[10].ts)
    assert first.replace(tzinfo=first.tzinfo or UTC) == datetime(2026, 4, 2, tzinfo=UTC)
    assert got[13].amount == pytest.approx(3 / 7, rel=1e-12)


def test_unreachable_database_retries_with_backoff_then_names_host_not_password():
    db = DatabaseResource(
        url="postgresql+psycopg://writer:hunter2-secret@127.0.0.1:9/synth",
        connect_attempts=3,
        retry_backoff_seconds=0.2,
    )
    started = time.perf_counter()
    with pytest.raises(DatabaseUnreachable) as err:
        db.replace(sql_table("t", SCHEMA), rows("2026-04-01", 1, "x"))
    assert time.perf_counter() - started >= 0.6  # 0.2 + 0.4 of backoff
    message = str(err.value)
    assert "127.0.0.1:9" in message and "after 3 attempts" in message
    assert "hunter2-secret" not in message and "***" in message


def test_redacted_url_and_dialect():
    db = DatabaseResource(url="mysql+pymysql://root:pw@db.internal:3306/synth")
    assert db.redacted_url == "mysql+pymysql://root:***@db.internal:3306/synth"
    assert db.dialect == "mysql"
    assert sa.make_url(db.url).password == "pw"


FIXED = pa.schema(
    [
        pa.field("k", pa.int64(), nullable=False),
        pa.field("small", pa.int32(), nullable=False),
        pa.field("x", pa.float64(), nullable=False),
        pa.field("flag", pa.bool_(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("local", pa.timestamp("us"), nullable=False),
    ]
)


def test_fixed_width_rows_round_trip_exactly(database_url):
    """On PostgreSQL these go through binary COPY (no nulls, no text); elsewhere through multi-row inserts."""
    n = 1000
    at = [datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC).timestamp() + i * 3601.000001 for i in range(n)]
    data = pa.table(
        {
            "k": list(range(n)),
            "small": [(-1) ** i * i * 1000 for i in range(n)],
            "x": [i / 3 - 100 for i in range(n)],
            "flag": [i % 3 == 0 for i in range(n)],
            "day": pa.array([10_950 + i for i in range(n)], type=pa.int32()).cast(pa.date32()),
            "at": pa.array([round(t * 1e6) for t in at]).cast(pa.timestamp("us", tz="UTC")),
            "local": pa.array([round(t * 1e6) for t in at]).cast(pa.timestamp("us")),
        },
        schema=FIXED,
    )
    db = DatabaseResource(url=database_url)
    table = sql_table("fixed_probe", FIXED, primary_key=["k"])
    db.ensure_table(table)
    db.replace(table, data)
    got = db.query("SELECT k, small, x, flag, day, at, local FROM fixed_probe ORDER BY k")
    expected = data.to_pylist()
    assert len(got) == n
    for row, want in zip(got, expected, strict=True):
        at_value = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at)
        local_value = row.local if isinstance(row.local, datetime) else datetime.fromisoformat(row.local)
        day_value = row.day if not isinstance(row.day, str) else datetime.fromisoformat(row.day).date()
        assert (row.k, row.small, row.x, bool(row.flag), day_value) == (
            want["k"], want["small"], want["x"], want["flag"], want["day"],
        )  # fmt: skip
        assert at_value.replace(tzinfo=at_value.tzinfo or UTC) == want["at"]
        assert local_value.replace(tzinfo=None) == want["local"]


def test_parallel_steps_create_one_table_at_once(database_url):
    """Parallel steps of one run (main_job) ensure the same tables at the same moment: all succeed, none raises
    "already exists", and the table with its index is there once."""
    db = DatabaseResource(url=database_url)
    table = sql_table("parallel_created", SCHEMA, ["k", "ts"], [["ts"]])
    errors: list[BaseException] = []
    for _ in range(4):
        with db.begin() as conn:
            table.drop(conn, checkfirst=True)
        errors += at_once(lambda: db.ensure_table(table))
    assert errors == []
    assert len(sa.inspect(db.engine).get_indexes("parallel_created")) == 1
