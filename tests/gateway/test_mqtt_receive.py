"""paho's receive path made cheaper (`gateway.mqtt`): plain TCP read ahead, PUBACKs of a batch
in one write, shared property tables; every message still once, in order, as paho decodes it."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import MQTTMessage
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as _PahoProperties
from paho.mqtt.subscribeoptions import SubscribeOptions

from eldercare.broker import free_port, start_mosquitto, stop
from gateway.mqtt import (
    READ_BATCH,
    _Properties,
    _ReadAhead,
    connect_properties,
    make_client,
    parse_mqtt_url,
)
from tests.alerting.helpers import wait_until


def test_read_ahead_serves_the_stream_in_any_pieces() -> None:
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        ahead = _ReadAhead(b)
        with pytest.raises(BlockingIOError):
            ahead.recv(1)
        data = bytes(range(256)) * 4000  # 1 MB: more than one read-ahead chunk
        threading.Thread(target=a.sendall, args=(data,), daemon=True).start()
        got = bytearray()
        sizes = [1, 1, 3, 70_000, 2, 400_000]
        while len(got) < len(data):
            try:
                piece = ahead.recv(sizes[len(got) % len(sizes)])
            except BlockingIOError:
                continue
            assert 0 < len(piece) <= sizes[len(got) % len(sizes)]
            got += piece
            assert ahead.pending() >= 0
        assert bytes(got) == data
        assert ahead.pending() == 0
        assert ahead.fileno() == b.fileno()  # everything else is the socket's own
        a.close()
        b.setblocking(True)
        assert ahead.recv(10) == b""
    finally:
        a.close()
        b.close()


def _packet(first: int, body: bytes) -> bytes:
    length, out = len(body), bytearray([first])
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + body


def _paho_read(ahead: _ReadAhead) -> tuple[int, bytes]:
    """One packet read as paho does: the first byte, each length byte, then the rest."""

    def recv(n: int) -> bytes:
        while True:
            try:
                return ahead.recv(n)
            except BlockingIOError:
                time.sleep(0.001)

    first, length, shift = recv(1)[0], 0, 0
    while True:
        byte = recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    body = b""
    while len(body) < length:
        body += recv(length - len(body))
    return first, body


def test_whole_packets_are_taken_from_the_read_ahead_and_split_ones_left_to_paho() -> None:
    sizes = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000, 2_097_152, 5]
    packets = [(0x30 | (k % 4) << 1, bytes([k]) * n) for k, n in enumerate(sizes * 3)]
    stream = b"".join(_packet(first, body) for first, body in packets)
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        ahead = _ReadAhead(b)
        assert ahead.take_packet() is None  # nothing read yet
        threading.Thread(target=a.sendall, args=(stream,), daemon=True).start()
        got, whole = [], 0
        while len(got) < len(packets):
            taken = ahead.take_packet()
            if taken is not None:
                whole += 1
                got.append(taken)
            else:
                got.append(_paho_read(ahead))
        assert got == packets
        assert 0 < whole < len(packets)  # both ways were taken
        assert ahead.pending() == 0
    finally:
        a.close()
        b.close()


def test_a_malformed_remaining_length_is_left_to_paho() -> None:
    a, b = socket.socketpair()
    try:
        a.sendall(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) + b"x" * 64)
        ahead = _ReadAhead(b)
        assert ahead.recv(1) == b"\x30"
        ahead._pos = 0  # back to the packet's start, all of it read ahead
        assert ahead.take_packet() is None
        assert ahead.pending() == 70
    finally:
        a.close()
        b.close()


def test_subscriber_gets_every_message_once_in_order(tmp_path: Path, topic_prefix: str) -> None:
    """Thousands of QoS 1 messages read ahead together, acknowledged in batches as ingest
    does. A private
    broker with the shipped configuration: the default one drops a client's messages past
    1,000 queued."""
    port = free_port()
    broker = start_mosquitto(port, tmp_path / "mosquitto")
    address = parse_mqtt_url(f"mqtt://127.0.0.1:{port}")
    topic = f"{topic_prefix}read-ahead"
    # Every 97th message near the shipped `max_packet_size` (16,896 bytes), so packets
    # straddle the reads.
    lines = [f"m{i:05d}-" + "x" * (16_000 if i % 97 == 0 else i % 300) for i in range(5000)]
    got: list[str] = []
    batch: list[tuple[int, int]] = []
    done = threading.Event()
    client = make_client(manual_ack=True, address=address)

    def on_message(c: object, userdata: object, msg: MQTTMessage) -> None:
        got.append(msg.payload.decode())
        batch.append((msg.mid, msg.qos))
        if len(batch) == 100 or len(got) == len(lines):
            client.ack_all(batch)
            batch.clear()
        if len(got) == len(lines):
            done.set()

    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(address.host, address.port)
    client.subscribe(topic, options=SubscribeOptions(qos=1))
    client.loop_start()
    try:
        assert subscribed.wait(10)
        assert isinstance(client.socket(), _ReadAhead)
        pub = ["mosquitto_pub", "-h", address.host, "-p", str(address.port)]
        subprocess.run(
            [*pub, "-q", "1", "-t", topic, "-l"],
            input="\n".join(lines).encode() + b"\n",
            check=True,
            timeout=60,
        )
        assert done.wait(60), f"received {len(got)} of {len(lines)}"
    finally:
        client.disconnect()
        client.loop_stop()
        stop(broker)
    assert got == lines


# paho's properties module has no type annotations.
Properties: Any = _PahoProperties
Ours: Any = _Properties


def _packed(**values: object) -> bytes:
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return bytes(props.pack())


def test_shared_property_tables_decode_as_paho_does() -> None:
    from paho.mqtt import _packet

    assert getattr(_packet, "Properties", None) is _Properties  # the receive path uses it
    buffers = [
        _packed(),
        _packed(
            PayloadFormatIndicator=1,
            MessageExpiryInterval=30,
            ContentType="application/json",
            ResponseTopic="r/t",
            CorrelationData=b"\x00\x01",
            UserProperty=[("a", "1"), ("b", "2")],
        ),
        _packed(TopicAlias=3, SubscriptionIdentifier=[7, 9]),
    ]
    reused = Ours(PacketTypes.PUBLISH)
    for buf in buffers:
        theirs, theirs_len = Properties(PacketTypes.PUBLISH).unpack(buf)
        ours, ours_len = Ours(PacketTypes.PUBLISH).unpack(buf)
        again, again_len = reused.unpack(buf)  # clear() drops the previous packet's properties
        assert ours_len == theirs_len == again_len
        assert ours.json() == theirs.json() == again.json()
    # Only property names are accepted, as in paho.
    with pytest.raises(MQTTException):
        Ours(PacketTypes.PUBLISH).NotAProperty = 1


def test_disconnect_during_a_backlog_is_prompt(tmp_path: Path) -> None:
    """A backlog keeps the read-ahead buffer full; the network thread still writes what waits
    (here the DISCONNECT) after at most `READ_BATCH` packets, as paho alone does."""
    port = free_port()
    broker = start_mosquitto(port, tmp_path / "mosquitto")
    props = connect_properties(600, 65535)
    try:
        first = make_client("backlog-sub")
        subscribed = threading.Event()
        first.on_subscribe = lambda *a: subscribed.set()
        first.connect("127.0.0.1", port, keepalive=0, clean_start=False, properties=props)
        first.loop_start()
        first.subscribe("bl/#", options=SubscribeOptions(qos=1))
        assert subscribed.wait(10)
        first.disconnect()
        first.loop_stop()
        lines = "".join(f"{i:06d}-" + "x" * 500 + "\n" for i in range(100_000))
        subprocess.run(
            ["mosquitto_pub", "-p", str(port), "-q", "0", "-t", "bl/a", "-l"],
            input=lines.encode(),
            check=True,
            timeout=120,
        )
        got = [0]
        after = [0]
        stopping = threading.Event()

        def on_message(c: object, userdata: object, msg: MQTTMessage) -> None:
            got[0] += 1
            after[0] += stopping.is_set()
            sum(range(300))  # a consumer slower than the broker

        sub = make_client("backlog-sub")
        sub.on_message = on_message
        sub.connect("127.0.0.1", port, keepalive=0, clean_start=False, properties=props)
        sub.loop_start()
        wait_until(lambda: got[0] > 5000, 30, "the backlog flowing")
        stopping.set()
        started = time.monotonic()
        sub.disconnect()
        sub.loop_stop()
        took = time.monotonic() - started
    finally:
        stop(broker)
    assert got[0] < 100_000, "the backlog was drained before the disconnect"
    assert after[0] <= READ_BATCH + 1, f"{after[0]} messages handled after disconnect()"
    assert took < 5.0


class _Wire:
    """A socket stand-in holding received bytes and keeping what the client sends; each
    `recv` returns at most `piece` bytes."""

    def __init__(self, data: bytes, piece: int = 1 << 30) -> None:
        self.data = data
        self.piece = piece
        self.sent = bytearray()

    def recv(self, n: int) -> bytes:
        n = min(n, self.piece)
        piece, self.data = self.data[:n], self.data[n:]
        if not piece:
            raise BlockingIOError
        return piece

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def close(self) -> None:
        pass


def _publish(
    topic: bytes,
    payload: bytes,
    qos: int,
    mid: int,
    props: bytes = b"\x00",
    *,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    return _packet(first, body + props + payload)


def _receive(
    packets: list[bytes], *, fast: bool, manual_ack: bool = True
) -> tuple[
    list[tuple[str, object, int, int, bool]], list[tuple[str, object, int, int, bool]], bytes
]:
    """Each packet read by a connected MQTT 5 client as the network thread reads it: what
    `on_plain_publish` got, what `on_message` got, and what the client sent back."""
    import paho.mqtt.client as paho

    client = make_client(manual_ack=manual_ack)
    plain: list[tuple[str, object, int, int, bool]] = []
    paho_path: list[tuple[str, object, int, int, bool]] = []

    def on_message(c: object, userdata: object, msg: MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = "<not UTF-8>"
        paho_path.append((topic, bytes(msg.payload), msg.qos, msg.mid, bool(msg.retain)))

    client.on_message = on_message
    if fast:
        client.on_plain_publish = lambda *fields: plain.append(fields)
    wire = _Wire(b"".join(packets))
    client._sock = _ReadAhead(wire)  # type: ignore[assignment]
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED
    for _ in packets:
        client._packet_read()
    client.loop_write()
    client._sock = None
    return plain, paho_path, bytes(wire.sent)


def test_plain_publishes_skip_paho_and_carry_the_same_fields() -> None:
    packets = [
        _publish(b"eldercare/devices/band-1/telemetry", b'{"v":1}', 1, 7),
        _publish(b"a/b", b"", 1, 65535, retain=True),
        _publish(b"q0/\xe8\x80\x81", b"\x00\xff", 0, 0, dup=True),
        _publish(b"t", b"x" * 20_000, 1, 1),  # a multi-byte Remaining Length
    ]
    plain, paho_path, _ = _receive(packets, fast=True)
    _, expected, _ = _receive(packets, fast=False)
    assert paho_path == []
    assert plain == expected
    assert plain[0] == ("eldercare/devices/band-1/telemetry", b'{"v":1}', 1, 7, False)
    assert plain[1] == ("a/b", b"", 1, 65535, True)
    assert plain[2] == ("q0/老", b"\x00\xff", 0, 0, False)
    assert all(type(fields[1]) is bytes for fields in plain)


def test_publishes_paho_must_decode_still_reach_on_message() -> None:
    """Properties, a Topic Alias with an empty topic, QoS 2, a topic not UTF-8 and Packet
    Identifier 0 are paho's: delivered through `on_message` exactly as without the hook."""
    packets = [
        _publish(b"p/user", b"1", 1, 3, _packed(UserProperty=[("k", "v")])),
        _publish(b"p/expiry", b"2", 0, 0, _packed(MessageExpiryInterval=30)),
        _publish(b"p/alias", b"3", 1, 4, _packed(TopicAlias=1)),
        _publish(b"", b"4", 1, 5, _packed(TopicAlias=1)),  # the alias set just before
        _publish(b"p/qos2", b"5", 2, 6),
        _publish(b"p/\xff\xfe", b"6", 1, 8),
        _publish(b"p/mid0", b"7", 1, 0),
    ]
    plain, paho_path, _ = _receive(packets, fast=True)
    _, expected, _ = _receive(packets, fast=False)
    assert plain == []
    assert paho_path == expected
    assert [fields[1] for fields in expected] == [b"1", b"2", b"3", b"4", b"6", b"7"]  # QoS 2
    # waits for its PUBREL


def test_plain_publishes_paho_read_in_pieces_take_the_short_path_too() -> None:
    """A packet split across reads is read by paho's own code, then handled as one read
    whole: the same fields through `on_plain_publish`."""
    packets = [_publish(b"s/%d" % i, b"p" * (i * 7), i % 2, i % 2 * (i + 1)) for i in range(40)]
    for piece in (1, 5, 64):
        client = make_client(manual_ack=True)
        plain: list[tuple[str, object, int, int, bool]] = []
        client.on_message = lambda c, u, msg: pytest.fail("left to paho")
        client.on_plain_publish = lambda *fields, out=plain: out.append(fields)
        wire = _Wire(b"".join(packets), piece)
        ahead = _ReadAhead(wire)
        client._sock = ahead  # type: ignore[assignment]
        while wire.data or ahead.pending():
            client._packet_read()
        client._sock = None
        assert plain == _receive(packets, fast=True)[0]
        assert [fields[0] for fields in plain] == [f"s/{i}" for i in range(40)]


def test_plain_publishes_keep_paho_order_among_others() -> None:
    packets = [
        _publish(b"o/1", b"1", 1, 1),
        _publish(b"o/2", b"2", 1, 2, _packed(UserProperty=[("k", "v")])),
        _publish(b"o/3", b"3", 0, 0),
    ]
    order: list[bytes] = []
    client = make_client(manual_ack=True)
    client.on_message = lambda c, u, msg: order.append(bytes(msg.payload))
    client.on_plain_publish = lambda topic, payload, *rest: order.append(payload)
    client._sock = _ReadAhead(_Wire(b"".join(packets)))  # type: ignore[assignment]
    for _ in packets:
        client._packet_read()
    client._sock = None
    assert order == [b"1", b"2", b"3"]


def test_plain_publishes_are_acknowledged_as_paho_would() -> None:
    packets = [
        _publish(b"a/1", b"x", 1, 9),
        _publish(b"a/2", b"y", 0, 0),
        _publish(b"a/3", b"z", 1, 10),
    ]
    _, _, fast_sent = _receive(packets, fast=True, manual_ack=False)
    _, _, paho_sent = _receive(packets, fast=False, manual_ack=False)
    assert fast_sent == paho_sent == bytes.fromhex("400200094002000a")  # PUBACK 9, PUBACK 10
    _, _, manual_sent = _receive(packets, fast=True, manual_ack=True)
    assert manual_sent == b""  # the consumer acknowledges after storing


def _read_one(packet: bytes, *, fast: bool) -> tuple[object, list[object]]:
    """What `_packet_read` returns (or raises) for one packet, and what either callback got."""
    client = make_client(manual_ack=True)
    got: list[object] = []
    client.on_message = lambda c, u, msg: got.append(msg)
    if fast:
        client.on_plain_publish = lambda *fields: got.append(fields)
    client._sock = _ReadAhead(_Wire(packet))  # type: ignore[assignment]
    try:
        outcome: object = client._packet_read()
    except Exception as exc:
        outcome = type(exc)
    client._sock = None
    return outcome, got


def test_a_malformed_publish_is_reported_as_paho_does() -> None:
    # Packet Identifier cut off, then no Property Length: paho's decoder rejects both.
    # QoS 3 is malformed (MQTT 5 §3.3.1.2): paho returns a protocol error, delivering nothing.
    qos3 = _publish(b"a/b", b"x", 3, 5)
    for packet in (_packet(0x32, b"\x00\x01t\x00"), _packet(0x30, b"\x00\x01t"), qos3):
        fast_outcome, fast_got = _read_one(packet, fast=True)
        paho_outcome, paho_got = _read_one(packet, fast=False)
        assert fast_got == paho_got == []
        assert fast_outcome == paho_outcome != 0


def test_ingest_and_paho_receive_alike_from_a_broker(tmp_path: Path, topic_prefix: str) -> None:
    """Through a real broker: plain messages take the short path and messages published with
    properties (mosquitto_pub -D) still arrive, once each, in order."""
    port = free_port()
    broker = start_mosquitto(port, tmp_path / "mosquitto")
    topic = f"{topic_prefix}plain"
    got: list[tuple[str, bytes]] = []
    client = make_client(manual_ack=False)
    client.on_message = lambda c, u, msg: got.append(("paho", bytes(msg.payload)))
    client.on_plain_publish = lambda t, payload, qos, mid, retain: got.append(("plain", payload))
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", port)
    client.subscribe(topic, options=SubscribeOptions(qos=1))
    client.loop_start()
    pub = ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic]
    try:
        assert subscribed.wait(10)
        subprocess.run([*pub, "-m", "a"], check=True, timeout=30)
        subprocess.run(
            [*pub, "-m", "b", "-D", "publish", "user-property", "k", "v"], check=True, timeout=30
        )
        subprocess.run([*pub, "-m", "c"], check=True, timeout=30)
        wait_until(lambda: len(got) >= 3, 10, "three messages")
        time.sleep(0.2)
    finally:
        client.disconnect()
        client.loop_stop()
        stop(broker)
    assert got == [("plain", b"a"), ("paho", b"b"), ("plain", b"c")]
