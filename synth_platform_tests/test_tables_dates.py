"""Faker's relative dates resolve against the spec's reference instant, never the clock: the same seed and spec give
the same bytes whenever they run, and an append row's relative dates count from its own event time."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_platform.world.windows import Window
from synth_platform_tests.tables_helpers import START, table, world

WINDOW = Window(datetime(2026, 1, 3, 10, tzinfo=UTC), datetime(2026, 1, 3, 10, 30, tzinfo=UTC))

# Run in a child process with its clock moved to argv[2] (time-machine patches the clock of that process only).
_CHILD = """
import hashlib, sys, time_machine
from datetime import datetime
with time_machine.travel(datetime.fromisoformat(sys.argv[2]), tick=True):
    from synth_platform_tests.test_tables_dates import digest
    print(digest(sys.argv[1]))
"""


def digest(directory: str) -> str:
    """SHA-256 of every table of the spec in `directory` (static tables whole, append tables over WINDOW)."""
    from pathlib import Path

    from synth_platform.domains.tables import load_tables
    from synth_platform.world.tables.rows import TableWorld

    w = TableWorld(load_tables(Path(directory)).catalog, 7, START)
    sink = pa.BufferOutputStream()
    for name, t in w.catalog.tables.items():
        data = w.table(name, WINDOW if t.spec.is_append else None)
        with pa.ipc.new_stream(sink, data.schema) as out:
            out.write_table(data)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


_past = st.one_of(
    st.sampled_from(["-1d", "-30d", "-3y", "-2w", "-6M", "-12h"]),
    st.integers(1, 2000).map(lambda n: f"-{n}d"),
)
_future = st.one_of(st.sampled_from(["+1y", "+30d", "+3w"]), st.integers(1, 40).map(lambda n: f"+{n}y"))
_column = st.one_of(
    _past.map(lambda a: f"fake.date_time_between(start_date='{a}', end_date='now')"),
    _past.map(lambda a: f"fake.date_between(start_date='{a}', end_date='today')"),
    _past.map(lambda a: f"fake.past_datetime(start_date='{a}')"),
    _future.map(lambda a: f"fake.future_date(end_date='{a}')"),
    st.integers(1, 3000).map(lambda n: f"fake.date_time_between(start_date=timedelta(days=-{n}))"),
    st.tuples(st.integers(0, 50), st.integers(1, 60)).map(
        lambda a: f"fake.date_of_birth(minimum_age={a[0]}, maximum_age={a[0] + a[1]})"
    ),
    st.sampled_from(
        [
            "fake.date_time()",
            "fake.iso8601()",
            "fake.date_this_year()",
            "fake.unix_time()",
            "fake.credit_card_expire()",
            "fake.date_time_this_month()",
            "fake.date()",
            "fake.day_of_week()",
            "str(fake.profile()['birthdate'])",
            "fake.date_of_birth()",
        ]
    ),  # fmt: skip
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    columns=st.lists(_column, min_size=1, max_size=4),
    append=st.booleans(),
    reference=st.one_of(st.none(), st.dates(date(1990, 1, 1), date(2040, 1, 1))),
    moved=st.datetimes(datetime(1995, 1, 1), datetime(2090, 1, 1)),
)
def test_same_bytes_whatever_the_clock(tmp_path_factory, columns, append, reference, moved):
    directory = tmp_path_factory.mktemp("spec")
    cols = {"id": {"data": "row_id", "is_primary_key": True}, **{f"c{i}": c for i, c in enumerate(columns)}}
    extra = {"cadence": {"rows_per_minute": 7}} if append else {}
    config = {"reference_date": reference.isoformat()} if reference else None
    world(directory, [table("t", cols, rows=30, **extra)], config)
    here = digest(str(directory))
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(directory), moved.isoformat()], capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == here, json.dumps({"columns": columns, "moved": moved.isoformat()})


def test_append_rows_count_from_their_event_time(tmp_path):
    cols = {
        "id": {"data": "row_id", "is_primary_key": True},
        "seen": "fake.date_time_between(start_date='-1d', end_date='now')",
        "day": "fake.date_between(start_date='-1d', end_date='today')",
        "born": "fake.date_of_birth(minimum_age=0, maximum_age=1)",  # called per row at its event time
        "fixed": "fake.date_time_between(start_date=datetime(2020, 1, 1), end_date=datetime(2020, 1, 2))",
    }
    spec = table("visits", cols, rows=5, cadence={"rows_per_minute": 30})
    data = world(tmp_path, [spec]).table("visits", WINDOW).to_pylist()
    assert len(data) == 30 * 30
    for row in data:
        event, seen = row["event_time"], row["seen"].replace(tzinfo=UTC)
        assert event - timedelta(days=1) <= seen <= event, row
        assert event.date() - timedelta(days=1) <= row["day"] <= event.date()
        assert event.date() - timedelta(days=2 * 366) <= row["born"] <= event.date()
        assert datetime(2020, 1, 1) <= row["fixed"].replace(tzinfo=None) <= datetime(2020, 1, 2)  # absolute: as is
    assert len({r["seen"] for r in data}) > 800 and len({r["born"] for r in data}) > 100


def test_static_tables_count_from_reference_date_or_world_start(tmp_path):
    cols = {"id": {"data": "row_id", "is_primary_key": True}, "d": "fake.date_between(start_date='-30d')"}
    default = world(tmp_path / "a", [table("t", cols, rows=200)]).table("t").column("d").to_pylist()
    assert all(START - timedelta(days=30) <= d <= START for d in default)
    ref = date(2031, 5, 17)
    moved = world(tmp_path / "b", [table("t", cols, rows=200)], {"reference_date": ref.isoformat()})
    assert all(ref - timedelta(days=30) <= d <= ref for d in moved.table("t").column("d").to_pylist())
