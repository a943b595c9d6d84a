"""A value the database refuses is isolated: the rest of its batch is stored, it is dead-lettered
with the database's message, everything is acknowledged and ingest keeps consuming."""

from __future__ import annotations

import json

import psycopg
import pytest

from gateway import DeviceType, Fleet
from ingest.db import row_counts
from ingest.settings import WriteMethod
from tests.ingest.conftest import Publisher, running, settings_for, wait_for
from tests.ingest.streams import now_ms


def _smoke(fleet: Fleet, prefix: str, seq: int, **values: float) -> tuple[str, bytes]:
    device = next(d for d in fleet.devices if d.type is DeviceType.SMOKE)
    body = {"v": 1, "type": "smoke", "seq": seq, "ts": now_ms(), "smoke_db_m": 0.01, "temp_c": 21}
    body.update(values)
    return f"{prefix}eldercare/v1/devices/{device.id}/telemetry", json.dumps(body).encode()


def _stored(url: str) -> tuple[int, list[tuple[str, str]], list[float]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = sum(row_counts(conn).values())
        dead = conn.execute("SELECT reason, detail FROM dead_letters ORDER BY id").fetchall()
        smoke = conn.execute("SELECT smoke_db_m FROM smoke_telemetry ORDER BY seq").fetchall()
    return rows, [(str(r), str(d)) for r, d in dead], [float(s) for (s,) in smoke]


@pytest.mark.parametrize("method", list(WriteMethod), ids=[m.value for m in WriteMethod])
def test_underflowing_real_is_stored_as_float4_zero(
    registered: str,
    mqtt_url: str,
    topic_prefix: str,
    fleet: Fleet,
    publisher: Publisher,
    method: WriteMethod,
) -> None:
    settings = settings_for(registered, mqtt_url, topic_prefix, write_method=method)
    with running(settings):
        for seq, value in enumerate((0.02, 1e-50, 1e-40, 0.05)):
            # battery_pct also reaches device_last_seen, written with unnest by both methods.
            message = _smoke(fleet, topic_prefix, seq, smoke_db_m=value, battery_pct=value)
            publisher.publish(*message)
        publisher.wait()
        assert wait_for(lambda: _stored(registered)[0] == 4, 30), _stored(registered)
    _, dead, smoke = _stored(registered)
    assert dead == []
    assert smoke[1] == 0.0 and 0 < smoke[2] < 1e-39  # float4 subnormal, as binary COPY keeps it
    assert smoke[0] == pytest.approx(0.02) and smoke[3] == pytest.approx(0.05)
    with psycopg.connect(registered, autocommit=True) as conn:
        battery = conn.execute("SELECT battery_pct FROM device_last_seen").fetchone()
    assert battery == (pytest.approx(0.05),)


@pytest.mark.parametrize("method", list(WriteMethod), ids=[m.value for m in WriteMethod])
def test_refused_rows_are_dead_lettered_and_the_rest_stored(
    registered: str,
    mqtt_url: str,
    topic_prefix: str,
    fleet: Fleet,
    publisher: Publisher,
    method: WriteMethod,
) -> None:
    # Any value the database refuses: here a constraint an operator added.
    with psycopg.connect(registered, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE smoke_telemetry ADD CONSTRAINT plausible_temp CHECK (temp_c < 200)"
        )
    poison = {3, 11, 12, 30}
    stream = [
        _smoke(fleet, topic_prefix, seq, temp_c=900.0 if seq in poison else 21.0)
        for seq in range(40)
    ]
    # One batch holds the whole stream, so the refused rows share it with good ones.
    settings = settings_for(
        registered,
        mqtt_url,
        topic_prefix,
        write_method=method,
        batch_max=100,
        batch_wait_ms=1000,
        batch_idle_ms=300,
    )
    with running(settings) as service:
        for topic, payload in stream:
            publisher.publish(topic, payload)
        publisher.wait()
        assert wait_for(lambda: len(_stored(registered)[1]) == len(poison), 30)
        # Still consuming afterwards.
        publisher.publish(*_smoke(fleet, topic_prefix, 99))
        publisher.wait()
        assert wait_for(lambda: _stored(registered)[0] == len(stream) - len(poison) + 1, 30)
        dead_metric = service.metrics.dead.labels("db_rejected")._value.get()
    _, dead, _ = _stored(registered)
    assert [r for r, _ in dead] == ["db_rejected"] * len(poison)
    assert all("plausible_temp" in detail for _, detail in dead), dead
    assert dead_metric == len(poison)
    with psycopg.connect(registered, autocommit=True) as conn:
        seqs = {
            json.loads(bytes(p))["seq"] for (p,) in conn.execute("SELECT payload FROM dead_letters")
        }
    assert seqs == poison
