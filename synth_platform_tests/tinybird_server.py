"""A Tinybird-compatible HTTP server for tests and benchmarks: real sockets on loopback, data kept in memory.

Use the `tinybird_server` pytest fixture (registered for the whole suite), or `with TinybirdServer() as s:`.
`s.url` and `s.token` configure a client; `s.rows(name)` and `s.quarantine(name)` show what landed.

API (the subset of Tinybird the platform uses, with Tinybird's parameter names and answers):

- Auth: `Authorization: Bearer <token>` or `?token=<token>`; anything else answers 403 `{"error": ...}`.
- `POST /v0/events?name=<ds>&wait=true|false` with an NDJSON body, optionally `Content-Encoding: gzip`:
  200 (wait=true) or 202 with `{"successful_rows": n, "quarantined_rows": m}`. Rows that do not fit the schema of
  `tinybird/<ds>.datasource` (missing non-Nullable column, wrong type, invalid JSON) go to the quarantine.
  404 for an unknown data source; 413 when the uncompressed body exceeds `max_request_bytes`.
- `POST /v0/datasources?name=<ds>&mode=append|replace[&replace_condition=<cond>]&format=ndjson` with the file in
  the multipart field `ndjson` (gzip when its name ends in `.gz` or it starts with the gzip magic): 200 with
  `{"id", "import_id", "job_id", "datasource": {"id", "name"}, "quarantine_rows", "invalid_lines", "error"}`.
  `replace` without a condition replaces all rows; with one, rows matching it are deleted and only the file's rows
  matching it are inserted, as Tinybird does. Conditions: `<column> <op> '<literal>' [AND ...]`, op one of
  `= != < <= > >=` (others answer 400).
- `POST /v0/datasources/<ds>/truncate`; `POST /v0/datasources/<ds>/delete` (form field `delete_condition`,
  same grammar): `{"job_id", "status": "done", "rows_affected"}`. `GET /v0/datasources/<ds>`: name, engine, rows.
- `GET /v0/pipes/<name>.json?<params>`: `{"meta", "data", "rows", "rows_before_limit_at_least", "statistics"}`.
  Pipes come from `tinybird/*.pipe`; the server applies the endpoint node's `FROM <ds> [FINAL]` (FINAL keeps one
  row per sorting key, the last written), its column list and `ORDER BY`, and the parameters `start`/`end`
  (ISO 8601, on the first DateTime column in its WHERE), `limit`/`offset` (defaults from the pipe) and equality on
  any column named as a parameter; a parameter declared `required=True` and not given answers 400. `top_devices`
  (an aggregation) is computed here as its SQL says: `feature` (required), `window` (all/hour/minute/day, `day`),
  `relative_to` (latest_reading/now), `limit`. `register_pipe(name, fn)` adds a pipe computed by
  `fn(server, params) -> rows`.
  DateTime values come back as `YYYY-MM-DD HH:MM:SS.mmm` (UTC), as Tinybird's JSON output does.
- Rate limit per (endpoint, data source): at most `rate_limit` requests per `rate_window_seconds`. Every answer
  carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until the window resets); a
  refused request gets 429 and `Retry-After`.
- Fault injection: `fail_next(n, status, retry_after=None)` makes the next n requests answer `status`.
- `requests`: a log of every request (method, path, params without the token, wire and body bytes, rows, status,
  time). `keep_rows=False` validates and counts Events API rows without keeping them (benchmarks of millions).
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
import gzip
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

DEFINITIONS = Path(__file__).resolve().parents[1] / "tinybird"
_COLUMN = re.compile(r"^`(\w+)`\s+(.+?)(?:\s+`json:\$\.([\w.]+)`)?\s*,?$")
_COND = re.compile(r"^\s*(?:toDate(?:Time)?\()?(\w+)\)?\s*(=|!=|<=|>=|<|>)\s*'([^']*)'\s*$")
_PARAM_DEFAULT = re.compile(r"\{\{\s*\w+\(\s*(\w+)\s*,\s*'?([^')]*?)'?\s*\)\s*\}\}")


# -- schema ---------------------------------------------------------------------------------------------------------


def _int_range(t: str) -> tuple[int, int]:
    bits = int(re.sub(r"\D", "", t))
    return (0, 2**bits - 1) if t.startswith("U") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)  # ISO 8601 with T or a space, Z or an offset
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def convert(type_: str, value: Any) -> Any:
    """A JSON value as the column type stores it; ValueError when it does not fit (the row is quarantined)."""
    return converter(type_)(value)


@functools.cache
def converter(type_: str) -> Callable[[Any], Any]:
    inner = re.fullmatch(r"(Nullable|LowCardinality)\((.+)\)", type_)
    if inner:
        base = converter(inner[2])
        if inner[1] == "LowCardinality":
            return base
        return lambda v: None if v is None else base(v)

    # one plain function call per value: the server validates millions of values in the benchmark
    if type_ == "String":

        def string(v: Any) -> Any:
            if v.__class__ is str:
                return v
            raise ValueError(f"expected a string, got {v!r}")

        return string
    if re.fullmatch(r"U?Int\d+", type_):
        low, high = _int_range(type_)

        def integer(v: Any) -> Any:
            if v.__class__ is int and low <= v <= high:
                return v
            raise ValueError(f"expected a {type_}, got {v!r}")

        return integer
    if re.fullmatch(r"Float(32|64)", type_):

        def number(v: Any) -> Any:
            if v.__class__ is float or v.__class__ is int:
                return float(v)
            raise ValueError(f"expected a number, got {v!r}")

        return number
    if type_.startswith("DateTime"):

        def moment(v: Any) -> Any:
            if v.__class__ is str:
                return parse_time(v)
            raise ValueError(f"expected a date-time string, got {v!r}")

        return moment
    if type_ == "Date":

        def day(v: Any) -> Any:
            if v.__class__ is str:
                return date.fromisoformat(v)
            raise ValueError(f"expected a date string, got {v!r}")

        return day
    if type_ in ("Bool", "Boolean"):

        def boolean(v: Any) -> Any:
            if v.__class__ is bool:
                return v
            raise ValueError(f"expected a boolean, got {v!r}")

        return boolean
    return lambda v: v


@dataclass
class Column:
    name: str
    type: str
    jsonpath: str


@dataclass
class Datasource:
    name: str
    columns: list[Column]
    engine: str = "MergeTree"
    sorting_key: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def parse(cls, name: str, text: str) -> Datasource:
        columns, in_schema = [], False
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("SCHEMA"):
                in_schema = True
                continue
            if in_schema:
                if not line:
                    in_schema = False
                    continue
                m = _COLUMN.match(line)
                if not m:
                    raise ValueError(f"{name}.datasource: cannot read schema line {line!r}")
                columns.append(Column(m[1], m[2], m[3] or m[1]))
        engine = re.search(r'^ENGINE\s+"(\w+)"', text, re.M)
        key = re.search(r'^ENGINE_SORTING_KEY\s+"([^"]+)"', text, re.M)
        return cls(
            name,
            columns,
            engine[1] if engine else "MergeTree",
            [k.strip() for k in key[1].split(",")] if key else [],
        )

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise ValueError(f"no column {name!r} in {self.name}")

    def ingest(self, body: bytes) -> tuple[list[dict], int]:
        """Rows that fit the schema, and how many lines went to the quarantine."""
        good, bad = [], 0
        columns = [(c.name, c.jsonpath, converter(c.type), c.type.startswith("Nullable")) for c in self.columns]
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
                row = {}
                for name, path, convert_one, nullable in columns:
                    if path not in obj and not nullable:
                        raise ValueError(f"missing {path}")
                    row[name] = convert_one(obj.get(path))
                good.append(row)
            except (ValueError, orjson.JSONDecodeError) as exc:
                bad += 1
                self.quarantine.append({"c__error": str(exc), "line": line.decode(errors="replace")})
        return good, bad

    def matcher(self, condition: str) -> Callable[[dict], bool]:
        tests = []
        for part in re.split(r"\s+AND\s+", condition.strip(), flags=re.I):
            m = _COND.match(part)
            if not m:
                raise ValueError(f"unsupported condition {part!r}: use <column> <op> '<literal>' joined by AND")
            col = self.column(m[1])
            literal = convert(col.type, _literal(col.type, m[3]))
            tests.append((col.name, m[2], literal))
        ops = {
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        return lambda row: all(row[c] is not None and ops[op](row[c], lit) for c, op, lit in tests)

    def final(self) -> list[dict]:
        """What `FINAL` reads: for ReplacingMergeTree one row per sorting key (the last written)."""
        if self.engine != "ReplacingMergeTree" or not self.sorting_key:
            return list(self.rows)
        latest = {tuple(r[k] for k in self.sorting_key): r for r in self.rows}
        return list(latest.values())


def _literal(type_: str, text: str) -> Any:
    base = re.sub(r"^(Nullable|LowCardinality)\((.+)\)$", r"\2", type_)
    if re.fullmatch(r"U?Int\d+", base):
        return int(text)
    if base.startswith("Float"):
        return float(text)
    return text


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass
class Pipe:
    name: str
    datasource: str
    columns: list[str]
    final: bool
    order_by: list[str]
    time_column: str | None
    defaults: dict[str, str]
    required: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, name: str, text: str) -> Pipe:
        sql = text.split("NODE")[-1]
        m = re.search(r"SELECT\s+(.+?)\s+FROM\s+(\w+)(\s+FINAL)?", sql, re.S | re.I)
        if not m:
            raise ValueError(f"{name}.pipe: no SELECT ... FROM <data source> in its last node")
        order = re.search(r"ORDER\s+BY\s+(.+?)\s*(?:LIMIT|$)", sql, re.S | re.I)
        time_col = re.search(r"WHERE\s+(\w+)\s*>=", sql, re.I)
        columns = [c.strip() for c in m[1].split(",")]
        return cls(
            name,
            m[2],
            [] if columns == ["*"] else columns,
            bool(m[3]),
            [c.strip().split()[0] for c in order[1].split(",")] if order else [],
            time_col[1] if time_col else None,
            {k: v for k, v in _PARAM_DEFAULT.findall(sql) if not v.startswith("required")},
            [k for k, v in _PARAM_DEFAULT.findall(sql) if v.replace(" ", "") == "required=True"],
        )


# -- server ---------------------------------------------------------------------------------------------------------


@dataclass
class Logged:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    wire_bytes: int
    body_bytes: int
    rows: int
    status: int
    at: float


class TinybirdServer:
    def __init__(
        self,
        definitions: Path = DEFINITIONS,
        token: str | None = None,
        max_request_bytes: int = 10 * 1024 * 1024,
        rate_limit: int | None = None,
        rate_window_seconds: float = 1.0,
        log_requests: bool = True,
        keep_rows: bool = True,
    ):
        self.token = token or f"p.test-{uuid.uuid4().hex}"
        self.max_request_bytes = max_request_bytes
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.log_requests = log_requests
        self.keep_rows = keep_rows
        self.datasources = {
            f.stem: Datasource.parse(f.stem, f.read_text()) for f in sorted(Path(definitions).glob("*.datasource"))
        }
        self.pipes: dict[str, Pipe | Callable[[TinybirdServer, dict[str, str]], list[dict]]] = {
            f.stem: Pipe.parse(f.stem, f.read_text()) for f in sorted(Path(definitions).glob("*.pipe"))
        }
        self.requests: list[Logged] = []
        self.lock = threading.RLock()
        self._faults: list[tuple[int, float | None]] = []
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tinybird-test-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> TinybirdServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # test helpers
    def fail_next(self, n: int, status: int, retry_after: float | None = None) -> None:
        with self.lock:
            self._faults.extend([(status, retry_after)] * n)

    def register_pipe(self, name: str, fn: Callable[[TinybirdServer, dict[str, str]], list[dict]]) -> None:
        self.pipes[name] = fn

    def rows(self, datasource: str) -> list[dict]:
        with self.lock:
            return list(self.datasources[datasource].rows)

    def quarantine(self, datasource: str) -> list[dict]:
        with self.lock:
            return list(self.datasources[datasource].quarantine)

    # request handling; returns (status, body, extra headers)
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, dict]:
        url = urlsplit(raw_path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        token = params.pop("token", None)
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        path = url.path.rstrip("/")
        log = Logged(method, path, params, {k: v for k, v in headers.items() if k != "authorization"},
                     len(body), 0, 0, 0, time.time())  # fmt: skip
        extra: dict[str, str] = {}
        try:
            if token != self.token:
                status, answer = 403, {"error": "invalid authentication token"}
            else:
                status, answer, extra = self._route(method, path, params, headers, body, log)
        except _HttpError as exc:
            status, answer = exc.status, {"error": exc.message}
        log.status = status
        if self.log_requests:
            with self.lock:
                self.requests.append(log)
        return status, answer, extra

    def _route(self, method: str, path: str, params: dict, headers: dict, body: bytes, log: Logged):
        with self.lock:
            if self._faults:
                status, retry_after = self._faults.pop(0)
                extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                return status, {"error": f"injected fault {status}"}, extra
        kind, ds_name = _endpoint(method, path, params)
        extra = self._rate(kind, ds_name)
        if extra.get("Retry-After"):
            return 429, {"error": "Too many requests: rate limit exceeded"}, extra
        if kind == "pipe":
            return 200, self._pipe(path.removeprefix("/v0/pipes/").removesuffix(".json"), params), extra
        ds = self.datasources.get(ds_name or "")
        if ds is None:
            raise _HttpError(404, f'Data Source "{ds_name}" does not exist')
        if kind == "events":
            data = _decode(body, headers.get("content-encoding") == "gzip")
            if len(data) > self.max_request_bytes:
                raise _HttpError(413, f"request body of {len(data)} bytes exceeds {self.max_request_bytes} bytes")
            rows, bad = ds.ingest(data)
            with self.lock:
                ds.rows.extend(rows if self.keep_rows else [])
            log.body_bytes, log.rows = len(data), len(rows) + bad
            status = 200 if params.get("wait") == "true" else 202
            return status, {"successful_rows": len(rows), "quarantined_rows": bad}, extra
        if kind == "import":
            return 200, self._import(ds, params, headers, body, log), extra
        if kind == "truncate":
            with self.lock:
                ds.rows.clear()
                ds.quarantine.clear()
            return 200, {}, extra
        if kind == "delete":
            form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            condition = form.get("delete_condition") or params.get("delete_condition")
            if not condition:
                raise _HttpError(400, "delete_condition is required")
            match = self._matcher(ds, condition)
            with self.lock:
                before = len(ds.rows)
                ds.rows[:] = [r for r in ds.rows if not match(r)]
                affected = before - len(ds.rows)
            return 200, {"job_id": uuid.uuid4().hex, "status": "done", "rows_affected": affected}, extra
        with self.lock:
            info = {"name": ds.name, "engine": {"engine": ds.engine}, "stats": {"row_count": len(ds.rows)}}
        return 200, info, extra

    def _import(self, ds: Datasource, params: dict, headers: dict, body: bytes, log: Logged) -> dict:
        mode = params.get("mode", "create")
        if mode not in ("append", "replace"):
            raise _HttpError(400, f"mode={mode!r} is not supported here (append or replace)")
        if params.get("format", "ndjson") != "ndjson":
            raise _HttpError(400, "only format=ndjson is supported")
        file = _multipart_file(headers.get("content-type", ""), body, "ndjson")
        data = _decode(file, None)
        condition = params.get("replace_condition")
        match = self._matcher(ds, condition) if condition else None
        with self.lock:
            rows, bad = ds.ingest(data)
            if mode == "replace":
                ds.rows[:] = [r for r in ds.rows if match and not match(r)]
                rows = [r for r in rows if match is None or match(r)]
            ds.rows.extend(rows)
        log.body_bytes, log.rows = len(data), len(rows) + bad
        job = uuid.uuid4().hex
        return {
            "id": job,
            "import_id": job,
            "job_id": job,
            "datasource": {"id": f"t_{ds.name}", "name": ds.name},
            "quarantine_rows": bad,
            "invalid_lines": 0,
            "error": False,
        }

    def _matcher(self, ds: Datasource, condition: str) -> Callable[[dict], bool]:
        try:
            return ds.matcher(condition)
        except ValueError as exc:
            raise _HttpError(400, str(exc)) from None

    def _pipe(self, name: str, params: dict[str, str]) -> dict:
        started = time.perf_counter()
        pipe = self.pipes.get(name)
        if pipe is None:
            raise _HttpError(404, f'The pipe "{name}" does not exist')
        if name in _AGGREGATES:
            return _AGGREGATES[name](self, params, started)
        if callable(pipe):
            rows = pipe(self, params)
            total = len(rows)
            meta = [{"name": k, "type": "String"} for k in (rows[0] if rows else {})]
        else:
            ds = self.datasources.get(pipe.datasource)
            if ds is None:
                raise _HttpError(404, f'pipe "{name}" reads unknown Data Source "{pipe.datasource}"')
            args = {**pipe.defaults, **params}
            missing = [p for p in pipe.required if p not in params]
            if missing:
                raise _HttpError(400, f"[Error] Missing required parameter(s): {', '.join(missing)}")
            with self.lock:
                rows = ds.final() if pipe.final else list(ds.rows)
            try:
                if pipe.time_column:
                    start, end = parse_time(args.get("start", "1970-01-01")), parse_time(args.get("end", "2100-01-01"))
                    rows = [r for r in rows if start <= r[pipe.time_column] < end]
                for key, value in args.items():
                    if key not in ("start", "end", "limit", "offset") and any(c.name == key for c in ds.columns):
                        col = ds.column(key)
                        rows = [r for r in rows if r[key] == convert(col.type, _literal(col.type, value))]
                limit, offset = int(args.get("limit", 10**12)), int(args.get("offset", 0))
            except ValueError as exc:
                raise _HttpError(400, f"bad parameter: {exc}") from None
            rows.sort(key=lambda r: tuple(r[c] for c in pipe.order_by))
            total = len(rows)
            names = pipe.columns or [c.name for c in ds.columns]
            rows = [{c: _json_value(r[c]) for c in names} for r in rows[offset : offset + limit]]
            meta = [{"name": c, "type": ds.column(c).type} for c in names]
        return {
            "meta": meta,
            "data": rows,
            "rows": len(rows),
            "rows_before_limit_at_least": total,
            "statistics": {"elapsed": time.perf_counter() - started, "rows_read": total, "bytes_read": 0},
        }

    def _rate(self, kind: str, ds: str | None) -> dict[str, str]:
        if self.rate_limit is None:
            return {}
        now = time.monotonic()
        with self.lock:
            start, count = self._windows.get((kind, ds or ""), (now, 0))
            if now - start >= self.rate_window_seconds:
                start, count = now, 0
            count += 1
            self._windows[(kind, ds or "")] = (start, count)
        reset = max(start + self.rate_window_seconds - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.rate_limit - count, 0)),
            "X-RateLimit-Reset": str(math.ceil(reset * 1000) / 1000),
        }
        if count > self.rate_limit:
            headers["Retry-After"] = headers["X-RateLimit-Reset"]
        return headers


def _top_devices(server: TinybirdServer, params: dict[str, str], started: float) -> dict:
    """tinybird/top_devices.pipe over device_readings FINAL."""
    if "feature" not in params:
        raise _HttpError(400, "feature is required, e.g. feature=power_usage_kwh")
    window, relative_to = params.get("window", "all"), params.get("relative_to", "latest_reading")
    if window not in ("all", "hour", "minute", "day"):
        raise _HttpError(400, "window must be all, hour, minute or day")
    if window == "day" and "day" not in params:
        raise _HttpError(400, "window=day needs day=YYYY-MM-DD")
    if relative_to not in ("latest_reading", "now"):
        raise _HttpError(400, "relative_to must be latest_reading or now")
    try:
        limit = int(params.get("limit", 10))
    except ValueError:
        raise _HttpError(400, f"bad parameter: limit={params['limit']!r} is not an Int32") from None
    with server.lock:
        rows = [r for r in server.datasources["device_readings"].final() if r["feature"] == params["feature"]]
    if window == "day":
        try:
            day = date.fromisoformat(params["day"])
        except ValueError:
            raise _HttpError(400, f"bad parameter: day={params['day']!r} is not a Date") from None
        rows = [r for r in rows if r["timestamp"].date() == day]
    elif rows and window != "all":
        span = timedelta(hours=1) if window == "hour" else timedelta(minutes=1)
        if relative_to == "now":
            now = datetime.now(UTC)
            rows = [r for r in rows if now - span <= r["timestamp"] < now]
        else:
            newest = max(r["timestamp"] for r in rows)
            rows = [r for r in rows if r["timestamp"] > newest - span]
    best: dict[int, dict] = {}
    for r in rows:
        b = best.get(r["device_id"])
        if b is None or (-r["value"], r["timestamp"]) < (-b["value"], b["timestamp"]):
            best[r["device_id"]] = r
    ranked = sorted(best.values(), key=lambda r: (-r["value"], r["device_id"], r["timestamp"]))
    data = [
        {"device_id": r["device_id"], "city": r["city"], "value": r["value"], "at": _json_value(r["timestamp"])}
        for r in ranked[:limit]
    ]
    meta = [
        {"name": "device_id", "type": "Int64"},
        {"name": "city", "type": "String"},
        {"name": "value", "type": "Float64"},
        {"name": "at", "type": "DateTime64(3, 'UTC')"},
    ]
    stats = {"elapsed": time.perf_counter() - started, "rows_read": len(rows), "bytes_read": 0}
    return {
        "meta": meta,
        "data": data,
        "rows": len(data),
        "rows_before_limit_at_least": len(ranked),
        "statistics": stats,
    }


# pipes whose SQL aggregates, which the generic reading of a pipe (filter, order, page) cannot answer
_AGGREGATES: dict[str, Callable[[TinybirdServer, dict[str, str], float], dict]] = {"top_devices": _top_devices}


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _endpoint(method: str, path: str, params: dict) -> tuple[str, str | None]:
    if method == "POST" and path == "/v0/events":
        return "events", params.get("name")
    if method == "POST" and path == "/v0/datasources":
        return "import", params.get("name")
    m = re.fullmatch(r"/v0/datasources/(\w+)(?:/(truncate|delete))?", path)
    if m and (m[2] or method == "GET") and (method == "POST") == bool(m[2]):
        return (m[2] or "info"), m[1]
    if method == "GET" and re.fullmatch(r"/v0/pipes/\w+\.json", path):
        return "pipe", None
    raise _HttpError(404, f"{method} {path} is not an endpoint of this server")


def _decode(data: bytes, gzipped: bool | None) -> bytes:
    if gzipped or (gzipped is None and data[:2] == b"\x1f\x8b"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise _HttpError(400, f"invalid gzip body: {exc}") from None
    return data


def _multipart_file(content_type: str, body: bytes, field_name: str) -> bytes:
    if not content_type.startswith("multipart/form-data"):
        raise _HttpError(400, "expected a multipart/form-data upload")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == field_name:
            return part.get_payload(decode=True) or b""
    raise _HttpError(400, f"no file in the multipart field {field_name!r}")


def _handler(server: TinybirdServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API
        # one buffered write per response and no Nagle: headers and body in separate small segments would wait
        # for the client's delayed ACK (~40 ms a request)
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer, extra = server.handle(self.command, self.path, headers, body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, *_: object) -> None:  # quiet: the request log is `server.requests`
            pass

    return Handler


@pytest.fixture
def tinybird_server() -> Iterator[TinybirdServer]:
    """A fresh Tinybird-compatible server on loopback with the schemas of tinybird/*.datasource."""
    with TinybirdServer() as server:
        yield server
