"""Delta Lake target: one Delta table per name under a root (local folder, gs:// or s3://), written with
deltalake directly. A window is replaced by an overwrite with a predicate on its time column, so re-writing a
window (or a whole range, day by day) is idempotent and never touches other windows.

On S3 (and S3-compatible stores) each commit is a put-if-absent of the next log entry (`conditional_put: etag`,
If-None-Match), so of two writers committing the same version one wins and the other fails with `DeltaConflict`
instead of overwriting the log; its window write is idempotent, so re-running it is safe."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import deltalake
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from pydantic import Field

from synth_platform.sinks.uris import without_credentials
from synth_platform.world.windows import Window


@dataclass(frozen=True)
class DeltaWriteResult:
    rows: int
    bytes: int
    seconds: float


def _timestamp_literal(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def window_predicate(column: str, window: Window) -> str:
    return f"{column} >= '{_timestamp_literal(window.start)}' AND {column} < '{_timestamp_literal(window.end)}'"


def window_filter(column: str, window: Window) -> ds.Expression:
    field, unit = ds.field(column), pa.timestamp("us", "UTC")
    return (field >= pa.scalar(window.start, unit)) & (field < pa.scalar(window.end, unit))


class DeltaConflict(RuntimeError):
    """Another writer committed to the table first; nothing of this write is visible."""


class DeltaResource(dg.ConfigurableResource):
    """Delta tables under `root` (SYNTH_DELTA_ROOT). Cloud credentials come from the environment as delta-rs
    reads them (GOOGLE_APPLICATION_CREDENTIALS, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ...)."""

    root: str = Field(description="Folder, gs://bucket/prefix or s3://bucket/prefix holding one Delta table per name")
    endpoint_url: str = Field(
        "", description="S3-compatible endpoint (AWS_ENDPOINT_URL: MinIO, R2, Ceph); empty for AWS itself"
    )
    region: str = Field("", description="Region of the S3 bucket (AWS_REGION)")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="More delta-rs object store options; they override the ones derived here"
    )

    @property
    def options(self) -> dict[str, str] | None:
        """The delta-rs storage options: for s3:// the endpoint, plain HTTP when the endpoint says so (local test
        stores), the region and put-if-absent commits; then `storage_options`."""
        options: dict[str, str] = {}
        if self.root.startswith("s3://"):
            options["conditional_put"] = "etag"
            if self.endpoint_url:
                options["AWS_ENDPOINT_URL"] = self.endpoint_url
                if self.endpoint_url.startswith("http://"):
                    options["AWS_ALLOW_HTTP"] = "true"
            if self.region:
                options["AWS_REGION"] = self.region
        return {**options, **self.storage_options} or None

    @property
    def is_remote(self) -> bool:
        return "://" in self.root

    def uri(self, table: str) -> str:
        if self.is_remote:
            return f"{self.root.rstrip('/')}/{table}"
        return str(Path(self.root).expanduser().resolve() / table)

    def public_uri(self, table: str) -> str:
        """The table's URI as metadata shows it (dagster/uri): file:// for a local folder, never a credential."""
        uri = self.uri(table)
        return without_credentials(uri) if self.is_remote else Path(uri).as_uri()

    def exists(self, table: str) -> bool:
        # Not DeltaTable.is_deltatable: it holds the GIL while it waits on the object store, which stalls a store
        # served from this process (moto in the tests) and every other thread meanwhile.
        try:
            self._table(table)
        except TableNotFoundError:
            return False
        return True

    def _table(self, table: str) -> deltalake.DeltaTable:
        return deltalake.DeltaTable(self.uri(table), storage_options=self.options)

    def _write(self, table: str, data: pa.RecordBatchReader | pa.Table, predicate: str | None) -> DeltaWriteResult:
        started = time.perf_counter()
        counted = _Counted(data)
        uri = self.uri(table)
        if not self.is_remote:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            deltalake.write_deltalake(
                uri,
                counted.reader(),
                mode="overwrite",
                predicate=predicate,
                # a full rewrite takes the spec's current schema; a window must match the table's
                schema_mode="overwrite" if predicate is None else None,
                storage_options=self.options,
            )
        except CommitFailedError as exc:
            first = str(exc).splitlines()[0]
            raise DeltaConflict(f"{uri}: another writer committed first, nothing written ({first}); re-run") from None
        return DeltaWriteResult(counted.rows, counted.bytes, time.perf_counter() - started)

    def replace(self, table: str, data: pa.RecordBatchReader | pa.Table) -> DeltaWriteResult:
        """The whole table becomes `data`, in one commit."""
        return self._write(table, data, None)

    def replace_window(
        self, table: str, data: pa.RecordBatchReader | pa.Table, time_column: str, window: Window
    ) -> DeltaWriteResult:
        """Rows of the window become `data` (which must lie inside it), in one commit."""
        return self._write(table, data, window_predicate(time_column, window))

    def read(self, table: str, columns: list[str], where: ds.Expression | None = None) -> pa.Table:
        """Rows matching `where` (a pyarrow dataset filter); empty when the table does not exist yet."""
        if not self.exists(table):
            return pa.table({c: pa.array([], pa.null()) for c in columns})
        return self._table(table).to_pyarrow_dataset().to_table(columns=columns, filter=where)

    def delete_before(self, table: str, column: str, cutoff: datetime) -> int:
        """Delete rows whose `column` is before `cutoff`; returns the rows deleted."""
        if not self.exists(table):
            return 0
        metrics = self._table(table).delete(f"{column} < '{_timestamp_literal(cutoff)}'")
        return int(metrics.get("num_deleted_rows", 0))

    def vacuum(self, table: str, retention_hours: int = 168) -> int:
        """Remove files no longer referenced by versions newer than retention_hours; returns files removed."""
        if not self.exists(table):
            return 0
        removed = self._table(table).vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
        )
        return len(removed)


class _Counted:
    """Passes batches through to the writer, counting rows and bytes on the way."""

    def __init__(self, data: pa.RecordBatchReader | pa.Table):
        self.data = data
        self.rows = self.bytes = 0

    def reader(self) -> pa.RecordBatchReader:
        source = self.data.to_reader() if isinstance(self.data, pa.Table) else self.data
        return pa.RecordBatchReader.from_batches(source.schema, self._count(source))

    def _count(self, batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
        for batch in batches:
            self.rows += batch.num_rows
            self.bytes += batch.nbytes
            yield batch
