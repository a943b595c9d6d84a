"""A deployment CA and server certificate from `eldercare gateway certs`, used by a private
Mosquitto's TLS listener: a client pinning that CA connects, one trusting nothing else fails."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from eldercare.broker import free_port
from gateway.certs import make_ca, make_client_cert, make_server_cert
from tests.gateway.auth_broker import auth_broker, cli, issue, make_registry, probe


def test_certificates_chain_to_the_ca() -> None:
    now = dt.datetime.now(dt.UTC)
    ca = make_ca("test CA", now)
    server = make_server_cert(ca, ["broker.example", "127.0.0.1"], now)
    client = make_client_cert(ca, "btn-0001", now)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    for leaf in (server, client):
        cert = x509.load_pem_x509_certificate(leaf.cert_pem)
        cert.verify_directly_issued_by(ca_cert)
    names = x509.load_pem_x509_certificate(server.cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert names.value.get_values_for_type(x509.DNSName) == ["broker.example"]
    other = x509.load_pem_x509_certificate(make_ca("other", now).cert_pem)
    with pytest.raises(ValueError):
        x509.load_pem_x509_certificate(server.cert_pem).verify_directly_issued_by(other)


def test_tls_listener_with_the_generated_ca(
    schema_url: str, device_suffix: str, tmp_path: Path
) -> None:
    a, *_ = make_registry(schema_url, device_suffix)
    creds = issue(schema_url, a)
    tls_dir = tmp_path / "tls"
    done = cli(schema_url, "gateway", "certs", "--out", str(tls_dir), "--client", a)
    assert done.returncode == 0, done.stderr
    assert (tls_dir / "ca.key").stat().st_mode & 0o077 == 0
    tls_port = free_port()
    extra = ("--tls-dir", str(tls_dir), "--tls-port", str(tls_port))
    with auth_broker(schema_url, tmp_path / "broker", *extra):
        pinned = probe(tls_port, a, creds["password"], tls={"ca_certs": str(tls_dir / "ca.crt")})
        assert pinned.connacks == ["Success"]
        sent = pinned.client.publish(f"eldercare/v1/devices/{a}/status", b"{}", qos=1)
        assert pinned.wait(lambda: sent.mid in pinned.pubacks)
        pinned.close()
        # The system trust store does not know the private CA: the handshake fails.
        with pytest.raises(ssl.SSLError):
            probe(tls_port, a, creds["password"], tls={})
        # The optional client certificate is accepted alongside the password.
        with_cert = probe(
            tls_port,
            a,
            creds["password"],
            tls={
                "ca_certs": str(tls_dir / "ca.crt"),
                "certfile": str(tls_dir / f"client-{a}.crt"),
                "keyfile": str(tls_dir / f"client-{a}.key"),
            },
        )
        assert with_cert.connacks == ["Success"]
        with_cert.close()
