"""The smart-meter world: ids, readings, their agreement with the power world, and the NDJSON rendering."""

import re

import numpy as np
import orjson
import pytest

from synth_platform.sinks.ndjson import Number, Text, render
from synth_platform.specs.meters import Faults, Fleet, MetersSpec
from synth_platform.specs.power import PowerSpec
from synth_platform.world.load_profile import HOUR, hourly_energy_kwh
from synth_platform.world.meter_ids import format_ids, id_numbers, id_strings
from synth_platform.world.meters import expected_rows, readings, to_table
from synth_platform.world.power_usage import power_usage
from synth_platform.world.windows import Window

SEED = 20261123
DAY = Window.for_day("2026-03-02")


def test_a_million_mac_ids_are_unique_and_a_prefix_of_bigger_fleets():
    ids = id_numbers(SEED, 1_000_000)
    assert len(np.unique(ids)) == 1_000_000
    assert ids.max() < 2**48
    assert np.array_equal(id_numbers(SEED, 1000), ids[:1000])
    assert not np.array_equal(id_numbers(SEED + 1, 1000), ids[:1000])
    text = id_strings(ids[:3]).to_pylist()
    assert all(re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", t) for t in text), text


def test_mac8_ids_stay_unique_in_a_crowded_space():
    # 300k ids from 10^8 numbers: hundreds of candidate collisions are rejected by the Bloom filter.
    ids = id_numbers(SEED, 300_000, "mac8")
    assert len(np.unique(ids)) == len(ids) and ids.max() < 10**8
    assert re.fullmatch(r"MAC\d{8}", format_ids(ids[:1], "mac8").tobytes().decode())


def test_meter_hours_sum_to_the_power_worlds_device_hours():
    spec = MetersSpec(fleet=Fleet(count=40))
    index = np.arange(40)
    data = readings(spec, SEED, index, id_numbers(SEED, 40), DAY)
    hourly = data.energy_kwh.reshape(40, 24, HOUR // spec.interval_seconds).sum(axis=2)
    hours = DAY.start_s + np.arange(24) * HOUR
    assert np.abs(hourly - hourly_energy_kwh(spec.power, SEED, index[:, None], hours[None, :])).max() < 1e-3
    assert np.allclose(data.power_kw, data.energy_kwh * 360, atol=1e-3)
    assert data.voltage.min() > 220 and data.voltage.max() < 240

    usage = power_usage(PowerSpec(), SEED, DAY).to_pylist()  # 100 devices, hourly intervals
    compared = 0
    for row in usage:
        device, hour = row["device_id"], int(row["timestamp"].timestamp())
        if device <= 40:
            assert abs(hourly[device - 1, (hour - DAY.start_s) // HOUR] - row["power_usage_kwh"]) <= 0.01
            compared += 1
    assert compared > 40 * 24 // 2


def test_a_window_of_the_day_equals_the_same_slice_of_the_day():
    spec = MetersSpec(fleet=Fleet(count=5), faults=Faults(gap_probability=0.5, zero_probability=0.01))
    ids = id_numbers(SEED, 5)
    day = readings(spec, SEED, np.arange(5), ids, DAY)
    part = Window(DAY.start.replace(hour=13, minute=10), DAY.start.replace(hour=13, minute=20))
    live = readings(spec, SEED, np.arange(2, 5), ids[2:], part)
    cols = slice((13 * 3600 + 600) // 10, (13 * 3600 + 1200) // 10)
    assert np.array_equal(live.energy_kwh, day.energy_kwh[2:, cols])
    assert np.array_equal(live.voltage, day.voltage[2:, cols])
    assert to_table(live, "mac").num_rows == live.rows


def test_expected_rows_count_gaps_without_generating_readings():
    spec = MetersSpec(fleet=Fleet(count=60), faults=Faults(gap_probability=0.5, gap_minutes=(30, 300)))
    data = readings(spec, SEED, np.arange(60), id_numbers(SEED, 60), DAY)
    assert data.present is not None and data.rows < 60 * 8640
    assert expected_rows(spec, SEED, DAY) == data.rows
    part = Window(DAY.start.replace(hour=6), DAY.start.replace(hour=9))
    assert expected_rows(spec, SEED, part) == readings(spec, SEED, np.arange(60), id_numbers(SEED, 60), part).rows


def test_rendered_ndjson_parses_to_the_same_values():
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(0, 1, 5000) * 10.0 ** rng.integers(0, 6, 5000), 4)
    values[:3] = [0.0, -0.0001, 12345.5]
    text = np.frombuffer(b"ab" * 5000, dtype=np.uint8).reshape(5000, 2)
    keep = rng.random(5000) < 0.9
    out = render([Text("t", text), Number("x", values, 4), Number("n", np.arange(5000.0), 0)], 5000, keep)
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["x"] for r in rows] == pytest.approx(values[keep].tolist(), abs=1e-9)
    assert [r["n"] for r in rows] == np.arange(5000)[keep].tolist()
    assert {r["t"] for r in rows} == {"ab"}
    with pytest.raises(ValueError, match="finite"):
        render([Number("x", np.array([np.nan]), 2)], 1)


@pytest.mark.parametrize("decimals", range(9))
def test_rendered_numbers_match_python_formatting(decimals):
    """Every width and sign, on both sides of the eight-digit fast path, as Python's fixed-point formatting."""
    rng = np.random.default_rng(decimals)
    magnitude = 10.0 ** rng.integers(-decimals, 13 - decimals, 20_000)
    values = np.round(rng.uniform(-1, 1, 20_000) * magnitude, decimals)
    edges = np.array([10**k for k in range(14 - decimals)], dtype=np.float64)
    values = np.concatenate([values, edges, edges - 10.0**-decimals, -edges, [0.0]])
    values = np.where(values == 0, 0.0, values)  # Python writes -0.0 as "-0", JSON-wise the same as 0
    out = render([Number("x", values, decimals)], len(values))
    assert out == b"".join(b'{"x":%s}\n' % f"{v:.{decimals}f}".encode() for v in values)


@pytest.mark.parametrize("cycle", [7, 20_000])  # shorter and longer than a rendering pass
def test_rendered_text_cycles_and_runs_match_per_row_formatting(cycle):
    """Text repeats as a cycle (timestamps per meter) or in runs (a meter's id); full-width lines skip compaction."""
    rows, run = 3 * cycle + 5, cycle
    stamps = np.frombuffer(b"".join(b"t%06d" % i for i in range(cycle)), dtype=np.uint8).reshape(cycle, 7)
    names = np.frombuffer(b"".join(b"m%03d" % i for i in range(4)), dtype=np.uint8).reshape(4, 4)
    digits = np.arange(rows) % 10.0
    fields = [Text("t", stamps), Text("m", names, every=run), Number("d", digits, 1)]
    lines = render(fields, rows).splitlines()
    expected = [b'{"t":"t%06d","m":"m%03d","d":%d.0}' % (r % cycle, r // run, r % 10) for r in range(rows)]
    assert lines == expected
