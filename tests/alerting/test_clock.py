"""Device clock offsets: robust to network delay, buffer replays and clock steps."""

from __future__ import annotations

import random

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


def _reference_offsets(
    events: list[tuple[int, int, int]], window_ms: int, max_samples: int, step_ms: int
) -> list[int]:
    """The estimator written plainly: the minimum taken over the whole window every time."""
    samples: list[tuple[int, int]] = []
    offset, anchor, before = 0, 0, None
    newest_seq, newest_ts, newest_rx = -1, 0, 0
    out = []
    for k, (ts, seq, rx) in enumerate(events):
        sample = rx - ts
        if k == 0:
            offset, anchor = sample, seq
        elif seq > newest_seq and ts < newest_ts - step_ms:
            before, samples, anchor, offset = offset, [], seq, sample
        if seq > newest_seq:
            newest_seq, newest_ts = seq, ts
        if seq < anchor:
            out.append(before if before is not None else offset)
            continue
        samples.append((rx, sample))
        newest_rx = max(newest_rx, rx)
        while len(samples) > 1 and (
            len(samples) > max_samples or samples[0][0] < newest_rx - window_ms
        ):
            samples.pop(0)
        lowest = min(o for _, o in samples)
        if lowest <= offset or newest_rx - samples[0][0] >= window_ms // 2:
            offset = lowest
        out.append(offset)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_running_minimum_equals_the_minimum_over_the_window(seed: int) -> None:
    """Random delays, replays, resets, late and reordered messages: the O(1) window minimum
    gives the offsets a plain minimum over the kept samples gives, message for message."""
    rng = random.Random(seed)
    window_ms, max_samples, step_ms = 60_000, 16, 2_000
    events: list[tuple[int, int, int]] = []
    rx, skew, seq = 1_000_000, rng.randint(-(10**6), 10**6), 0
    for k in range(3_000):
        rx += rng.choice((0, 5, 300, 2_000, 30_000))
        roll = rng.random()
        if roll < 0.01 or k == 1_500:
            skew = rng.randint(-(10**9), 0)  # a reset or a step back
        elif roll < 0.02:
            skew += rng.randint(0, 600_000)  # set forward
        seq += rng.choice((1, 1, 1, 1, 1, -3))  # now and then an older message arrives late
        delay = rng.choice((20, 50, 400, 3_600_000 if rng.random() < 0.05 else 80))
        events.append((rx - skew - delay, seq, rx))
    clocks = ClockOffsets(window_ms=window_ms, max_samples=max_samples, step_ms=step_ms)
    got = [clocks.observe("d", ts, s, r) for ts, s, r in events]
    assert got == _reference_offsets(events, window_ms, max_samples, step_ms)
    assert clocks.steps > 0
