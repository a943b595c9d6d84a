"""Watches the simulated devices' wire traffic during `eldercare eval` to time each incident."""

from __future__ import annotations

import bisect
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import paho.mqtt.client as paho

from alerting.detectors.smoke import ALARM_DB_M
from alerting.lifecycle import AlertRow
from firmware_sim.incidents import Incident
from gateway.codec import decode
from gateway.contract import AlertKind, DeviceType
from gateway.errors import PayloadError
from gateway.fleet import Fleet
from gateway.geo import distance_m
from gateway.messages import BandTelemetry, CaneTelemetry, Event, SmokeTelemetry
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import device_filter


class WireObserver:
    """Records band fixes (distance from home) and smoke readings under a topic prefix."""

    def __init__(
        self, mqtt_url: str, prefix: str, fleet: Fleet, record_canes: bool = False
    ) -> None:
        self.prefix = prefix
        self.record_canes = record_canes
        self.canes: dict[str, list[tuple[int, int, tuple[tuple[float, float, float], ...]]]] = {}
        self.types = {d.id: d.type for d in fleet.devices}
        self.hb_s = {d.id: d.heartbeat_s for d in fleet.devices}
        elders = {e.id: e for e in fleet.elders}
        self.zone = {
            d.id: (
                elders[d.elder_id].home_lat,
                elders[d.elder_id].home_lon,
                elders[d.elder_id].safe_radius_m,
            )
            for d in fleet.devices
            if d.type is DeviceType.BAND
        }
        self.band_for = {d.elder_id: d.id for d in fleet.devices if d.type is DeviceType.BAND}
        self.fixes: dict[str, list[tuple[int, float]]] = {}
        self.smoke_over: dict[str, list[int]] = {}
        self._inbox: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()
        address = parse_mqtt_url(mqtt_url)
        self.client = make_client(address=address)
        ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(device_filter(prefix), 1)
        self.client.on_subscribe = lambda c, u, m, r, p=None: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        if not ready.wait(10):
            raise TimeoutError("observer could not subscribe")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._inbox.put((msg.topic, bytes(msg.payload)))

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            topic, payload = item
            device_id = topic[len(self.prefix) :].split("/")[3] if topic.count("/") >= 4 else ""
            wanted = (DeviceType.BAND, DeviceType.SMOKE) + (
                (DeviceType.CANE,) if self.record_canes else ()
            )
            if self.types.get(device_id) not in wanted:
                continue
            try:
                msg = decode(topic, payload, now_ms=int(time.time() * 1000), prefix=self.prefix)
            except PayloadError:
                continue
            if isinstance(msg, CaneTelemetry):
                self.canes.setdefault(msg.device_id, []).append((msg.ts, msg.rate_hz, msg.accel_g))
            elif isinstance(msg, BandTelemetry) and msg.device_id in self.zone:
                lat0, lon0, _ = self.zone[msg.device_id]
                dist = distance_m(lat0, lon0, msg.lat, msg.lon)
                self.fixes.setdefault(msg.device_id, []).append((msg.ts, dist))
            elif (isinstance(msg, SmokeTelemetry) and msg.smoke_db_m >= ALARM_DB_M) or (
                isinstance(msg, Event) and msg.event == "alarm"
            ):
                self.smoke_over.setdefault(msg.device_id, []).append(msg.ts)

    def close(self) -> None:
        """Stop listening and finish the backlog."""
        self.client.disconnect()
        self.client.loop_stop()
        self._inbox.put(None)
        self._worker.join(30)

    def _leave_index(self, inc: Incident) -> tuple[list[tuple[int, float]], int | None]:
        band = self.band_for.get(inc.elder_id, "")
        fixes = sorted(self.fixes.get(band, []))
        radius = self.zone[band][2] if band in self.zone else 300.0
        start = bisect.bisect_left(fixes, (inc.start_ts, -1.0))
        for i in range(start, len(fixes)):
            if fixes[i][1] > radius:
                return fixes, i
        return fixes, None

    def ref_ts(self, inc: Incident) -> int:
        """When the incident became visible on the wire (see scoring.Truth)."""
        if inc.kind == "smoke" and inc.real:
            over = [t for t in self.smoke_over.get(inc.device_id, []) if t >= inc.start_ts]
            return min(over) if over else inc.start_ts
        if inc.kind == "wandering":
            fixes, leave = self._leave_index(inc)
            return fixes[leave][0] if leave is not None else inc.start_ts
        return inc.start_ts

    def observable(self, inc: Incident) -> bool:
        """False for an excursion that never left the safe zone (by the band's fixes)."""
        return inc.kind != "wandering" or self._leave_index(inc)[1] is not None

    def wandering_report(self, alerts: Iterable[AlertRow], incidents: Iterable[Incident]) -> str:
        """Share of excursions alerted by the second fix outside the zone."""
        mine = [a for a in alerts if a.kind is AlertKind.WANDERING]
        left = within = 0
        for inc in (i for i in incidents if i.kind == "wandering" and i.real):
            fixes, leave = self._leave_index(inc)
            if leave is None:
                continue
            left += 1
            limit = fixes[min(leave + 1, len(fixes) - 1)][0]
            if any(
                a.elder_id == inc.elder_id and inc.start_ts <= a.event_ts <= limit for a in mine
            ):
                within += 1
        share = within / left if left else float("nan")
        return f"wandering: {within}/{left} excursions alerted by the 2nd fix outside ({share:.3f})"

    def offline_report(self, alerts: Iterable[AlertRow], incidents: Iterable[Incident]) -> str:
        """Delay of offline alerts in heartbeats (the contract's limit is 2.5)."""
        mine = [a for a in alerts if a.kind is AlertKind.DEVICE_OFFLINE]
        ratios = []
        for inc in (i for i in incidents if i.kind == "device_offline" and i.real):
            hits = [
                a.raised_ts
                for a in mine
                if a.elder_id == inc.elder_id and a.raised_ts >= inc.start_ts - 2000
            ]
            if hits:
                ratios.append((min(hits) - inc.start_ts) / 1000 / self.hb_s[inc.device_id])
        if not ratios:
            return "device_offline: no offline incidents flagged"
        return (
            f"device_offline: {len(ratios)} flagged, delay in heartbeats p50"
            f" {np.percentile(ratios, 50):.3f} max {max(ratios):.3f} (limit 2.5 + tick)"
        )

    @staticmethod
    def processing_report(alerts: Iterable[AlertRow], speed: float) -> str:
        """Platform latency (real ms) from the triggering device message to the raised alert."""
        parts = []
        for kind in (AlertKind.SOS, AlertKind.SMOKE, AlertKind.FALL):
            lat_ms = [(a.raised_ts - a.event_ts) / speed for a in alerts if a.kind is kind]
            if lat_ms:
                parts.append(
                    f"{kind.value} p50 {np.percentile(lat_ms, 50):.0f} ms"
                    f" p99 {np.percentile(lat_ms, 99):.0f} ms"
                )
        return "processing (device message ts -> alert raised, real time): " + "; ".join(parts)
