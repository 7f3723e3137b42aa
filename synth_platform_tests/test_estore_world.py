"""The e-store world: state rules across windows and days, the action mix, determinism, backfill == live."""

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_platform.specs.estore import ACTIONS, EstoreSpec
from synth_platform.specs.loader import SpecError, parse
from synth_platform.world.estore import (
    action_counts,
    distinct,
    duplicates,
    events,
    mix_deviation,
    state_violations,
    totals,
)
from synth_platform.world.windows import Window, from_epoch

SEED = 20261123
SMALL = EstoreSpec.model_validate({"catalog": {"customers": 60, "products": 8}, "duplicate_percent": 5})
DAY0 = Window.for_day("2026-02-01")


def concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables).sort_by([("timestamp", "ascending"), ("event_id", "ascending")])


def days(first: Window, n: int) -> Window:
    return Window(first.start, first.start + timedelta(days=n))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**40),
    start_day=st.integers(0, 3000),
    n_days=st.integers(1, 3),
    products=st.integers(1, 5),
    slot=st.sampled_from([60, 120, 240, 480]),
    view=st.floats(0.3, 0.8),  # a journey without uncarts has at most one cart per view
    uncart_share=st.floats(0.0, 0.9),
    return_share=st.floats(0.0, 1.0),
)
def test_state_rules_hold_over_days_for_any_config(seed, start_day, n_days, products, slot, view, uncart_share,
                                                   return_share):  # fmt: skip
    # few products so that pairs repeat journeys day after day: the rules must hold across journeys and days
    cart = 0.25
    weights = {"view": view, "cart": cart, "uncart": cart * uncart_share, "purchase": cart * (1 - uncart_share),
               "return": cart * (1 - uncart_share) * return_share}  # fmt: skip
    spec = EstoreSpec.model_validate(
        {"catalog": {"customers": 25, "products": products}, "weights": weights, "duplicate_percent": 10,
         "journeys": {"slot_minutes": slot, "per_customer_per_day": min(6, 1440 // slot)}}
    )  # fmt: skip
    first = Window.for_day(datetime(2020, 1, 1).date() + timedelta(days=start_day))
    table = events(spec, seed, days(first, n_days))
    assert table.num_rows > 0
    assert state_violations(table) == (0, [])
    # and every single day alone (a day never needs its predecessor's state)
    for day in days(first, n_days).days():
        assert state_violations(events(spec, seed, day))[0] == 0


@settings(max_examples=20, deadline=None)
@given(
    start_s=st.integers(DAY0.start_s, DAY0.start_s + 3 * 86_400),
    lengths=st.lists(st.integers(1, 7_200), min_size=1, max_size=12),
)
def test_any_split_into_windows_unions_to_the_whole(start_s, lengths):
    """Windows of arbitrary, unaligned lengths regenerate alone and add up to the span they cover."""
    cuts = np.cumsum([start_s, *lengths])
    windows = [Window(from_epoch(int(a)), from_epoch(int(b))) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    whole = events(SMALL, SEED, Window(windows[0].start, windows[-1].end))
    parts = [events(SMALL, SEED, w) for w in windows]
    assert concat(parts).equals(whole)
    for w, part in zip(windows, parts, strict=True):
        ts = part.column("timestamp").cast(pa.int64()).to_numpy() // 1000
        assert ((ts >= w.start_s) & (ts < w.end_s)).all()


@pytest.mark.parametrize("step", [60, 300, 3600])
def test_backfill_of_a_day_equals_the_union_of_its_live_windows(step):
    day = Window.for_day("2026-02-02")
    live = concat([events(SMALL, SEED, w) for w in day.split(step)])
    backfill = events(SMALL, SEED, day)
    assert backfill.num_rows > 500
    assert live.equals(backfill)  # same ids, values, injected duplicates


def test_same_seed_same_events_other_seed_other_events():
    a, b = events(SMALL, SEED, DAY0), events(SMALL, SEED, DAY0)
    assert a.equals(b)
    other = events(SMALL, SEED + 1, DAY0)
    assert set(other.column("event_id").to_pylist()).isdisjoint(a.column("event_id").to_pylist())


def test_events_carry_ids_prices_sessions_and_iso_times():
    table = events(SMALL, SEED, DAY0)
    rows = distinct(table).to_pylist()
    assert len({r["event_id"] for r in rows}) == len(rows)
    assert all(len(r["event_id"]) == 32 and len(r["session_id"]) == 16 for r in rows)
    price = {}
    for r in rows:
        assert 1 <= r["customer_id"] <= 60 and 1 <= r["product_id"] <= 8
        assert 1 <= r["quantity"] <= SMALL.catalog.max_quantity
        assert price.setdefault(r["product_id"], r["price"]) == r["price"]  # price comes from the product
        assert r["timestamp"].utcoffset() == timedelta(0)
    low, high = SMALL.catalog.price_range
    assert all(low <= p <= high for p in price.values())


def test_injected_duplicates_are_exact_copies_in_the_same_window():
    table = events(SMALL, SEED, DAY0)
    n = duplicates(table)
    share = n / distinct(table).num_rows
    assert 0.03 < share < 0.07  # duplicate_percent 5
    rows = table.to_pylist()
    by_id: dict[str, list[dict]] = {}
    for r in rows:
        by_id.setdefault(r["event_id"], []).append(r)
    copies = [v for v in by_id.values() if len(v) > 1]
    assert len(copies) == n and all(v[0] == v[1] for v in copies)


def test_configured_weights_are_reached_within_tolerance():
    spec = EstoreSpec.model_validate({"catalog": {"customers": 3000}, "duplicate_percent": 0})
    table = events(spec, SEED, days(DAY0, 2))
    assert table.num_rows > 30_000
    deviation = mix_deviation(spec, table)
    assert max(abs(d) for d in deviation.values()) < 0.015, deviation
    # and a very different mix too
    skewed = EstoreSpec.model_validate(
        {"catalog": {"customers": 3000}, "weights": {"view": 0.2, "cart": 0.35, "uncart": 0.2, "purchase": 0.15,
                                                      "return": 0.1}}
    )  # fmt: skip
    deviation = mix_deviation(skewed, events(skewed, SEED, DAY0))
    assert max(abs(d) for d in deviation.values()) < 0.02, deviation


def test_the_checker_catches_each_broken_rule():
    table = distinct(events(SMALL, SEED, DAY0))
    rows = table.to_pylist()
    assert state_violations(table)[0] == 0
    for action in ("cart", "purchase", "uncart", "return"):
        victim = next(r for r in rows if r["action"] == action)
        # the same event a day earlier: never viewed / nothing in the cart / nothing bought yet
        moved = [dict(r, timestamp=r["timestamp"] - timedelta(days=1)) if r is victim else r for r in rows]
        count, notes = state_violations(pa.Table.from_pylist(moved, schema=table.schema))
        assert count >= 1 and any(victim["event_id"] in n for n in notes), action


def test_totals_count_distinct_events_per_interval():
    table = events(SMALL, SEED, DAY0)
    t = totals(table, 3600).to_pylist()
    counts = action_counts(distinct(table))
    assert sum(r["views"] for r in t) == counts["view"] and sum(r["orders"] for r in t) == counts["purchase"]
    assert sum(r["returns"] for r in t) == counts["return"] and sum(r["carts"] for r in t) == counts["cart"]
    assert all(r["interval_start"].minute == 0 for r in t)
    hour = Window(t[3]["interval_start"], t[3]["interval_start"] + timedelta(hours=1))
    assert action_counts(distinct(events(SMALL, SEED, hour)))["uncart"] == t[3]["uncarts"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"weights": {"cart": 0.5}}, "weights: cart (0.5) must equal uncart + purchase"),
        ({"weights": {"return": 0.3}}, "weights: return (0.3) cannot exceed purchase"),
        (
            {"journeys": {"slot_minutes": 50}},
            "journeys.slot_minutes: must be a whole number of minutes that divides 1440 (a day) and at least 60",
        ),
        ({"journeys": {"per_customer_per_day": 30}}, "exceeds the 12 slots"),
        ({"micro_batch_seconds": 7}, "micro_batch_seconds: must be a whole number of seconds that divides 86400"),
        ({"catalog": {"colour": 1}}, "catalog.colour: unknown key"),
        ({"weights": {"view": 0.05, "cart": 0.6, "uncart": 0.01, "purchase": 0.59}}, "out of reach"),
    ],
)
def test_bad_config_names_key_and_reason(changes, message):
    with pytest.raises(SpecError) as err:
        parse(EstoreSpec, changes, "config/estore.yaml")
    assert "config/estore.yaml" in str(err.value) and message in str(err.value)


def test_actions_are_the_five_of_the_brief():
    assert ACTIONS == ("view", "cart", "uncart", "purchase", "return")
