"""Routing against a brute-force nearest search: same centre, same flags, whatever the fleet."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.dispatch import Dispatcher
from alerting.routing import CenterIndex, NoCenterError, RouteDecision
from gateway import CareCenter
from gateway.geo import distance_m

# Around Xicheng district, so coverage circles of a few km² overlap and leave gaps.
LATS = st.floats(39.86, 39.98, allow_nan=False)
LONS = st.floats(116.30, 116.41, allow_nan=False)


def brute_force(
    centers: list[CareCenter],
    lat: float,
    lon: float,
    counts: Mapping[str, int],
    unusable: Collection[str],
) -> RouteDecision:
    """The routing rule by sorting every usable centre by distance: obviously right, slow."""
    usable = sorted(
        (distance_m(lat, lon, c.lat, c.lon), i, c)
        for i, c in enumerate(centers)
        if c.id not in unusable
    )
    if not usable:
        raise NoCenterError("none")

    def covers(d: float, c: CareCenter) -> bool:
        return d <= c.coverage_radius_m

    def room(c: CareCenter) -> bool:
        return counts.get(c.id, 0) < c.capacity

    rules = (
        (lambda d, c: covers(d, c) and room(c), False),
        (lambda d, c: room(c), False),
        (covers, True),
        (lambda d, c: True, True),
    )
    for ok, over in rules:
        for d, _, c in usable:
            if ok(d, c):
                return RouteDecision(c.id, d, covers(d, c), over)
    raise AssertionError("unreachable")


@st.composite
def fleets(draw: st.DrawFn, max_centers: int = 40) -> tuple[list[CareCenter], dict[str, int]]:
    n = draw(st.integers(1, max_centers))
    centers = [
        CareCenter(
            id=f"cc-{i:03d}",
            name=f"Centre {i}",
            lat=draw(LATS),
            lon=draw(LONS),
            capacity=draw(st.integers(0, 3)),
            coverage_km2=draw(st.floats(0.2, 8.0)),
        )
        for i in range(n)
    ]
    counts = {c.id: draw(st.integers(0, 4)) for c in centers}
    return centers, counts


@settings(max_examples=300, deadline=None)
@given(fleet=fleets(), data=st.data())
def test_route_agrees_with_brute_force(
    fleet: tuple[list[CareCenter], dict[str, int]], data: st.DataObject
) -> None:
    check_route(fleet, data)


@settings(max_examples=40, deadline=None)
@given(fleet=fleets(max_centers=300), data=st.data())
def test_route_agrees_with_brute_force_on_large_fleets(
    fleet: tuple[list[CareCenter], dict[str, int]], data: st.DataObject
) -> None:
    check_route(fleet, data)


def check_route(fleet: tuple[list[CareCenter], dict[str, int]], data: st.DataObject) -> None:
    """Route one random alert with random duty and exclusions; compare with brute force."""
    centers, counts = fleet
    ids = [c.id for c in centers]
    off = data.draw(st.sets(st.sampled_from(ids)))
    exclude = data.draw(st.sets(st.sampled_from(ids)))
    lat, lon = data.draw(LATS), data.draw(LONS)
    dispatcher = Dispatcher(centers)
    for cid in off:
        dispatcher.set_on_duty(cid, False)
    try:
        want = brute_force(centers, lat, lon, counts, off | exclude)
    except NoCenterError:
        with pytest.raises(NoCenterError):
            dispatcher.route(lat, lon, counts, exclude)
        return
    got = dispatcher.route(lat, lon, counts, exclude)
    check(got, want, centers, lat, lon)
    # Same answer whether the walk goes all the way, stops early for a full pass, or never walks.
    for max_walk_k in (len(centers), 4, 0):
        index = CenterIndex(centers, max_walk_k)
        check(index.route(lat, lon, counts, off | exclude), want, centers, lat, lon)
    # The rules themselves, stated directly.
    chosen = next(c for c in centers if c.id == got.center_id)
    assert chosen.id not in off and chosen.id not in exclude
    assert got.in_coverage == (got.distance_m <= chosen.coverage_radius_m)
    if not got.over_capacity:
        assert counts[chosen.id] < chosen.capacity
    else:
        assert all(counts[c.id] >= c.capacity for c in centers if c.id not in off | exclude)


def check(
    got: RouteDecision, want: RouteDecision, centers: list[CareCenter], lat: float, lon: float
) -> None:
    """Same flags and distance; equidistant centres may be chosen either way."""
    assert (got.in_coverage, got.over_capacity) == (want.in_coverage, want.over_capacity)
    assert got.distance_m == pytest.approx(want.distance_m, rel=1e-9, abs=1e-6)
    chosen = next(c for c in centers if c.id == got.center_id)
    assert distance_m(lat, lon, chosen.lat, chosen.lon) == pytest.approx(got.distance_m, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(fleet=fleets(), data=st.data())
def test_route_many_equals_routing_one_by_one(
    fleet: tuple[list[CareCenter], dict[str, int]], data: st.DataObject
) -> None:
    centers, counts = fleet
    points = data.draw(st.lists(st.tuples(LATS, LONS), min_size=1, max_size=12))
    dispatcher = Dispatcher(centers)
    got = dispatcher.route_many(points, counts)
    running = dict(counts)
    for (lat, lon), decision in zip(points, got, strict=True):
        check(decision, brute_force(centers, lat, lon, running, ()), centers, lat, lon)
        running[decision.center_id] = running.get(decision.center_id, 0) + 1
    assert counts == {c.id: counts[c.id] for c in centers}  # the caller's counts are untouched


def grid_centers(rows: int, cols: int, step_deg: float = 0.005) -> list[CareCenter]:
    """Centres on a grid closer than their 564 m coverage radius: every point is covered."""
    return [
        CareCenter(f"cc-{r:03d}-{c:03d}", "grid", 39.80 + r * step_deg, 116.20 + c * step_deg)
        for r in range(rows)
        for c in range(cols)
    ]


def test_typical_alert_looks_at_few_centres() -> None:
    centers = grid_centers(55, 55)  # 3,025 centres
    index = CenterIndex(centers)
    rng = random.Random(7)
    n = 200
    for _ in range(n):
        lat, lon = 39.80 + rng.uniform(0, 0.27), 116.20 + rng.uniform(0, 0.27)
        decision = index.route(lat, lon, {})
        assert decision.in_coverage and not decision.over_capacity
    # The nearest centre covers and has room, so the walk stops at the first one.
    assert index.examined == n


def test_full_neighbours_push_the_walk_outwards() -> None:
    centers = grid_centers(20, 20)
    counts = {c.id: c.capacity for c in centers}
    free = centers[-1]  # the far corner
    counts[free.id] = 0
    index = CenterIndex(centers)
    decision = index.route(centers[0].lat, centers[0].lon, counts)
    assert decision.center_id == free.id
    assert not decision.in_coverage and not decision.over_capacity
    assert index.examined >= len(centers)  # the far case ends in a pass over every centre


def test_no_capacity_anywhere_goes_to_nearest_covering_one_over_capacity() -> None:
    near = CareCenter("cc-near", "n", 39.90, 116.35, capacity=1, coverage_km2=0.01)
    cover = CareCenter("cc-cover", "c", 39.91, 116.35, capacity=1, coverage_km2=50.0)
    index = CenterIndex([near, cover])
    full = {"cc-near": 1, "cc-cover": 1}
    decision = index.route(39.9, 116.352, full)  # 170 m from cc-near, outside its 56 m
    assert (decision.center_id, decision.in_coverage, decision.over_capacity) == (
        "cc-cover",
        True,
        True,
    )
    # Nothing covers the point: the nearest at all, flagged both ways.
    far = index.route(39.0, 116.0, full)
    assert (far.center_id, far.in_coverage, far.over_capacity) == ("cc-near", False, True)


def test_duty_is_a_filter_and_set_centers_rebuilds() -> None:
    a = CareCenter("cc-a", "a", 39.90, 116.35)
    b = CareCenter("cc-b", "b", 39.90, 116.36)
    dispatcher = Dispatcher([a, b])
    assert dispatcher.route(39.90, 116.351, {}).center_id == "cc-a"
    dispatcher.set_on_duty("cc-a", False)
    assert not dispatcher.on_duty("cc-a")
    assert dispatcher.route(39.90, 116.351, {}).center_id == "cc-b"
    c = CareCenter("cc-c", "c", 39.90, 116.3511)
    dispatcher.set_centers([a, b, c])
    assert dispatcher.route(39.90, 116.351, {}).center_id == "cc-c"
    assert not dispatcher.on_duty("cc-a")  # duty is kept across a rebuild
    dispatcher.set_on_duty("cc-a", True)
    assert dispatcher.route(39.90, 116.3504, {}).center_id == "cc-a"
    dispatcher.set_centers([a])
    assert not dispatcher.on_duty("cc-b")  # a centre no longer registered is not on duty


def test_no_centre_to_route_to_raises() -> None:
    with pytest.raises(NoCenterError):
        Dispatcher([]).route(39.9, 116.35, {})
    dispatcher = Dispatcher([CareCenter("cc-a", "a", 39.9, 116.35)])
    with pytest.raises(NoCenterError):
        dispatcher.route(39.9, 116.35, {}, exclude={"cc-a"})
    with pytest.raises(ValueError, match="unique"):
        CenterIndex([CareCenter("cc-a", "a", 1, 1), CareCenter("cc-a", "b", 2, 2)])


@pytest.mark.parametrize("max_walk_k", [None, 0, 4, 64], ids=["default", "pass", "k4", "walk"])
def test_equidistant_centres_are_each_looked_at(max_walk_k: int | None) -> None:
    # 40 centres on one spot: larger queries return the ties in another order.
    centers = [CareCenter(f"cc-{i:03d}", "same", 39.875, 116.375, capacity=0) for i in range(40)]
    centers[32] = CareCenter("cc-032", "room", 39.875, 116.375, capacity=1)
    decision = CenterIndex(centers, max_walk_k).route(39.875, 116.375, {})
    assert decision == RouteDecision("cc-032", 0.0, True, False)
