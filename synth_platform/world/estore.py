"""E-commerce events: customers shop products in self-contained journeys whose state rules always hold.

Time is cut into epoch-aligned slots (`journeys.slot_minutes`, dividing a day). In each slot a customer has at
most one journey, on one product: views, then maybe cart cycles that each end in an uncart or a purchase, then
maybe a delayed return, all inside the slot. So a (customer, product) pair never has two journeys at once, its
cart is empty between journeys, and the state at any instant is a function of (seed, time) alone. The events of
a window are the events of the journeys in the slots it overlaps, filtered to the window; slots never cross
midnight, so a day is complete on its own and equals the union of its live windows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth_platform.specs.estore import ACTIONS, MAX_CART_CYCLES, MAX_VIEWS, EstoreSpec
from synth_platform.world import seeding
from synth_platform.world.windows import DAY_SECONDS, Window

VIEW, CART, UNCART, PURCHASE, RETURN = range(len(ACTIONS))
NONE = -1

# Step positions of a journey: the views, then (cart, uncart|purchase) per cycle, then the return.
_CYCLE0 = MAX_VIEWS
_RETURN_POS = MAX_VIEWS + 2 * MAX_CART_CYCLES
STEPS = _RETURN_POS + 1

GAP_MS = (5_000, 90_000)  # between consecutive steps of a journey
_MAIN_SPAN_MS = (STEPS - 1) * GAP_MS[1]  # longest journey before its return
_RETURN_MARGIN_MS = 60_000

# Shopping by hour of day (UTC), mean 1: quiet nights, a lunch bump, an evening peak.
DIURNAL = np.array(
    [0.35, 0.25, 0.2, 0.2, 0.25, 0.35, 0.55, 0.8, 1.0, 1.1, 1.15, 1.2,
     1.3, 1.25, 1.15, 1.1, 1.15, 1.3, 1.55, 1.75, 1.8, 1.6, 1.1, 0.7]
)  # fmt: skip
DIURNAL = DIURNAL / DIURNAL.mean()

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("quantity", pa.int32(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
    ]
)

TOTALS_SCHEMA = pa.schema(
    [
        pa.field("interval_start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("views", pa.int64(), nullable=False),
        pa.field("carts", pa.int64(), nullable=False),
        pa.field("uncarts", pa.int64(), nullable=False),
        pa.field("orders", pa.int64(), nullable=False),
        pa.field("returns", pa.int64(), nullable=False),
    ]
)
EVENT_COLUMNS = {
    "event_id": "32 hex digits: a hash of seed, customer, product, slot and step; an injected duplicate repeats it",
    "timestamp": "When the event happened (UTC)",
    "customer_id": "Customer who acted (1..catalog.customers)",
    "product_id": "Product acted on (1..catalog.products)",
    "action": "view, cart, uncart, purchase or return",
    "price": "The product's list price",
    "quantity": "Units carted, purchased or returned (1 for a view)",
    "session_id": "Shopping session: one per journey, another for its delayed return",
}
_TOTAL_COLUMNS = dict(zip(ACTIONS, ["views", "carts", "uncarts", "orders", "returns"], strict=True))
TOTALS_COLUMNS = {
    "interval_start": "Start of the interval (UTC)",
    **{column: f"Distinct {action} events in the interval" for action, column in _TOTAL_COLUMNS.items()},
}


def _key(seed: int, name: str) -> np.uint64:
    return seeding.stream_key(seed, "estore", name)


def product_prices(spec: EstoreSpec, seed: int, product_id: np.ndarray) -> np.ndarray:
    """Log-uniform list price per product, rounded to cents."""
    low, high = spec.catalog.price_range
    u = seeding.uniform(_key(seed, "price"), product_id)
    return np.round(np.exp(np.log(low) + (np.log(high) - np.log(low)) * u), 2)


def _popularity(spec: EstoreSpec) -> np.ndarray:
    return 1.0 / np.arange(1, spec.catalog.products + 1, dtype=np.float64) ** spec.catalog.popularity_skew


def slot_activity(spec: EstoreSpec, slot_start_s: np.ndarray) -> np.ndarray:
    """Chance a customer starts a journey in each slot: the daily mean spread by the diurnal curve."""
    j = spec.journeys
    hours = np.arange(j.slot_seconds // 3600)
    hour0 = (np.asarray(slot_start_s) % DAY_SECONDS) // 3600
    factor = DIURNAL[(hour0[:, None] + hours[None, :]) % 24].mean(axis=1)
    return np.clip(j.per_customer_per_day * j.slot_seconds / DAY_SECONDS * factor, 0.0, 1.0)


def _journeys(spec: EstoreSpec, seed: int, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(customer_id, slot) of every journey in the given slots."""
    customers = np.arange(1, spec.catalog.customers + 1, dtype=np.int64)
    q = slot_activity(spec, slots * spec.journeys.slot_seconds)
    active = seeding.uniform(_key(seed, "active"), customers[None, :], slots[:, None]) < q[:, None]
    s_idx, c_idx = np.nonzero(active)
    return customers[c_idx], slots[s_idx]


def _steps(spec: EstoreSpec, seed: int, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Action per (journey, step position), NONE where the journey has no step."""
    plan = spec.plan
    n = len(c)
    actions = np.full((n, STEPS), NONE, dtype=np.int8)

    rho = (plan.mean_views - 1.0) / plan.mean_views
    if rho > 0:
        u = 1.0 - seeding.uniform(_key(seed, "views"), c, s)
        extra = np.floor(np.log(u) / np.log(rho)).astype(np.int64)
    else:
        extra = np.zeros(n, dtype=np.int64)
    views = 1 + np.minimum(extra, MAX_VIEWS - 1)
    actions[:, :MAX_VIEWS][np.arange(MAX_VIEWS)[None, :] < views[:, None]] = VIEW

    k = np.arange(MAX_CART_CYCLES)
    carting = seeding.uniform(_key(seed, "cart"), c, s) < plan.p_cart
    uncart = seeding.uniform(_key(seed, "uncart"), c[:, None], s[:, None], k[None, :]) < plan.p_uncart
    recart = seeding.uniform(_key(seed, "recart"), c[:, None], s[:, None], k[None, :]) < plan.p_recart
    # cycles = 1 + the run of leading (uncart and re-cart) outcomes, capped at MAX_CART_CYCLES
    cont = (uncart & recart)[:, :-1]
    cycles = 1 + np.cumprod(cont, axis=1).sum(axis=1)
    in_cycle = carting[:, None] & (k[None, :] < cycles[:, None])
    actions[:, _CYCLE0::2][:, :MAX_CART_CYCLES][in_cycle] = CART
    actions[:, _CYCLE0 + 1 : _RETURN_POS : 2][in_cycle] = np.where(uncart, UNCART, PURCHASE)[in_cycle]

    last_uncart = np.take_along_axis(uncart, (cycles - 1)[:, None], axis=1)[:, 0]
    purchased = carting & ~last_uncart
    returned = purchased & (seeding.uniform(_key(seed, "return"), c, s) < plan.p_return)
    actions[returned, _RETURN_POS] = RETURN
    return actions


def _step_times_ms(seed: int, c: np.ndarray, s: np.ndarray, actions: np.ndarray, slot_ms: int) -> np.ndarray:
    """Event time per step: strictly increasing within a journey, the whole journey inside its slot."""
    pos = np.arange(STEPS)
    lo, hi = GAP_MS
    gaps = lo + seeding.integers(_key(seed, "gap"), hi - lo, c[:, None], s[:, None], pos[None, :])
    present = actions != NONE
    main = present.copy()
    main[:, _RETURN_POS] = False
    slot_start = s * slot_ms
    start = slot_start + seeding.integers(_key(seed, "start"), slot_ms - _MAIN_SPAN_MS - _RETURN_MARGIN_MS, c, s)
    step = np.where(main, gaps, 0)
    times = start[:, None] + np.cumsum(step, axis=1) - step  # each main step waits for the gaps before it
    last = np.where(main, times, 0).max(axis=1)
    # a return comes later in the slot: between a minute after the purchase and the slot's end
    room = slot_start + slot_ms - 1 - (last + _RETURN_MARGIN_MS)
    times[:, _RETURN_POS] = (
        last
        + _RETURN_MARGIN_MS
        + (seeding.uniform(_key(seed, "return_at"), c, s) * np.maximum(room, 0)).astype(np.int64)
    )
    return times


def _hex(*words: np.ndarray) -> np.ndarray:
    """Lower-case hex of the concatenated big-endian uint64 words, one fixed-width string per row."""
    stacked = np.stack([w.astype(">u8") for w in words], axis=1)
    text = stacked.tobytes().hex().encode()
    return np.frombuffer(text, dtype=f"S{16 * len(words)}")


def events(spec: EstoreSpec, seed: int, window: Window) -> pa.Table:
    """Events with timestamps in `window` (injected duplicates included), ordered by (timestamp, event_id)."""
    slot_s = spec.journeys.slot_seconds
    slots = np.arange(window.start_s // slot_s, -(-window.end_s // slot_s), dtype=np.int64)
    c, s = _journeys(spec, seed, slots)
    actions = _steps(spec, seed, c, s)
    times = _step_times_ms(seed, c, s, actions, slot_s * 1000)

    j_idx, pos = np.nonzero((actions != NONE) & (times >= window.start_s * 1000) & (times < window.end_s * 1000))
    c, s, action, ts = c[j_idx], s[j_idx], actions[j_idx, pos], times[j_idx, pos]
    product = 1 + seeding.choice(_key(seed, "product"), _popularity(spec), c, s)
    bought = 1 + seeding.integers(_key(seed, "quantity"), spec.catalog.max_quantity, c, s)
    quantity = np.where(action == VIEW, 1, bought)
    event_id = _hex(
        seeding.hash64(_key(seed, "event_id"), c, product, s, pos),
        seeding.hash64(_key(seed, "event_id_lo"), c, product, s, pos),
    )
    session = np.where(
        action == RETURN,
        _hex(seeding.hash64(_key(seed, "return_session"), c, s)),
        _hex(seeding.hash64(_key(seed, "session"), c, s)),
    )

    copies = 1 + (seeding.uniform(_key(seed, "duplicate"), c, s, pos) < spec.duplicate_percent / 100)
    rows = np.repeat(np.arange(len(c)), copies)
    table = pa.table(
        {
            "event_id": pa.array(event_id[rows].astype(str)),
            "timestamp": pa.array(ts[rows], type=pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "customer_id": c[rows],
            "product_id": product[rows],
            "action": pa.array(np.array(ACTIONS, dtype=object)[action[rows]]),
            "price": product_prices(spec, seed, product)[rows],
            "quantity": quantity[rows].astype(np.int32),
            "session_id": pa.array(session[rows].astype(str)),
        },
        schema=EVENT_SCHEMA,
    )
    return table.sort_by([("timestamp", "ascending"), ("event_id", "ascending")])


def distinct(table: pa.Table) -> pa.Table:
    """One row per event_id (injected duplicates are exact copies, so any copy will do)."""
    if table.num_rows == 0:
        return table
    ids = table.column("event_id").to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)
    return table.take(np.sort(first))


def duplicates(table: pa.Table) -> int:
    return table.num_rows - distinct(table).num_rows


def action_counts(table: pa.Table) -> dict[str, int]:
    counts = {a: 0 for a in ACTIONS}
    for row in pc.value_counts(table.column("action")).to_pylist():
        counts[row["values"]] = row["counts"]
    return counts


def action_codes(table: pa.Table) -> np.ndarray:
    """Index into ACTIONS per row; an unknown action fails loudly instead of passing the checks."""
    codes = pc.index_in(table.column("action"), value_set=pa.array(ACTIONS))
    if codes.null_count:
        unknown = pc.unique(pc.filter(table.column("action"), pc.is_null(codes))).to_pylist()
        raise ValueError(f"unknown action(s) {unknown}; expected one of {list(ACTIONS)}")
    return codes.to_numpy(zero_copy_only=False).astype(np.int64)


def mix_deviation(spec: EstoreSpec, table: pa.Table) -> dict[str, float]:
    """Share of each action among distinct events minus its normalised weight."""
    counts = action_counts(distinct(table))
    total = sum(counts.values()) or 1
    return {a: counts[a] / total - w for a, w in spec.weights.normalised().items()}


def state_violations(table: pa.Table, limit: int = 20) -> tuple[int, list[str]]:
    """Replay each (customer, product) pair's distinct events in time order from an empty state and count the
    events that break a rule: cart before any view or while in the cart, uncart/purchase while not in the cart,
    return without an unreturned purchase. Returns the count and up to `limit` descriptions."""
    t = distinct(table)
    if t.num_rows == 0:
        return 0, []
    t = t.sort_by([("customer_id", "ascending"), ("product_id", "ascending"), ("timestamp", "ascending")])
    cust = t.column("customer_id").to_numpy()
    prod = t.column("product_id").to_numpy()
    act = action_codes(t)

    new_pair = np.ones(len(act), dtype=bool)
    new_pair[1:] = (cust[1:] != cust[:-1]) | (prod[1:] != prod[:-1])
    group = np.cumsum(new_pair) - 1
    starts = np.flatnonzero(new_pair)

    def running(delta: np.ndarray) -> np.ndarray:
        """Per-pair cumulative sum, inclusive of the current event."""
        total = np.cumsum(delta)
        return total - (total - delta)[starts][group]

    views = running((act == VIEW).astype(np.int64))
    cart = running((act == CART).astype(np.int64) - np.isin(act, (UNCART, PURCHASE)).astype(np.int64))
    open_purchases = running((act == PURCHASE).astype(np.int64) - (act == RETURN).astype(np.int64))
    bad = (
        ((act == CART) & ((views < 1) | (cart != 1)))
        | (np.isin(act, (UNCART, PURCHASE)) & (cart != 0))
        | ((act == RETURN) & (open_purchases < 0))
        | (cart < 0)
        | (cart > 1)
    )
    where = np.flatnonzero(bad)
    ids = t.column("event_id")
    ts = t.column("timestamp")
    notes = [
        f"customer {cust[i]} product {prod[i]}: {ACTIONS[act[i]]} at {ts[i].as_py().isoformat()} "
        f"(event {ids[i].as_py()}) breaks the state rules"
        for i in where[:limit]
    ]
    return len(where), notes


def totals(table: pa.Table, interval_seconds: int) -> pa.Table:
    """estore_totals rows: distinct events per action and interval (intervals with no events are omitted)."""
    t = distinct(table)
    if t.num_rows == 0:
        return TOTALS_SCHEMA.empty_table()
    ms = t.column("timestamp").cast(pa.int64()).to_numpy()
    start = ms // (interval_seconds * 1000) * interval_seconds * 1_000_000
    keys, inverse = np.unique(start, return_inverse=True)
    act = action_codes(t)
    counts = np.zeros((len(keys), len(ACTIONS)), dtype=np.int64)
    np.add.at(counts, (inverse, act), 1)
    columns = {"interval_start": pa.array(keys, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))}
    columns.update({_TOTAL_COLUMNS[a]: counts[:, i] for i, a in enumerate(ACTIONS)})
    return pa.table(columns, schema=TOTALS_SCHEMA)
