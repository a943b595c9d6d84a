"""The scheduler that drives every device model in simulated time (pure: no I/O)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from firmware_sim.conditions import ANOMALY_PER_DAY, INACTIVITY_PER_DAY
from firmware_sim.device import NEVER, ActionKind, DeviceModel, ModelContext, device_key
from firmware_sim.faults import FaultInjector, Wire
from firmware_sim.fixed import ButtonModel, SmokeModel
from firmware_sim.incidents import Incident
from firmware_sim.routine import Routine, make_profile
from firmware_sim.scenario import FaultRates, Injection, resolve_device
from firmware_sim.wearables import BandModel, CaneModel
from gateway import DeviceType, Fleet, encode_message

if TYPE_CHECKING:
    from collections.abc import Iterable

MODELS: dict[DeviceType, type[DeviceModel]] = {
    DeviceType.BUTTON: ButtonModel,
    DeviceType.SMOKE: SmokeModel,
    DeviceType.BAND: BandModel,
    DeviceType.CANE: CaneModel,
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What the transport must do for device number `device` at simulated time `at_ms`."""

    device: int
    kind: ActionKind
    at_ms: int
    wire: Wire | None = None


class Engine:
    """All device models of a fleet on one scheduler heap.

    Every device and every elder draws from its own generator seeded by (seed, id), so
    the same seed and start time give the same payloads in the same per-device order.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        seed: int,
        start_ms: int,
        prefix: str = "",
        faults: FaultRates | None = None,
        rate_scale: float = 1.0,
        injections: Iterable[Injection] = (),
        inactivity_per_day: float = INACTIVITY_PER_DAY,
        anomaly_per_day: float = ANOMALY_PER_DAY,
    ) -> None:
        """Build the models; `injections` are scheduled relative to `start_ms`.

        `inactivity_per_day` and `anomaly_per_day` are the rates of spontaneous immobility and
        arrhythmia episodes per elder-day (firmware_sim.conditions), scaled by `rate_scale`,
        as are the wandering episodes of elders with dementia (0: none but the injected).
        """
        self.fleet, self.start_ms, self.prefix = fleet, start_ms, prefix
        self.faults = faults or FaultRates()
        self.incidents: list[Incident] = []
        band_owners = {d.elder_id for d in fleet.devices if d.type is DeviceType.BAND}
        routines = {}
        for elder in fleet.elders:
            key = device_key(elder.id)
            profile = make_profile(np.random.default_rng([seed, 1, key]), elder.id in band_owners)
            # Wandering is a spontaneous incident like the others.
            wander = min(1.0, profile.wander_per_day * rate_scale)
            profile = replace(profile, wander_per_day=wander)
            routines[elder.id] = Routine(
                elder, profile, seed, key, min(1.0, inactivity_per_day * rate_scale)
            )
        self.models: list[DeviceModel] = []
        self.injectors: list[FaultInjector | None] = []
        self.index = {d.id: i for i, d in enumerate(fleet.devices)}
        for d in fleet.devices:
            ctx = ModelContext(
                routines[d.elder_id], start_ms, rate_scale, self.incidents, anomaly_per_day
            )
            key = device_key(d.id)
            self.models.append(MODELS[d.type](d, ctx, np.random.default_rng([seed, 2, key])))
            fault_rng = np.random.default_rng([seed, 3, key])
            self.injectors.append(
                FaultInjector(self.faults, fault_rng, prefix) if self.faults.any else None
            )
        self.wills = [encode_message(m.will(), prefix) for m in self.models]
        self._heap = [(m.next_ms, i) for i, m in enumerate(self.models)]
        heapq.heapify(self._heap)
        for inj in injections:
            self.inject(inj)

    def inject(self, injection: Injection, now_ms: int | None = None) -> str:
        """Schedule an injection at `start_ms + at_s` (not before `now_ms`); returns the device id.

        Raises:
            ValueError: when the target has no device that can show it.
        """
        device_id = resolve_device(self.fleet, injection)
        i = self.index[device_id]
        at_ms = self.start_ms + int(injection.at_s * 1000)
        if now_ms is not None:
            at_ms = max(at_ms, now_ms)
        self.models[i].schedule(injection, at_ms)
        heapq.heappush(self._heap, (self.models[i].next_ms, i))
        return device_id

    @property
    def next_due_ms(self) -> int:
        """Simulated time of the next scheduled device wake-up."""
        return self._heap[0][0] if self._heap else NEVER

    def advance(self, until_ms: int) -> list[Outgoing]:
        """Run every device wake-up due up to `until_ms`, in time order."""
        out: list[Outgoing] = []
        heap = self._heap
        while heap and heap[0][0] <= until_ms:
            t, i = heapq.heappop(heap)
            model = self.models[i]
            if t != model.next_ms:
                continue  # superseded by an earlier wake-up (an injection)
            for action in model.wake(t):
                if action.message is None:
                    out.append(Outgoing(i, action.kind, t))
                    continue
                topic, payload = encode_message(action.message, self.prefix)
                retain = action.message.channel == "status"
                wire = Wire(topic, payload, action.qos, retain)
                injector = self.injectors[i]
                wires = [wire] if injector is None else injector.around(action.message, wire)
                out.extend(Outgoing(i, ActionKind.PUBLISH, t, w) for w in wires)
            if model.next_ms < NEVER:
                heapq.heappush(heap, (model.next_ms, i))
        return out

    def take_incidents(self) -> list[Incident]:
        """Incidents recorded since the last call."""
        taken, self.incidents[:] = list(self.incidents), []
        return taken
