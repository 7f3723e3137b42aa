"""Bucket target: files under a local folder or a GCS bucket (gs://bucket/prefix), replaced a prefix at a time.

Layout of a windowed stream (see `window_prefix`):
  <stream>/dt=YYYY-MM-DD/part-00000.ndjson.gz ... _manifest.json        a whole UTC day
  <stream>/dt=YYYY-MM-DD/slice=HHMMSS-HHMMSS/part-00000... _manifest.json  a part of a day (live windows)

Replacing a prefix: (1) its old manifest is deleted, so a reader never sees a manifest over files being changed;
(2) the new files are written under deterministic names (locally through a temp name, fsync and an atomic rename; to GCS
from a bounded local staging area by a bounded pool of uploads, each retried, verified by CRC32C, and only then
removed from staging); (3) objects under the prefix that the new write did not produce (stale parts, the live
slices a whole day replaces) are deleted; (4) `_manifest.json` is written last. A failed upload fails the write
before step 3: no manifest, and the staged file stays on disk, named in the error.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import dagster as dg
import google_crc32c
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound as NotFoundError
from pydantic import Field

from synth_platform.world.windows import DAY_SECONDS, PARTITION_FORMAT, Window, from_epoch

MANIFEST = "_manifest.json"
_TMP_SUFFIX = ".tmp"
_ABANDONED_TMP_S = 3600.0  # a write of one prefix takes seconds; an hour-old temp file belongs to a dead run
_WRITEBACK_BYTES = 16 << 20  # a local file starts going to disk every 16 MB, so its final fsync finds little left


class UploadFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    name: str  # relative to the bucket root
    size: int
    crc32c: str | None  # base64 of the big-endian CRC32C (GCS's format); None when not known without reading


@dataclass
class FileEntry:
    name: str  # relative to the prefix
    rows: int
    bytes: int
    crc32c: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes, "crc32c": self.crc32c, **self.extra}


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


def crc32c_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode()


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


@functools.cache
def _gcs_bucket(project: str | None, bucket: str, emulator: str | None) -> Any:
    from dagster_gcp import GCSResource

    return GCSResource(project=project).get_client().bucket(bucket)


class BucketResource(dg.ConfigurableResource):
    """Files in a local folder or under gs://bucket/prefix (SYNTH_BUCKET_URL), through dagster-gcp's GCSResource."""

    url: str = Field(description="gs://bucket/prefix, or a local folder")
    project: str | None = Field(None, description="GCP project of the bucket (GCS only)")
    upload_workers: int = Field(8, ge=1, le=64, description="Concurrent uploads (GCS)")
    staging_dir: str = Field("", description="Local staging folder for uploads (default: the system temp folder)")
    staging_mb: int = Field(1024, ge=1, description="Staged bytes waiting for upload before writing pauses")
    attempts: int = Field(5, ge=1, description="Tries per object before the write fails")
    retry_backoff_seconds: float = Field(0.5, ge=0, description="First retry delay; doubles per attempt")

    @property
    def is_gcs(self) -> bool:
        return self.url.startswith("gs://")

    def _split(self) -> tuple[str, str]:
        bucket, _, prefix = self.url.removeprefix("gs://").partition("/")
        return bucket, (prefix.strip("/") + "/" if prefix.strip("/") else "")

    @property
    def _root(self) -> Path:
        return Path(self.url).expanduser().resolve()

    def _bucket(self) -> Any:
        return _gcs_bucket(self.project, self._split()[0], os.environ.get("STORAGE_EMULATOR_HOST"))

    def uri(self, name: str = "") -> str:
        if self.is_gcs:
            bucket, base = self._split()
            return f"gs://{bucket}/{base}{name}"
        return str(self._root / name)

    # --- reading -------------------------------------------------------------------------------------------------

    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        """Objects whose name starts with `prefix` (names relative to the bucket root)."""
        if self.is_gcs:
            base = self._split()[1]
            blobs = self._retrying(lambda: list(self._bucket().client.list_blobs(self._bucket(), prefix=base + prefix)))
            return {
                b.name[len(base) :]: ObjectInfo(b.name[len(base) :], int(b.size), b.crc32c)
                for b in blobs
            }  # fmt: skip
        root, out = self._root, {}
        folder = root / prefix if prefix.endswith("/") or not prefix else (root / prefix).parent
        if not folder.is_dir():
            return {}
        for path in folder.rglob("*"):
            name = path.relative_to(root).as_posix()
            if path.is_file() and name.startswith(prefix) and not path.name.endswith(_TMP_SUFFIX):
                out[name] = ObjectInfo(name, path.stat().st_size, None)
        return out

    def read_bytes(self, name: str) -> bytes:
        if self.is_gcs:
            return self._retrying(lambda: self._bucket().blob(self._split()[1] + name).download_as_bytes())
        return (self._root / name).read_bytes()

    def checksum(self, info: ObjectInfo) -> str:
        """CRC32C of an object: from GCS's metadata, or by reading a local file."""
        if info.crc32c is not None:
            return info.crc32c
        crc = google_crc32c.Checksum()
        with open(self._root / info.name, "rb") as f:
            for chunk in iter(lambda: f.read(8 << 20), b""):
                crc.update(chunk)
        return base64.b64encode(crc.digest()).decode()

    def manifest(self, prefix: str) -> dict[str, Any] | None:
        try:
            return orjson.loads(self.read_bytes(prefix + MANIFEST))
        except (FileNotFoundError, NotFoundError):
            return None

    # --- writing -------------------------------------------------------------------------------------------------

    @contextmanager
    def replace_prefix(self, prefix: str, also_remove: Iterable[str] = ()) -> Iterator[PrefixWriter]:
        """Replace everything under `prefix` (and under each of `also_remove`) with the files written through the
        yielded writer; call `commit(manifest)` on it to finish. Without a commit nothing is deleted and no
        manifest is written."""
        if not prefix.endswith("/"):
            raise ValueError(f"prefix {prefix!r} must end with '/'")
        self.delete([prefix + MANIFEST])
        writer = PrefixWriter(self, prefix, list(also_remove))
        try:
            yield writer
        finally:
            writer.close()

    def delete(self, names: Iterable[str]) -> int:
        names = list(names)
        if self.is_gcs:
            base = self._split()[1]
            for name in names:
                self._retrying(lambda n=name: _ignore_missing(self._bucket().blob(base + n).delete))
        else:
            for name in names:
                (self._root / name).unlink(missing_ok=True)
        return len(names)

    def delete_before(self, stream: str, cutoff_day: date) -> int:
        """Delete whole days of `stream` before `cutoff_day` (retention); each day's manifest goes first."""
        deleted = 0
        for name, info in sorted(self.list(f"{stream}/dt=").items(), key=lambda kv: not kv[0].endswith(MANIFEST)):
            day = name[len(stream) + 4 :].split("/", 1)[0]
            if day < cutoff_day.strftime(PARTITION_FORMAT):
                deleted += self.delete([info.name])
        if not self.is_gcs:
            _remove_empty_dirs(self._root / stream)
        return deleted

    def _upload(self, local: Path, name: str, crc: str) -> None:
        blob = self._bucket().blob(self._split()[1] + name)

        def attempt() -> None:
            blob.upload_from_filename(str(local), checksum="crc32c", retry=None)  # retried here, bounded
            if blob.crc32c != crc:
                raise UploadFailed(f"{self.uri(name)}: stored CRC32C {blob.crc32c} differs from the file's {crc}")

        self._retrying(attempt)

    def _put_bytes(self, name: str, data: bytes) -> None:
        if self.is_gcs:
            blob = self._bucket().blob(self._split()[1] + name)
            self._retrying(
                lambda: blob.upload_from_string(data, content_type="application/json", checksum="crc32c", retry=None)
            )
            return
        path = self._root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_dir(path.parent)

    def _retrying(self, action: Callable[[], Any]) -> Any:
        delay = self.retry_backoff_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except (FileNotFoundError, NotFoundError):
                raise
            except Exception as exc:
                if attempt == self.attempts:
                    raise UploadFailed(f"{self.uri()}: gave up after {attempt} attempts: {_reason(exc)}") from exc
                time.sleep(delay)
                delay *= 2
        return None


def _ignore_missing(action: Callable[[], Any]) -> None:
    with suppress(NotFoundError):
        action()


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _remove_abandoned_tmp(root: Path, older_than_s: float = _ABANDONED_TMP_S) -> None:
    """Half-written files of a killed run: old enough that no live writer can still own them."""
    if not root.is_dir():
        return
    cutoff = time.time() - older_than_s
    for path in root.rglob(f"*{_TMP_SUFFIX}"):
        with suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _remove_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


class StagedFile:
    """A file being written: counts bytes and rows and keeps a running CRC32C. A `durable` file (a local bucket's)
    is handed to the disk as it grows and synced when done, so a manifest never lists data still in memory."""

    def __init__(self, path: Path, name: str, durable: bool = False):
        self.path, self.name, self.durable = path, name, durable
        self.handle: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by PrefixWriter
        self.crc = google_crc32c.Checksum()
        self.bytes = 0
        self.rows = 0
        self.extra: dict[str, Any] = {}
        self._handed_over = 0  # bytes whose writeback has been started

    def write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)
        self.crc.update(data)
        self.bytes += len(data)
        if self.durable and self.bytes - self._handed_over >= _WRITEBACK_BYTES:
            self.handle.flush()
            _start_writeback(self.handle.fileno(), self._handed_over, self.bytes - self._handed_over)
            self._handed_over = self.bytes

    def close(self) -> None:
        if self.durable and not self.handle.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        self.handle.close()

    def entry(self) -> FileEntry:
        return FileEntry(self.name, self.rows, self.bytes, base64.b64encode(self.crc.digest()).decode(), self.extra)


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range to disk without waiting (Linux starts writeback on DONTNEED, then drops the clean
    pages: output files are not read again). Without this, the whole file would wait for the final fsync."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _sync_dir(path: Path) -> None:
    """Make the renames in a folder durable (POSIX; a no-op where folders cannot be opened)."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class PrefixWriter:
    """Writes the files of one prefix; see BucketResource.replace_prefix."""

    def __init__(self, bucket: BucketResource, prefix: str, also_remove: list[str]):
        self.bucket, self.prefix, self.also_remove = bucket, prefix, also_remove
        self.files: list[FileEntry] = []
        self._uploads: list[tuple[str, Future]] = []
        self._staged = 0
        self._room = threading.Condition()
        if bucket.is_gcs:
            root = Path(bucket.staging_dir) if bucket.staging_dir else Path(os.environ.get("TMPDIR", "/tmp"))
            safe = prefix.strip("/").replace("/", "_").replace("=", "-")
            self.staging = root / "synth-staging" / f"{safe}-{uuid.uuid4().hex[:8]}"
            self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(bucket.upload_workers, "upload")
        else:
            self.staging = bucket._root / prefix
            self._pool = None
        self.staging.mkdir(parents=True, exist_ok=True)
        self._committed = False

    @contextmanager
    def open(self, name: str) -> Iterator[StagedFile]:
        """A file of this prefix. For GCS, opening waits while the staging area holds `staging_mb` or more."""
        if self._pool is not None:
            with self._room:
                self._room.wait_for(lambda: self._staged < self.bucket.staging_mb * 1_000_000)
            staged = StagedFile(self.staging / name, name)
        else:
            staged = StagedFile(self.staging / f".{name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}", name, durable=True)
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
            os.replace(staged.path, self.staging / name)
            return
        with self._room:
            self._staged += entry.bytes
        self._uploads.append((name, self._pool.submit(self._upload, staged.path, entry)))

    def _upload(self, local: Path, entry: FileEntry) -> None:
        try:
            self.bucket._upload(local, self.prefix + entry.name, entry.crc32c)
            local.unlink()  # only once the object is confirmed
        finally:
            with self._room:
                self._staged -= entry.bytes
                self._room.notify_all()

    def commit(self, manifest: dict[str, Any]) -> PrefixResult:
        """Wait for every upload, delete what the write did not produce, then write the manifest."""
        failed = []
        for name, future in self._uploads:
            error = future.exception()
            if error is not None:
                failed.append(f"{name}: {_reason(error)}")
        if failed:
            raise UploadFailed(
                f"{len(failed)} of {len(self._uploads)} uploads to {self.bucket.uri(self.prefix)} failed, so the "
                f"prefix has no manifest (incomplete); the files stay in {self.staging}:\n  " + "\n  ".join(failed)
            )
        keep = {self.prefix + f.name for f in self.files}
        existing = self.bucket.list(self.prefix)
        for other in self.also_remove:
            existing.update(self.bucket.list(other))
        stale = [n for n in existing if n not in keep and n != self.prefix + MANIFEST]
        deleted = self.bucket.delete(stale)
        if not self.bucket.is_gcs:
            _remove_abandoned_tmp(self.bucket._root / self.prefix)
            _remove_empty_dirs(self.bucket._root / self.prefix)
            _sync_dir(self.bucket._root / self.prefix)  # the files' renames reach the disk before the manifest
        body = {
            **manifest,
            "files": [f.as_json() for f in self.files],
            "rows": sum(f.rows for f in self.files),
            "bytes": sum(f.bytes for f in self.files),
        }
        self.bucket._put_bytes(self.prefix + MANIFEST, orjson.dumps(body, option=orjson.OPT_INDENT_2))
        self._committed = True
        return PrefixResult(self.prefix, list(self.files), deleted, body)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            if self._committed:
                shutil.rmtree(self.staging, ignore_errors=True)


# --- encoding pieces into part files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """Rows of one file group (a part of K meters, or one meter): NDJSON bytes (gzip members for ndjson.gz) or
    an Arrow table, covering `count` entities (meters) from fleet index `first`."""

    group: str
    rows: int
    data: bytes | memoryview | pa.Table
    first: int
    count: int


EXTENSIONS = {"ndjson": ".ndjson", "ndjson.gz": ".ndjson.gz", "parquet": ".parquet"}


def file_name(group: str, seq: int, extension: str) -> str:
    """group.ext, then group-001.ext, ... when a group continues past the size limit."""
    return f"{group}{extension}" if seq == 0 else f"{group}-{seq:03d}{extension}"


def write_pieces(writer: PrefixWriter, pieces: Iterable[Piece], file_format: str, max_bytes: int) -> list[FileEntry]:
    """Write pieces in order into files named by group (`file_name`); a group continues in a new file before one
    would pass `max_bytes` (Parquet: estimated from the file's previous row group). Each file records the range
    of entities it holds (`first`, `count`)."""
    parts = _Parts(writer, EXTENSIONS[file_format], max_bytes)
    try:
        for piece in pieces:
            parts.add(piece)
    except BaseException as exc:
        parts.abort(exc)
        raise
    parts.close()
    return parts.files


class _Parts:
    def __init__(self, writer: PrefixWriter, extension: str, max_bytes: int):
        self.writer, self.extension, self.max_bytes = writer, extension, max_bytes
        self.files: list[FileEntry] = []
        self.group: str | None = None
        self.seq = 0
        self.opened: Any = None  # the writer.open(...) context manager of the current file
        self.staged: StagedFile | None = None
        self.parquet: pq.ParquetWriter | None = None
        self.last_row_group = 0

    def add(self, piece: Piece) -> None:
        if piece.group != self.group:
            self._start(piece.group, 0)
        elif self._full(piece):
            self._start(piece.group, self.seq + 1)
        staged = self.staged
        if isinstance(piece.data, pa.Table):
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(_CrcSink(staged), piece.data.schema, compression="zstd")
            before = staged.bytes
            self.parquet.write_table(piece.data, row_group_size=max(1, piece.data.num_rows))
            self.last_row_group = staged.bytes - before
        else:
            staged.write(piece.data)
        staged.rows += piece.rows
        staged.extra.setdefault("first", piece.first)
        staged.extra["count"] = staged.extra.get("count", 0) + piece.count

    def _full(self, piece: Piece) -> bool:
        size = self.staged.bytes
        if isinstance(piece.data, pa.Table):
            return self.parquet is not None and size + self.last_row_group > self.max_bytes
        return size > 0 and size + len(piece.data) > self.max_bytes

    def _start(self, group: str, seq: int) -> None:
        self.close()
        self.group, self.seq = group, seq
        self.opened = self.writer.open(file_name(group, seq, self.extension))
        self.staged = self.opened.__enter__()

    def close(self) -> None:
        if self.opened is None:
            return
        if self.parquet is not None:
            self.parquet.close()
        opened, self.opened, self.parquet, self.last_row_group = self.opened, None, None, 0
        opened.__exit__(None, None, None)
        self.files.append(self.writer.files[-1])

    def abort(self, exc: BaseException) -> None:
        if self.opened is not None:
            opened, self.opened = self.opened, None
            opened.__exit__(type(exc), exc, exc.__traceback__)


class _CrcSink:
    """A file-like target for ParquetWriter that goes through StagedFile.write (bytes and CRC counted)."""

    def __init__(self, staged: StagedFile):
        self.staged = staged
        self.closed = False

    def write(self, data: bytes) -> int:
        self.staged.write(data)
        return len(data)

    def tell(self) -> int:
        return self.staged.bytes

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
