"""Test TLS material: a CA and a certificate it signed for one name (and 127.0.0.1), with
server and client contexts, and the files a server that takes paths (hypercorn) needs."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TlsMaterial:
    server: ssl.SSLContext  # the leaf certificate and key
    client: ssl.SSLContext  # trusts the CA only
    cert_file: Path
    key_file: Path
    ca_pem: str


def _build(
    subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    # Key usage and key identifiers: Python 3.13 verifies with VERIFY_X509_STRICT.
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False
    ).add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False)
    is_ca = subject == issuer
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=not is_ca,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=is_ca,
            crl_sign=is_ca,
            encipher_only=False,
            decipher_only=False,
        ),
        True,
    )
    if is_ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        names: list[x509.GeneralName] = [
            x509.DNSName(subject),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(signer, hashes.SHA256())


def tls_material(folder: Path, name: str) -> TlsMaterial:
    """A fresh CA and a certificate for ``name`` and 127.0.0.1, written under ``folder``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _build("Test CA", "Test CA", ca_key, ca_key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _build(name, "Test CA", leaf_key, ca_key)
    # ssl can only load a server certificate from files (test keys, not image data).
    cert_file, key_file = folder / "leaf.pem", folder / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    client = ssl.create_default_context(cadata=ca_pem)
    return TlsMaterial(server, client, cert_file, key_file, ca_pem)
