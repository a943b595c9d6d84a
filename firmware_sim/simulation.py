"""Run a fleet against a broker in (accelerated) real time: the simulator's programmatic API."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from firmware_sim.conditions import ANOMALY_PER_DAY, INACTIVITY_PER_DAY
from firmware_sim.device import ActionKind
from firmware_sim.engine import Engine, Outgoing
from firmware_sim.faults import Wire
from firmware_sim.incidents import Incident
from firmware_sim.mqtt import Transport
from firmware_sim.scenario import FaultRates, Injection
from gateway import Fleet
from gateway.mqtt import DEFAULT_MQTT_URL, parse_mqtt_url

logger = logging.getLogger(__name__)

# With no fixed duration an accelerated run starts this many real seconds of catch-up in
# the past; once the simulated clock reaches the real one it runs at real speed.
UNBOUNDED_LEAD_S = 3600.0
_MAX_WAIT_S = 0.05


@dataclass(slots=True)
class SimStats:
    """Counters of a run so far."""

    devices: int = 0
    online: int = 0
    published: int = 0  # generated and handed to the transport
    sent: int = 0  # handed to paho on a live connection
    incidents: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    sim_ms: int = 0
    elapsed_s: float = 0.0
    rate_msg_s: float = 0.0

    def line(self) -> str:
        """The progress line printed on stderr."""
        faults = sum(self.faults.values())
        return (
            f"sim: {self.online}/{self.devices} devices online, {self.rate_msg_s:.0f} msg/s, "
            f"{self.sent}/{self.published} sent, {self.incidents} incidents, {faults} faults, "
            f"t+{self.elapsed_s:.0f}s"
        )


def default_start_ms(now_ms: int, speed: float, duration_s: float | None) -> int:
    """Simulated start so device ts never runs ahead of the real clock (contract: ts ≤ now + 5 min).

    The simulated clock advances `speed` times faster, so it starts
    `duration_s * (speed - 1)` seconds in the past and meets the real clock at the end.
    """
    if speed <= 1.0:
        return now_ms
    lead_s = duration_s if duration_s is not None else UNBOUNDED_LEAD_S
    return now_ms - int(lead_s * (speed - 1) * 1000)


class Simulation:
    """A fleet driven against a broker from one thread (a scheduler heap and a selector)."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        mqtt_url: str = DEFAULT_MQTT_URL,
        prefix: str = "",
        seed: int = 0,
        speed: float = 1.0,
        duration_s: float | None = None,
        start_ms: int | None = None,
        injections: Iterable[Injection] = (),
        faults: FaultRates | None = None,
        pooled: int = 0,
        rate_scale: float = 1.0,
        ground_truth: str | Path | None = None,
        progress: Callable[[SimStats], None] | None = None,
        progress_s: float = 5.0,
        record_wire: bool = False,
        inactivity_per_day: float = INACTIVITY_PER_DAY,
        anomaly_per_day: float = ANOMALY_PER_DAY,
    ) -> None:
        """Configure a run (nothing connects until `run` or `start`).

        Args:
            fleet: the devices to simulate.
            mqtt_url: the broker.
            prefix: topic namespace put before `eldercare/v1/...`.
            seed: same seed (and start) gives the same traffic.
            speed: time acceleration factor.
            duration_s: real seconds to run (None: until `stop`).
            start_ms: simulated clock at the start (default: see `default_start_ms`).
            injections: incidents to inject, at simulated seconds after the start.
            faults: rates of malformed, duplicate and late messages.
            pooled: share this many connections among all devices (0: one per device).
            rate_scale: multiplies the rates of spontaneous incidents.
            ground_truth: JSONL file receiving every incident and nuisance.
            progress: called with the stats every `progress_s` seconds and at the end.
            progress_s: progress period.
            record_wire: keep every publish in `wire_log` (tests, small fleets).
            inactivity_per_day: spontaneous immobility episodes per elder-day.
            anomaly_per_day: spontaneous arrhythmia episodes per elder-day.

        Raises:
            ValueError: for an injection the fleet cannot show, or a bad URL.
        """
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.fleet, self.speed, self.duration_s, self.prefix = fleet, speed, duration_s, prefix
        self.address = parse_mqtt_url(mqtt_url)
        self.pooled, self.progress, self.progress_s = pooled, progress, progress_s
        self.start_ms = (
            start_ms
            if start_ms is not None
            else default_start_ms(int(time.time() * 1000), speed, duration_s)
        )
        self.engine = Engine(
            fleet,
            seed=seed,
            start_ms=self.start_ms,
            prefix=prefix,
            faults=faults,
            rate_scale=rate_scale,
            injections=injections,
            inactivity_per_day=inactivity_per_day,
            anomaly_per_day=anomaly_per_day,
        )
        self.ground_truth = Path(ground_truth) if ground_truth else None
        self.incidents: list[Incident] = []
        self.wire_log: list[tuple[str, Wire]] | None = [] if record_wire else None
        self.stats = SimStats(devices=len(fleet.devices))
        self._stop = threading.Event()
        self._inbox: queue.SimpleQueue[Injection] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._real_start = 0.0
        self._gt: IO[str] | None = None

    # -- control ----------------------------------------------------------------------------

    def inject(self, injection: Injection) -> None:
        """Inject an incident while running (thread-safe); `at_s` counts from the run's start."""
        self._inbox.put(injection)

    def stop(self) -> None:
        """Ask the run to finish (thread-safe); `run` returns after a clean disconnect."""
        self._stop.set()

    def start(self) -> threading.Thread:
        """Run in a background thread; returns it (join it, or call `stop`)."""
        self._thread = threading.Thread(target=self.run, name="firmware-sim", daemon=True)
        self._thread.start()
        return self._thread

    def sim_now_ms(self) -> int:
        """The simulated clock: accelerated, never ahead of the real clock, and pinned to
        `start_ms` until `run` has its connections up and starts it."""
        if not self._real_start:
            return self.start_ms
        elapsed = time.monotonic() - self._real_start
        return min(self.start_ms + int(elapsed * self.speed * 1000), int(time.time() * 1000))

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> SimStats:
        """Drive the fleet until the duration is over or `stop` is called; returns the stats."""
        transport = Transport(self.address, self.engine.wills, self.pooled)
        up = transport.preconnect([self._client_id(d.id) for d in self.fleet.devices])
        logger.info("%d connections up; starting the simulated clock", up)
        self._real_start = time.monotonic()
        self._gt = open(self.ground_truth, "a", encoding="utf-8") if self.ground_truth else None  # noqa: SIM115
        last_progress, last_count, last_t = self._real_start, 0, self._real_start
        try:
            while not self._stop.is_set():
                if (
                    self.duration_s is not None
                    and time.monotonic() - self._real_start >= self.duration_s
                ):
                    break
                now_ms = self._step(transport)
                wait_s = (self.engine.next_due_ms - now_ms) / 1000 / self.speed
                transport.poll(min(max(wait_s, 0.0), _MAX_WAIT_S))
                t = time.monotonic()
                if t - last_progress >= self.progress_s:
                    self.stats.rate_msg_s = (transport.sent - last_count) / (t - last_t)
                    last_progress, last_count, last_t = t, transport.sent, t
                    self._report(transport)
        finally:
            transport.close()
            if self._gt is not None:
                self._gt.close()
        self.stats.rate_msg_s = transport.sent / max(time.monotonic() - self._real_start, 1e-9)
        self._report(transport)
        return self.stats

    def _step(self, transport: Transport) -> int:
        now_ms = self.sim_now_ms()
        while not self._inbox.empty():
            injection = self._inbox.get()
            try:
                self.engine.inject(injection, now_ms)
            except ValueError as exc:
                logger.warning(
                    "injection %s on %s refused: %s", injection.kind, injection.target, exc
                )
        for out in self.engine.advance(now_ms):
            self._dispatch(transport, out)
        fresh = self.engine.take_incidents()
        if fresh:
            self.incidents.extend(fresh)
            self.stats.incidents += len(fresh)
            if self._gt is not None:
                self._gt.write("".join(f"{inc.to_json()}\n" for inc in fresh))
                self._gt.flush()
        self.stats.sim_ms = now_ms
        return now_ms

    def _client_id(self, device_id: str) -> str:
        # A device's MQTT client id is its id; under a topic prefix (a test or a second demo on a
        # shared broker) the prefix goes first, so two runs never take over each other's sessions.
        return f"{self.prefix}{device_id}"

    def _dispatch(self, transport: Transport, out: Outgoing) -> None:
        device_id = self.fleet.devices[out.device].id
        if out.kind is ActionKind.CONNECT:
            transport.connect(out.device, self._client_id(device_id))
        elif out.kind is ActionKind.KILL:
            transport.kill(out.device)
        elif out.wire is not None:
            wire = out.wire
            transport.publish(out.device, wire.topic, wire.payload, wire.qos, wire.retain)
            self.stats.published += 1
            if wire.fault is not None:
                self.stats.faults[wire.fault] += 1
            if self.wire_log is not None:
                self.wire_log.append((device_id, wire))

    def _report(self, transport: Transport) -> None:
        self.stats.sent = transport.sent
        self.stats.online = transport.connected_devices
        self.stats.elapsed_s = time.monotonic() - self._real_start
        if self.progress is not None:
            self.progress(self.stats)


def run_simulation(fleet: Fleet, **options: object) -> SimStats:
    """Build a `Simulation` with `options` (its keyword arguments) and run it to the end."""
    return Simulation(fleet, **options).run()  # type: ignore[arg-type]
