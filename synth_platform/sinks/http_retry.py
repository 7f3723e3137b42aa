"""Sending an HTTP request with retries, shared by every HTTP target (Tinybird, telemetry collectors).

429 and the given 5xx statuses are retried: the wait is the server's `Retry-After` (seconds or an HTTP date; else
`X-RateLimit-Reset`), else an exponential backoff, never longer than `max_wait_seconds`. Connection errors back off
too. Any other status fails at once: a 4xx will not get better by sending it again. `send_checked` adds what every
target does around that: the bearer token, and one error naming the call, the status and the target's own text
(or that the target never answered), with secrets masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class HttpTargetError(RuntimeError):
    """A request a target refused, or that kept failing or never got an answer; `status` is the last HTTP status
    (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


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


def send_checked(
    client: httpx.Client,
    method: str,
    url: str,
    policy: RetryPolicy,
    *,
    what: str,
    where: str,
    token: str,
    redact: Callable[[str], str],
    error: Callable[[str, int | None], Exception],
    hint: Callable[[int], str],
    **kwargs: Any,
) -> tuple[httpx.Response, int]:
    """A 2xx response and the attempts it took, sent with `Authorization: Bearer <token>` when there is a token.
    Otherwise `error(message, status)`: "<what> failed: HTTP <status> <the target's text>", then "(gave up after
    N attempts)" for a status worth retrying or "(not retried: <hint(status)>)"; or "<what>: <where> unreachable
    after N attempts" when no answer came. Every message goes through `redact`."""
    headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        response, attempts = send_with_retries(client, method, url, policy, headers=headers, **kwargs)
    except httpx.TransportError as exc:
        raise error(redact(f"{what}: {where} unreachable after {policy.attempts} attempts: {exc!r}"), None) from None
    status = response.status_code
    if response.is_success:
        return response, attempts
    message = f"{what} failed: HTTP {status} {redact(error_text(response))}"
    if policy.retries(status):
        raise error(f"{message} (gave up after {attempts} attempts)", status)
    raise error(f"{message} (not retried: {hint(status)})", status)


def error_text(response: httpx.Response) -> str:
    """The reason and the target's own explanation: a JSON body's `error` or `message`, else the body."""
    try:
        body = response.json()
        text = body.get("error") or body.get("message") or str(body)
    except (ValueError, AttributeError):
        text = response.text
    return f"{response.reason_phrase}: {text.strip()[:500]}"


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
