"""gcp-storage-emulator in-process, reached by the real google-cloud-storage client through STORAGE_EMULATOR_HOST.

`fail_uploads` makes the emulator answer 503 to uploads of objects whose name contains a marker, to show what a
failed upload does to a write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus

import pytest
from gcp_storage_emulator.handlers import objects
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from synth_platform.sinks.stores import _gcs_bucket
from synth_platform_tests.services import serving_on_loopback


@pytest.fixture(scope="session")
def gcs_host() -> Iterator[str]:
    with serving_on_loopback(lambda host, port: create_server(host, port, in_memory=True)) as url:
        yield url


@pytest.fixture
def gcs_bucket_url(gcs_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the emulator, as gs://bucket/prefix."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_host)
    name = f"synth-{uuid.uuid4().hex[:10]}"
    storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket(name)
    _gcs_bucket.cache_clear()
    return f"gs://{name}/data"


@contextmanager
def fail_uploads(marker: str) -> Iterator[list[str]]:
    """Uploads of objects whose name contains `marker` get 503 (every attempt); yields the names refused."""
    refused: list[str] = []
    originals = {n: getattr(objects, n) for n in ("_multipart_upload", "_media_upload", "_create_resumable_upload")}

    def wrap(original):
        def handler(request, response, store):
            name = request.query.get("name", [None])[0]
            if name is None and isinstance(request.data, dict):
                name = (request.data.get("meta") or {}).get("name")
            if name and marker in name:
                refused.append(name)
                response.status = HTTPStatus.SERVICE_UNAVAILABLE
                return None
            return original(request, response, store)

        return handler

    for n, original in originals.items():
        setattr(objects, n, wrap(original))
    try:
        yield refused
    finally:
        for n, original in originals.items():
            setattr(objects, n, original)
