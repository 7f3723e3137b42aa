"""The device fleet shared by the power world and the smart-meter fleet.

Every attribute is a function of (seed, device index) alone, never of the fleet size, so a fleet of
100 devices is exactly the first 100 devices of a fleet of a million, and both worlds agree on them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from synth_platform.specs.power import PowerSpec
from synth_platform.world import seeding

# Customers are formed inside blocks of this many consecutive devices, so that a device's customer is
# computable locally (no prefix sum over the whole fleet).
CUSTOMER_BLOCK = 8

DEVICE_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.int64(), nullable=False),
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("latitude", pa.float64(), nullable=False),
        pa.field("longitude", pa.float64(), nullable=False),
        pa.field("building_type", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("city", pa.string(), nullable=False),
    ]
)
DEVICE_COLUMNS = {
    "device_id": "Device id, 1 to the fleet size",
    "customer_id": "Customer owning the device (a customer has one or more consecutive devices)",
    "latitude": "Latitude of the device's location",
    "longitude": "Longitude of the device's location",
    "building_type": "Building type, which selects the load profile",
    "region": "Region of the device's location",
}


def device_ids(index: np.ndarray) -> np.ndarray:
    return np.asarray(index, dtype=np.int64) + 1


def building_type_index(spec: PowerSpec, seed: int, index: np.ndarray) -> np.ndarray:
    weights = [b.weight for b in spec.building_types.values()]
    return seeding.choice(seeding.stream_key(seed, "devices", "building_type"), weights, index)


def city_index(spec: PowerSpec, seed: int, index: np.ndarray) -> np.ndarray:
    """Each device's city (an index into spec.cities), drawn with the cities' weights."""
    return seeding.choice(seeding.stream_key(seed, "devices", "city"), list(spec.cities.values()), index)


def device_scale(seed: int, index: np.ndarray) -> np.ndarray:
    """Per-device size multiplier (log-normal, mean 1): two offices are never the same size."""
    sigma = 0.35
    return np.exp(sigma * seeding.normal(seeding.stream_key(seed, "devices", "scale"), index) - sigma**2 / 2)


def customer_ids(spec: PowerSpec, seed: int, index: np.ndarray) -> np.ndarray:
    """A device starts a new customer with probability 1/mean, or at a block start; ids are the
    1-based index of the customer's first device, so they are stable and unique."""
    index = np.asarray(index, dtype=np.int64)
    block = index // CUSTOMER_BLOCK
    pos = index % CUSTOMER_BLOCK
    positions = block[:, None] * CUSTOMER_BLOCK + np.arange(CUSTOMER_BLOCK)
    starts = seeding.uniform(seeding.stream_key(seed, "devices", "customer"), positions) < (
        1.0 / spec.devices.devices_per_customer
    )
    starts[:, 0] = True
    # last customer start at or before each device's position within its block
    candidates = np.where(starts & (np.arange(CUSTOMER_BLOCK) <= pos[:, None]), np.arange(CUSTOMER_BLOCK), -1)
    return block * CUSTOMER_BLOCK + candidates.max(axis=1) + 1


def devices(spec: PowerSpec, seed: int, index: np.ndarray | None = None) -> pa.Table:
    """device_metadata rows for the given device indices (default: the configured fleet)."""
    index = np.arange(spec.devices.count, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    types = list(spec.building_types)
    regions = list(spec.regions.values())
    region_idx = seeding.choice(seeding.stream_key(seed, "devices", "region"), [r.weight for r in regions], index)
    south = np.array([r.latitude[0] for r in regions])[region_idx]
    north = np.array([r.latitude[1] for r in regions])[region_idx]
    west = np.array([r.longitude[0] for r in regions])[region_idx]
    east = np.array([r.longitude[1] for r in regions])[region_idx]
    lat = south + (north - south) * seeding.uniform(seeding.stream_key(seed, "devices", "lat"), index)
    lon = west + (east - west) * seeding.uniform(seeding.stream_key(seed, "devices", "lon"), index)
    return pa.table(
        {
            "device_id": device_ids(index),
            "customer_id": customer_ids(spec, seed, index),
            "latitude": np.round(lat, 6),
            "longitude": np.round(lon, 6),
            "building_type": pa.array(np.array(types, dtype=object)[building_type_index(spec, seed, index)]),
            "region": pa.array(np.array(list(spec.regions), dtype=object)[region_idx]),
            "city": pa.array(np.array(list(spec.cities), dtype=object)[city_index(spec, seed, index)]),
        },
        schema=DEVICE_SCHEMA,
    )
