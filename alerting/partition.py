"""Partitions of the alerting work across processes: which elders, devices and alerts are ours.

Alerting is split by ELDER, not by device: inactivity, the heart-rate model, the alert
position, offline alerts (which close only when every device of the elder is back) and the
lifecycle's one active alert per (elder, kind) all combine an elder's devices, so one
process must see every device of an elder. A device the registry does not know (yet) falls
back to its own id, so exactly one partition counts its events and statuses as unknown (its
telemetry reaches none: partitions subscribe telemetry per registered device, alerting.mqtt).

The hash is CRC-32 (zlib, ISO 3309), stable across processes, hosts and Python versions;
Python's `hash()` of a str is salted per process (PYTHONHASHSEED) and must never be used.

Pure: no I/O. The service filters the registry it loads with `Partition.fleet`, drops other
partitions' messages by topic with `TopicOwner` before decoding them, and keeps only its own
alerts with `Partition.owns_elder`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.fleet import Device, Fleet

# The most partitions a deployment may have (ALERTING_PARTITIONS): a partition set's lock
# probes every other width up to it (alerting.leader).
MAX_PARTITIONS = 64


def partition_of(key: str, partitions: int) -> int:
    """The partition (0..partitions-1) of an elder id (or of an unregistered device's id)."""
    if partitions <= 1:
        return 0
    return zlib.crc32(key.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Partition:
    """Partition `index` of `count` (count 1: the whole district, nothing filtered).

    Raises:
        ValueError: `count` < 1 or `index` outside 0..count-1.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} of {self.count}: need 0 <= k < N, N >= 1")

    @property
    def whole(self) -> bool:
        """Whether this is the only partition (the unpartitioned service)."""
        return self.count == 1

    @property
    def suffix(self) -> str:
        """`-p{k}of{N}` (empty when whole): appended to client ids, outbox files, lock scopes."""
        return "" if self.whole else f"-p{self.index}of{self.count}"

    def owns_elder(self, elder_id: str) -> bool:
        """Whether this partition handles the elder (its devices and its alerts)."""
        return self.whole or partition_of(elder_id, self.count) == self.index

    def fleet(self, fleet: Fleet) -> Fleet:
        """The registry restricted to this partition's elders and their devices.

        Care centres are kept whole: routing picks among all of them.
        """
        if self.whole:
            return fleet
        elders = tuple(e for e in fleet.elders if self.owns_elder(e.id))
        devices = tuple(d for d in fleet.devices if self.owns_elder(d.elder_id))
        return Fleet(fleet.care_centers, elders, devices)


class TopicOwner:
    """Says from a device topic alone whether a message is this partition's (no decoding).

    The owner of each registered device is looked up in a dict rebuilt on every registry
    reload; an unregistered device id is hashed on the fly (never cached, so garbage topics
    cannot grow memory).

    Args:
        partition: this process's partition.
        devices: the whole registry's devices.
    """

    def __init__(self, partition: Partition, devices: Iterable[Device] = ()) -> None:
        self.partition = partition
        self._mine: dict[str, bool] = {}
        self.set_devices(devices)

    def set_devices(self, devices: Iterable[Device]) -> None:
        """Adopt a (re)loaded registry's devices."""
        p = self.partition
        self._mine = {d.id: p.owns_elder(d.elder_id) for d in devices}

    def __call__(self, topic: str) -> bool:
        """Whether the message on `topic` (`…/devices/{device_id}/{channel}`) is ours.

        A topic without a device id is kept: the codec then rejects it, once.
        """
        if self.partition.whole:
            return True
        parts = topic.rsplit("/", 2)
        if len(parts) < 3:
            return self.partition.index == 0
        device_id = parts[1]
        mine = self._mine.get(device_id)
        if mine is None:
            return partition_of(device_id, self.partition.count) == self.partition.index
        return mine
