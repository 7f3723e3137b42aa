"""Device telemetry wiring: the fleet's readings (smart meters or power devices) sent as the devices would send
them, one asset per transport (`telemetry_mqtt`, `telemetry_http`). Each is a live stream at the fleet's reporting
cadence (the meters' `live_slice_minutes`, the power devices' `usage.interval_minutes`): a live run sends exactly
its window's readings; a partition run (a backfill, the daily close) sends nothing unless the
transport's `backfill: true`, so history never floods a broker by accident."""

from collections.abc import Callable

import dagster as dg
import numpy as np

from synth_platform.assets.common import (
    LIVE_CADENCE_METADATA,
    LIVE_WINDOW_START_TAG,
    Stopwatch,
    column_schema,
    daily_partitions,
    event_lag,
    provenance,
    run_window,
    windows_to_write,
)
from synth_platform.sinks.collector import CollectorResource
from synth_platform.sinks.mqtt import MqttResource
from synth_platform.specs import PlatformSpec
from synth_platform.specs.loader import spec_hash
from synth_platform.specs.telemetry import TelemetrySpec
from synth_platform.streams.telemetry import Sent, message_schema, post_window, publish_window
from synth_platform.world.meter_ids import id_numbers
from synth_platform.world.windows import Window

Send = Callable[[np.ndarray, Window], Sent]  # (fleet ids, window) -> what sending the window took


def build(platform: PlatformSpec) -> dg.Definitions:
    spec: TelemetrySpec = platform.get("telemetry")
    meters = spec.meters
    seed = platform.world.seed
    digest = spec_hash(spec, seed)
    partitions = daily_partitions(platform.world)
    cadence_s = spec.cadence_seconds

    def deliver(context: dg.AssetExecutionContext, backfill: bool, target: str, send: Send) -> dg.MaterializeResult:
        clock = Stopwatch()
        live = LIVE_WINDOW_START_TAG in context.run.tags
        windows = windows_to_write(context, cadence_s)
        shown = windows[0] if live else run_window(context)
        if not (live or backfill):
            context.log.info("partition run: nothing sent (backfill: false); the live sensor sends each window")
            windows = []
        meter_ids = windows and spec.source == "meters"
        ids = id_numbers(seed, meters.fleet.count, meters.fleet.id_format) if meter_ids else None
        total = Sent()
        for window in windows:
            sent = send(ids, window)
            total += sent
            context.log.info(f"{window}: {sent.messages:,} messages to {target}")
        return dg.MaterializeResult(
            metadata=provenance(
                seed=seed, spec_hash=digest, window=shown, rows=total.messages, nbytes=total.bytes,
                seconds=clock.seconds, target=target,
                messages=dg.MetadataValue.int(total.messages),
                messages_per_s=dg.MetadataValue.float(round(total.messages / max(clock.seconds, 1e-9), 1)),
                windows_sent=dg.MetadataValue.int(len(windows)),
                requests=dg.MetadataValue.int(total.requests),
                retries=dg.MetadataValue.int(total.retries),
                reconnects=dg.MetadataValue.int(total.reconnects),
                **(event_lag(context, windows[-1]) if windows else {}),
            )
        )  # fmt: skip

    message_columns = column_schema(*message_schema(spec))
    assets = []
    if spec.mqtt.enabled:
        mqtt_spec = spec.mqtt

        @dg.asset(
            group_name="telemetry",
            kinds={"mqtt"},
            partitions_def=partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            metadata={LIVE_CADENCE_METADATA: cadence_s, "dagster/column_schema": message_columns},
            description=f"Each {spec.source} reading as one JSON message on `{spec.topic}` (QoS {mqtt_spec.qos}), "
            "published live, window by window; message_id is deterministic per device and timestamp.",
        )
        def telemetry_mqtt(context: dg.AssetExecutionContext, mqtt: MqttResource) -> dg.MaterializeResult:
            def send(ids: np.ndarray, window: Window) -> Sent:
                return publish_window(mqtt, spec, seed, ids, window)

            return deliver(context, mqtt_spec.backfill, f"{mqtt.target} {spec.topic}", send)

        assets.append(telemetry_mqtt)

    if spec.http.enabled:
        http_spec = spec.http

        @dg.asset(
            group_name="telemetry",
            kinds={"http"},
            partitions_def=partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            metadata={LIVE_CADENCE_METADATA: cadence_s, "dagster/column_schema": message_columns},
            description=f"Each {spec.source} reading as one JSON object, POSTed to the collector in batches of "
            f"{http_spec.batch_size} ({http_spec.body}), live, window by window.",
        )
        def telemetry_http(context: dg.AssetExecutionContext, collector: CollectorResource) -> dg.MaterializeResult:
            def send(ids: np.ndarray, window: Window) -> Sent:
                return post_window(collector, spec, seed, ids, window)

            return deliver(context, http_spec.backfill, collector.target, send)

        assets.append(telemetry_http)
    return dg.Definitions(assets=assets)
