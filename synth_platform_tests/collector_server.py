"""A telemetry collector on loopback for the tests: accepts POSTed batches (NDJSON or a JSON array), records every
message it accepted and every request it saw, and answers the first requests with scripted statuses."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


@dataclass
class Seen:
    at: float
    status: int
    first_id: str  # message_id of the batch's first message: identifies a batch across retries
    messages: int
    content_type: str
    authorization: str | None


@dataclass
class CollectorServer:
    """`script`: (status, headers, body) answers for the first requests, in arrival order; then 200."""

    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    accepted: Counter = field(default_factory=Counter)  # message_id -> times stored
    bodies: list[dict] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = self.headers.get("Content-Type", "")
                if kind == "application/json":
                    messages = orjson.loads(raw)
                else:
                    messages = [orjson.loads(line) for line in raw.splitlines() if line]
                with server.lock:
                    status, headers, body = server.script.pop(0) if server.script else (200, {}, b'{"ok":true}')
                    first = messages[0]["message_id"] if messages else ""
                    server.seen.append(
                        Seen(time.monotonic(), status, first, len(messages), kind, self.headers.get("Authorization"))
                    )
                    if status < 300:
                        server.accepted.update(m["message_id"] for m in messages)
                        server.bodies += messages
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/readings"

    def __enter__(self) -> CollectorServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
