"""The alerting lock on the real PostgreSQL and the broker-side fence on the real Mosquitto."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg

from alerting.leader import Leadership, fence_on_takeover
from alerting.partition import Partition
from gateway.mqtt import connect_properties, make_client, parse_mqtt_url


def _lead(schema_url: str, scope: str) -> Leadership:
    return Leadership(schema_url, scope, poll_s=0.2, key=None)


def _part(schema_url: str, scope: str, k: int, n: int) -> Leadership:
    return Leadership(schema_url, scope, poll_s=0.2, key=None, partition=Partition(k, n))


class _Waiter:
    """`lead.acquire` in a thread: `got` holds its result once it returns."""

    def __init__(self, lead: Leadership) -> None:
        self.lead = lead
        self.stop = threading.Event()
        self.got: list[bool] = []
        self.thread = threading.Thread(target=lambda: self.got.append(lead.acquire(self.stop)))
        self.thread.start()

    def result(self, timeout_s: float) -> list[bool]:
        self.thread.join(timeout_s)
        return self.got

    def end(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.lead.release()


def test_partition_sets_of_different_widths_and_the_whole_service_exclude_each_other(
    schema_url: str, topic_prefix: str
) -> None:
    # Partition 0 of 2 and partition 0 of 3 own different elders: acting together, two
    # processes would page for the same elder.
    two = [_part(schema_url, topic_prefix, k, 2) for k in range(2)]
    three = [_part(schema_url, topic_prefix, k, 3) for k in range(3)]
    stop = threading.Event()
    waiters: list[_Waiter] = []
    try:
        assert two[0].acquire(stop) and two[1].acquire(stop), "one set's partitions act together"
        new = _Waiter(three[0])
        waiters.append(new)
        time.sleep(1.0)
        assert new.got == [], "a set of another width waits while the old set runs"
        two[0].release()
        time.sleep(1.0)
        assert new.got == [], "and until every process of the old set has stopped"
        two[1].release()
        assert new.result(3) == [True]
        assert three[2].acquire(stop), "the new set's other partitions act beside it"
        whole, old = _Waiter(_lead(schema_url, topic_prefix)), _Waiter(two[0])
        waiters += [whole, old]
        time.sleep(1.0)
        assert whole.got == [] and old.got == [], "neither acts beside the new set"
        three[0].release()
        three[2].release()
        time.sleep(2.0)
        assert whole.got + old.got == [True], "once it stops, exactly one of them acts"
    finally:
        stop.set()
        for waiter in waiters:
            waiter.end()
        for lead in two + three:
            lead.release()


def _kill_lock_session(url: str, lead: Leadership) -> None:
    assert lead._conn is not None
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (lead._conn.info.backend_pid,))


def test_a_holder_retaking_its_lock_outlasts_a_new_sets_check_but_not_a_set_that_acts(
    schema_url: str, topic_prefix: str
) -> None:
    # A standby of a set of another width holds that width's key for the instant of its check;
    # a holder whose lock session broke and that re-takes at that instant must not stop.
    first = _part(schema_url, topic_prefix, 0, 2)
    stop, halt = threading.Event(), threading.Event()
    try:
        assert first.acquire(stop)
        first.keep(stop, halt)
        width3 = first._width_keys[3]
        with psycopg.connect(schema_url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock_shared(%s)", (width3,))  # a check, held
            _kill_lock_session(schema_url, first)
            time.sleep(0.5)  # two polls find width 3 held
            assert not first.lost.is_set() and not halt.is_set()
            other.execute("SELECT pg_advisory_unlock_shared(%s)", (width3,))
            time.sleep(0.5)
            assert first.confirmed() and not first.lost.is_set()
            # Held on: a set of width 3 acts, and the holder stops after three polls.
            other.execute("SELECT pg_advisory_lock_shared(%s)", (width3,))
            _kill_lock_session(schema_url, first)
            assert halt.wait(3) and first.lost.is_set()
    finally:
        stop.set()
        first.release()


def test_one_holder_per_deployment_and_the_standby_takes_over_on_release(
    schema_url: str, topic_prefix: str
) -> None:
    first, second = _lead(schema_url, topic_prefix), _lead(schema_url, topic_prefix)
    other = _lead(schema_url, topic_prefix + "other/")
    stop = threading.Event()
    try:
        assert first.acquire(stop)
        assert other.acquire(stop), "another prefix is another deployment with its own lock"
        waiting: list[bool] = []
        thread = threading.Thread(target=lambda: waiting.append(second.acquire(stop)))
        thread.start()
        time.sleep(1.0)
        assert waiting == [], "the standby must wait while the lock is held"
        released = time.monotonic()
        first.release()
        thread.join(5)
        assert waiting == [True] and time.monotonic() - released < 2.0
    finally:
        stop.set()
        for lead in (first, second, other):
            lead.release()


def test_holder_whose_session_is_killed_loses_the_lock_to_a_waiting_standby(
    schema_url: str, topic_prefix: str
) -> None:
    # The holder probes every 2 s, the standby tries every 0.2 s: the standby wins the lock.
    first = Leadership(schema_url, topic_prefix, poll_s=2.0, key=None)
    second = _lead(schema_url, topic_prefix)
    stop, halt = threading.Event(), threading.Event()
    guard = threading.Timer(15, stop.set)  # never hang: acquire returns False when stopped
    guard.start()
    try:
        assert first.acquire(stop)
        first.keep(stop, halt)
        took: list[bool] = []
        standby = threading.Thread(target=lambda: took.append(second.acquire(stop)))
        standby.start()
        with psycopg.connect(schema_url, autocommit=True) as conn:
            # Only this test's holder: the backend holding this deployment's key.
            row = conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 1 AND classid::bigint = ((%s >> 32) & 4294967295)"
                " AND objid::bigint = (%s & 4294967295)",
                (first.key, first.key),
            ).fetchone()
            assert row is not None
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        standby.join(10)
        assert took == [True]
        assert halt.wait(5), "the old holder must stop acting"
        assert first.lost.is_set()
    finally:
        guard.cancel()
        stop.set()
        first.release()
        second.release()


def _session_client(mqtt_url: str, client_id: str):  # type: ignore[no-untyped-def]
    address = parse_mqtt_url(mqtt_url)
    client = make_client(client_id, mqtt5=True, address=address)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p=None: connected.set()
    client.connect(
        address.host,
        address.port,
        clean_start=False,
        properties=connect_properties(session_expiry_s=60),
    )
    client.loop_start()
    assert connected.wait(10)
    return client


def test_broker_fence_stops_an_unconfirmed_holder_whose_session_is_taken(
    mqtt_url: str, schema_url: str, topic_prefix: str
) -> None:
    client_id = f"fence-{uuid.uuid4().hex[:8]}"
    confirmed, unconfirmed = _lead(schema_url, topic_prefix), _lead(schema_url, topic_prefix + "u/")
    stop = threading.Event()
    try:
        assert confirmed.acquire(stop) and confirmed.confirmed()
        assert not unconfirmed.confirmed()  # never proved: a holder cut off from the database
        results = {}
        for name, lead in (("confirmed", confirmed), ("unconfirmed", unconfirmed)):
            halt = threading.Event()
            old = _session_client(mqtt_url, f"{client_id}-{name}")
            old.reconnect_delay_set(30, 60)  # no paho take-back within this test
            fence_on_takeover(old, halt, lead)
            new = _session_client(mqtt_url, f"{client_id}-{name}")  # the new active
            results[name] = halt.wait(3)
            new.disconnect()
            new.loop_stop()
            old.loop_stop()
        assert results == {"confirmed": False, "unconfirmed": True}
    finally:
        stop.set()
        confirmed.release()
        unconfirmed.release()
