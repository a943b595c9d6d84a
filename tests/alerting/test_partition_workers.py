"""Partitioned alerting as real processes: a standby per partition, and the worker supervisor."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import psycopg
import pytest

from alerting import store
from alerting.partition import partition_of
from gateway import DeviceType, Event
from tests.alerting.helpers import AlertListener, DevicePublisher, prepare_db
from tests.alerting.test_partitions_service import _elders, _fleet
from tests.alerting.test_standby import Proc, _env, private_broker

__all__ = ["private_broker"]  # the fixture, used by name


def _press(elder: str, seq: int, ts: int) -> Event:
    return Event(device_id=f"button-{elder}", type=DeviceType.BUTTON, seq=seq, ts=ts, event="press")


def _sos_count(schema_url: str, elder: str) -> int:
    with psycopg.connect(schema_url) as conn:
        return sum(a.elder_id == elder for a in store.list_alerts(conn, limit=1000))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_sigkill_of_one_partitions_active_fails_over_to_that_partitions_standby_only(
    private_broker: str, schema_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    elders = _elders(device_suffix, 1)
    own = [next(e for e in elders if partition_of(e, 2) == k) for k in (0, 1)]
    prepare_db(schema_url, _fleet(elders))
    listener = AlertListener(private_broker, topic_prefix)
    devices = DevicePublisher(private_broker, topic_prefix)
    procs: list[Proc] = []

    def start(k: int, n: int, name: str) -> Proc:
        env = _env(private_broker, schema_url, topic_prefix, tmp_path, n)
        env.update(ALERTING_PARTITIONS="2", ALERTING_PARTITION=str(k))
        procs.append(Proc(env, name))
        return procs[-1]

    try:
        active = [start(k, k, f"active-{k}") for k in (0, 1)]
        for k, proc in enumerate(active):
            proc.wait_for(f"alerting ready (partition {k} of 2)", 60)
        standby = [start(k, 2 + k, f"standby-{k}") for k in (0, 1)]
        for proc in standby:
            proc.wait_for("standby: another process holds the alerting lock", 60)

        active[0].proc.kill()  # SIGKILL partition 0's active only
        ts = int(time.time() * 1000)
        for elder in own:
            devices.send(_press(elder, 1, ts))
        seen: set[str] = set()
        while seen != set(own):
            seen.add(listener.next(30)[1].elder_id)
        time.sleep(1.5)
        assert standby[0].saw("alerting ready (partition 0 of 2)")
        assert standby[0].saw("raised critical sos alert")
        assert active[1].saw("raised critical sos alert"), "partition 1 kept its active"
        assert not standby[1].saw("alerting ready"), "partition 1's standby stayed standby"
        assert not standby[1].saw("raised")
        for elder in own:
            assert _sos_count(schema_url, elder) == 1
    finally:
        for proc in procs:
            proc.end()
            print(f"--- {proc.name}", *proc.lines[-15:], sep="\n")  # shown on failure
        listener.close()
        devices.close()


@pytest.mark.slow
def test_workers_are_supervised_restarted_after_a_crash_and_stopped_together(
    private_broker: str, schema_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    elders = _elders(device_suffix, 1)
    first = next(e for e in elders if partition_of(e, 2) == 0)
    prepare_db(schema_url, _fleet(elders))
    listener = AlertListener(private_broker, topic_prefix)
    devices = DevicePublisher(private_broker, topic_prefix)
    env = _env(private_broker, schema_url, topic_prefix, tmp_path, 0)
    env["ALERTING_WORKERS"] = "2"
    parent = Proc(env, "supervisor")
    try:
        for k in (0, 1):
            parent.wait_for(f"alerting ready (partition {k} of 2)", 60)
        started = re.compile(r"alerting worker (\d) started \(pid (\d+)\)")
        pids = {m[1]: m[2] for line in parent.lines if (m := started.search(line))}
        victim = int(pids["0"])
        os.kill(victim, 9)
        parent.wait_for(f"alerting worker 0 (pid {victim}) exited with code -9; restarting", 20)
        deadline = time.monotonic() + 60
        while sum("alerting ready (partition 0 of 2)" in line for line in parent.lines) < 2:
            assert time.monotonic() < deadline, "worker 0 was not restarted"
            time.sleep(0.1)
        ts = int(time.time() * 1000)
        devices.send(_press(first, 1, ts))
        listener.wait_for(lambda t, m: m.elder_id == first, 20)
        time.sleep(1.0)
        assert _sos_count(schema_url, first) == 1
        workers = [int(m.group(2)) for line in parent.lines if (m := started.search(line))]
        assert len(workers) == 3
        parent.end()
        assert parent.proc.returncode == 0, "\n".join(parent.lines[-20:])
        assert not any(_alive(pid) for pid in workers), "every worker stopped with the parent"
    finally:
        parent.end()
        listener.close()
        devices.close()
