"""What every domain's assets share: the daily partitions, provenance metadata, previews."""

import time
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from synth_platform import __version__
from synth_platform.specs.world import WorldSpec
from synth_platform.world.windows import Window


def daily_partitions(world: WorldSpec) -> dg.DailyPartitionsDefinition:
    # end_offset=1 adds today's (open) partition, which live appends fill as its windows close.
    return dg.DailyPartitionsDefinition(start_date=world.start_date.isoformat(), timezone="UTC", end_offset=1)


def run_window(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Window:
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


def windows_to_write(context: dg.AssetExecutionContext, step_seconds: int) -> list[Window]:
    """What a run writes: each live window of the tagged batch (contiguous windows of the cadence), else each day
    of the partition range (an open day only up to its last closed step). Each returned window is replaced as a
    whole, in its own transaction."""
    tags = context.run.tags
    if LIVE_WINDOW_START_TAG in tags:
        live = Window(
            datetime.fromisoformat(tags[LIVE_WINDOW_START_TAG]), datetime.fromisoformat(tags[LIVE_WINDOW_END_TAG])
        )
        partition = run_window(context)
        if not (partition.start <= live.start and live.end <= partition.end):
            raise ValueError(f"live window {live} is outside partition {partition}")
        return list(live.split(step_seconds))
    return [part for _, part in written_days(context, step_seconds)]


def written_days(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, step_seconds: int
) -> list[tuple[Window, Window]]:
    """(day, written part) for each day of the run's partition range that has a closed step: whole closed days,
    the open day up to its last closed step. What a partition run writes, and what its checks look at."""
    parts = ((day, closed_part(day, step_seconds)) for day in run_window(context).days())
    return [(day, part) for day, part in parts if part is not None]


def closed_part(day: Window, step_seconds: int, now: datetime | None = None) -> Window | None:
    """The part of a day whose step windows have already closed: an open day is written up to now,
    never into the future. None when not even the first step has closed."""
    now_s = int((now or datetime.now(UTC)).timestamp())
    end_s = min(day.end_s, now_s - now_s % step_seconds)
    if end_s <= day.start_s:
        return None
    return day if end_s == day.end_s else Window(day.start, datetime.fromtimestamp(end_s, tz=UTC))


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
    """Metadata every materialization carries, so a person can tell what produced the rows and how fast."""
    meta: dict[str, object] = {
        "rows": dg.MetadataValue.int(rows),
        "bytes": dg.MetadataValue.int(nbytes),
        "duration_s": dg.MetadataValue.float(round(seconds, 3)),
        "rows_per_s": dg.MetadataValue.float(round(rows / seconds, 1) if seconds > 0 else 0.0),
        "target": dg.MetadataValue.text(target),
        "seed": dg.MetadataValue.int(seed),
        "spec_hash": dg.MetadataValue.text(spec_hash),
        "generator_version": dg.MetadataValue.text(__version__),
    }
    if window is not None:
        meta["window"] = dg.MetadataValue.text(str(window))
    if preview is not None and preview.num_rows:
        meta["preview"] = dg.MetadataValue.md(markdown_preview(preview))
    meta.update(extra)
    return meta


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
