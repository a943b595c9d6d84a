"""Partitions of the alerting work (pure): stable owners, a split registry, topics by owner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerting.partition import Partition, TopicOwner, partition_of
from alerting.settings import AlertingSettings
from gateway import CareCenter, Device, DeviceType, Elder, Fleet
from gateway.topics import device_topic

ROOT = str(Path(__file__).resolve().parents[2])


def _fleet(n: int) -> Fleet:
    elders = tuple(Elder(f"el-{i:04d}", "x", 39.93, 116.37) for i in range(n))
    devices = tuple(
        Device(f"{t.value}-{i:04d}", t, f"el-{i:04d}")
        for i in range(n)
        for t in (DeviceType.BUTTON, DeviceType.BAND)
    )
    return Fleet((CareCenter("cc-1", "x", 39.93, 116.37),), elders, devices)


def test_the_owner_is_the_same_in_every_process_whatever_its_hash_seed() -> None:
    # CRC-32 of the id: fixed values, and another interpreter with another seed agrees.
    ids = [f"el-{i:04d}" for i in range(20)]
    here = [partition_of(e, 3) for e in ids]
    code = (
        f"from alerting.partition import partition_of;print([partition_of(e, 3) for e in {ids!r}])"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        assert out.strip() == str(here)
    # zlib.crc32 of the id modulo N: a deployment's owners never change with a release.
    assert here == [1, 2, 2, 2, 2, 2, 2, 2, 0, 2, 0, 0, 2, 1, 0, 2, 2, 1, 2, 2]
    assert all(partition_of(e, 1) == 0 for e in ids)


@pytest.mark.parametrize("count", [2, 3, 5], ids=lambda n: f"N={n}")
def test_partitions_split_the_registry_by_elder_with_every_centre_in_each(count: int) -> None:
    fleet = _fleet(60)
    parts = [Partition(k, count).fleet(fleet) for k in range(count)]
    elders = [e.id for p in parts for e in p.elders]
    devices = [d.id for p in parts for d in p.devices]
    assert sorted(elders) == sorted(e.id for e in fleet.elders), "each elder exactly once"
    assert sorted(devices) == sorted(d.id for d in fleet.devices), "each device exactly once"
    for part in parts:
        assert part.care_centers == fleet.care_centers
        own = {e.id for e in part.elders}
        assert all(d.elder_id in own for d in part.devices), "an elder's devices stay with it"
        assert part.elders, "60 elders leave no partition empty"


def test_topic_owner_routes_by_elder_and_an_unknown_device_to_exactly_one() -> None:
    fleet = _fleet(20)
    owners = [TopicOwner(Partition(k, 2), fleet.devices) for k in range(2)]
    for device in fleet.devices:
        topic = device_topic(device.id, "telemetry", "t1/")
        mine = [owner(topic) for owner in owners]
        assert mine == [partition_of(device.elder_id, 2) == k for k in range(2)]
    for unknown in ("ghost-1", "ghost-2", "ghost-3", "ghost-4"):
        topic = device_topic(unknown, "events")
        assert sum(owner(topic) for owner in owners) == 1
    whole = TopicOwner(Partition())
    assert whole(device_topic("anything", "status"))
    # A device re-registered to another elder follows it on the next reload.
    moved = Device("band-0000", DeviceType.BAND, "el-0001")
    if partition_of("el-0000", 2) != partition_of("el-0001", 2):
        owners[0].set_devices([moved])
        assert owners[0](device_topic("band-0000", "telemetry")) == (
            partition_of("el-0001", 2) == 0
        )


def test_partition_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Partition(2, 2)
    with pytest.raises(ValueError):
        Partition(0, 0)
    assert Partition(1, 2).suffix == "-p1of2" and Partition().suffix == ""
    with pytest.raises(ValidationError):
        AlertingSettings(partitions=2, partition=2)
    assert AlertingSettings(partitions=4, partition=3).partition == 3
