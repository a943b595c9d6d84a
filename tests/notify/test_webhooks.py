"""Signed webhooks against a local gateway stand-in: Standard Webhooks signatures, retries
with one stable delivery id, and the voice-call rung of the ladder."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg

from alerting import store
from alerting.notify.signing import verify
from gateway.contract import AlertKind, AlertStatus, Severity
from tests.dashboard.conftest import DashFleet
from tests.notify.conftest import deliveries, family_member, wait_until, webhook
from tests.notify.standin import StandIn


def test_500_twice_then_200_is_one_delivery_in_three_signed_attempts(
    schema_url: str, dash_fleet: DashFleet, raise_alert: Any, standin: StandIn, notifier: Any
) -> None:
    elder = dash_fleet.elders[0]
    uid, _ = family_member(schema_url, (elder,))
    _, secret = webhook(schema_url, standin.url + "/sms", user_id=uid)
    standin.script["/sms"] = [500, 500, 200]
    notifier()
    time.sleep(0.5)
    alert = raise_alert(elder, AlertKind.SOS)
    reqs = standin.wait_for("/sms", 3)
    for r in reqs:
        h = r.headers
        assert verify(
            secret, h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], r.body,
            int(time.time()),
        )  # fmt: skip
        # A wrong secret or a changed body does not verify.
        assert not verify(
            secret, h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"],
            r.body + b" ", int(time.time()),
        )  # fmt: skip
        # Outside the five-minute tolerance it is refused even when authentic.
        assert not verify(
            secret, h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], r.body,
            int(time.time()) + 600,
        )  # fmt: skip
    assert len({r.headers["webhook-id"] for r in reqs}) == 1
    body = json.loads(reqs[0].body)
    assert body["type"] == "alert.open" and body["data"]["alert_id"] == alert.alert_id
    wait_until(lambda: deliveries(schema_url, alert.alert_id)[0]["status"] == "sent", what="sent")
    (d,) = deliveries(schema_url, alert.alert_id)
    assert d["channel"] == "webhook" and d["tries"] == 3
    time.sleep(1.0)
    assert len(standin.to("/sms")) == 3


def test_voice_call_rings_after_the_wait_only_when_nobody_took_it(
    schema_url: str, dash_fleet: DashFleet, raise_alert: Any, standin: StandIn, notifier: Any
) -> None:
    untaken, taken = dash_fleet.elders[0], dash_fleet.elders[1]
    uid, _ = family_member(schema_url, (untaken, taken))
    webhook(schema_url, standin.url + "/voice", user_id=uid, channel="voice")
    webhook(schema_url, standin.url + "/centre-voice", center_id=dash_fleet.center_a,
            channel="voice")  # fmt: skip
    webhook(schema_url, standin.url + "/sms", user_id=uid)
    notifier(voice_after_s=3.0)
    time.sleep(0.5)
    t0 = time.time()
    lost = raise_alert(untaken, AlertKind.FALL)
    handled = raise_alert(taken, AlertKind.SOS)
    with psycopg.connect(schema_url) as conn:
        store.transition(
            conn, handled.alert_id, AlertStatus.ACKNOWLEDGED, "disp1", "taken",
            int(time.time() * 1000),
        )  # fmt: skip
        conn.commit()
    # The message webhook goes at once for both raises, and once more for the take.
    sms = standin.wait_for("/sms", 3, timeout_s=10)
    told = sorted((json.loads(r.body)["type"], json.loads(r.body)["data"]["alert_id"]) for r in sms)
    assert told == sorted(
        [
            ("alert.open", lost.alert_id),
            ("alert.open", handled.alert_id),
            ("alert.acknowledged", handled.alert_id),
        ]
    )
    assert all(r.at_s - t0 < 2.5 for r in sms)
    (call,) = standin.wait_for("/voice", 1, timeout_s=20)
    (centre_call,) = standin.wait_for("/centre-voice", 1, timeout_s=20)
    assert call.at_s - t0 >= 3.0 and centre_call.at_s - t0 >= 3.0
    assert json.loads(call.body)["type"] == "alert.call"
    assert json.loads(call.body)["data"]["alert_id"] == lost.alert_id
    time.sleep(1.5)
    assert len(standin.to("/voice")) == 1 and len(standin.to("/centre-voice")) == 1
    assert len(standin.to("/sms")) == 3
    skipped = [d for d in deliveries(schema_url, handled.alert_id) if d["channel"] == "voice"]
    assert skipped and all(d["status"] == "skipped" for d in skipped)


def test_voice_call_waits_for_a_family_member_going(
    schema_url: str, dash_fleet: DashFleet, raise_alert: Any, standin: StandIn, notifier: Any
) -> None:
    from dashboard.queries import alerts as alerts_q
    from dashboard.queries import users as users_q

    elder = dash_fleet.elders[0]
    uid, name = family_member(schema_url, (elder,))
    webhook(schema_url, standin.url + "/voice", user_id=uid, channel="voice")
    notifier(voice_after_s=2.0)
    time.sleep(0.5)
    alert = raise_alert(elder, AlertKind.SOS, severity=Severity.CRITICAL)
    with psycopg.connect(schema_url) as conn:
        user = users_q.get_user(conn, name)
        assert user is not None
        alerts_q.act_as(conn, user)
        alerts_q.add_history(
            conn, alert.alert_id, "open", alert.center_id, name, "going", int(time.time() * 1000)
        )
        conn.commit()
    wait_until(
        lambda: any(d["status"] == "skipped" for d in deliveries(schema_url, alert.alert_id)),
        what="voice call skipped",
    )
    assert standin.to("/voice") == []
