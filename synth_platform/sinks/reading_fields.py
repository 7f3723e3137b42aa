"""A meter reading's fields for the NDJSON renderer, one definition for every output that carries readings (the
meter files and the telemetry messages), so they write the same values as the same text."""

from __future__ import annotations

import numpy as np

from synth_platform.sinks.ndjson import Field, Number, Text
from synth_platform.specs.meters import IdFormat
from synth_platform.world.meter_ids import format_ids
from synth_platform.world.meters import QUALITY_GOOD, QUALITY_ZERO, Readings

_QUALITY = np.array([list(QUALITY_GOOD.encode()), list(QUALITY_ZERO.encode())], dtype=np.uint8)


def reading_fields(data: Readings, id_format: IdFormat) -> tuple[Text, list[Field]]:
    """The meter id (each meter's over its readings) and the features of each reading, ordered by (meter,
    timestamp): power_kw, energy_kwh, voltage, and quality when zero readings are injected."""
    meter_id = Text("meter_id", format_ids(data.id_numbers, id_format), every=len(data.slots))
    features: list[Field] = [
        Number("power_kw", data.power_kw.reshape(-1), 4),
        Number("energy_kwh", data.energy_kwh.reshape(-1), 6),
        Number("voltage", data.voltage.reshape(-1), 2),
    ]
    if data.zero is not None:
        features.append(Text("quality", _QUALITY[data.zero.reshape(-1).astype(np.intp)]))
    return meter_id, features


def present(data: Readings) -> np.ndarray | None:
    """Which readings of the (meter, timestamp) grid are sent (offline gaps are not); None: all of them."""
    return data.present.reshape(-1) if data.present is not None else None
