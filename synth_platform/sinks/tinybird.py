"""Tinybird target: the Events API for live windows, the Data Sources API to replace whole days, and a local
outbox of the very same NDJSON when no token is configured.

Events go out as gzip NDJSON batches bounded by uncompressed bytes and rows, with `wait=true` so a 200 means the
rows are written. 429 waits for `Retry-After` (else `X-RateLimit-Reset`), 500/502/503/504 and connection errors
back off exponentially; other 4xx fail at once with Tinybird's own error text, except 413, which splits the batch.
The token travels only in the Authorization header and is masked in every message.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field

from synth_platform.sinks.compression import gzip_member
from synth_platform.sinks.http_retry import HttpTargetError, RetryPolicy, send_checked
from synth_platform.sinks.uris import without_credentials
from synth_platform.world.windows import Window, utc

_SQL_TIME = "%Y-%m-%d %H:%M:%S"
_WINDOW_FILE = re.compile(r"^(\d{6})-(\d{6})\.ndjson$")


class TinybirdError(HttpTargetError):
    """A request Tinybird refused or that kept failing; the message names the call, status and reason."""


class PayloadTooLarge(TinybirdError):
    pass


class CappedEndpoint(TinybirdError):
    """A pipe answered fewer rows than asked while saying more match: paging it would truncate."""


@dataclass
class Delivery:
    """What one or more writes did: rows and bytes (uncompressed NDJSON), requests, Tinybird's row counts."""

    rows: int = 0
    bytes: int = 0
    wire_bytes: int = 0
    requests: int = 0
    retries: int = 0
    batches: int = 0
    successful_rows: int = 0
    quarantined_rows: int = 0

    def __iadd__(self, other: Delivery) -> Delivery:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


def to_ndjson(table: pa.Table) -> bytes:
    """One JSON object per row and line; timestamps as ISO 8601 UTC with a trailing Z (millisecond precision)."""
    if table.num_rows == 0:
        return b""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            ms = table.column(i).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
            text = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
            table = table.set_column(i, field.name, pa.array(text))
    out = io.BytesIO()
    pl.from_arrow(table).write_ndjson(out)
    return out.getvalue()


def line_batches(body: bytes, max_bytes: int, max_rows: int) -> Iterator[memoryview]:
    """Consecutive runs of whole lines, each at most max_bytes (unless one line alone is longer) and max_rows."""
    if not body:
        return
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10) + 1
    if not len(ends) or ends[-1] != len(body):
        ends = np.append(ends, len(body))
    view = memoryview(body)
    start, line = 0, 0
    while line < len(ends):
        last = int(np.searchsorted(ends, start + max_bytes, side="right")) - 1
        last = min(max(last, line), line + max_rows - 1, len(ends) - 1)
        yield view[start : ends[last]]
        start, line = int(ends[last]), last + 1


def _line_count(data: bytes | memoryview) -> int:
    return bytes(data).count(b"\n") + (1 if len(data) and data[-1:] != b"\n" else 0)


def sql_time(value: datetime) -> str:
    return utc(value).strftime(_SQL_TIME) + (f".{value.microsecond // 1000:03d}" if value.microsecond else "")


def window_condition(window: Window, time_column: str) -> str:
    """The SQL condition selecting a window's rows, as Tinybird evaluates it for replace and delete."""
    return f"{time_column} >= '{sql_time(window.start)}' AND {time_column} < '{sql_time(window.end)}'"


@functools.cache
def _client(base_url: str, timeout: float) -> httpx.Client:
    # One pooled client per target and process: batches reuse keep-alive connections.
    return httpx.Client(
        base_url=base_url, timeout=timeout, limits=httpx.Limits(max_connections=16, max_keepalive_connections=16)
    )


class TinybirdResource(dg.ConfigurableResource):
    """Tinybird (TINYBIRD_API_URL, TINYBIRD_TOKEN); without a token, a local outbox folder."""

    api_url: str = Field("https://api.tinybird.co", description="Tinybird API host of the workspace's region")
    token: str = Field("", description="Token with DATASOURCE:APPEND/CREATE and PIPE:READ scopes; empty = outbox")
    outbox_dir: str = Field(description="Where NDJSON goes without a token: <datasource>/<day>/<window>.ndjson")
    max_batch_bytes: int = Field(8_000_000, ge=1, description="Events API batch bound (uncompressed NDJSON)")
    max_batch_rows: int = Field(1_000_000, ge=1, description="Events API batch bound (rows)")
    max_in_flight: int = Field(2, ge=1, le=32, description="Events API requests sent concurrently per write")
    max_attempts: int = Field(8, ge=1, description="Attempts per request on 429/5xx/connection errors")
    backoff_seconds: float = Field(0.5, ge=0, description="First backoff after a 5xx; doubles per attempt")
    max_wait_seconds: float = Field(60.0, ge=0, description="Longest single wait, whatever the server asks")
    timeout_seconds: float = Field(120.0, gt=0, description="Per-request timeout")

    @property
    def uses_outbox(self) -> bool:
        return not self.token

    def target(self, datasource: str) -> str:
        if self.uses_outbox:
            return f"outbox {Path(self.outbox_dir) / datasource}"
        return f"tinybird {self.api_url} data source {datasource}"

    def public_uri(self, datasource: str) -> str:
        """Where a data source lives, as metadata shows it (dagster/uri): its Data Sources API address (never the
        token), or its outbox folder."""
        if self.uses_outbox:
            return (Path(self.outbox_dir).expanduser().resolve() / datasource).as_uri()
        return f"{without_credentials(self.api_url).rstrip('/')}/v0/datasources/{datasource}"

    # -- Events API ---------------------------------------------------------------------------------------------

    def send_events(self, datasource: str, body: bytes, window: Window) -> Delivery:
        """Append a window's NDJSON through the Events API (or to the window's outbox file)."""
        if self.uses_outbox:
            return self._to_outbox(datasource, body, window, replace=False)
        total = Delivery()
        batches = line_batches(body, self.max_batch_bytes, self.max_batch_rows)
        # Several batches in flight: the next one is compressed (zlib releases the GIL) while Tinybird ingests.
        with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="tinybird-events") as pool:
            for result in pool.map(lambda batch: self._post_events(datasource, batch), batches):
                total += result
        return total

    def _post_events(self, datasource: str, batch: memoryview) -> Delivery:
        rows = _line_count(batch)
        wire = gzip_member(batch)
        result = Delivery(rows=rows, bytes=len(batch), wire_bytes=len(wire), batches=1)
        try:
            response, attempts = self._request(
                "POST",
                "/v0/events",
                what=f"Events API append to {datasource}",
                params={"name": datasource, "wait": "true"},
                content=wire,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"},
            )
        except PayloadTooLarge as exc:
            if rows <= 1:
                raise TinybirdError(f"{exc}; a single event of {len(batch)} bytes cannot be split", 413) from None
            half = np.flatnonzero(np.frombuffer(batch, dtype=np.uint8) == 10)[rows // 2 - 1] + 1
            result = self._post_events(datasource, batch[:half])
            result += self._post_events(datasource, batch[half:])
            result.requests += 1  # the refused request
            return result
        body = response.json()
        result.requests, result.retries = attempts, attempts - 1
        result.successful_rows = int(body.get("successful_rows", rows))
        result.quarantined_rows = int(body.get("quarantined_rows", 0))
        return result

    # -- Data Sources API ---------------------------------------------------------------------------------------

    def replace(self, datasource: str, body: bytes, window: Window, time_column: str = "timestamp") -> Delivery:
        """Replace the window's rows with this NDJSON in one import (mode=replace with a replace_condition)."""
        if self.uses_outbox:
            return self._to_outbox(datasource, body, window, replace=True)
        return self.import_ndjson(datasource, body, "replace", window_condition(window, time_column))

    def import_ndjson(
        self, datasource: str, body: bytes, mode: str = "append", replace_condition: str | None = None
    ) -> Delivery:
        """One Data Sources API import of an NDJSON file (gzip on the wire)."""
        wire = gzip_member(body)
        params = {"name": datasource, "mode": mode, "format": "ndjson"}
        if replace_condition:
            params["replace_condition"] = replace_condition
        response, attempts = self._request(
            "POST",
            "/v0/datasources",
            what=f"Data Sources API {mode} of {datasource}",
            params=params,
            files={"ndjson": (f"{datasource}.ndjson.gz", wire, "application/gzip")},
        )
        answer = response.json()
        rows = _line_count(body)
        quarantined = int(answer.get("quarantine_rows", 0)) + int(answer.get("invalid_lines", 0))
        return Delivery(
            rows=rows,
            bytes=len(body),
            wire_bytes=len(wire),
            requests=attempts,
            retries=attempts - 1,
            batches=1,
            successful_rows=rows - quarantined,
            quarantined_rows=quarantined,
        )

    def truncate(self, datasource: str) -> None:
        if self.uses_outbox:
            shutil.rmtree(Path(self.outbox_dir) / datasource, ignore_errors=True)
            return
        self._request("POST", f"/v0/datasources/{datasource}/truncate", what=f"truncate of {datasource}")

    def delete_before(self, datasource: str, cutoff: datetime, time_column: str = "timestamp") -> int:
        """Retention: drop rows older than cutoff. The outbox drops whole days before the cutoff's day and returns
        how many day folders went; Tinybird gets a delete job (returns 0, the job runs asynchronously)."""
        if self.uses_outbox:
            root = Path(self.outbox_dir) / datasource
            first_kept = utc(cutoff).date().isoformat()
            expired = [d for d in sorted(root.glob("????-??-??")) if d.name < first_kept] if root.is_dir() else []
            for d in expired:
                shutil.rmtree(d)
            return len(expired)
        self._request(
            "POST",
            f"/v0/datasources/{datasource}/delete",
            what=f"delete from {datasource}",
            data={"delete_condition": f"{time_column} < '{sql_time(cutoff)}'"},
        )
        return 0

    # -- reading ------------------------------------------------------------------------------------------------

    def query_pipe(self, name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET /v0/pipes/<name>.json: Tinybird's answer (meta, data, rows, statistics)."""
        response, _ = self._request("GET", f"/v0/pipes/{name}.json", what=f"pipe {name}", params=params or {})
        return response.json()

    def pipe_pages(self, name: str, params: dict[str, Any] | None = None, page_size: int = 50_000) -> Iterator[dict]:
        """Answers of a pipe endpoint that pages with `limit`/`offset`, until a short page the endpoint confirms is
        the last. An endpoint that ignores limit/offset or caps its answers fails loudly instead of truncating."""
        offset, first_row = 0, None
        while True:
            answer = self.query_pipe(name, {**(params or {}), "limit": page_size, "offset": offset})
            rows = answer.get("data", [])
            if len(rows) > page_size:
                raise TinybirdError(f"pipe {name} returned {len(rows)} rows for limit={page_size}: it ignores `limit`")
            if rows and offset and rows[0] == first_row:
                raise TinybirdError(f"pipe {name} returned the same first row at offset {offset}: it ignores `offset`")
            first_row = first_row or (rows[0] if rows else None)
            yield answer
            if len(rows) < page_size:
                matching = int(answer.get("rows_before_limit_at_least") or 0)
                if offset + len(rows) < matching:
                    raise CappedEndpoint(
                        f"pipe {name} answered {len(rows)} rows at offset {offset} (limit {page_size}) but says at "
                        f"least {matching} rows match: it caps its answers"
                    )
                return
            offset += page_size

    def pipe_rows(self, name: str, params: dict[str, Any] | None = None, page_size: int = 50_000) -> Iterator[dict]:
        """Every row of a pipe endpoint that pages with `limit`/`offset` parameters."""
        for answer in self.pipe_pages(name, params, page_size):
            yield from answer.get("data", [])

    def outbox_ndjson(self, datasource: str, day: Window) -> bytes:
        """Everything the outbox holds for one day, in window order."""
        folder = Path(self.outbox_dir) / datasource / day.partition_key()
        files = sorted(folder.glob("*.ndjson")) if folder.is_dir() else []
        return b"".join(f.read_bytes() for f in files)

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _to_outbox(self, datasource: str, body: bytes, window: Window, replace: bool) -> Delivery:
        """The outbox keeps one file per written window; a replace first removes the files inside its window,
        so re-running a day or a window never leaves two copies behind."""
        if window.start.date() != (window.end - timedelta(microseconds=1)).date():
            raise ValueError(f"outbox writes take a window inside one UTC day, got {window}")
        folder = Path(self.outbox_dir) / datasource / window.partition_key()
        folder.mkdir(parents=True, exist_ok=True)
        first, end = window.start.strftime("%H%M%S"), _hms(window.end)
        if replace:
            for f in folder.glob("*.ndjson"):
                m = _WINDOW_FILE.match(f.name)
                if m and first <= m[1] and m[2] <= end:
                    f.unlink()
        target = folder / f"{first}-{end}.ndjson"
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(body)
        tmp.replace(target)
        rows = _line_count(body)
        return Delivery(rows=rows, bytes=len(body), wire_bytes=len(body), batches=1, successful_rows=rows)

    def _redact(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> tuple[httpx.Response, int]:
        """Send with retries; returns the response and the attempts it took."""
        return send_checked(
            _client(self.api_url.rstrip("/"), self.timeout_seconds),
            method,
            path,
            RetryPolicy(self.max_attempts, self.backoff_seconds, self.max_wait_seconds),
            what=what,
            where=self.api_url,
            token=self.token,
            redact=self._redact,
            error=_error,
            hint=lambda status: _HINTS.get(status, "the request was refused"),
            **kwargs,
        )


def _error(message: str, status: int | None) -> TinybirdError:
    return (PayloadTooLarge if status == 413 else TinybirdError)(message, status)


_HINTS = {
    400: "the request or its data is invalid",
    401: "check TINYBIRD_TOKEN",
    403: "the token lacks the scope for this data source or pipe, check TINYBIRD_TOKEN",
    404: "no such data source or pipe in the workspace; push the tinybird/ folder first",
    413: "the batch is too large",
    422: "the data does not match the data source schema",
}


def _hms(value: datetime) -> str:
    """End times print as 240000 at midnight so a day's last window sorts after its others."""
    return "240000" if value.time() == datetime.min.time() else value.strftime("%H%M%S")
