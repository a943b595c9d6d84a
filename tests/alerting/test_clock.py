"""Device clock offsets: robust to network delay, buffer replays and clock steps."""

from __future__ import annotations

import pytest

from alerting.clock import ClockOffsets

T0 = 1_764_316_800_000


@pytest.mark.parametrize(
    "skew_ms", [-86_400_000, -20_000, 30_000, 240_000], ids=["-1d", "-20s", "+30s", "+4min"]
)
def test_offset_is_the_skew_plus_the_smallest_delay(skew_ms: int) -> None:
    clocks = ClockOffsets()
    for k in range(20):
        sent = T0 + k * 30_000
        delay = 80 + (k * 53) % 400
        clocks.observe("band-1", sent + skew_ms, k, sent + delay)
    assert clocks.offset("band-1") == -skew_ms + 80
    assert clocks.corrected("band-1", T0 + skew_ms) == T0 + 80


def test_a_replayed_buffer_does_not_move_the_estimate() -> None:
    clocks = ClockOffsets()
    for k in range(10):
        clocks.observe("band-1", T0 + k * 30_000, k, T0 + k * 30_000 + 100)
    # A gateway replays 40 minutes of buffered fixes in one burst.
    now = T0 + 3_000_000
    for k in range(80):
        clocks.observe("band-1", now - 2_400_000 + k * 30_000, 10 + k, now + k * 10)
    assert clocks.offset("band-1") == 100


def test_a_clock_reset_to_zero_re_anchors_at_once() -> None:
    clocks = ClockOffsets()
    for k in range(10):
        clocks.observe("btn-1", T0 + k * 1000, k, T0 + k * 1000 + 100)
    reset_at = T0 + 20_000
    offset = clocks.observe("btn-1", 5_000, 10, reset_at + 5_000 + 150)
    assert offset == reset_at + 150
    assert clocks.steps == 1
    # A message sent before the reset, delivered late, is still placed on the old clock.
    assert clocks.observe("btn-1", T0 + 9_500, 9, reset_at + 6_000) == 100


def test_a_clock_set_forward_is_followed_at_once_and_each_device_has_its_own() -> None:
    clocks = ClockOffsets()
    for k in range(5):
        clocks.observe("cane-1", T0 + k * 2000, k, T0 + k * 2000 + 50)
        clocks.observe("cane-2", T0 + k * 2000 - 7000, k, T0 + k * 2000 + 50)
    assert clocks.observe("cane-1", T0 + 10_000 + 240_000, 5, T0 + 10_050) == -239_950
    assert clocks.offset("cane-2") == 7050
    assert clocks.offset("cane-3") is None
