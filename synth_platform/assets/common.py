"""What every domain's assets share: the daily partitions, provenance metadata, previews."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import sqlalchemy as sa

from synth_platform import __version__
from synth_platform.specs.world import WorldSpec
from synth_platform.world.windows import Window


def daily_partitions(world: WorldSpec) -> dg.DailyPartitionsDefinition:
    # end_offset=1 adds today's (open) partition, which live appends fill as its windows close.
    return dg.DailyPartitionsDefinition(start_date=world.start_date.isoformat(), timezone="UTC", end_offset=1)


def run_window(context: dg.AssetExecutionContext) -> Window:
    tw = context.partition_time_window
    return Window(tw.start, tw.end)


# Asset metadata key declaring a live stream's window length (its cadence from config). The live sensors are
# built for every asset that carries it, so a new stream gets live delivery by declaring its cadence.
LIVE_CADENCE_METADATA = "synth/live_cadence_seconds"

# Runs that still hold their place: a sensor requests nothing new while its own runs are in any of these.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

# A live run writes a batch of contiguous windows of one partition, [start, end); its sensor sets these tags.
LIVE_WINDOW_START_TAG = "synth/window_start"
LIVE_WINDOW_END_TAG = "synth/window_end"


def is_live(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> bool:
    """Whether the run is a live batch (its sensor tagged the windows) rather than a partition run."""
    return LIVE_WINDOW_START_TAG in context.run.tags


def windows_to_write(context: dg.AssetExecutionContext, step_seconds: int) -> list[Window]:
    """What a run writes: each live window of the tagged batch (contiguous windows of the cadence), else each day
    of the partition range (an open day only up to its last closed step). Each returned window is replaced as a
    whole, in its own transaction."""
    tags = context.run.tags
    if is_live(context):
        live = Window(
            datetime.fromisoformat(tags[LIVE_WINDOW_START_TAG]), datetime.fromisoformat(tags[LIVE_WINDOW_END_TAG])
        )
        partition = run_window(context)
        if not (partition.start <= live.start and live.end <= partition.end):
            raise ValueError(f"live window {live} is outside partition {partition}")
        return list(live.split(step_seconds))
    parts = (closed_part(day, step_seconds) for day in run_window(context).days())
    return [part for part in parts if part is not None]


def closed_part(day: Window, step_seconds: int) -> Window | None:
    """The part of a day whose step windows have already closed: an open day is written up to now,
    never into the future. None when not even the first step has closed."""
    now_s = int(datetime.now(UTC).timestamp())
    end_s = min(day.end_s, now_s - now_s % step_seconds)
    if end_s <= day.start_s:
        return None
    return day if end_s == day.end_s else Window(day.start, datetime.fromtimestamp(end_s, tz=UTC))


def column_schema(schema: pa.Schema | Iterable[sa.ColumnElement], descriptions: dict[str, str]) -> dg.TableSchema:
    """dagster/column_schema of a table or view: its columns' names and types (an Arrow schema, or SQLAlchemy
    columns for what SQL defines), with the descriptions the spec or the module gives."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                f.name,
                str(f.type),
                description=descriptions.get(f.name),
                constraints=dg.TableColumnConstraints(nullable=getattr(f, "nullable", True)),
            )
            for f in schema
        ]
    )


def check_scope(live: bool, windows: list[Window | None]) -> dict[str, object]:
    """Check metadata naming what an in-step check looked at: the live windows the run wrote, the days of a
    partition run (an open day up to its last closed step), or a whole unpartitioned table."""
    if windows and windows[0] is None:
        return {"scope": dg.MetadataValue.text("table")}
    scope = "window" if live else "day"
    return {"scope": dg.MetadataValue.text(scope), "checked": markdown_list([str(w) for w in windows])}


def uri_metadata(uri: str | None) -> dict[str, object]:
    """dagster/uri of a target addressed by URI (a Delta table, a Tinybird data source, a bucket prefix); the
    sinks' `public_uri` never holds a credential. Nothing for a database table, which dagster/table_name names."""
    return {"dagster/uri": dg.MetadataValue.text(uri)} if uri else {}


def markdown_list(items: list[str], limit: int = 50) -> dg.MetadataValue:
    """A bulleted list for metadata (the first `limit` items), or "none"."""
    more = f"\n- ... and {len(items) - limit} more" if len(items) > limit else ""
    return dg.MetadataValue.md("\n".join(f"- {i}" for i in items[:limit]) + more if items else "none")


def markdown_preview(table: pa.Table, rows: int = 5) -> str:
    head = table.slice(0, rows).to_pylist()
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(str(r[n]) for n in names) + " |" for r in head]
    return "\n".join(lines)


def provenance(
    *,
    seed: int,
    spec_hash: str,
    window: Window | None,
    rows: int,
    nbytes: int,
    seconds: float,
    target: str,
    preview: pa.Table | None = None,
    **extra: object,
) -> dict[str, object]:
    """Metadata every materialization carries, so a person can tell what produced the rows and how fast. Only
    measurements are numbers (so the UI plots rows, bytes and throughput over time); the seed is text."""
    meta: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "rows": dg.MetadataValue.int(rows),
        "bytes": dg.MetadataValue.int(nbytes),
        "duration_s": dg.MetadataValue.float(round(seconds, 3)),
        "rows_per_s": dg.MetadataValue.float(round(rows / seconds, 1) if seconds > 0 else 0.0),
        "target": dg.MetadataValue.text(target),
        "seed": dg.MetadataValue.text(str(seed)),
        "spec_hash": dg.MetadataValue.text(spec_hash),
        "generator_version": dg.MetadataValue.text(__version__),
    }
    if window is not None:
        meta["window"] = dg.MetadataValue.text(str(window))
    if rows == 0:
        meta["preview"] = dg.MetadataValue.md(f"nothing written: no rows in {window or 'the table'}")
    elif preview is not None and preview.num_rows:
        meta["preview"] = dg.MetadataValue.md(markdown_preview(preview))
    meta.update(extra)
    return meta


@dataclass
class Written:
    """What a run wrote into one partition: its windows (in order), rows, bytes and the seconds spent on them."""

    windows: list[Window] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    seconds: float = 0.0

    @property
    def window(self) -> Window:
        return Window(self.windows[0].start, self.windows[-1].end)


class Tally:
    """Per-partition totals of a run's window writes, each write timed from the end of the previous one."""

    def __init__(self) -> None:
        self.partitions: dict[str, Written] = {}
        self._last = time.perf_counter()

    def add(self, window: Window, rows: int, nbytes: int) -> Written:
        now = time.perf_counter()
        written = self.partitions.setdefault(window.partition_key(), Written())
        written.windows.append(window)
        written.rows, written.nbytes = written.rows + rows, written.nbytes + nbytes
        written.seconds += now - self._last
        self._last = now
        return written


# Dagster's tag for an asset event's data version (a logged AssetMaterialization has no data_version argument).
DATA_VERSION_TAG = "dagster/data_version"


def partition_results(
    context: dg.AssetExecutionContext,
    tally: Tally,
    metadata: Callable[[Written], dict[str, object]],
    asset_key: dg.AssetKey | None = None,
    when_empty: dict[str, object] | None = None,
    *,
    spec_digest: str,
) -> list[dg.MaterializeResult | dg.AssetMaterialization]:
    """What a step reports, honest per partition. A one-partition run's result carries that partition's figures.
    Dagster records a range run's result once per partition with the same metadata, so that result only holds
    range totals, labelled as such, and an AssetMaterialization per written partition follows with the partition's
    own figures: it is the partition's latest materialization, the one its page shows. A partition the run wrote
    nothing into says so (plus `when_empty`).

    Every event carries one data version, the generator's and the spec's: what a partition holds is a function of
    those and the partition alone. The per-partition events repeat the result's version, so a later step of the
    run that reads the asset finds the version it was told (Dagster warns of a mismatch otherwise)."""
    key = asset_key or context.asset_key
    version = dg.DataVersion(f"{__version__}:{spec_digest}")
    empty = {**nothing_written(), **(when_empty or {})}
    keys = context.partition_keys
    if len(keys) == 1:
        written = tally.partitions.get(keys[0])
        meta = {**metadata(written), **event_lag(context, written.window)} if written else empty
        return [dg.MaterializeResult(asset_key=key, metadata=meta, data_version=version)]
    total = {
        "range": dg.MetadataValue.text(f"{keys[0]} .. {keys[-1]} ({len(keys)} partitions, one run)"),
        "range_rows": dg.MetadataValue.int(sum(w.rows for w in tally.partitions.values())),
        "range_bytes": dg.MetadataValue.int(sum(w.nbytes for w in tally.partitions.values())),
        "per_partition": dg.MetadataValue.text("each partition's own figures follow as its latest materialization"),
    }
    events: list[dg.MaterializeResult | dg.AssetMaterialization] = [
        dg.MaterializeResult(asset_key=key, metadata=total, data_version=version)
    ]
    for partition in keys:
        written = tally.partitions.get(partition)
        meta = metadata(written) if written else empty
        tags = {DATA_VERSION_TAG: version.value}
        events.append(dg.AssetMaterialization(asset_key=key, partition=partition, metadata=meta, tags=tags))
    return events


def event_lag(context: dg.AssetExecutionContext, written: Window) -> dict[str, object]:
    """A live run's lag: how far the end of what it wrote is behind the run's clock, as a number so the UI plots
    it over time. A partition run writes the past on purpose and reports none."""
    if LIVE_WINDOW_END_TAG not in context.run.tags:
        return {}
    lag = (datetime.now(UTC) - written.end).total_seconds()
    return {"event_lag_s": dg.MetadataValue.float(round(lag, 3))}


def nothing_written() -> dict[str, object]:
    """A partition the run covered without writing any window (the open day before its first step closed)."""
    return {"dagster/row_count": dg.MetadataValue.int(0), "preview": dg.MetadataValue.md("nothing written yet")}


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
