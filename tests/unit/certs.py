"""Throwaway PKI for the TLS tests: a CA, certificates it signs, and a self-signed one."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pair:
    cert: str
    key: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
           passphrase: bytes | None = None) -> Pair:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, encryption))
    return Pair(str(cert_path), str(key_path))


def issue(directory: Path, stem: str, *, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
          is_ca: bool = False, passphrase: bytes | None = None) -> tuple[Pair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for 127.0.0.1 (server and client use), signed by ca or by itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_cert, issuer_key = ca if ca else (None, key)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(stem))
               .issuer_name(issuer_cert.subject if issuer_cert else _name(stem))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if not is_ca:
        builder = (builder
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    cert = builder.sign(issuer_key, hashes.SHA256())
    return _write(directory, stem, cert, key, passphrase), cert, key


@dataclass
class PKI:
    ca: Pair
    server: Pair   # signed by ca
    client: Pair   # signed by ca
    rogue: Pair    # self-signed: a client the CA never vouched for


def make_pki(directory: Path) -> PKI:
    ca, ca_cert, ca_key = issue(directory, "ca", is_ca=True)
    server, _, _ = issue(directory, "server", ca=(ca_cert, ca_key))
    client, _, _ = issue(directory, "client", ca=(ca_cert, ca_key))
    rogue, _, _ = issue(directory, "rogue")
    return PKI(ca, server, client, rogue)
