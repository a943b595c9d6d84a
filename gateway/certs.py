"""A deployment's private CA and its server and client certificates (pure: bytes out).

Devices pin the CA certificate (`ca.crt`); the broker presents `server.crt`, signed by it,
on its TLS listener; a device may also present a client certificate signed by the same CA.
Keys are ECDSA P-256 (NIST SP 800-57 Part 1: 128-bit security, the MQTT-over-TLS baseline of
most embedded TLS stacks) and certificates are X.509 v3.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825  # CA/Browser Forum's former maximum for a leaf certificate


@dataclass(frozen=True, slots=True)
class Issued:
    """A PEM certificate and its PEM private key (unencrypted PKCS#8)."""

    cert_pem: bytes
    key_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eldercare"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: str, issuer: x509.Name, days: int, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .serial_number(x509.random_serial_number())
        # An hour back, for devices whose clock lags a little.
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def make_ca(common_name: str, now: dt.datetime) -> Issued:
    """A self-signed CA certificate that signs only certificates (path length 0)."""
    key = _key()
    cert = (
        _builder(common_name, _name(common_name), CA_DAYS, now)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _load_ca(ca: Issued) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    return cert, key


def _leaf(
    ca: Issued, common_name: str, now: dt.datetime, usage: x509.ObjectIdentifier
) -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = _load_ca(ca)
    key = _key()
    builder = (
        _builder(common_name, ca_cert.subject, LEAF_DAYS, now)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    return builder, key, ca_key


def make_server_cert(ca: Issued, hosts: list[str], now: dt.datetime) -> Issued:
    """A broker certificate for `hosts` (DNS names or IP addresses), signed by `ca`."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    builder, key, ca_key = _leaf(ca, hosts[0], now, ExtendedKeyUsageOID.SERVER_AUTH)
    cert = builder.add_extension(x509.SubjectAlternativeName(names), critical=False).sign(
        ca_key, hashes.SHA256()
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_client_cert(ca: Issued, username: str, now: dt.datetime) -> Issued:
    """A client certificate whose common name is the MQTT username, signed by `ca`."""
    builder, key, ca_key = _leaf(ca, username, now, ExtendedKeyUsageOID.CLIENT_AUTH)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))
