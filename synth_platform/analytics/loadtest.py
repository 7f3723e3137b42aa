"""A bounded, open-loop query load: request i is due at start + i / rate, at most `concurrency` in flight, none
due after `duration_seconds` and never more than `max_requests`. Latency is measured per real request."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import sqlalchemy as sa

from synth_platform.analytics import queries
from synth_platform.analytics.queries import Feature
from synth_platform.analytics.results import as_utc
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.specs.analytics import LoadTestSpec
from synth_platform.world import seeding
from synth_platform.world.windows import Window, from_epoch


class RemoteTarget(ValueError):
    pass


@dataclass
class LoadResult:
    target: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # successful requests
    error_samples: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def throughput(self) -> float:
        """Successful requests per second of wall time."""
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": round(self.percentile(50), 3),
            "p95_ms": round(self.percentile(95), 3),
            "p99_ms": round(self.percentile(99), 3),
            "throughput_rps": round(self.throughput, 1),
            "seconds": round(self.seconds, 3),
        }


def run_load(target: str, request: Callable[[int], object], spec: LoadTestSpec) -> LoadResult:
    """Call request(i) for i = 0, 1, ... on `concurrency` threads at `requests_per_second`, within the bounds."""
    result = LoadResult(target)
    lock = threading.Lock()
    counter = iter(range(spec.max_requests))
    started = time.perf_counter()
    deadline = started + spec.duration_seconds

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            due = started + i / spec.requests_per_second
            if due >= deadline:
                return
            time.sleep(max(0.0, due - time.perf_counter()))
            t0 = time.perf_counter()
            try:
                request(i)
                error = None
            except Exception as exc:  # a failed request is a data point of the test, not a crash of it
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            elapsed_ms = (time.perf_counter() - t0) * 1000
            with lock:
                result.requests += 1
                if error is None:
                    result.latencies_ms.append(elapsed_ms)
                else:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(error)

    threads = [threading.Thread(target=worker, name=f"load-{target}-{n}") for n in range(spec.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    return result


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return True  # a file (SQLite) or a local socket
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def require_loopback(what: str, url: str, allow_remote: bool) -> None:
    """Refuse to load a server that is not on this machine unless the config says so explicitly."""
    if allow_remote:
        return
    host = sa.make_url(url).host if "://" in url and not url.startswith("http") else urlsplit(url).hostname
    if not is_loopback_host(host):
        raise RemoteTarget(
            f"load test target {what} is on {host}, not on this machine; set load_test.allow_remote: true in "
            "config/analytics.yaml to load it anyway"
        )


def _random_window(key: np.uint64, i: int, first_s: int, last_s: int, max_seconds: int) -> Window:
    length = 60 + int(seeding.integers(key, max_seconds, i, 0))
    start = first_s + int(seeding.integers(key, max(last_s - first_s, 1), i, 1))
    return Window(from_epoch(start), from_epoch(start + length))


CITY_ROWS = 10_000  # a city request reads at most this many readings (the answer is bounded, not the scan)
CITY_PIPE = "city_readings"


def city_readings(feature: Feature, city: str, window: Window) -> sa.Select:
    """The stress test's query: readings of the devices in one city over a period, in time order."""
    t = feature.table()
    meta = sa.table("device_metadata", sa.column("device_id", sa.BigInteger()), sa.column("city", sa.String()))
    time = t.c[feature.time_column]
    return (
        sa.select(time, t.c[feature.device_column], t.c[feature.value_column])
        .select_from(t.join(meta, meta.c.device_id == t.c[feature.device_column]))
        .where(meta.c.city == city, time >= window.start, time < window.end)
        .order_by(time)
        .limit(CITY_ROWS)
    )


def database_requests(
    database: DatabaseResource, feature: Feature, seed: int, cities: list[str] = (), max_period_days: int = 90
) -> Callable[[int], object]:
    """Request i: a top-N over a random window (1 min to 1 day), one device's readings in a random hour, or (with
    `cities`) the readings of a random city over a random period of up to `max_period_days`, drawn from
    (seed, i). Every value is a bound parameter of a Core statement."""
    t = feature.table()
    low, high, first, last = database.query(
        sa.select(
            sa.func.min(t.c[feature.device_column]),
            sa.func.max(t.c[feature.device_column]),
            sa.func.min(t.c[feature.time_column]),
            sa.func.max(t.c[feature.time_column]),
        )
    )[0]
    if low is None:
        raise ValueError(f"table {feature.table_name} is empty: nothing to query")
    first_s, last_s = int(as_utc(first).timestamp()), int(as_utc(last).timestamp())
    key = seeding.stream_key(seed, "loadtest", "database")

    def request(i: int) -> object:
        kind = int(seeding.integers(key, 3 if cities else 2, i, 2))
        if kind == 0:
            window = _random_window(key, i, first_s, last_s, 86_400)
            return database.query(queries.top_devices(feature, window, 1 + int(seeding.integers(key, 20, i, 3))))
        if kind == 2:
            city = cities[int(seeding.integers(key, len(cities), i, 5))]
            window = _random_window(key, i, first_s, last_s, max_period_days * 86_400)
            return database.query(city_readings(feature, city, window))
        device = int(low) + int(seeding.integers(key, int(high) - int(low) + 1, i, 4))
        window = _random_window(key, i, first_s, last_s, 3_600)
        stmt = (
            sa.select(t.c[feature.time_column], t.c[feature.value_column])
            .where(t.c[feature.device_column] == device)
            .where(t.c[feature.time_column] >= window.start, t.c[feature.time_column] < window.end)
        )
        return database.query(stmt)

    return request


def tinybird_requests(
    tinybird: TinybirdResource, pipe: str, first: Window, seed: int, cities: list[str] = (), max_period_days: int = 90
) -> Callable[[int], object]:
    """Request i: the pipe over a random window (1 to 60 min) inside `first`, with a random limit (10 to 200), or
    (with `cities`, every other request on average) the `city_readings` pipe for a random city over a random period
    of up to `max_period_days`."""
    key = seeding.stream_key(seed, "loadtest", "tinybird")

    def request(i: int) -> object:
        if cities and seeding.uniform(key, i, 3) < 0.5:
            city = cities[int(seeding.integers(key, len(cities), i, 4))]
            window = _random_window(key, i, first.start_s, first.end_s, max_period_days * 86_400)
            return tinybird.query_pipe(
                CITY_PIPE,
                {"city": city, "start": window.start.isoformat(), "end": window.end.isoformat(), "limit": CITY_ROWS},
            )
        window = _random_window(key, i, first.start_s, first.end_s, 3_600)
        return tinybird.query_pipe(
            pipe,
            {
                "start": window.start.isoformat(),
                "end": window.end.isoformat(),
                "limit": 10 + int(seeding.integers(key, 191, i, 2)),
            },
        )

    return request
