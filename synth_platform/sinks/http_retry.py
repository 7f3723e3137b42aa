"""Sending an HTTP request with retries, shared by every HTTP target (Tinybird, telemetry collectors).

429 and the given 5xx statuses are retried: the wait is the server's `Retry-After` (seconds or an HTTP date; else
`X-RateLimit-Reset`), else an exponential backoff, never longer than `max_wait_seconds`. Connection errors back off
too. Any other status is the caller's to judge, at once: a 4xx will not get better by sending it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    backoff_seconds: float  # first wait; doubles per attempt
    max_wait_seconds: float
    retry_status: frozenset[int] = frozenset({500, 502, 503, 504})

    def retries(self, status: int) -> bool:
        return status == 429 or status in self.retry_status


def send_with_retries(
    client: httpx.Client, method: str, url: str, policy: RetryPolicy, **kwargs: Any
) -> tuple[httpx.Response, int]:
    """The first response not worth retrying (or the last one), and the attempts it took. The last connection
    error propagates."""
    delay = policy.backoff_seconds
    for attempt in range(1, policy.attempts + 1):
        last = attempt == policy.attempts
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TransportError:
            if last:
                raise
            time.sleep(min(delay, policy.max_wait_seconds))
            delay *= 2
            continue
        if last or not policy.retries(response.status_code):
            return response, attempt
        time.sleep(min(retry_after(response, delay), policy.max_wait_seconds))
        delay *= 2
    raise AssertionError("unreachable")


def retry_after(response: httpx.Response, fallback: float) -> float:
    """Seconds the server asks to wait, from Retry-After (seconds or an HTTP date) or X-RateLimit-Reset."""
    for header in ("Retry-After", "X-RateLimit-Reset"):
        value = response.headers.get(header)
        if not value:
            continue
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
        except (TypeError, ValueError):
            continue
    return fallback
