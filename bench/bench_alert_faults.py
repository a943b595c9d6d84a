"""The fault modes of bench_alert_latency.py: alert latency during a database outage, and the
failover time of the standby alerting process (run through `bench_alert_latency.py --mode`)."""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from fault_rig import (
    AlertingProcess,
    Arrivals,
    Presser,
    PrivateCluster,
    first_alerts,
    raw_round_trip_ms,
)

from eldercare.broker import free_port, start_mosquitto, stop
from firmware_sim import generate_fleet
from gateway import DeviceType
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet

_LIVE_TIMEOUT_S = 90.0


@dataclass
class Rig:
    """A private broker and database with a fleet imported and an alert-arrival log."""

    work: Path
    port: int
    pg: PrivateCluster
    buttons: list[str]
    arrivals: Arrivals
    presser: Presser

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        # One client id for every alerting process: active and standby share the session.
        return {
            "DATABASE_URL": self.pg.url,
            "MQTT_URL": self.url,
            "ALERTING_CLIENT_ID": "bench-alerting",
            "ALERTING_SHARE_GROUP": "",
        }


@contextmanager
def _rig(elders: int) -> Iterator[Rig]:
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    port = free_port()
    broker = start_mosquitto(port, work / "mosquitto")
    pg = PrivateCluster()
    fleet = generate_fleet(elders, 11)
    with psycopg.connect(pg.url, autocommit=True) as conn:
        apply_migrations(conn)
    with psycopg.connect(pg.url) as conn:
        import_fleet(conn, fleet)
        conn.commit()
    buttons = [d.id for d in fleet.devices if d.type is DeviceType.BUTTON]
    arrivals = Arrivals(port, "eldercare/v1/alerts/+", work / "alerts.txt")
    presser = Presser(f"mqtt://127.0.0.1:{port}")
    try:
        yield Rig(work, port, pg, buttons, arrivals, presser)
    finally:
        presser.close()
        arrivals.close()
        stop(broker)
        pg.remove()


def _wait_live(rig: Rig, button: str) -> None:
    """Press `button` until its alert reaches a centre topic: the active process is working."""
    deadline = time.monotonic() + _LIVE_TIMEOUT_S
    seq = 1
    while time.monotonic() < deadline:
        rig.presser.press(button, seq)
        seq += 1
        for _ in range(20):
            if button in first_alerts(rig.arrivals):
                return
            time.sleep(0.1)
    raise SystemExit(f"alerting never published an alert; see {rig.work}")


def _latencies_ms(rig: Rig, buttons: list[str]) -> list[float]:
    alerts = first_alerts(rig.arrivals)
    out = []
    for b in buttons:
        first = alerts.get(b)
        out.append((first[0] - rig.presser.sent_ns[b]) / 1e6 if first else float("inf"))
    return out


def _pct(values: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.array(values, dtype=float), [50, 99])
    return float(p50), float(p99)


def _line(label: str, values: list[float], raw: tuple[float, float]) -> str:
    p50, p99 = _pct(values)
    lost = sum(1 for v in values if v == float("inf"))
    return (
        f"{label}: n={len(values)}, not delivered={lost}: p50 {p50:.1f} ms  p99 {p99:.1f} ms"
        f"  | ratio to raw: p50 {p50 / raw[0]:.1f}x  p99 {p99 / raw[1]:.1f}x"
    )


def _raw_line(raw: tuple[float, float]) -> str:
    return (
        "raw broker round trip (ceiling, mosquitto_pub -> broker -> mosquitto_sub):"
        f" p50 {raw[0]:.2f} ms  p99 {raw[1]:.2f} ms"
    )


def _reconciled(rig: Rig, buttons: list[str], timeout_s: float) -> tuple[int, float]:
    """How many of `buttons` have their alert in the table, and after how many seconds."""
    t0 = time.monotonic()
    count = 0
    while time.monotonic() - t0 < timeout_s:
        try:
            with psycopg.connect(rig.pg.url, autocommit=True, connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT count(DISTINCT device_id) FROM alerts WHERE device_id = ANY(%s)",
                    (buttons,),
                ).fetchone()
            count = int(row[0]) if row else 0
        except psycopg.OperationalError:
            count = 0
        if count == len(buttons):
            break
        time.sleep(0.5)
    return count, time.monotonic() - t0


def outage(args: argparse.Namespace) -> None:
    """Press -> alert with the database up, then stopped; then the outbox's reconciliation."""
    n = args.samples
    with _rig(max(args.elders, 2 * n + 20)) as rig:
        proc = AlertingProcess("alerting", rig.env(), rig.work)
        proc.start()
        try:
            _wait_live(rig, rig.buttons[0])
            up, down = rig.buttons[1 : 1 + n], rig.buttons[1 + n : 1 + 2 * n]
            rig.presser.press_every(up, args.gap_s).join()
            time.sleep(5.0)
            rig.pg.stop()
            rig.presser.press_every(down, args.gap_s).join()
            time.sleep(10.0)  # late alerts still count; what has not come by now is lost
            raw = raw_round_trip_ms(rig.port, n, args.gap_s, rig.work)
            rig.pg.start()
            stored, after_s = _reconciled(rig, down, 60.0)
            up_ms, down_ms = _latencies_ms(rig, up), _latencies_ms(rig, down)
        finally:
            proc.stop()
    raw_pct = _pct(raw)
    print(
        f"alerting: one `eldercare alerting` process, {n} presses per phase, {args.gap_s:g} s apart"
    )
    print(_raw_line(raw_pct))
    print(_line("press -> alert on the centre topic, database up", up_ms, raw_pct))
    print(_line("press -> alert on the centre topic, DATABASE DOWN", down_ms, raw_pct))
    if any(v == float("inf") for v in down_ms):
        print("alerts raised while the database was down were NOT delivered to the centre")
    print(f"outage alerts in the table once the database is back: {stored}/{n} in {after_s:.1f} s")


def failover(args: argparse.Namespace) -> None:
    """SIGKILL the active while presses arrive every `gap_s`: kill -> first standby alert."""
    if importlib.util.find_spec("alerting.leader") is None:
        print("failover: this tree has no standby (alerting/leader.py); nothing to measure")
        return
    presses = int(args.window_s / args.gap_s)
    before = int(1.0 / args.gap_s)
    with _rig(max(args.elders, presses + before + 20)) as rig:
        active = AlertingProcess("alerting-a", rig.env(), rig.work)
        standby = AlertingProcess("alerting-b", rig.env(), rig.work)
        active.start()
        try:
            _wait_live(rig, rig.buttons[0])
            standby.start()
            time.sleep(10.0)  # the standby starts and settles on the lock
            raw = raw_round_trip_ms(rig.port, args.samples, args.gap_s, rig.work)
            pressed = rig.buttons[1 : 1 + before + presses]
            thread = rig.presser.press_every(pressed, args.gap_s)
            time.sleep(before * args.gap_s)
            kill_ns = time.time_ns()
            active.kill()
            thread.join()
            time.sleep(15.0)
        finally:
            standby.stop()
            active.stop()
        alerts = first_alerts(rig.arrivals)
    after = [b for b in pressed if rig.presser.sent_ns[b] >= kill_ns]
    firsts = [alerts[b][0] for b in after if b in alerts]
    lost = [b for b in pressed if b not in alerts]
    doubled = [b for b in pressed if b in alerts and len(alerts[b][1]) > 1]
    raw_pct = _pct(raw)
    print(
        f"alerting: active + standby `eldercare alerting`, presses every {args.gap_s * 1000:.0f} ms"
    )
    print(_raw_line(raw_pct))
    if firsts:
        failover_ms = (min(firsts) - kill_ns) / 1e6
        print(
            f"failover: SIGKILL of the active -> first alert from the standby {failover_ms:.0f} ms"
            f"  | ratio to raw p50: {failover_ms / raw_pct[0]:.0f}x"
        )
    else:
        print("failover: the standby published no alert for presses after the kill")
    print(_line("press -> alert for presses after the kill", _latencies_ms(rig, after), raw_pct))
    print(
        f"presses {len(pressed)} ({before} before the kill): not alerted {len(lost)},"
        f" alerted twice {len(doubled)}"
    )


def run_mode(args: argparse.Namespace) -> None:
    """Run `args.mode` (outage or failover) and print its figures."""
    {"outage": outage, "failover": failover}[args.mode](args)
