"""Replacing a prefix of a store (stores.py) with new files, the same way for every store:

(1) the prefix's old manifest is deleted, so a reader never sees a manifest over files being changed; (2) the new
files are written under deterministic names, each with a running CRC32C: on a local folder in place under a temp
name, synced as it grows, then renamed; on an object store into a bounded local staging area, from which a
bounded pool puts them (each put retried and verified by CRC32C, the staged file removed only once confirmed);
(3) objects under the prefix that the write did not produce (stale parts, the live slices a whole day replaces)
are deleted; (4) `_manifest.json` is written last. A failed put fails the write before step 3: no manifest, and the
staged file stays on disk, named in the error.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c
import orjson

from synth_platform.sinks.stores import TMP_SUFFIX, Store, UploadFailed, crc32c_b64, short_reason
from synth_platform.sinks.writeback import Writeback

MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class Staging:
    """Where files bound for an object store wait for their put, and how many puts run at once."""

    directory: Path
    limit_bytes: int
    workers: int


@dataclass
class FileEntry:
    name: str  # relative to the prefix
    rows: int
    bytes: int
    crc32c: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes, "crc32c": self.crc32c, **self.extra}

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> FileEntry:
        known = {"name", "rows", "bytes", "crc32c"}
        return cls(**{k: entry[k] for k in known}, extra={k: v for k, v in entry.items() if k not in known})


@dataclass(frozen=True)
class PrefixResult:
    prefix: str
    files: list[FileEntry]
    deleted: int
    manifest: dict[str, Any]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


class StagedFile:
    """A file being written: counts bytes and rows and keeps a running CRC32C. A `durable` file (a local store's)
    is handed to the disk as it grows and synced when done, so a manifest never lists data still in memory."""

    def __init__(self, path: Path, name: str, durable: bool = False):
        self.path, self.name, self.durable = path, name, durable
        self.handle: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by PrefixWriter
        self.crc = google_crc32c.Checksum()
        self.bytes = 0
        self.rows = 0
        self.extra: dict[str, Any] = {}
        self._writeback = Writeback(self.handle) if durable else None

    def write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)
        self.crc.update(data)
        self.bytes += len(data)
        if self._writeback is not None:
            self._writeback.grew(self.bytes)

    def close(self) -> None:
        if self.durable and not self.handle.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        self.handle.close()

    def entry(self) -> FileEntry:
        return FileEntry(self.name, self.rows, self.bytes, crc32c_b64(self.crc), self.extra)


@contextmanager
def replacing(store: Store, prefix: str, staging: Staging, also_remove: Iterable[str] = ()) -> Iterator[PrefixWriter]:
    """Replace everything under `prefix` (and under each of `also_remove`) with the files written through the
    yielded writer; call `commit(manifest)` on it to finish. Without a commit nothing is deleted and no manifest
    is written."""
    if not prefix.endswith("/"):
        raise ValueError(f"prefix {prefix!r} must end with '/'")
    store.delete([prefix + MANIFEST])
    writer = PrefixWriter(store, prefix, list(also_remove), staging)
    try:
        yield writer
    finally:
        writer.close()


class PrefixWriter:
    """Writes the files of one prefix; see `replacing`."""

    def __init__(self, store: Store, prefix: str, also_remove: list[str], staging: Staging):
        self.store, self.prefix, self.also_remove = store, prefix, also_remove
        self.files: list[FileEntry] = []
        self._puts: list[tuple[str, Future]] = []
        self._staged = 0
        self._limit = staging.limit_bytes
        self._room = threading.Condition()
        in_place = store.local_dir(prefix)
        if in_place is None:
            safe = prefix.strip("/").replace("/", "_").replace("=", "-")
            self.staging = staging.directory / "synth-staging" / f"{safe}-{uuid.uuid4().hex[:8]}"
            self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(staging.workers, "upload")
        else:
            self.staging = in_place
            self._pool = None
        self.staging.mkdir(parents=True, exist_ok=True)
        self._committed = False

    @contextmanager
    def open(self, name: str) -> Iterator[StagedFile]:
        """A file of this prefix. For an object store, opening waits while the staging area holds its limit."""
        if self._pool is not None:
            with self._room:
                self._room.wait_for(lambda: self._staged < self._limit)
            staged = StagedFile(self.staging / name, name)
        else:
            staged = StagedFile(self.staging / f".{name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}", name, durable=True)
        try:
            yield staged
        except BaseException:
            staged.handle.close()
            staged.path.unlink(missing_ok=True)
            raise
        staged.close()
        entry = staged.entry()
        self.files.append(entry)
        if self._pool is None:
            self.store.put_file(staged.path, self.prefix + name, entry.crc32c)
            return
        with self._room:
            self._staged += entry.bytes
        self._puts.append((name, self._pool.submit(self._put, staged.path, entry)))

    def _put(self, local: Path, entry: FileEntry) -> None:
        try:
            self.store.put_file(local, self.prefix + entry.name, entry.crc32c)
        finally:
            with self._room:
                self._staged -= entry.bytes
                self._room.notify_all()

    def adopt(self, entries: Iterable[FileEntry]) -> None:
        """Files of this prefix that other writers put there (the shards of a window), listed by `commit` in order
        after this writer's own. They must be in the store already."""
        self.files.extend(entries)

    def finish(self) -> list[FileEntry]:
        """Wait for every put (raising UploadFailed if one failed) and return the files written, without deleting
        anything or writing a manifest: a shard's part of a prefix that another writer commits."""
        self._wait()
        self._committed = True  # its staging is done with
        return list(self.files)

    def commit(self, manifest: dict[str, Any]) -> PrefixResult:
        """Wait for every put, delete what the write did not produce, then write the manifest."""
        self._wait()
        keep = {self.prefix + f.name for f in self.files}
        existing = self.store.list(self.prefix)
        for other in self.also_remove:
            existing.update(self.store.list(other))
        stale = [n for n in existing if n not in keep and n != self.prefix + MANIFEST]
        deleted = self.store.delete(stale)
        self.store.settle(self.prefix)
        body = {
            **manifest,
            "files": [f.as_json() for f in self.files],
            "rows": sum(f.rows for f in self.files),
            "bytes": sum(f.bytes for f in self.files),
        }
        self.store.put_bytes(self.prefix + MANIFEST, orjson.dumps(body, option=orjson.OPT_INDENT_2))
        self._committed = True
        return PrefixResult(self.prefix, list(self.files), deleted, body)

    def _wait(self) -> None:
        failed = []
        for name, future in self._puts:
            error = future.exception()
            if error is not None:
                failed.append(f"{name}: {short_reason(error)}")
        if failed:
            raise UploadFailed(
                f"{len(failed)} of {len(self._puts)} uploads to {self.store.uri(self.prefix)} failed, so the "
                f"prefix has no manifest (incomplete); the files stay in {self.staging}:\n  " + "\n  ".join(failed)
            )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            if self._committed:
                shutil.rmtree(self.staging, ignore_errors=True)
