"""Reaching the real servers on this machine. In CI (CI=true) a missing server fails; locally it skips."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import pytest
import sqlalchemy as sa

POSTGRES_ADMIN_URL = os.environ.get("SYNTH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get("SYNTH_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
RABBITMQ_URL = os.environ.get("SYNTH_TEST_RABBITMQ_URL", "pyamqp://guest:guest@127.0.0.1:5672//")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ThreadedServer(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


@contextmanager
def serving_on_loopback(make: Callable[[str, int], _ThreadedServer]) -> Iterator[str]:
    """Starts the server `make(host, port)` builds (one that serves on a thread of its own) on a free loopback
    port; yields its http:// URL and stops it afterwards."""
    host, port = "127.0.0.1", free_port()
    server = make(host, port)
    server.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unavailable(what: str, why: object) -> None:
    message = f"{what} is not reachable: {why}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI requires every real service)")
    pytest.skip(message)


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server for one test session, dropped afterwards."""
    name = f"synth_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable(sa.make_url(admin_url).render_as_string(hide_password=True), str(exc.orig).splitlines()[0])
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        from synth_platform.sinks.database import _engine

        _engine.cache_clear()  # close pooled connections so the drop is not blocked
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def rabbitmq_url() -> str:
    """The RabbitMQ broker's URL once a connection to it succeeds (fails in CI, skips locally, otherwise)."""
    from kombu import Connection

    from synth_platform.execution.settings import redact

    try:
        with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # kombu raises the transport's own errors (socket, AMQP access refused, ...)
        unavailable(redact(RABBITMQ_URL), exc)
    return RABBITMQ_URL


def dagster_pg_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for a database URL (a scratch database)."""
    parsed = sa.make_url(url)
    return {
        "DAGSTER_PG_HOST": parsed.host,
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_USER": parsed.username,
        "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_DB": parsed.database,
    }
