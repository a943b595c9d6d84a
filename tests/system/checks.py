"""What the district run is judged by: the simulator's ground truth, an independent MQTT
witness and the tables, compared (pure, apart from the SQL reads)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psycopg

from firmware_sim.incidents import Incident

# Alerts that must be raised exactly once per incident (the life-safety kinds).
CHECKED_KINDS = ("sos", "fall", "smoke")
# An incident's alert carries the device ts of the message that triggered it: the press itself
# (SOS), the impact window (fall), or the reading that crossed the threshold, which for a slow
# t² fire comes minutes of device time after its onset (firmware_sim.smoke: 1-4 min).
MATCH_BEFORE_MS = 60_000
# An SOS must reach a centre within this long of the press reaching the broker, whatever
# fails: the failover target of the active/standby alerting processes (under 10 s).
MAX_SOS_DELAY_S = 10.0
MATCH_AFTER_MS = 15 * 60_000
READING_TABLES = ("smoke_telemetry", "band_telemetry", "cane_telemetry", "device_events")

Key = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class Seen:
    """One message the witness received: arrival (wall clock, s), retain flag, topic, JSON."""

    at_s: float
    retained: bool
    qos: int  # as published, capped by the witness's QoS 1 subscription
    topic: str
    payload: dict[str, object]


@dataclass
class IncidentCheck:
    """One ground-truth incident and the alerts found for it."""

    incident: Incident
    db_alerts: set[str] = field(default_factory=set)
    mqtt_alerts: set[str] = field(default_factory=set)
    open_messages: int = 0
    delay_s: float | None = None  # SOS: press at the broker -> first alert message

    @property
    def ok(self) -> bool:
        return len(self.db_alerts) == 1 and self.db_alerts == self.mqtt_alerts

    @property
    def late(self) -> bool:
        return self.delay_s is not None and self.delay_s > MAX_SOS_DELAY_S


@dataclass
class ReadingCheck:
    """Readings the witness saw against rows in the tables."""

    seen: dict[Key, float]  # first arrival at the witness, wall clock s
    qos0: set[Key]  # published at QoS 0: the broker queues nothing for an offline session
    stored_rows: int
    stored: set[Key]
    duplicate_keys: int

    @property
    def missing(self) -> set[Key]:
        return set(self.seen) - self.stored

    @property
    def ok(self) -> bool:
        return not self.missing and self.duplicate_keys == 0


@dataclass
class WillCheck:
    """Offline transitions (Wills published live) against offline rows stored, per device."""

    published: Counter[str]
    stored: Counter[str]

    @property
    def doubled(self) -> dict[str, tuple[int, int]]:
        return {d: (self.published[d], n) for d, n in self.stored.items() if n > self.published[d]}

    @property
    def missing(self) -> dict[str, tuple[int, int]]:
        return {d: (n, self.stored[d]) for d, n in self.published.items() if self.stored[d] < n}


def _device_of(topic: str) -> tuple[str, str]:
    parts = topic.split("/")
    return parts[-2], parts[-1]


def seen_readings(messages: list[Seen]) -> dict[Key, float]:
    """(device_id, ts, seq) of every telemetry and event message the witness received, with
    its first arrival time."""
    out: dict[Key, float] = {}
    for m in messages:
        if "/devices/" not in m.topic:
            continue
        device_id, channel = _device_of(m.topic)
        if channel in ("telemetry", "events"):
            ts, seq = m.payload.get("ts"), m.payload.get("seq")
            if isinstance(ts, int) and isinstance(seq, int):
                out.setdefault((device_id, ts, seq), m.at_s)
    return out


def _reading_queries(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    queries = [
        f"SELECT device_id, round(extract(epoch FROM time) * 1000)::bigint, seq FROM {table}"
        for table in READING_TABLES
    ]
    # Readings with an implausibly old device ts are stored apart (ingest migration 007).
    row = conn.execute("SELECT to_regclass('misdated_messages') IS NOT NULL").fetchone()
    if row and row[0]:
        queries.append(
            "SELECT device_id, device_ts, seq FROM misdated_messages WHERE seq IS NOT NULL"
        )
    return queries


def stored_readings(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[set[Key], int]:
    """Distinct (device_id, ts, seq) in the reading tables, and the number of rows."""
    keys: set[Key] = set()
    rows = 0
    for query in _reading_queries(conn):
        cur = conn.execute(query)
        for device_id, ts, seq in cur.fetchall():
            keys.add((str(device_id), int(ts), int(seq)))  # type: ignore[call-overload]
            rows += 1
    return keys, rows


def check_readings(
    conn: psycopg.Connection[tuple[object, ...]], seen: list[Seen], since_s: float = 0.0
) -> ReadingCheck:
    """Readings the witness first saw at or after `since_s` (wall clock) against the tables."""
    stored, rows = stored_readings(conn)
    wanted = {k: at for k, at in seen_readings(seen).items() if at >= since_s}
    qos0 = {k for k, m in _by_key(seen).items() if m.qos == 0}
    return ReadingCheck(wanted, qos0, rows, stored, rows - len(stored))


def dead_letters(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    """Dead letters per reason code."""
    rows = conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason").fetchall()
    return {str(r): int(n) for r, n in rows}  # type: ignore[call-overload]


def _by_key(seen: list[Seen]) -> dict[Key, Seen]:
    by_key: dict[Key, Seen] = {}
    for m in seen:
        ts, seq = m.payload.get("ts"), m.payload.get("seq")
        if "/devices/" in m.topic and isinstance(ts, int) and isinstance(seq, int):
            by_key.setdefault((_device_of(m.topic)[0], ts, seq), m)
    return by_key


def missing_report(readings: ReadingCheck, seen: list[Seen]) -> str:
    """Every reading seen but not stored, with its arrival time, QoS, topic and payload."""
    by_key = _by_key(seen)
    lines = []
    for key in sorted(readings.missing, key=lambda k: readings.seen[k]):
        m = by_key[key]
        lines.append(f"{m.at_s:.3f} qos{m.qos} {m.topic} {json.dumps(m.payload)[:300]}")
    return "\n".join(lines) + "\n"


def offline_transitions(seen: list[Seen]) -> Counter[str]:
    """Per device, how often it went offline: a Will published live after other live traffic
    from it (or first of all). A Will reaches subscribers live with the retain flag clear
    (MQTT 3.3.1.3); retained copies replayed on a subscribe carry it set, and a QoS 1
    redelivery after a broker restart repeats the Will with no traffic in between."""
    out: Counter[str] = Counter()
    offline: set[str] = set()
    for m in seen:
        if "/devices/" not in m.topic or m.retained:
            continue
        device_id, channel = _device_of(m.topic)
        if channel == "status" and m.payload.get("online") is False:
            if device_id not in offline:
                out[device_id] += 1
                offline.add(device_id)
        else:
            offline.discard(device_id)
    return out


def check_wills(conn: psycopg.Connection[tuple[object, ...]], seen: list[Seen]) -> WillCheck:
    """Offline transitions the witness saw against Will rows stored, per device."""
    rows = conn.execute(
        "SELECT device_id, count(*) FROM device_status WHERE NOT online GROUP BY device_id"
    ).fetchall()
    stored = Counter({str(d): int(n) for d, n in rows})  # type: ignore[call-overload]
    return WillCheck(offline_transitions(seen), stored)


def _sos_delay_s(check: IncidentCheck, seen: list[Seen]) -> float | None:
    """From the press reaching the witness to the first message of its alert."""
    i = check.incident
    press = [
        m.at_s
        for m in seen
        if m.topic.endswith(f"/{i.device_id}/events") and m.payload.get("ts") == i.start_ts
    ]
    alert = [
        m.at_s
        for m in seen
        if "/alerts/" in m.topic and str(m.payload.get("alert_id")) in check.mqtt_alerts
    ]
    return min(alert) - min(press) if press and alert else None


def state_changes(conn: psycopg.Connection[tuple[object, ...]]) -> set[tuple[str, str, str]]:
    """Every (alert, status, centre) the alert history holds."""
    rows = conn.execute(
        "SELECT DISTINCT alert_id, to_status, center_id FROM alert_transitions"
    ).fetchall()
    return {(str(a), str(s), str(c)) for a, s, c in rows}


def unpublished_changes(
    changes: set[tuple[str, str, str]], seen: list[Seen]
) -> list[tuple[str, str, str]]:
    """State changes that never reached a centre topic. Contract §2: every alert and every
    change of its state is published. Read `changes` before `seen`, a moment apart, so a
    change committed just before the end has had its chance to be published."""
    published = {
        (str(m.payload.get("alert_id")), str(m.payload.get("status")), m.topic.split("/")[-1])
        for m in seen
        if "/alerts/" in m.topic
    }
    return sorted(changes - published)


def _matches(incident: Incident, kind: object, elder_id: object, event_ts: object) -> bool:
    if kind != incident.kind or elder_id != incident.elder_id or not isinstance(event_ts, int):
        return False
    return incident.start_ts - MATCH_BEFORE_MS <= event_ts <= incident.start_ts + MATCH_AFTER_MS


def check_alerts(
    conn: psycopg.Connection[tuple[object, ...]],
    truth: list[Incident],
    seen: list[Seen],
    ignore_elder: str = "",
) -> tuple[list[IncidentCheck], list[str]]:
    """Per real SOS, fall and smoke incident, the alert ids in the table and on the centre
    topics; and the ids of alerts of those kinds that match no incident (false alarms),
    leaving out `ignore_elder` (the probe that showed the services live)."""
    checks = [IncidentCheck(i) for i in truth if i.real and i.kind in CHECKED_KINDS]
    rows = conn.execute(
        "SELECT alert_id, kind, elder_id, event_ts FROM alerts"
        " WHERE kind = ANY(%s) AND elder_id <> %s",
        (list(CHECKED_KINDS), ignore_elder),
    ).fetchall()
    matched: set[str] = set()
    for alert_id, kind, elder_id, event_ts in rows:
        for c in checks:
            if _matches(c.incident, kind, elder_id, event_ts):
                c.db_alerts.add(str(alert_id))
                matched.add(str(alert_id))
    opens: dict[str, int] = defaultdict(int)
    for m in seen:
        p = m.payload
        if "/alerts/" not in m.topic or p.get("elder_id") == ignore_elder:
            continue
        for c in checks:
            if _matches(c.incident, p.get("kind"), p.get("elder_id"), p.get("event_ts")):
                c.mqtt_alerts.add(str(p.get("alert_id")))
                matched.add(str(p.get("alert_id")))
                if p.get("status") == "open":
                    opens[str(p.get("alert_id"))] += 1
    for c in checks:
        c.open_messages = sum(opens[a] for a in c.mqtt_alerts)
        if c.incident.kind == "sos":
            c.delay_s = _sos_delay_s(c, seen)
    unmatched = sorted({str(r[0]) for r in rows} - matched)
    return checks, unmatched


def _delay(check: IncidentCheck) -> str:
    return "" if check.delay_s is None else f"{check.delay_s:.2f}"


def _phase(at_s: float, faults: list[tuple[float, str]]) -> str:
    """The last fault injected before `at_s` (wall clock), or "before the faults"."""
    before = [f"after {name} (t+{t - faults[0][0]:.0f}s)" for t, name in faults[1:] if t <= at_s]
    return before[-1] if before else "before the faults"


def summary_table(
    faults: list[tuple[float, str]],
    incidents: list[IncidentCheck],
    unmatched: list[str],
    readings: ReadingCheck,
    wills: WillCheck,
    alive: dict[str, bool],
    dead: dict[str, int],
    unpublished: list[tuple[str, str, str]],
) -> str:
    """The run's outcome as a plain-text table; `faults[0]` is the simulator's start."""
    t0 = faults[0][0]
    lines = ["faults injected (real time after the simulator started):"]
    lines += [f"  t+{t - t0:6.1f}s  {name}" for t, name in faults[1:]]
    lines += [
        "",
        f"{'incident':<22} {'kind':<6} {'elder':<10} {'db':>3} {'mqtt':>4} {'opens':>5}"
        f" {'delay s':>8}  ok",
    ]
    for c in incidents:
        i = c.incident
        lines.append(
            f"{i.incident_id:<22} {i.kind:<6} {i.elder_id:<10} {len(c.db_alerts):>3}"
            f" {len(c.mqtt_alerts):>4} {c.open_messages:>5} {_delay(c):>8}"
            f"  {'yes' if c.ok and not c.late else 'NO'}"
        )
    by_kind = Counter(c.incident.kind for c in incidents)
    ok_kind = Counter(c.incident.kind for c in incidents if c.ok)
    lines += ["", "check                                          result"]
    for kind in CHECKED_KINDS:
        lines.append(
            f"  {kind:<5} incidents alerted exactly once       {ok_kind[kind]}/{by_kind[kind]}"
        )
    late = [c.incident.incident_id for c in incidents if c.late]
    lines.append(
        f"  SOS paged > {MAX_SOS_DELAY_S:.0f} s after the press          {len(late)} {late}"
    )
    lines.append(f"  alerts of these kinds matching no incident   {len(unmatched)} {unmatched[:5]}")
    lines.append(
        f"  alert state changes never published          {len(unpublished)} {unpublished[:4]}"
    )
    lines.append(
        f"  readings seen by the witness / stored        {len(readings.seen)} /"
        f" {len(readings.stored)} distinct ({readings.stored_rows} rows)"
    )
    qos0 = len(readings.missing & readings.qos0)
    lines.append(
        f"  readings seen but never stored               {len(readings.missing)}"
        f" ({qos0} published at QoS 0)"
    )
    when = Counter(_phase(readings.seen[k], faults) for k in readings.missing)
    lines += [f"      {n:>5} first seen {phase}" for phase, n in sorted(when.items())]
    lines.append(f"  rows duplicating a (device, ts, seq)         {readings.duplicate_keys}")
    lines.append(f"  dead letters by reason                       {dead}")
    lines.append(
        f"  offline transitions (live Wills) / stored    {sum(wills.published.values())} /"
        f" {sum(wills.stored.values())}"
    )
    lines.append(
        f"  devices with a Will stored twice             {len(wills.doubled)} {wills.doubled}"
    )
    missing = dict(list(wills.missing.items())[:5])
    lines.append(f"  devices with a published Will not stored     {len(wills.missing)} {missing}")
    lines.append(f"  services alive at the end                    {alive}")
    return "\n".join(lines)
