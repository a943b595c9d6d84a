"""Ingest's inbox between paho's network thread and the consumer (ingest.mqtt.Inbox)."""

from __future__ import annotations

import threading
import time

from ingest.batch import Inbound
from ingest.mqtt import Inbox


def _items(start: int, n: int) -> list[Inbound]:
    return [Inbound(f"t/{i}", b"{}", 0, 1, i, 1) for i in range(start, start + n)]


def test_batches_come_out_in_order_and_in_pieces_of_at_most_the_limit() -> None:
    inbox, closing = Inbox(100), threading.Event()
    inbox.put_many(_items(0, 30), closing)
    inbox.put_many(_items(30, 30), closing)
    first, second = inbox.take(45, 0.1), inbox.take(45, 0.1)
    assert [i.mid for i in first + second] == list(range(60))
    assert (len(first), len(second), inbox.take(45, 0.01)) == (45, 15, [])


def test_a_full_inbox_holds_the_network_thread_until_the_consumer_takes() -> None:
    inbox, closing = Inbox(50), threading.Event()
    inbox.put_many(_items(0, 60), closing)  # below maxsize when it came: taken whole
    done = threading.Event()

    def network() -> None:
        inbox.put_many(_items(60, 10), closing)
        done.set()

    threading.Thread(target=network, daemon=True).start()
    assert not done.wait(0.5)  # 60 waiting >= 50: held back
    assert len(inbox.take(20, 0.1)) == 20
    assert done.wait(5)
    assert [i.mid for i in inbox.take(100, 0.1)] == list(range(20, 70))


def test_closing_releases_a_held_network_thread_and_drops_what_it_brings() -> None:
    inbox, closing = Inbox(10), threading.Event()
    inbox.put_many(_items(0, 10), closing)
    done = threading.Event()
    threading.Thread(
        target=lambda: (inbox.put_many(_items(10, 5), closing), done.set()), daemon=True
    ).start()
    time.sleep(0.1)
    closing.set()
    assert done.wait(5)
    # Unacknowledged, the dropped ones come again from the broker's session.
    assert [i.mid for i in inbox.take(100, 0.1)] == list(range(10))
