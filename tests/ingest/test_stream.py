"""A mixed stream against the real broker and PostgreSQL: rows equal the unique accepted ones."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter

import psycopg

from gateway import Fleet
from ingest.batch import Kind, kind_of
from ingest.db import connect, dead_letter_counts, row_counts
from tests.ingest.conftest import Publisher, running, settings_for, wait_for
from tests.ingest.streams import malformed, valid_messages, wire


def test_mixed_stream_stores_unique_messages_and_dead_letters(
    registered: str,
    mqtt_url: str,
    topic_prefix: str,
    device_suffix: str,
    fleet: Fleet,
    publisher: Publisher,
) -> None:
    rng = random.Random(7)
    messages = valid_messages(fleet, per_device=10, rng=rng)
    expected = Counter(kind_of(m).value for m in messages)
    stream = wire(messages, topic_prefix)
    stream += rng.sample(stream, 25)  # redeliveries and gateway replays: exact repeats
    bad = malformed(fleet, topic_prefix, device_suffix)
    for items in bad.values():
        stream += items
    rng.shuffle(stream)
    with running(settings_for(registered, mqtt_url, topic_prefix, batch_max=50)) as service:
        for topic, payload in stream:
            publisher.publish(topic, payload)
        publisher.wait()
        total_dead = sum(len(v) for v in bad.values())
        with connect(registered) as conn:
            conn.autocommit = True
            done = wait_for(
                lambda: (
                    sum(row_counts(conn).values()) == len(messages)
                    and sum(dead_letter_counts(conn).values()) == total_dead
                )
            )
            rows, dead = row_counts(conn), dead_letter_counts(conn)
        assert done, (rows, dead)
        assert service.metrics.received._value.get() == len(stream)
    assert rows == {kind.value: expected.get(kind.value, 0) for kind in Kind}
    assert dead == {reason: len(items) for reason, items in bad.items()}


def test_dead_letters_keep_raw_bytes_topic_and_detail(
    registered: str,
    mqtt_url: str,
    topic_prefix: str,
    device_suffix: str,
    fleet: Fleet,
    publisher: Publisher,
) -> None:
    bad = malformed(fleet, topic_prefix, device_suffix)
    topic, payload = bad["bad_json"][1]
    with running(settings_for(registered, mqtt_url, topic_prefix)):
        publisher.publish(topic, payload)
        publisher.wait()
        with psycopg.connect(registered, autocommit=True) as conn:
            assert wait_for(
                lambda: conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (1,)
            )
            row = conn.execute(
                "SELECT topic, payload, reason, detail, received_at > now() - interval '1 minute'"
                " FROM dead_letters"
            ).fetchone()
    assert row is not None
    assert row[:3] == (topic, payload, "bad_json")
    assert "UTF-8" in row[3]
    assert row[4] is True
    listed = subprocess.run(
        [sys.executable, "-m", "eldercare", "db", "dead-letters", "--json", "--reason", "bad_json"],
        env={**os.environ, "DATABASE_URL": registered},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    (shown,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (shown["topic"], shown["reason"], shown["payload_bytes"]) == (
        topic,
        "bad_json",
        len(payload),
    )
    other = subprocess.run(
        [sys.executable, "-m", "eldercare", "db", "dead-letters", "--reason", "future_ts"],
        env={**os.environ, "DATABASE_URL": registered},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0 and other.stdout == ""


def test_last_seen_and_status_history(
    registered: str,
    mqtt_url: str,
    topic_prefix: str,
    fleet: Fleet,
    publisher: Publisher,
) -> None:
    rng = random.Random(3)
    messages = valid_messages(fleet, per_device=10, rng=rng)
    with running(settings_for(registered, mqtt_url, topic_prefix)):
        for topic, payload in wire(messages, topic_prefix):
            publisher.publish(topic, payload)
        publisher.wait()
        with psycopg.connect(registered, autocommit=True) as conn:
            assert wait_for(lambda: sum(row_counts(conn).values()) == len(messages))
            seen: dict[str, int] = dict(
                conn.execute("SELECT device_id, last_ts FROM device_last_seen").fetchall()
            )
            online: dict[str, bool] = dict(
                conn.execute("SELECT device_id, online FROM device_last_seen").fetchall()
            )
    newest: dict[str, int] = {}
    for m in messages:
        assert m.ts is not None
        newest[m.device_id] = max(newest.get(m.device_id, 0), m.ts)
    assert seen == newest
    assert set(online.values()) == {True}
