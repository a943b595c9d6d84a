"""Web Push against a local push-service stand-in: the real request pywebpush sends, its VAPID
token, its aes128gcm payload decrypted with the browser's keys; 410 and 500 answers."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from gateway.contract import AlertKind, Severity
from tests.dashboard.conftest import DashFleet
from tests.notify.conftest import deliveries, family_member, subscribe, wait_until
from tests.notify.standin import StandIn, verify_vapid


def test_push_request_is_rfc8291_encrypted_vapid_signed_and_minimal(
    schema_url: str, dash_fleet: DashFleet, raise_alert: Any, standin: StandIn, notifier: Any
) -> None:
    elder, other = dash_fleet.elders[0], dash_fleet.elders[1]
    uid, _ = family_member(schema_url, (elder,))
    other_uid, _ = family_member(schema_url, (other,))
    _, keys = subscribe(schema_url, uid, standin.url + "/push/mine")
    subscribe(schema_url, other_uid, standin.url + "/push/theirs")
    notifier()
    time.sleep(0.5)  # the notifier starts its cursor at the stream's head
    sent_s = time.time()
    alert = raise_alert(elder, AlertKind.SOS, severity=Severity.CRITICAL)

    (req,) = standin.wait_for("/push/mine")
    assert req.headers["content-encoding"] == "aes128gcm"
    assert req.headers["urgency"] == "high"  # RFC 8030 §5.3, a critical alert
    assert int(req.headers["ttl"]) == 3600
    claims = verify_vapid(req.headers["authorization"], standin.url, sent_s)
    assert claims["sub"] == "mailto:noc@eldercare-test.cn"
    body = keys.decrypt(req.body)
    assert body["alert_id"] == alert.alert_id
    assert body["kind"] == "sos" and body["severity"] == "critical"
    assert body["status"] == "open" and body["elder_id"] == elder
    assert body["v"] == 1 and isinstance(body["delivery_id"], int)
    # Minimised: no position, distance or free text leaves the server.
    assert not {"lat", "lon", "distance_m", "reason"} & body.keys()
    assert len(req.body) < 3072
    wait_until(
        lambda: deliveries(schema_url, alert.alert_id)[0]["status"] == "sent", what="sent state"
    )
    # Nobody else's phone heard of it.
    time.sleep(1.0)
    assert standin.to("/push/theirs") == []


def test_non_critical_is_normal_urgency_and_collapsed_per_state(
    schema_url: str, dash_fleet: DashFleet, raise_alert: Any, standin: StandIn, notifier: Any
) -> None:
    elder = dash_fleet.elders[0]
    uid, _ = family_member(schema_url, (elder,))
    subscribe(schema_url, uid, standin.url + "/push/a")
    notifier()
    time.sleep(0.5)
    alert = raise_alert(elder, AlertKind.LOW_BATTERY, severity=Severity.LOW)
    (req,) = standin.wait_for("/push/a")
    assert req.headers["urgency"] == "normal"
    # Two notes on the same state are no news: still one notification.
    from alerting import store

    with psycopg.connect(schema_url) as conn:
        store.remind(conn, alert.alert_id, int(time.time() * 1000), "tick 1")
        store.remind(conn, alert.alert_id, int(time.time() * 1000), "tick 2")
        conn.commit()
    time.sleep(1.5)
    assert len(standin.to("/push/a")) == 1


def test_gone_subscription_is_removed(
    schema_url: str, dash_fleet: DashFleet, raise_alert: Any, standin: StandIn, notifier: Any
) -> None:
    elder = dash_fleet.elders[0]
    uid, _ = family_member(schema_url, (elder,))
    sub_id, _ = subscribe(schema_url, uid, standin.url + "/push/gone")
    standin.script["/push/gone"] = [410]
    notifier()
    time.sleep(0.5)
    alert = raise_alert(elder, AlertKind.SOS)
    standin.wait_for("/push/gone")

    def removed() -> bool:
        with psycopg.connect(schema_url) as conn:
            row = conn.execute("SELECT 1 FROM push_subscriptions WHERE id = %s", (sub_id,))
            return row.fetchone() is None

    wait_until(removed, what="subscription removed")
    (d,) = deliveries(schema_url, alert.alert_id)
    assert d["status"] == "failed" and d["tries"] == 1
    time.sleep(1.0)
    assert len(standin.to("/push/gone")) == 1  # never retried


def test_server_error_is_retried_with_backoff(
    schema_url: str, dash_fleet: DashFleet, raise_alert: Any, standin: StandIn, notifier: Any
) -> None:
    elder = dash_fleet.elders[0]
    uid, _ = family_member(schema_url, (elder,))
    _, keys = subscribe(schema_url, uid, standin.url + "/push/flaky")
    standin.script["/push/flaky"] = [500, 503]
    notifier(retry_base_s=0.4, retry_cap_s=2.0)
    time.sleep(0.5)
    alert = raise_alert(elder, AlertKind.FALL)
    reqs = standin.wait_for("/push/flaky", 3)
    assert [r.status for r in reqs] == [500, 503, 201]
    # Equal jitter: at least half the exponential step between attempts (0.2 s, then 0.4 s).
    assert reqs[1].at_s - reqs[0].at_s >= 0.2
    assert reqs[2].at_s - reqs[1].at_s >= 0.4
    ids = {keys.decrypt(r.body)["delivery_id"] for r in reqs}
    assert len(ids) == 1  # the same delivery each time
    wait_until(lambda: deliveries(schema_url, alert.alert_id)[0]["status"] == "sent", what="sent")
    (d,) = deliveries(schema_url, alert.alert_id)
    assert d["tries"] == 3 and d["attempts"] == 3
