"""The hub's on-disk queue and message classes: order, bound, what is never dropped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.acl import Account, AccountKind, account_rules
from gateway.contract import Channel
from gateway.hub import droppable, to_incoming
from gateway.hub_queue import HubQueue, Incoming


def _tele(device: str, seq: int, size: int = 100) -> Incoming:
    return Incoming(device, f"eldercare/v1/devices/{device}/telemetry", b"x" * size, False, True)


def _event(device: str, seq: int, size: int = 100) -> Incoming:
    return Incoming(device, f"eldercare/v1/devices/{device}/events", b"e" * size, False, False)


@pytest.mark.parametrize(
    ("channel", "body", "expected"),
    [
        (Channel.TELEMETRY, {"type": "band", "lat": 1.0}, True),
        (Channel.TELEMETRY, {"type": "smoke", "smoke_db_m": 0.0}, True),
        (Channel.TELEMETRY, {"type": "smoke", "smoke_db_m": 0.08}, False),
        (Channel.EVENTS, {"type": "button", "event": "press"}, False),
        (Channel.STATUS, {"type": "button", "online": False}, False),
    ],
    ids=["band", "clear-smoke", "smoke-present", "event", "status"],
)
def test_routine_telemetry_is_what_may_be_dropped(
    channel: Channel, body: dict[str, object], expected: bool
) -> None:
    assert droppable(channel, json.dumps(body).encode()) is expected


def test_local_topic_maps_to_upstream_topic_and_status_is_retained() -> None:
    item = to_incoming("home/eldercare/v1/devices/btn-001/status", b"{}", "home/", "up/")
    assert item.topic == "up/eldercare/v1/devices/btn-001/status"
    assert item.retain and not item.droppable and item.device_id == "btn-001"


def test_queue_keeps_order_and_deletes_by_id(tmp_path: Path) -> None:
    q = HubQueue(tmp_path / "q.sqlite3", 1_000_000)
    q.add([_tele("a", i) for i in range(5)] + [_event("b", 0)])
    first = q.pending(0, 3)
    assert [i.device_id for i in first] == ["a", "a", "a"]
    assert [i.device_id for i in q.pending(first[-1].id, 10)] == ["a", "a", "b"]
    q.delete([first[0].id, first[1].id])
    assert q.depth() == 4 and q.pending(0, 1)[0].id == first[2].id


def test_full_queue_drops_oldest_telemetry_never_events(tmp_path: Path) -> None:
    q = HubQueue(tmp_path / "q.sqlite3", 1000)
    q.add([_event("b", 0)])
    dropped = q.add([_tele("a", i) for i in range(20)])
    # 1000 bytes hold the 100-byte event and 9 telemetry messages: the newest 9.
    assert dropped == 11
    left = q.pending(0, 100)
    assert left[0].device_id == "b"
    assert [i.id for i in left[1:]] == list(range(left[-1].id - 8, left[-1].id + 1))
    # Only events left and still over the bound: they stay.
    q.add([_event("b", i, 400) for i in range(5)])
    assert sum(not i.droppable for i in q.pending(0, 100)) == 6
    assert q.stored_bytes() > q.max_bytes
    assert q.counter("dropped") == 20
    q.close()
    assert HubQueue(tmp_path / "q.sqlite3", 1000).counter("dropped") == 20


def test_committed_messages_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    code = (
        "import os, sys, signal\n"
        "from pathlib import Path\n"
        "from gateway.hub_queue import HubQueue, Incoming\n"
        "q = HubQueue(Path(sys.argv[1]), 10**9)\n"
        "for i in range(50):\n"
        "    q.add([Incoming('a', 't', str(i).encode(), False, True)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=Path.cwd(), check=False)
    assert proc.returncode == -signal.SIGKILL
    assert [i.payload for i in HubQueue(path, 10**9).pending(0, 100)] == [
        str(i).encode() for i in range(50)
    ]
    assert os.path.exists(f"{path}-wal")


def test_hub_account_may_publish_only_for_its_homes_devices() -> None:
    hub = Account("hub_el-1", AccountKind.HUB, "el-1", "$7$x", ("btn-1", "smk-1"))
    rules = account_rules(hub, "p/")
    assert "topic write p/eldercare/v1/hubs/el-1/status" in rules
    assert "topic write p/eldercare/v1/devices/btn-1/events" in rules
    assert "topic write p/eldercare/v1/devices/smk-1/telemetry" in rules
    assert len(rules) == 1 + 2 * 3
    assert not any("+" in r or "#" in r or "read" in r for r in rules)
