"""Password and ACL files rendered from accounts (pure)."""

from __future__ import annotations

from pathlib import Path

from gateway.acl import (
    MAX_PACKET_BYTES,
    Account,
    AccountKind,
    TlsFiles,
    render_acl,
    render_conf,
    render_passwd,
)

DEV = Account("btn-0001", AccountKind.DEVICE, "btn-0001", "$7$101$s$h")
SVC = Account("svc_ingest", AccountKind.SERVICE, "ingest", "$7$101$t$i")
CTR = Account("center_cc-1", AccountKind.CENTER, "cc-1", "$7$101$u$j")


def test_a_device_may_write_its_three_channels_only() -> None:
    acl = render_acl([DEV], "p/")
    assert "user btn-0001\n" in acl
    rules = [line for line in acl.splitlines() if line.startswith("topic")]
    assert rules == [
        "topic write p/eldercare/v1/devices/btn-0001/telemetry",
        "topic write p/eldercare/v1/devices/btn-0001/events",
        "topic write p/eldercare/v1/devices/btn-0001/status",
    ]
    assert "pattern" not in acl and "#" not in acl.split("\n", 1)[1]


def test_services_and_centres_get_what_they_need() -> None:
    acl = render_acl([SVC, CTR])
    assert "user svc_ingest\ntopic read eldercare/v1/devices/+/+\n" in acl
    assert "user center_cc-1\ntopic read eldercare/v1/alerts/cc-1\n" in acl
    assert "alerts/+" not in acl.split("user svc_ingest")[1]


def test_passwd_lists_hashes_sorted() -> None:
    assert render_passwd([SVC, DEV]) == "btn-0001:$7$101$s$h\nsvc_ingest:$7$101$t$i\n"


def test_conf_turns_auth_on_and_limits_packets(tmp_path: Path) -> None:
    tls = TlsFiles(tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "server.key")
    conf = render_conf(tmp_path, port=1999, tls=tls).splitlines()
    assert "allow_anonymous false" in conf
    assert f"password_file {tmp_path.resolve()}/passwd" in conf
    assert f"max_packet_size {MAX_PACKET_BYTES}" in conf
    assert 16 * 1024 < MAX_PACKET_BYTES < 17 * 1024
    assert "listener 1999 127.0.0.1" in conf and "listener 8883" in conf
    assert any(
        line.startswith("max_queued_bytes ") and line != "max_queued_bytes 0" for line in conf
    )
    assert "require_certificate false" in conf
