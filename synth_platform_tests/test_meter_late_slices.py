"""Late files of the meter readings: which live window delivers each slice of a day."""

from collections import Counter
from datetime import timedelta

import numpy as np
import pytest

from synth_platform.specs.meters import Faults, MetersSpec
from synth_platform.world.late_slices import (
    arrives_with,
    delay_slices,
    delays,
    delivered_with,
    late_count,
    slice_index,
)
from synth_platform.world.windows import Window

SEED = 20261123
DAY = Window.for_day("2026-03-02")


def late_spec(probability: float, low: int = 1, high: int = 6, minutes: int = 10) -> MetersSpec:
    return MetersSpec(faults=Faults(late_probability=probability, late_slices=(low, high)), live_slice_minutes=minutes)


def schedule(spec: MetersSpec, seed: int, day: Window = DAY) -> dict[Window, list[Window]]:
    return {w: delivered_with(spec, seed, w) for w in day.split(spec.live_slice_seconds)}


def test_every_slice_arrives_once_live_or_is_left_for_the_close():
    spec = late_spec(0.3)
    slices = list(DAY.split(spec.live_slice_seconds))
    assert len(slices) == 144
    plan = schedule(spec, SEED)
    counts = Counter(s for delivered in plan.values() for s in delivered)
    assert set(counts.values()) == {1}  # nothing twice
    for window, delivered in plan.items():
        assert delivered == sorted(delivered) and all(s <= window for s in delivered)  # oldest first, none early
        for s in delivered:  # each arrives with the window its delay points at
            assert slice_index(spec, s) + delay_slices(spec, seed=SEED, window=s) == slice_index(spec, window)
            assert arrives_with(spec, SEED, s) == window
    left = [s for s in slices if s not in counts]
    past_midnight = [s for i, s in enumerate(slices) if i + delay_slices(spec, SEED, s) >= len(slices)]
    assert left == past_midnight and left  # this seed leaves some of the last slices to the close
    assert all(arrives_with(spec, SEED, s) is None for s in left)
    late = [s for s in slices if delay_slices(spec, SEED, s)]
    assert all(1 <= delay_slices(spec, SEED, s) <= 6 for s in late)
    assert late_count(spec, SEED, DAY) == len(late) > 0
    assert sum(late_count(spec, SEED, s) for s in slices) == len(late)


def test_the_share_of_late_slices_and_their_delays_follow_the_spec():
    spec = late_spec(0.3, low=2, high=5)
    step = spec.live_slice_seconds
    starts = np.arange(DAY.start_s, DAY.start_s + 60 * 86_400, step)  # 60 days, 8640 slices
    d = delays(spec, SEED, starts)
    assert abs(np.mean(d > 0) - 0.3) < 0.03  # ~0.005 standard error
    assert set(np.unique(d[d > 0]).tolist()) == {2, 3, 4, 5}
    shares = np.bincount(d[d > 0], minlength=6)[2:] / np.count_nonzero(d)
    assert np.all(np.abs(shares - 0.25) < 0.04)  # low..high equally likely
    fourth_day = list(Window.for_day(DAY.start.date() + timedelta(days=3)).split(step))
    assert [delay_slices(spec, SEED, w) for w in fourth_day] == d[3 * 144 : 4 * 144].tolist()  # one per window too


def test_the_schedule_is_a_function_of_the_seed():
    spec = late_spec(0.3)
    assert schedule(spec, SEED) == schedule(spec, SEED)
    assert schedule(spec, SEED) != schedule(spec, SEED + 1)
    other_day = Window.for_day("2026-03-03")
    first = [len(v) for v in schedule(spec, SEED).values()]
    assert first != [len(v) for v in schedule(spec, SEED, other_day).values()]  # each day has its own schedule


def test_without_lateness_every_window_delivers_itself():
    spec = late_spec(0.0)
    assert all(delivered == [w] for w, delivered in schedule(spec, SEED).items())
    assert late_count(spec, SEED, DAY) == 0


def test_always_late_holds_the_first_windows_and_partial_windows_are_on_time():
    spec = late_spec(1.0, low=2, high=3)
    plan = list(schedule(spec, SEED).values())
    assert plan[0] == plan[1] == []  # nothing can be due before slice low
    left = [s for s in DAY.split(600) if arrives_with(spec, SEED, s) is None]
    assert 2 <= len(left) <= 3 and sum(map(len, plan)) == 144 - len(left)  # the last two or three: the close
    assert all(len(d) <= 2 for d in plan)  # at most one slice due from each of the two possible delays
    partial = Window(DAY.start + timedelta(minutes=5), DAY.start + timedelta(minutes=10))  # after a cadence change
    assert slice_index(spec, partial) is None
    assert delivered_with(spec, SEED, partial) == [partial] and delay_slices(spec, SEED, partial) == 0
    assert arrives_with(spec, SEED, partial) == partial
    assert late_count(spec, SEED, partial) == 0 and late_count(spec, SEED, DAY) == 144


@pytest.mark.parametrize("minutes", [1, 60])
def test_other_slice_lengths(minutes):
    spec = late_spec(0.5, high=3, minutes=minutes)
    slices = list(DAY.split(spec.live_slice_seconds))
    delivered = [s for d in schedule(spec, SEED).values() for s in d]
    assert len(delivered) == len(set(delivered))
    assert len(delivered) + sum(arrives_with(spec, SEED, s) is None for s in slices) == len(slices)
