"""moto's S3 server in-process on a free loopback port, reached with the real boto3 and delta-rs clients."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.s3.exceptions import AccessForbidden
from moto.s3.models import S3Backend
from moto.server import ThreadedMotoServer

from synth_platform_tests.services import serving_on_loopback


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    client: Any  # boto3 S3 client

    def keys(self, prefix: str = "") -> dict[str, int]:
        """Every object under `prefix` with its size."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture(scope="module")
def _moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    with serving_on_loopback(lambda host, port: ThreadedMotoServer(ip_address=host, port=port, verbose=False)) as url:
        yield url


@pytest.fixture
def s3(_moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """A fresh bucket per test, with the credentials and endpoint in the environment as a user would set them."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": _moto_endpoint}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=_moto_endpoint, region_name="us-east-1")
    bucket = f"synth-test-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    return S3Server(_moto_endpoint, bucket, client)


@contextmanager
def puts(refuse: str | None = None) -> Iterator[list[str]]:
    """Records, in order, the key of every object the server stores (a single put or a completed multipart
    upload); with `refuse`, every put of a key containing it is refused (each attempt reaches the server and
    fails, as a store that keeps failing would), and its key is recorded with a `refused:` prefix."""
    seen: list[str] = []
    original = S3Backend.put_object

    def put_object(self, bucket_name: str, key_name: str, *args, **kwargs):
        if refuse is not None and refuse in key_name:
            seen.append(f"refused:{key_name}")
            raise AccessForbidden("injected failure")
        key = original(self, bucket_name, key_name, *args, **kwargs)
        seen.append(key_name)
        return key

    S3Backend.put_object = put_object
    try:
        yield seen
    finally:
        S3Backend.put_object = original
