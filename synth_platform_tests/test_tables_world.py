"""Foreign keys, copy_from_fk, table order and the append row-id/time scheme of declarative tables."""

from collections import Counter
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from synth_platform.domains.tables import load_tables
from synth_platform.specs import DEFAULT_CONFIG_DIR
from synth_platform.specs.loader import SpecError
from synth_platform.world.tables.rows import TableWorld
from synth_platform.world.windows import Window
from synth_platform_tests.tables_helpers import START, domain, table, world

PARENTS = 400
CHILDREN = 20_000


def parent(**extra) -> dict:
    return table(
        "parents",
        {
            "pid": {"data": "f'P{row_id}'", "is_primary_key": True},  # keys are not row ids
            "tier": "'gold' if row_id % 10 == 0 else 'plain'",
            "email": {"data": "fake.email()", "null_percentage": 0.2},
        },
        rows=PARENTS,
        start_row_id=100,
        **extra,
    )


def child(fk: str, rows: int = CHILDREN, **extra) -> dict:
    return table(
        "children",
        {
            "cid": {"data": "row_id", "is_primary_key": True},
            "pid": fk,
            "parent_email": "copy_from_fk('parents', 'pid', 'email')",
            "parent_tier": "copy_from_fk('parents', 'pid', 'tier')",
        },
        rows=rows,
        **extra,
    )


def rows_of(w: TableWorld, name: str, window: Window | None = None) -> list[dict]:
    return w.table(name, window).to_pylist()


@pytest.mark.parametrize(
    "fk",
    [
        "foreign_key('parents', 'pid')",
        "foreign_key('parents', 'pid', distribution='zipf', param=1.3)",
        "foreign_key('parents', 'pid', distribution='weighted_parent', parent_attr='tier', weights={'gold': 9})",
    ],
)
def test_foreign_keys_resolve_and_copy_from_fk_equals_the_parent(tmp_path, fk):
    w = world(tmp_path, [child(fk), parent()])  # declared child first
    parents = {p["pid"]: p for p in rows_of(w, "parents")}
    children = rows_of(w, "children")
    assert all(c["pid"] in parents for c in children)  # 100% integrity
    assert all(c["parent_email"] == parents[c["pid"]]["email"] for c in children)  # nulls included
    assert all(c["parent_tier"] == parents[c["pid"]]["tier"] for c in children)
    assert any(c["parent_email"] is None for c in children) and any(c["parent_email"] for c in children)


def pids(tmp_path, fk: str) -> Counter:
    return Counter(c["pid"] for c in rows_of(world(tmp_path, [parent(), child(fk)]), "children"))


def test_zipf_is_skewed_towards_the_first_parents(tmp_path):
    uniform = pids(tmp_path / "u", "foreign_key('parents', 'pid')")
    zipf = pids(tmp_path / "z", "foreign_key('parents', 'pid', distribution='zipf')")
    top_zipf = zipf.most_common(1)[0]
    assert top_zipf[0] == "P100"  # rank 1 is the first parent
    assert top_zipf[1] / CHILDREN > 0.15  # P(1) ~ 1/zeta-ish; uniform gives 1/400
    assert uniform.most_common(1)[0][1] / CHILDREN < 0.01
    assert zipf["P101"] > zipf["P110"] > zipf["P200"]


def test_weighted_parent_follows_the_weights(tmp_path):
    fk = "foreign_key('parents', 'pid', distribution='weighted_parent', parent_attr='tier', weights={'gold': 9})"
    children = rows_of(world(tmp_path, [parent(), child(fk)]), "children")
    gold_share = sum(c["parent_tier"] == "gold" for c in children) / CHILDREN
    expected = 40 * 9 / (40 * 9 + 360 * 1)  # 40 gold parents weigh 9, the rest 1
    assert abs(gold_share - expected) < 0.02


def test_unique_foreign_keys_never_repeat(tmp_path):
    fk = "foreign_key('parents', 'pid', is_unique=True)"
    children = rows_of(world(tmp_path, [parent(), child(fk, rows=PARENTS)]), "children")
    assert len({c["pid"] for c in children}) == PARENTS
    with pytest.raises(SpecError, match="is_unique: 401 rows but only 400 parents"):
        domain(tmp_path / "more", [parent(), child(fk, rows=PARENTS + 1)])


def test_foreign_key_problems_are_load_errors(tmp_path):
    cases = {
        "foreign_key('nope', 'pid')": "unknown table 'nope'",
        "foreign_key('parents', 'tier')": "parents.tier is not a primary key column",
        "foreign_key('parents', 'pid', distribution='weighted_parent', parent_attr='x', weights={'a': 1})":
            "parent_attr 'x' is not a column of 'parents'",
    }  # fmt: skip
    for i, (fk, message) in enumerate(cases.items()):
        with pytest.raises(SpecError, match=message) as err:
            domain(tmp_path / str(i), [parent(), child(fk)])
        assert "table 'children', column 'pid'" in str(err.value)
    bad_copy = table(
        "c", {"id": {"data": "row_id", "is_primary_key": True}, "x": "copy_from_fk('parents', 'id', 'tier')"}
    )
    with pytest.raises(SpecError, match="column 'id' is not a foreign_key\\(\\) to 'parents'"):
        domain(tmp_path / "copy", [parent(), bad_copy])


def test_foreign_key_cycle_is_named(tmp_path):
    a = table("a", {"id": {"data": "row_id", "is_primary_key": True}, "b_id": "foreign_key('b', 'id')"})
    b = table("b", {"id": {"data": "row_id", "is_primary_key": True}, "c_id": "foreign_key('c', 'id')"})
    c = table("c", {"id": {"data": "row_id", "is_primary_key": True}, "a_id": "foreign_key('a', 'id')"})
    with pytest.raises(SpecError, match="foreign keys form a cycle: a -> b -> c -> a"):
        domain(tmp_path, [a, b, c])


def test_tables_declared_out_of_order_are_sorted_by_foreign_key(tmp_path):
    demo = domain(tmp_path, [child("foreign_key('parents', 'pid')"), parent()])
    assert list(demo.catalog.tables) == ["parents", "children"]
    shipped = list(load_tables(DEFAULT_CONFIG_DIR / "tables").catalog.tables)  # declares orders first
    assert shipped.index("orders") > max(shipped.index("customers"), shipped.index("products"))


def append_world(tmp_path, rpm=3, initial=5):
    events = table(
        "events",
        {
            "eid": {"data": "row_id", "is_primary_key": True},
            "pid": "foreign_key('parents', 'pid', distribution='zipf')",
            "when": "event_time + timedelta(seconds=1)",
        },
        rows=initial,
        start_row_id=1,
        update_policy="append",
        cadence={"rows_per_minute": rpm},
    )
    growing = parent(update_policy="append", cadence={"rows_per_minute": 1, "time_column": "created_at"})
    growing["row_count"] = 2
    return world(tmp_path, [events, growing])


def test_append_day_is_the_union_of_its_minute_windows(tmp_path):
    w = append_world(tmp_path)
    day = Window.for_day("2026-01-03")
    whole = w.table("events", day)
    minutes = pa.concat_tables([w.table("events", m) for m in day.split(60)])
    assert whole.equals(minutes)
    assert whole.num_rows == 3 * 1440 == w.expected_rows("events", day)
    first_id = 1 + 5 + 2 * 1440 * 3  # start_row_id + initial rows + two earlier days
    assert whole.column("eid").to_pylist() == list(range(first_id, first_id + 3 * 1440))
    times = whole.column("event_time").to_pylist()
    assert times[0] == day.start and times[1] - times[0] == timedelta(seconds=20)  # evenly spread
    assert whole.column("when").to_pylist() == [t + timedelta(seconds=1) for t in times]
    first_day = w.table("events", Window.for_day(START))
    assert first_day.num_rows == 5 + 3 * 1440 and first_day.column("eid")[0].as_py() == 1  # initial rows


def test_append_children_only_point_at_parents_existing_by_then(tmp_path):
    w = append_world(tmp_path)
    events = w.table("events", Window.for_day("2026-01-01"))
    parent_rows = {r["pid"]: r["created_at"] for r in rows_of(w, "parents", Window.for_day("2026-01-01"))}
    for e in events.to_pylist():
        assert parent_rows[e["pid"]] <= e["event_time"]
    early = [e for e in events.to_pylist() if e["event_time"] < Window.for_day(START).start + timedelta(minutes=2)]
    assert {e["pid"] for e in early} <= {"P100", "P101", "P102", "P103"}  # 2 initial + 1 per minute


def test_schema_and_counts_for_static_tables(tmp_path):
    w = world(tmp_path, [parent()])
    t = w.table("parents")
    assert t.num_rows == PARENTS == w.expected_rows("parents")
    assert t.schema.field("pid").nullable is False and t.schema.field("email").type == pa.string()
    assert np.array_equal(w.row_ids("parents"), np.arange(100, 100 + PARENTS))
