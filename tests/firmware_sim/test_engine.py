"""The pure scheduler: determinism, seq across reboots, injections, faults (no broker)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from firmware_sim import Engine, FaultRates, Injection, generate_fleet, parse_faults, parse_spec
from firmware_sim.device import ActionKind
from firmware_sim.faults import MALFORMED
from firmware_sim.scenario import parse_scenario
from gateway import DeviceType, Fleet, PayloadError, Status, decode
from gateway.geo import distance_m as haversine_m

START_MS = 1_764_300_000_000  # 2025-11-28, a fixed simulated start
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(60, seed=5)


def _first(fleet: Fleet, dtype: DeviceType) -> str:
    return next(d.elder_id for d in fleet.devices if d.type is dtype)


def _traffic(engine: Engine, until_ms: int) -> dict[int, list[bytes]]:
    per_device: dict[int, list[bytes]] = defaultdict(list)
    for out in engine.advance(until_ms):
        per_device[out.device].append(out.wire.payload if out.wire else out.kind.encode())
    return per_device


def test_same_seed_same_traffic(fleet: Fleet) -> None:
    a = _traffic(Engine(fleet, seed=3, start_ms=START_MS), START_MS + 2 * HOUR_MS)
    b = _traffic(Engine(fleet, seed=3, start_ms=START_MS), START_MS + 2 * HOUR_MS)
    c = _traffic(Engine(fleet, seed=4, start_ms=START_MS), START_MS + 2 * HOUR_MS)
    assert a == b and a != c


def test_advancing_in_steps_gives_the_same_traffic(fleet: Fleet) -> None:
    whole = _traffic(Engine(fleet, seed=3, start_ms=START_MS), START_MS + HOUR_MS)
    engine = Engine(fleet, seed=3, start_ms=START_MS)
    stepped: dict[int, list[bytes]] = defaultdict(list)
    for k in range(1, 61):
        for dev, items in _traffic(engine, START_MS + k * 60_000).items():
            stepped[dev].extend(items)
    assert stepped == whole


def test_valid_traffic_decodes_and_seq_counts_up_across_reboots(fleet: Fleet) -> None:
    target = fleet.devices[0]
    engine = Engine(
        fleet, seed=1, start_ms=START_MS, injections=[Injection("reboot", target.id, 600)]
    )
    registry = {d.id: d.type for d in fleet.devices}
    seqs: dict[str, list[int]] = defaultdict(list)
    kinds: list[ActionKind] = []
    for out in engine.advance(START_MS + 3 * HOUR_MS):
        if out.device == 0:
            kinds.append(out.kind)
        if out.wire is None:
            continue
        msg = decode(
            out.wire.topic, out.wire.payload, now_ms=START_MS + 4 * HOUR_MS, registry=registry
        )
        assert not isinstance(msg, Status) or msg.online
        if not isinstance(msg, Status):
            seqs[msg.device_id].append(msg.seq)
    for values in seqs.values():
        assert values == list(range(values[0], values[0] + len(values)))
    # Reboot: connection dropped without DISCONNECT, back later, seq carried on.
    assert kinds.count(ActionKind.CONNECT) == 2 and ActionKind.KILL in kinds
    assert any(i.kind == "reboot" and not i.real for i in engine.take_incidents())


def test_injections_become_ground_truth(fleet: Fleet) -> None:
    injections = [
        Injection("fall", _first(fleet, DeviceType.CANE), 120),
        Injection(
            "wander", _first(fleet, DeviceType.BAND), 60, {"pattern": "direct", "distance_m": 1500}
        ),
        Injection("smoke", _first(fleet, DeviceType.SMOKE), 30),
        Injection("cancel", fleet.elders[3].id, 10),
        Injection("offline", fleet.elders[4].id, 200),
        Injection("drop_cane", _first(fleet, DeviceType.CANE), 900),
    ]
    engine = Engine(fleet, seed=2, start_ms=START_MS, rate_scale=0.0, injections=injections)
    out = engine.advance(START_MS + HOUR_MS)
    got = {(i.kind, i.real, i.elder_id, i.detail.split("=")[0]) for i in engine.take_incidents()}
    assert ("fall", True, injections[0].target, "episode") in got
    assert ("wandering", True, injections[1].target, "pattern") in got
    assert ("smoke", True, injections[2].target, "source") in got
    assert ("sos", False, injections[3].target, "cancelled") in got
    assert ("device_offline", True, injections[4].target, "cause") in got
    assert ("drop_cane", False, injections[5].target, "episode") in got
    events = [o.wire.payload for o in out if o.wire and o.wire.topic.endswith("/events")]
    assert any(b'"event":"alarm"' in p for p in events)
    assert any(b'"event":"cancel"' in p for p in events)
    assert sum(o.kind is ActionKind.KILL for o in out) == 1


def test_wandering_band_goes_the_injected_distance(fleet: Fleet) -> None:
    elder_id = _first(fleet, DeviceType.BAND)
    elder = next(e for e in fleet.elders if e.id == elder_id)
    band = next(d.id for d in fleet.devices if d.elder_id == elder_id and d.type is DeviceType.BAND)
    engine = Engine(
        fleet,
        seed=2,
        start_ms=START_MS,
        rate_scale=0.0,
        injections=[Injection("wander", elder_id, 0, {"pattern": "direct", "distance_m": 2000})],
    )
    far = 0.0
    for out in engine.advance(START_MS + 2 * HOUR_MS):
        if out.wire and out.wire.topic.endswith(f"/{band}/telemetry"):
            msg = decode(out.wire.topic, out.wire.payload, now_ms=START_MS + 3 * HOUR_MS)
            far = max(far, haversine_m(elder.home_lat, elder.home_lon, msg.lat, msg.lon))  # type: ignore[union-attr]
    assert 1800 < far < 2200


def test_faults_carry_their_reason(fleet: Fleet) -> None:
    engine = Engine(fleet, seed=7, start_ms=START_MS, faults=FaultRates(0.05, 0.02, 0.02))
    registry = {d.id: d.type for d in fleet.devices}
    seen: dict[str, int] = defaultdict(int)
    keys = set()
    for out in engine.advance(START_MS + 2 * HOUR_MS):
        if out.wire is None:
            continue
        fault = out.wire.fault
        try:
            msg = decode(
                out.wire.topic, out.wire.payload, now_ms=START_MS + 3 * HOUR_MS, registry=registry
            )
        except PayloadError as exc:
            assert fault == exc.reason
            seen[fault] += 1
            continue
        assert fault in (None, "duplicate", "late")
        if not isinstance(msg, Status):
            key = msg.key
            assert (key in keys) == (fault is not None)
            keys.add(key)
            seen[fault or "ok"] += 1
    assert set(seen) >= {*MALFORMED, "duplicate", "late", "ok"}


def test_scenario_and_spec_parsing() -> None:
    assert parse_spec("fall", "el-000123@+120s") == Injection("fall", "el-000123", 120.0)
    assert parse_spec("sos", "btn-000001@+2m").at_s == 120.0
    assert parse_faults("0.01") == FaultRates(0.01, 0.01, 0.01)
    assert parse_faults("late=0.5") == FaultRates(late=0.5)
    injections, faults = parse_scenario(
        '{"injections":[{"kind":"wander","target":"el-000002","at_s":30,"pattern":"lapping"}],'
        '"faults":{"duplicate":0.1}}'
    )
    assert injections == [Injection("wander", "el-000002", 30.0)]
    assert injections[0].params == {"pattern": "lapping"} and faults == FaultRates(duplicate=0.1)
    for bad in ("el-1@soon", "EL-000001@+1s"):
        with pytest.raises(ValueError):
            parse_spec("fall", bad)
    with pytest.raises(ValueError):
        parse_faults("typo=0.1")


def test_injection_on_a_missing_device_is_refused(fleet: Fleet) -> None:
    no_cane = next(
        e.id
        for e in fleet.elders
        if not any(d.elder_id == e.id and d.type is DeviceType.CANE for d in fleet.devices)
    )
    with pytest.raises(ValueError, match="no cane"):
        Engine(fleet, seed=0, start_ms=START_MS, injections=[Injection("fall", no_cane, 1)])


def test_periodic_reports_are_spread_over_their_period() -> None:
    fleet = generate_fleet(200, seed=8)
    engine = Engine(fleet, seed=2, start_ms=START_MS)
    smoke_s: list[int] = []
    for out in engine.advance(START_MS + 10 * 60_000):
        if out.wire is None or not out.wire.topic.endswith("/telemetry"):
            continue
        msg = decode(out.wire.topic, out.wire.payload, now_ms=START_MS + HOUR_MS)
        if msg.type is DeviceType.SMOKE and msg.ts is not None:
            smoke_s.append((msg.ts - START_MS) // 1000)
    sensors = sum(d.type is DeviceType.SMOKE for d in fleet.devices)
    # About one reading per sensor per minute, never most of them in the same few seconds.
    assert 8 * sensors <= len(smoke_s) <= 12 * sensors
    busiest = max(sum(1 for s in smoke_s if t <= s < t + 5) for t in range(60, 600))
    assert busiest < 0.25 * sensors


def test_waiting_devices_do_not_spin() -> None:
    fleet = generate_fleet(30, seed=9)
    engine = Engine(fleet, seed=4, start_ms=START_MS)
    wakes = 0
    t = START_MS
    while t < START_MS + 10 * 60_000:
        t = max(t + 1, min(engine.next_due_ms, START_MS + 10 * 60_000))
        engine.advance(t)
        wakes += 1
    assert wakes < 60 * len(fleet.devices)


def test_simulated_clock_is_pinned_to_its_start_until_the_run_begins() -> None:
    """A reader of the clock before `run` (an evaluation's engine) must not see it jump ahead."""
    from firmware_sim import Simulation, generate_fleet

    sim = Simulation(generate_fleet(2, 3), mqtt_url="mqtt://127.0.0.1:1", speed=20.0)
    assert sim.sim_now_ms() == sim.start_ms


@pytest.mark.parametrize("rate_scale", [0.0, 1.0])
def test_rate_scale_zero_leaves_no_spontaneous_wandering(rate_scale: float) -> None:
    """Wandering episodes are spontaneous incidents: `rate_scale` 0 removes them (a test
    asserting its ground truth otherwise depends on the hour it runs), 1 keeps them."""
    fleet = generate_fleet(300, seed=4)
    engine = Engine(fleet, seed=2, start_ms=START_MS, rate_scale=rate_scale)
    routines = {id(m.ctx.routine): m.ctx.routine for m in engine.models}.values()
    day = START_MS // 86_400_000
    wanders = sum(
        seg.kind == "wander" for r in routines for d in range(day, day + 5) for seg in r._plan(d)
    )
    assert (wanders == 0) == (rate_scale == 0.0), wanders
