"""Bucket target: files under a local folder or a GCS bucket (gs://bucket/prefix), replaced a prefix at a time.

Layout of a windowed stream (see `window_prefix`):
  <stream>/dt=YYYY-MM-DD/part-00000.ndjson.gz ... _manifest.json        a whole UTC day
  <stream>/dt=YYYY-MM-DD/slice=HHMMSS-HHMMSS/part-00000... _manifest.json  a part of a day (live windows)

The objects live in a store (stores.py: a local folder, GCS); a prefix is replaced through prefix_writer.py
(staging, CRC32C, stale files removed, the manifest last), the same for every store.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
from pydantic import Field

from synth_platform.sinks.prefix_writer import MANIFEST, PrefixWriter, Staging, replacing
from synth_platform.sinks.stores import ObjectInfo, Store, store_for
from synth_platform.world.windows import DAY_SECONDS, PARTITION_FORMAT, Window, from_epoch


def window_prefix(stream: str, window: Window) -> str:
    """dt=D/ for a whole day, dt=D/slice=HHMMSS-HHMMSS/ for a part of one (never across midnight)."""
    day = from_epoch(window.start_s - window.start_s % DAY_SECONDS)
    if window.end_s - (window.start_s - window.start_s % DAY_SECONDS) > DAY_SECONDS:
        raise ValueError(f"window {window} crosses midnight; write it a day at a time")
    base = f"{stream}/dt={day.strftime(PARTITION_FORMAT)}/"
    if window.seconds == DAY_SECONDS:
        return base
    end = window.end_s - day.timestamp()
    return f"{base}slice={window.start.strftime('%H%M%S')}-{int(end) // 3600:02d}{window.end.strftime('%M%S')}/"


def slice_window(day_prefix: str, slice_name: str) -> Window | None:
    """The window of a `slice=HHMMSS-HHMMSS` folder of a day prefix, None for anything else."""
    if not slice_name.startswith("slice=") or len(slice_name) != 19:
        return None
    day = Window.for_day(day_prefix.rstrip("/").rsplit("dt=", 1)[1])
    lo, hi = slice_name[6:12], slice_name[13:19]

    def seconds(t: str) -> int:
        return int(t[:2]) * 3600 + int(t[2:4]) * 60 + int(t[4:])

    return Window(from_epoch(day.start_s + seconds(lo)), from_epoch(day.start_s + seconds(hi)))


BUCKET_KIND = "bucket"  # the kind assets declare for the bucket; `bucket_kind` names the configured store


def bucket_kind(url: str) -> str:
    """The UI kind of a bucket URL: gcs for gs://, s3 for s3://, file for a local folder."""
    return {"gs": "gcs", "s3": "s3"}.get(url.split("://", 1)[0] if "://" in url else "", "file")


class BucketResource(dg.ConfigurableResource):
    """Files in a local folder, under gs://bucket/prefix (dagster-gcp's GCSResource) or s3://bucket/prefix (boto3;
    AWS_ENDPOINT_URL for S3-compatible stores): SYNTH_BUCKET_URL."""

    url: str = Field(description="gs://bucket/prefix, s3://bucket/prefix, or a local folder")
    project: str | None = Field(None, description="GCP project of the bucket (GCS only)")
    upload_workers: int = Field(8, ge=1, le=64, description="Concurrent uploads (GCS, S3)")
    part_mb: int = Field(64, ge=5, le=5000, description="S3: files above this go up in parts of this size")
    staging_dir: str = Field("", description="Local staging folder for uploads (default: the system temp folder)")
    staging_mb: int = Field(1024, ge=1, description="Staged bytes waiting for upload before writing pauses")
    attempts: int = Field(5, ge=1, description="Tries per object before the write fails")
    retry_backoff_seconds: float = Field(0.5, ge=0, description="First retry delay; doubles per attempt")

    @property
    def store(self) -> Store:
        return store_for(self.url, self.project, self.attempts, self.retry_backoff_seconds, self.part_mb)

    def uri(self, name: str = "") -> str:
        return self.store.uri(name)

    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        """Objects whose name starts with `prefix` (names relative to the bucket root)."""
        return self.store.list(prefix)

    def read_bytes(self, name: str) -> bytes:
        return self.store.read(name)

    def checksum(self, info: ObjectInfo) -> str:
        """CRC32C of an object: from GCS's metadata, or by reading a local file."""
        return self.store.checksum(info)

    def manifest(self, prefix: str) -> dict[str, Any] | None:
        try:
            return orjson.loads(self.store.read(prefix + MANIFEST))
        except FileNotFoundError:
            return None

    def replace_prefix(self, prefix: str, also_remove: Iterable[str] = ()) -> AbstractContextManager[PrefixWriter]:
        """Replace everything under `prefix` (and under each of `also_remove`) with the files written through the
        yielded writer (see prefix_writer.py); without a commit nothing is deleted and no manifest is written."""
        root = Path(self.staging_dir) if self.staging_dir else Path(os.environ.get("TMPDIR", "/tmp"))
        staging = Staging(root, self.staging_mb * 1_000_000, self.upload_workers)
        return replacing(self.store, prefix, staging, also_remove)

    def delete(self, names: Iterable[str]) -> int:
        return self.store.delete(names)

    def delete_before(self, stream: str, cutoff_day: date) -> int:
        """Delete whole days of `stream` before `cutoff_day` (retention); each day's manifests go first."""
        store, deleted = self.store, 0
        days = {n[len(stream) + 4 :].split("/", 1)[0] for n in store.list(f"{stream}/dt=")}
        for day in sorted(d for d in days if d < cutoff_day.strftime(PARTITION_FORMAT)):
            prefix = f"{stream}/dt={day}/"
            deleted += store.delete([n for n in store.list(prefix) if n.endswith("/" + MANIFEST)])
            deleted += store.delete_prefix(prefix)
        return deleted


def replaced_slices(bucket: BucketResource, stream: str, window: Window) -> list[str] | None:
    """What a write of `window` replaces besides its own prefix: the live slices of its day it covers. None when
    its rows are there already (the whole day, or a slice holding the window, is written), so a day's files never
    hold a row twice whatever order partition runs and live windows come in."""
    prefix = window_prefix(stream, window)
    day_prefix = window_prefix(stream, Window.for_day(window.start.date()))
    also_remove: list[str] = []
    if prefix == day_prefix:
        return also_remove  # a day's prefix holds its slices: the write replaces them anyway
    if bucket.manifest(day_prefix) is not None:
        return None
    folders = {n[len(day_prefix) :].split("/", 1)[0] for n in bucket.list(day_prefix + "slice=")}
    for folder in folders:
        other, other_prefix = slice_window(day_prefix, folder), day_prefix + folder + "/"
        if other is None or other_prefix == prefix:
            continue
        if other.start <= window.start and window.end <= other.end and bucket.manifest(other_prefix) is not None:
            return None  # e.g. a late slice arriving after a partition run wrote the open day up to past it
        if window.start <= other.start and other.end <= window.end:
            also_remove.append(other_prefix)
    return also_remove
