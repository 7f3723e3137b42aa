"""HTTP collector target: telemetry messages POSTed in batches to a collector service (SYNTH_COLLECTOR_URL), as an
IoT data collector receives them from a fleet.

Body of each POST (documented in the README): `ndjson` (Content-Type application/x-ndjson, one JSON object per
line) or `json` (application/json, one array of objects). 429 and 5xx are retried honouring Retry-After, any other
4xx fails at once with the collector's answer. A batch retried after a lost answer may arrive twice: every message
carries its `message_id` so the collector can drop the copy.
"""

from __future__ import annotations

import functools

import dagster as dg
import httpx
from pydantic import Field

from synth_platform.sinks.http_retry import HttpTargetError, RetryPolicy, send_checked
from synth_platform.sinks.uris import without_credentials

CONTENT_TYPES = {"ndjson": "application/x-ndjson", "json": "application/json"}


class CollectorError(HttpTargetError):
    """A batch the collector refused or that kept failing; the message names the batch, status and reason."""


def encode_batch(payloads: list[bytes], body: str) -> bytes:
    """The request body of a batch: NDJSON lines or one JSON array of the same objects."""
    if body == "json":
        return b"[" + b",".join(payloads) + b"]"
    return b"\n".join(payloads) + b"\n"


@functools.cache
def _client(timeout: float) -> httpx.Client:
    # One pooled client per process: batches reuse keep-alive connections.
    return httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


class CollectorResource(dg.ConfigurableResource):
    """An HTTP collector: SYNTH_COLLECTOR_URL, with SYNTH_COLLECTOR_TOKEN as a bearer token when set."""

    url: str = Field("http://127.0.0.1:8080/readings", description="URL the batches are POSTed to")
    token: str = Field("", description="Bearer token (empty: none); never logged")
    max_attempts: int = Field(6, ge=1, description="Attempts per batch on 429/5xx/connection errors")
    backoff_seconds: float = Field(0.5, ge=0, description="First backoff; doubles per attempt")
    max_wait_seconds: float = Field(60.0, ge=0, description="Longest single wait, whatever Retry-After says")
    timeout_seconds: float = Field(60.0, gt=0, description="Per-request timeout")

    @property
    def target(self) -> str:
        """The URL without credentials or query (which may hold a key)."""
        return without_credentials(self.url)

    def post_batch(self, payloads: list[bytes], body: str) -> int:
        """POST one batch of messages (retrying 429 and 5xx); returns the requests it took."""
        if body not in CONTENT_TYPES:
            raise ValueError(f"body must be one of {sorted(CONTENT_TYPES)}, got {body!r}")
        _, attempts = send_checked(
            _client(self.timeout_seconds),
            "POST",
            self.url,
            RetryPolicy(self.max_attempts, self.backoff_seconds, self.max_wait_seconds, frozenset(range(500, 600))),
            what=f"collector {self.target}: batch of {len(payloads)} messages",
            where=self.target,
            token=self.token,
            redact=self._redact,
            error=CollectorError,
            hint=lambda status: f"a {status} will not change on a retry",
            content=encode_batch(payloads, body),
            headers={"Content-Type": CONTENT_TYPES[body]},
        )
        return attempts

    def _redact(self, text: str) -> str:
        text = text.replace(self.url, self.target)
        return text.replace(self.token, "***") if self.token else text
