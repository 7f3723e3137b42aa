"""Where bucket files live: a small store protocol and its stores (a local folder, GCS, S3). A store lists, reads,
puts (atomically, verified by CRC32C) and deletes objects named relative to its root; everything about writing a
prefix (staging, checksums, stale files, the manifest last) is written once, against this protocol, in
prefix_writer.py. Adding a store is one class here and one branch in `store_for`."""

from __future__ import annotations

import base64
import functools
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import google_crc32c
from google.api_core.exceptions import NotFound as NotFoundError

TMP_SUFFIX = ".tmp"
_ABANDONED_TMP_S = 3600.0  # a write of one prefix takes seconds; an hour-old temp file belongs to a dead run


class UploadFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    name: str  # relative to the store's root
    size: int
    crc32c: str | None  # base64 of the big-endian CRC32C (GCS's format); None when not known without reading


def crc32c_b64(checksum: google_crc32c.Checksum) -> str:
    return base64.b64encode(checksum.digest()).decode()


class Store(Protocol):
    """Objects under a root. Names are relative to the root; a missing object reads as FileNotFoundError."""

    def uri(self, name: str = "") -> str: ...

    def local_dir(self, prefix: str) -> Path | None:
        """The folder holding `prefix` when the store is one on this machine's disk (files are then written in
        place, synced as they grow, and renamed into their names), else None (files are staged, then put)."""

    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        """Objects whose name starts with `prefix`."""

    def read(self, name: str) -> bytes: ...

    def checksum(self, info: ObjectInfo) -> str:
        """The object's CRC32C (base64, big-endian), from the store's metadata or by reading it."""

    def put_file(self, local: Path, name: str, crc32c: str) -> None:
        """Move a finished local file in as `name`, atomically, verified against its CRC32C; `local` is gone
        once this returns."""

    def put_bytes(self, name: str, data: bytes) -> None:
        """Write a small object (a manifest) atomically and durably."""

    def delete(self, names: Iterable[str]) -> int: ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many."""

    def settle(self, prefix: str) -> None:
        """After a prefix's stale objects are deleted and before its manifest: make what was written durable."""


def retrying(action: Callable[[], Any], attempts: int, backoff_seconds: float, where: str) -> Any:
    """`action()`, tried up to `attempts` times with a doubling delay; a missing object is an answer, not a
    failure, and is raised at once."""
    delay = backoff_seconds
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (FileNotFoundError, NotFoundError):
            raise
        except Exception as exc:
            if attempt == attempts:
                raise UploadFailed(f"{where}: gave up after {attempt} attempts: {short_reason(exc)}") from exc
            time.sleep(delay)
            delay *= 2
    return None


def short_reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


class LocalStore:
    """A folder on this machine. Files are renamed into place and synced, so a manifest never lists data still
    in memory; half-written files of a killed run keep a temp name and are swept up by a later write."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    def uri(self, name: str = "") -> str:
        return str(self.root / name)

    def local_dir(self, prefix: str) -> Path:
        return self.root / prefix

    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        folder = self.root / prefix if prefix.endswith("/") or not prefix else (self.root / prefix).parent
        if not folder.is_dir():
            return {}
        out = {}
        for path in folder.rglob("*"):
            name = path.relative_to(self.root).as_posix()
            if path.is_file() and name.startswith(prefix) and not path.name.endswith(TMP_SUFFIX):
                out[name] = ObjectInfo(name, path.stat().st_size, None)
        return out

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def checksum(self, info: ObjectInfo) -> str:
        crc = google_crc32c.Checksum()
        with open(self.root / info.name, "rb") as f:
            for chunk in iter(lambda: f.read(8 << 20), b""):
                crc.update(chunk)
        return crc32c_b64(crc)

    def put_file(self, local: Path, name: str, crc32c: str) -> None:
        os.replace(local, self.root / name)  # synced while written (a durable staged file), made durable by settle

    def put_bytes(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_dir(path.parent)

    def delete(self, names: Iterable[str]) -> int:
        names = list(names)
        for name in names:
            (self.root / name).unlink(missing_ok=True)
        return len(names)

    def delete_prefix(self, prefix: str) -> int:
        deleted = self.delete(self.list(prefix))
        folder = self.root / prefix
        if prefix.endswith("/") and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)  # temp files of killed runs and the emptied folders
        return deleted

    def settle(self, prefix: str) -> None:
        folder = self.root / prefix
        _remove_abandoned_tmp(folder)
        _remove_empty_dirs(folder)
        _sync_dir(folder)  # the files' renames reach the disk before the manifest


def _remove_abandoned_tmp(root: Path, older_than_s: float = _ABANDONED_TMP_S) -> None:
    """Half-written files of a killed run: old enough that no live writer can still own them."""
    if not root.is_dir():
        return
    cutoff = time.time() - older_than_s
    for path in root.rglob(f"*{TMP_SUFFIX}"):
        with suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _remove_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def _sync_dir(path: Path) -> None:
    """Make the renames in a folder durable (POSIX; a no-op where folders cannot be opened)."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@functools.cache
def _gcs_bucket(project: str | None, bucket: str, emulator: str | None) -> Any:
    from dagster_gcp import GCSResource

    return GCSResource(project=project).get_client().bucket(bucket)


class _ObjectStore(ABC):
    """What the bucket stores share: `scheme://bucket/base/` naming, retried requests, durability on put."""

    scheme: str

    def __init__(self, url: str, attempts: int, backoff_seconds: float):
        bucket, _, base = url.removeprefix(f"{self.scheme}://").partition("/")
        self.bucket_name = bucket
        self.base = base.strip("/") + "/" if base.strip("/") else ""
        self.attempts, self.backoff_seconds = attempts, backoff_seconds

    def uri(self, name: str = "") -> str:
        return f"{self.scheme}://{self.bucket_name}/{self.base}{name}"

    @abstractmethod
    def list(self, prefix: str) -> dict[str, ObjectInfo]: ...

    @abstractmethod
    def delete(self, names: Iterable[str]) -> int: ...

    def delete_prefix(self, prefix: str) -> int:
        return self.delete(self.list(prefix))

    def settle(self, prefix: str) -> None:
        return None  # an object is durable once its put returned

    def _retrying(self, action: Callable[[], Any]) -> Any:
        return retrying(action, self.attempts, self.backoff_seconds, self.uri())


class GcsStore(_ObjectStore):
    """gs://bucket/prefix through dagster-gcp's GCSResource (STORAGE_EMULATOR_HOST honoured). Every request is
    retried with exponential backoff, a put is verified against the CRC32C GCS computed."""

    scheme = "gs"

    def __init__(self, url: str, project: str | None, attempts: int, backoff_seconds: float):
        super().__init__(url, attempts, backoff_seconds)
        self.project = project

    def _bucket(self) -> Any:
        return _gcs_bucket(self.project, self.bucket_name, os.environ.get("STORAGE_EMULATOR_HOST"))

    def local_dir(self, prefix: str) -> None:
        return None

    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        blobs = self._retrying(
            lambda: list(self._bucket().client.list_blobs(self._bucket(), prefix=self.base + prefix))
        )
        cut = len(self.base)
        return {b.name[cut:]: ObjectInfo(b.name[cut:], int(b.size), b.crc32c) for b in blobs}

    def read(self, name: str) -> bytes:
        try:
            return self._retrying(lambda: self._bucket().blob(self.base + name).download_as_bytes())
        except NotFoundError as exc:
            raise FileNotFoundError(self.uri(name)) from exc

    def checksum(self, info: ObjectInfo) -> str:
        if info.crc32c is None:  # listed objects always carry it; read it when given a bare name
            info = self.list(info.name)[info.name]
        return info.crc32c  # type: ignore[return-value]

    def put_file(self, local: Path, name: str, crc32c: str) -> None:
        blob = self._bucket().blob(self.base + name)

        def attempt() -> None:
            blob.upload_from_filename(str(local), checksum="crc32c", retry=None)  # retried here, bounded
            if blob.crc32c != crc32c:
                raise UploadFailed(f"{self.uri(name)}: stored CRC32C {blob.crc32c} differs from the file's {crc32c}")

        self._retrying(attempt)
        local.unlink()  # only once the object is confirmed

    def put_bytes(self, name: str, data: bytes) -> None:
        blob = self._bucket().blob(self.base + name)
        self._retrying(
            lambda: blob.upload_from_string(data, content_type="application/json", checksum="crc32c", retry=None)
        )

    def delete(self, names: Iterable[str]) -> int:
        names = list(names)
        for name in names:
            self._retrying(lambda n=name: self._delete_one(n))
        return len(names)

    def _delete_one(self, name: str) -> None:
        with suppress(NotFoundError):
            self._bucket().blob(self.base + name).delete()


@functools.cache
def _s3_client(endpoint: str | None, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    # Credentials as boto3 finds them; endpoint and region are the cache key, so another S3-compatible store gets
    # its own client. One attempt per call: S3Store retries whole operations (a put with its verification).
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=64)
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)


# Each request carries the CRC32C of its body, which S3 checks against what it received (a refused request is
# retried); S3 stores the whole object's CRC32C (FULL_OBJECT: also for multipart uploads, combined from the parts).
_CRC32C_UPLOAD = {"ChecksumAlgorithm": "CRC32C", "ChecksumType": "FULL_OBJECT"}


class S3Store(_ObjectStore):
    """s3://bucket/prefix through boto3: AWS, or an S3-compatible store (MinIO, R2, Ceph) at AWS_ENDPOINT_URL.
    A file goes up with boto3's managed transfer (multipart above `part_mb`, its parts put by a bounded pool),
    each request checksummed (CRC32C) and verified by S3; the put counts only once the CRC32C S3 stored for the
    whole object equals the one computed while the file was written, so what is listed in a manifest is what the
    writer produced."""

    scheme = "s3"

    def __init__(self, url: str, attempts: int, backoff_seconds: float, part_mb: int = 64, part_workers: int = 4):
        from boto3.s3.transfer import TransferConfig

        super().__init__(url, attempts, backoff_seconds)
        part = part_mb << 20
        self.transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=part_workers)

    def _client(self) -> Any:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return _s3_client(os.environ.get("AWS_ENDPOINT_URL") or None, region or None)

    def local_dir(self, prefix: str) -> None:
        return None

    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        def pages() -> list[dict]:
            paginator = self._client().get_paginator("list_objects_v2")
            return list(paginator.paginate(Bucket=self.bucket_name, Prefix=self.base + prefix))

        cut = len(self.base)
        objects = (o for page in self._retrying(pages) for o in page.get("Contents", []))
        return {o["Key"][cut:]: ObjectInfo(o["Key"][cut:], int(o["Size"]), None) for o in objects}

    def read(self, name: str) -> bytes:
        def get() -> bytes:
            try:
                return self._client().get_object(Bucket=self.bucket_name, Key=self.base + name)["Body"].read()
            except self._client().exceptions.NoSuchKey as exc:
                raise FileNotFoundError(self.uri(name)) from exc

        return self._retrying(get)

    def checksum(self, info: ObjectInfo) -> str:
        stored = self._stored_crc32c(info.name)
        if stored is not None and "-" not in stored:
            return stored
        crc = google_crc32c.Checksum()  # no full-object CRC32C stored (written by another tool): read it
        crc.update(self.read(info.name))
        return crc32c_b64(crc)

    def _stored_crc32c(self, name: str) -> str | None:
        head = self._retrying(
            lambda: self._client().head_object(Bucket=self.bucket_name, Key=self.base + name, ChecksumMode="ENABLED")
        )
        return head.get("ChecksumCRC32C")

    def put_file(self, local: Path, name: str, crc32c: str) -> None:
        def attempt() -> None:
            self._client().upload_file(
                str(local), self.bucket_name, self.base + name, ExtraArgs=_CRC32C_UPLOAD, Config=self.transfer
            )
            stored = self._stored_crc32c(name)
            if stored != crc32c:
                raise UploadFailed(f"{self.uri(name)}: stored CRC32C {stored} differs from the file's {crc32c}")

        self._retrying(attempt)
        local.unlink()  # only once the object is confirmed

    def put_bytes(self, name: str, data: bytes) -> None:
        self._retrying(
            lambda: self._client().put_object(
                Bucket=self.bucket_name, Key=self.base + name, Body=data, ContentType="application/json",
                ChecksumAlgorithm="CRC32C",
            )
        )  # fmt: skip

    def delete(self, names: Iterable[str]) -> int:
        names = list(names)
        for start in range(0, len(names), 1000):  # DeleteObjects takes at most 1,000 keys
            keys = [{"Key": self.base + n} for n in names[start : start + 1000]]
            self._retrying(lambda k=keys: self._delete_batch(k))
        return len(names)

    def _delete_batch(self, keys: list[dict[str, str]]) -> None:
        answer = self._client().delete_objects(Bucket=self.bucket_name, Delete={"Objects": keys, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            raise UploadFailed(f"{self.uri()}: {len(errors)} deletes refused, e.g. {errors[0].get('Message')}")


def store_for(
    url: str, project: str | None = None, attempts: int = 5, backoff_seconds: float = 0.5, part_mb: int = 64
) -> Store:
    """The store a bucket URL names: gs://bucket/prefix, s3://bucket/prefix, else a local folder."""
    if url.startswith("gs://"):
        return GcsStore(url, project, attempts, backoff_seconds)
    if url.startswith("s3://"):
        return S3Store(url, attempts, backoff_seconds, part_mb)
    return LocalStore(url)
