"""Dead letters keep the first 4 KiB of a payload with its full size and SHA-256."""

from __future__ import annotations

import hashlib

import psycopg

from gateway import Fleet
from ingest.db import DEAD_LETTER_KEEP_BYTES
from tests.ingest.conftest import Publisher, running, settings_for, wait_for


def _dead(url: str) -> list[tuple[str, bytes, int, bytes]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT reason, payload, payload_size, payload_sha256 FROM dead_letters"
            " ORDER BY payload_size"
        ).fetchall()
    return [(r, bytes(p), n, bytes(h)) for r, p, n, h in rows]


def test_oversized_and_malformed_payloads_are_kept_cut(
    registered: str, mqtt_url: str, topic_prefix: str, fleet: Fleet, publisher: Publisher
) -> None:
    device = fleet.devices[0].id
    topic = f"{topic_prefix}eldercare/v1/devices/{device}/telemetry"
    payloads = [b"{not json", b"{" + b"x" * (20 * 1024), b"[" * (1024 * 1024)]
    with running(settings_for(registered, mqtt_url, topic_prefix)):
        for payload in payloads:
            publisher.publish(topic, payload)
        publisher.wait()
        assert wait_for(lambda: len(_dead(registered)) == len(payloads), 30)
    dead = _dead(registered)
    assert [n for _, _, n, _ in dead] == [len(p) for p in payloads]
    for (_, kept, _, digest), payload in zip(dead, payloads, strict=True):
        assert kept == payload[:DEAD_LETTER_KEEP_BYTES]
        assert digest == hashlib.sha256(payload).digest()
    assert {r for r, *_ in dead} >= {"too_large"}


def test_any_other_writer_is_capped_by_the_database(migrated_url: str) -> None:
    big = bytes(range(256)) * 100
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, reason)"
            " VALUES (now(), 't', %s, 'internal_error')",
            (big,),
        )
    [(reason, kept, size, digest)] = _dead(migrated_url)
    assert (reason, kept, size) == ("internal_error", big[:4096], len(big))
    assert digest == hashlib.sha256(big).digest()
