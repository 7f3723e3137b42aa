"""E-store events into the Tinybird test server on loopback: the project's client (gzip NDJSON batches of up to
8 MB, pooled connections) vs one POST per event (the seed script's method, on a sample), in the same run.
Targets: client >= 100x the per-event method, and at most one request per 8 MB of uncompressed NDJSON."""

import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from synth_platform.sinks.tinybird import TinybirdResource, to_ndjson
from synth_platform.specs.estore import EstoreSpec
from synth_platform.world.estore import events
from synth_platform.world.windows import Window
from synth_platform_tests.tinybird_server import TinybirdServer

CUSTOMERS = 24_000  # ~350k events a day
DAYS = 3
PER_EVENT_SAMPLE = 5_000
BATCH_BYTES = 8_000_000
SEED = 1
DS = "estore_events"


def _serve(conn) -> None:
    with TinybirdServer(log_requests=False, keep_rows=False) as server:
        conn.send((server.url, server.token))
        conn.recv()  # until the bench is done


@contextmanager
def server_process() -> Iterator[tuple[str, str]]:
    """The test server in its own process, as Tinybird is another machine: its JSON parsing does not share the
    client's interpreter lock."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_serve, args=(theirs,), daemon=True)
    process.start()
    try:
        yield ours.recv()
    finally:
        ours.send("stop")
        process.join(10)


def main() -> bool:
    spec = EstoreSpec.model_validate({"catalog": {"customers": CUSTOMERS}})
    span = Window(Window.for_day("2026-01-05").start, Window.for_day("2026-01-07").end)
    started = time.perf_counter()
    body = b"".join(to_ndjson(events(spec, SEED, day)) for day in span.days())
    rows = body.count(b"\n")
    print(f"generated {rows:,} events ({len(body) / 1e6:.1f} MB NDJSON) in {time.perf_counter() - started:.1f}s")

    with server_process() as (url, token):
        tb = TinybirdResource(api_url=url, token=token, outbox_dir="unused", max_batch_bytes=BATCH_BYTES)
        started = time.perf_counter()
        result = tb.send_events(DS, body, span)
        seconds = time.perf_counter() - started
        assert result.successful_rows == rows and result.quarantined_rows == 0, result
        client_rate = rows / seconds
        per_million = result.requests / rows * 1e6
        per_8mb = result.requests / (len(body) / BATCH_BYTES)
        print(
            f"client: {client_rate:,.0f} events/s, {result.requests} requests ({per_million:.1f} per 1M events), "
            f"{len(body) / result.requests / 1e6:.2f} MB NDJSON / {result.wire_bytes / result.requests / 1e6:.2f} MB "
            f"gzip per request, {per_8mb:.2f} requests per 8 MB"
        )

        sample = body.splitlines()[:PER_EVENT_SAMPLE]
        headers = {"Authorization": f"Bearer {token}"}
        # one POST per event as the seed script did, but over a kept-alive connection (its best case: a new
        # connection per request is slower still)
        with httpx.Client() as http:
            started = time.perf_counter()
            for line in sample:
                http.post(f"{url}/v0/events", params={"name": DS}, content=line, headers=headers).raise_for_status()
            per_event_rate = len(sample) / (time.perf_counter() - started)
        print(
            f"one request per event ({len(sample):,}-event sample): {per_event_rate:,.0f} events/s, "
            f"{1e6:,.0f} requests per 1M events"
        )

    speedup = client_rate / per_event_rate
    # at most one request per 8 MB: the batches are full except each send's last one
    ok = speedup >= 100 and result.requests <= len(body) / BATCH_BYTES + 1
    print(f"client / per-event = {speedup:,.0f}x (target >= 100x); requests {result.requests} for "
          f"{len(body) / BATCH_BYTES:.2f} x 8 MB (target <= one per 8 MB, plus the last partial batch)")  # fmt: skip
    print("tinybird_events: " + ("meets targets" if ok else "BELOW TARGET"))
    return ok
