"""Alert API: list, queue, detail, take, resolve, notes, steps; who may see and act."""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from dashboard.ordering import queue_key
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import alert_filter
from tests.dashboard.conftest import DashFleet, RaiseAlert

ClientAs = Callable[..., TestClient]


def _me(client: TestClient) -> str:
    name: str = client.get("/api/v1/auth/me").json()["user"]["username"]
    return name


class _Listener:
    """Collects alert messages published under a topic prefix."""

    def __init__(self, mqtt_url: str, prefix: str) -> None:
        self.got: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        addr = parse_mqtt_url(mqtt_url)
        self.client = make_client(address=addr)
        ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(alert_filter(prefix), 1)
        self.client.on_subscribe = lambda c, u, m, r, p=None: ready.set()
        self.client.on_message = lambda c, u, m: self.got.put((m.topic, json.loads(m.payload)))
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()
        assert ready.wait(10)

    def wait_status(self, alert_id: str, status: str, timeout_s: float = 10) -> str:
        while True:
            topic, body = self.got.get(timeout=timeout_s)
            if body["alert_id"] == alert_id and body["status"] == status:
                return topic

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_take_and_resolve_are_recorded_with_the_user_and_published(
    client_as: ClientAs,
    raise_alert: RaiseAlert,
    dash_fleet: DashFleet,
    schema_url: str,
    mqtt_url: str,
    topic_prefix: str,
) -> None:
    listener = _Listener(mqtt_url, topic_prefix)
    try:
        disp = client_as("dispatcher")
        name = _me(disp)
        alert = raise_alert(dash_fleet.elders[0])
        taken = disp.post(f"/api/v1/alerts/{alert.alert_id}/ack")
        assert taken.status_code == 200, taken.text
        body = taken.json()["alert"]
        assert body["status"] == "acknowledged" and body["taken_by"] == name
        assert body["acked_ts"] is not None and body["elder_name"] == "Elder 0"
        topic = listener.wait_status(alert.alert_id, "acknowledged")
        assert topic == f"{topic_prefix}eldercare/v1/alerts/{dash_fleet.center_a}"

        done = disp.post(
            f"/api/v1/alerts/{alert.alert_id}/resolve",
            json={"outcome": "handled_by_phone", "note": "fine, pressed by mistake"},
        )
        assert done.status_code == 200, done.text
        assert done.json()["alert"]["status"] == "resolved"
        assert done.json()["alert"]["outcome"] == "handled_by_phone"
        listener.wait_status(alert.alert_id, "resolved")
    finally:
        listener.close()

    detail = disp.get(f"/api/v1/alerts/{alert.alert_id}").json()
    assert [h["to_status"] for h in detail["history"]] == ["open", "acknowledged", "resolved"]
    assert [h["actor"] for h in detail["history"][1:]] == [name, name]
    assert detail["elder"]["id"] == dash_fleet.elders[0]
    assert detail["elder"]["name"] == "Elder 0"
    with psycopg.connect(schema_url) as conn:
        uid = conn.execute("SELECT id FROM users WHERE username = %s", (name,)).fetchone()
        tr = conn.execute(
            "SELECT to_status, user_id FROM alert_transitions WHERE alert_id = %s ORDER BY id",
            (alert.alert_id,),
        ).fetchall()
        audit = conn.execute(
            "SELECT action, username, user_id, detail FROM audit WHERE target = %s ORDER BY id",
            (alert.alert_id,),
        ).fetchall()
    assert uid is not None
    assert tr == [("open", None), ("acknowledged", uid[0]), ("resolved", uid[0])]
    assert [(a[0], a[1], a[2]) for a in audit] == [
        ("take", name, uid[0]),
        ("resolve", name, uid[0]),
    ]
    assert audit[1][3]["outcome"] == "handled_by_phone"


@pytest.mark.parametrize(
    "body",
    [{}, {"outcome": "fixed_it"}, {"outcome": None}, {"note": "no outcome"}],
    ids=["empty", "unknown", "null", "note-only"],
)
def test_resolve_needs_a_known_outcome(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet, body: dict[str, Any]
) -> None:
    disp = client_as("dispatcher")
    alert = raise_alert(dash_fleet.elders[0])
    assert disp.post(f"/api/v1/alerts/{alert.alert_id}/resolve", json=body).status_code == 422
    assert disp.get(f"/api/v1/alerts/{alert.alert_id}").json()["alert"]["status"] == "open"


def _actions(alert_id: str) -> list[tuple[str, dict[str, Any] | None]]:
    base = f"/api/v1/alerts/{alert_id}"
    return [
        (f"{base}/ack", None),
        (f"{base}/resolve", {"outcome": "false_alarm", "note": ""}),
        (f"{base}/notes", {"note": "hello"}),
        (f"{base}/steps", {"step": "talk", "result": "no answer"}),
    ]


def test_dispatcher_of_another_centre_reads_but_cannot_act(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    other = client_as("dispatcher", center_id=dash_fleet.center_b)
    alert = raise_alert(dash_fleet.elders[0], center_id=dash_fleet.center_a)
    assert other.get(f"/api/v1/alerts/{alert.alert_id}").status_code == 200
    ids = [a["alert_id"] for a in other.get("/api/v1/alerts/queue").json()["items"]]
    assert alert.alert_id in ids
    for url, body in _actions(alert.alert_id):
        resp = other.post(url, json=body)
        assert resp.status_code == 403, (url, resp.text)
    assert other.get(f"/api/v1/alerts/{alert.alert_id}").json()["alert"]["status"] == "open"


def test_family_sees_only_linked_elders_and_acts_on_none(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    fam = client_as("family", elder_ids=(dash_fleet.elders[0],))
    mine = raise_alert(dash_fleet.elders[0])
    theirs = raise_alert(dash_fleet.elders[1])
    assert fam.get(f"/api/v1/alerts/{mine.alert_id}").status_code == 200
    assert fam.get(f"/api/v1/alerts/{theirs.alert_id}").status_code == 404
    for url, body in _actions(theirs.alert_id):
        assert fam.post(url, json=body).status_code == 404, url
    for url, body in _actions(mine.alert_id):
        assert fam.post(url, json=body).status_code == 403, url
    listed = {a["alert_id"] for a in fam.get("/api/v1/alerts").json()["items"]}
    queued = {a["alert_id"] for a in fam.get("/api/v1/alerts/queue").json()["items"]}
    assert listed == queued == {mine.alert_id}
    assert fam.get(f"/api/v1/alerts?elder_id={dash_fleet.elders[1]}").status_code == 404
    assert fam.get(f"/api/v1/alerts?elder_id={dash_fleet.elders[0]}").status_code == 200


def test_every_alert_route_needs_a_session(
    app_client: TestClient, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    alert = raise_alert(dash_fleet.elders[0])
    for url in ("/api/v1/alerts", "/api/v1/alerts/queue", f"/api/v1/alerts/{alert.alert_id}"):
        assert app_client.get(url).status_code == 401, url
    for url, body in _actions(alert.alert_id):
        assert app_client.post(url, json=body).status_code == 401, url


def _take(
    client: TestClient, alert_id: str, barrier: threading.Barrier, out: list[Any], i: int
) -> None:
    barrier.wait()
    out[i] = client.post(f"/api/v1/alerts/{alert_id}/ack")


def test_take_race_has_exactly_one_winner(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    consoles = [client_as("dispatcher"), client_as("dispatcher")]
    names = [_me(c) for c in consoles]
    for round_no in range(6):
        alert = raise_alert(dash_fleet.elders[round_no % 3], kind=("sos", "fall")[round_no // 3])
        barrier = threading.Barrier(2)
        results: list[Any] = [None, None]
        threads = [
            threading.Thread(target=_take, args=(consoles[i], alert.alert_id, barrier, results, i))
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409], [r.text for r in results]
        winner = next(i for i in range(2) if results[i].status_code == 200)
        loser = results[1 - winner]
        assert loser.json()["detail"] == f"taken by {names[winner]}"
        seen = consoles[1 - winner].get(f"/api/v1/alerts/{alert.alert_id}").json()
        assert seen["alert"]["taken_by"] == names[winner]
        acks = [h for h in seen["history"] if h["to_status"] == "acknowledged"]
        assert [h["actor"] for h in acks] == [names[winner]]


def test_holder_keeps_the_alert_and_admin_may_close_it(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    first, second, admin = client_as("dispatcher"), client_as("dispatcher"), client_as("admin")
    alert = raise_alert(dash_fleet.elders[0])
    assert first.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
    body = {"outcome": "visit", "note": ""}
    resp = second.post(f"/api/v1/alerts/{alert.alert_id}/resolve", json=body)
    assert resp.status_code == 409 and resp.json()["detail"] == f"taken by {_me(first)}"
    step = {"step": "call_back", "result": "x"}
    assert second.post(f"/api/v1/alerts/{alert.alert_id}/steps", json=step).status_code == 409
    assert (
        second.post(f"/api/v1/alerts/{alert.alert_id}/notes", json={"note": "n"}).status_code == 201
    )
    assert admin.post(f"/api/v1/alerts/{alert.alert_id}/resolve", json=body).status_code == 200
    again = first.post(f"/api/v1/alerts/{alert.alert_id}/resolve", json=body)
    assert again.status_code == 409 and again.json()["detail"] == "alert is resolved"


def test_notes_and_steps_are_kept_in_order_with_their_author(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    disp = client_as("dispatcher")
    name = _me(disp)
    alert = raise_alert(dash_fleet.elders[0])
    base = f"/api/v1/alerts/{alert.alert_id}"
    assert disp.post(f"{base}/ack").status_code == 200
    note = disp.post(f"{base}/notes", json={"note": "daughter on her way"})
    assert note.status_code == 201
    for step, result in (("talk", "no answer"), ("call_back", "no answer"), ("key_holders", "ok")):
        assert disp.post(f"{base}/steps", json={"step": step, "result": result}).status_code == 201
    assert disp.post(f"{base}/steps", json={"step": "dance", "result": ""}).status_code == 422
    detail = disp.get(base).json()
    assert detail["history"][-1]["note"] == "daughter on her way"
    assert detail["history"][-1]["event_id"] == note.json()["id"]
    assert detail["history"][-1]["to_status"] == "acknowledged"
    assert [(s["step"], s["result"], s["actor"]) for s in detail["steps"]] == [
        ("talk", "no answer", name),
        ("call_back", "no answer", name),
        ("key_holders", "ok", name),
    ]
    stamps = [s["at_ts"] for s in detail["steps"]]
    assert stamps == sorted(stamps)


def _insert_alert(
    conn: psycopg.Connection[Any],
    *,
    kind: str,
    severity: str,
    status: str,
    raised_ts: int,
    center_id: str,
    elder_id: str | None = None,
) -> str:
    alert_id = f"al-{uuid.uuid4().hex[:20]}"
    conn.execute(
        "INSERT INTO alerts (alert_id, kind, severity, status, elder_id, device_id, center_id,"
        " distance_m, in_coverage, lat, lon, event_ts, raised_ts, updated_ts)"
        " VALUES (%s, %s, %s, %s, %s, 'dev-x', %s, 10, true, 39.9, 116.4, %s, %s, %s)",
        (
            alert_id,
            kind,
            severity,
            status,
            elder_id or f"e-{alert_id}",
            center_id,
            raised_ts,
            raised_ts,
            raised_ts,
        ),
    )
    return alert_id


KINDS = [
    "sos",
    "fall",
    "wandering",
    "smoke",
    "inactivity",
    "device_offline",
    "low_battery",
    "anomaly",
]
SEVERITIES = ["critical", "high", "medium", "low"]


def test_queue_order_holds_on_200_random_mixes(
    client_as: ClientAs, schema_url: str, dash_fleet: DashFleet
) -> None:
    admin = client_as("admin")
    rng = random.Random(20240611)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        for _ in range(200):
            conn.execute("DELETE FROM alerts")
            expected = []
            for _ in range(rng.randint(1, 12)):
                kind, sev = rng.choice(KINDS), rng.choice(SEVERITIES)
                status = rng.choice(["open", "acknowledged", "escalated", "resolved"])
                raised = 1_700_000_000_000 + rng.randint(0, 5) * 1000  # ties happen
                aid = _insert_alert(
                    conn,
                    kind=kind,
                    severity=sev,
                    status=status,
                    raised_ts=raised,
                    center_id=dash_fleet.center_a,
                )
                if status != "resolved":
                    expected.append(queue_key(kind, sev, raised, aid))
            got = admin.get("/api/v1/alerts/queue").json()["items"]
            assert [a["alert_id"] for a in got] == [k[3] for k in sorted(expected)]
            if got and any(a["kind"] == "smoke" for a in got):
                assert got[0]["kind"] == "smoke"


def test_list_pages_with_cursors_and_keeps_active_alerts_in_any_time_range(
    client_as: ClientAs, schema_url: str, dash_fleet: DashFleet
) -> None:
    admin = client_as("admin")
    t0 = 1_700_000_000_000
    with psycopg.connect(schema_url, autocommit=True) as conn:
        ids = {
            _insert_alert(
                conn,
                kind=KINDS[i % 8],
                severity=SEVERITIES[i % 4],
                status="resolved" if i % 3 else "open",
                raised_ts=t0 + (i // 2) * 1000,
                center_id=(dash_fleet.center_a, dash_fleet.center_b)[i % 2],
            ): i
            for i in range(23)
        }
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = "/api/v1/alerts?limit=5" + (f"&cursor={cursor}" if cursor else "")
        page = admin.get(url).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 23 and {a["alert_id"] for a in seen} == set(ids)
    keys = [(a["raised_ts"], a["alert_id"]) for a in seen]
    assert keys == sorted(keys, reverse=True)

    def fetch(query: str) -> set[int]:
        resp = admin.get(f"/api/v1/alerts?limit=500&{query}")
        assert resp.status_code == 200, resp.text
        return {ids[a["alert_id"]] for a in resp.json()["items"]}

    assert fetch("status=open") == {i for i in range(23) if i % 3 == 0}
    assert fetch("kind=sos,smoke") == {i for i in range(23) if i % 8 in (0, 3)}
    assert fetch(f"center_id={dash_fleet.center_b}&severity=high") == {
        i for i in range(23) if i % 2 == 1 and i % 4 == 1
    }
    # Only the last 5 s of resolved alerts, but every open one whatever its age.
    late = t0 + 6000
    assert fetch(f"since_ts={late}") == {i for i in range(23) if i // 2 >= 6 or i % 3 == 0}
    assert fetch(f"since_ts={late}&status=resolved") == {
        i for i in range(23) if i // 2 >= 6 and i % 3
    }
    assert admin.get("/api/v1/alerts?status=bogus").status_code == 422
    assert admin.get("/api/v1/alerts?cursor=notacursor").status_code == 422


def test_logout_while_holding_alerts_forces_a_handover(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    holder, colleague = client_as("dispatcher"), client_as("dispatcher")
    outsider = client_as("dispatcher", center_id=dash_fleet.center_b)
    alert = raise_alert(dash_fleet.elders[0])
    assert holder.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
    refused = holder.post("/api/v1/auth/logout", json={})
    assert refused.status_code == 409 and refused.json()["held"] == [alert.alert_id]
    bad = holder.post("/api/v1/auth/logout", json={"handover_to": _me(outsider)})
    assert bad.status_code == 422
    ok = holder.post("/api/v1/auth/logout", json={"handover_to": _me(colleague)})
    assert ok.status_code == 204
    detail = colleague.get(f"/api/v1/alerts/{alert.alert_id}").json()
    assert detail["alert"]["taken_by"] == _me(colleague)
    assert detail["history"][-1]["note"] == f"handed over to {_me(colleague)}"
    body = {"outcome": "visit", "note": ""}
    assert colleague.post(f"/api/v1/alerts/{alert.alert_id}/resolve", json=body).status_code == 200


def test_access_code_only_for_the_holder_of_a_taken_alert(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    holder, colleague = client_as("dispatcher"), client_as("dispatcher")
    fam = client_as("family")
    alert = raise_alert(dash_fleet.elders[0])
    url = f"/api/v1/alerts/{alert.alert_id}"
    assert holder.get(url).json()["elder"]["access_code"] is None
    assert holder.post(f"{url}/ack").status_code == 200
    assert holder.get(url).json()["elder"]["access_code"] == "4001"
    assert colleague.get(url).json()["elder"]["access_code"] is None
    assert fam.get(url).json()["elder"]["access_code"] is None


def test_a_take_rolled_back_by_a_deadlock_is_repeated(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet, schema_url: str
) -> None:
    disp = client_as("dispatcher")
    x, y = raise_alert(dash_fleet.elders[0]), raise_alert(dash_fleet.elders[1])
    other = psycopg.connect(schema_url)
    try:
        # This side outwaits the console's deadlock check, so the console's try is the one
        # PostgreSQL rolls back.
        other.execute("SET deadlock_timeout = '30s'")
        other.execute(
            "INSERT INTO alert_transitions (alert_id, at_ts, from_status, to_status, center_id,"
            " actor, note) VALUES (%s, 0, 'open', 'open', 'cc', 'system', 'holds the order lock')",
            (x.alert_id,),
        )
        result: list[Any] = []
        thread = threading.Thread(
            target=lambda: result.append(disp.post(f"/api/v1/alerts/{y.alert_id}/ack"))
        )
        thread.start()
        deadline = time.monotonic() + 20
        with psycopg.connect(schema_url, autocommit=True) as probe:
            while not probe.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "the take never waited"
                time.sleep(0.05)
        # The take holds y's row and waits for the order lock; asking for y closes the cycle.
        other.execute("SELECT 1 FROM alerts WHERE alert_id = %s FOR UPDATE", (y.alert_id,))
        other.commit()
        thread.join(30)
    finally:
        other.close()
    assert result and result[0].status_code == 200, result and result[0].text
    assert result[0].json()["alert"]["status"] == "acknowledged"
