"""A throwaway test PKI: a CA chain, good server and client certificates, and deliberately broken ones.

The emulated module makes real TLS connections and checks the server's certificate against a CA
file uploaded to it, so tests, the demo and users need certificates for TLS servers on 127.0.0.1,
plus certificates that fail in each of the ways a real module reports (expired, not yet valid,
wrong host, unknown CA, bad signature, self-signed).

The module checks validity against its own clock (AT+CCLK), which tests set to arbitrary dates, so
every validity window here is fixed rather than relative to "now": the CAs cover every date a
two-digit AT+CCLK year can express (2000-2099), good leaves 2020-2049, and the expired and
not-yet-valid leaves lie wholly before and after that. Each window runs from 00:00:00 UTC on its
first day to 23:59:59 UTC on its last.

The certificates are built with ``cryptography`` rather than ``trustme``: trustme cannot set a CA's
validity, gives every leaf the serverAuth, clientAuth and codeSigning usages at once, and cannot
issue self-signed or corrupted leaves, and working around that would take more code than this.

Keys are generated afresh in each process (nothing secret is ever stored in the repository) and
written unencrypted in the traditional OpenSSL PEM form ("BEGIN RSA PRIVATE KEY" / "BEGIN EC
PRIVATE KEY"), which embedded TLS stacks accept most widely.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _first_second(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


def _last_second(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 23, 59, 59, tzinfo=timezone.utc)


CA_VALIDITY = (_first_second(2000, 1, 1), _last_second(2099, 12, 31))
LEAF_VALIDITY = (_first_second(2020, 1, 1), _last_second(2049, 12, 31))
EXPIRED_VALIDITY = (_first_second(2010, 1, 1), _last_second(2011, 1, 1))
NOT_YET_VALID_VALIDITY = (_first_second(2090, 1, 1), _last_second(2091, 1, 1))

ORGANIZATION = "ecemu test PKI"
SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class _Issued:
    certificate: x509.Certificate
    key: PrivateKey


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _new_ecdsa_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, unit: str) -> x509.Name:
    # The unit names the file, so `openssl x509 -text` shows which certificate one is looking at.
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _sign(builder: x509.CertificateBuilder, subject_key: PrivateKey, subject: x509.Name,
          issuer: _Issued | None, validity: tuple[datetime, datetime]) -> _Issued:
    """Finish and sign ``builder``; ``issuer`` None means self-signed.

    Every certificate carries a subject key identifier and, unless self-signed, an authority key
    identifier: OpenSSL's strict mode (Python 3.13's default) rejects chains without them, and they
    let OpenSSL tell apart CAs of the same name from different runs.
    """
    builder = (builder.subject_name(subject)
               .issuer_name(subject if issuer is None else issuer.certificate.subject)
               .public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(validity[0])
               .not_valid_after(validity[1])
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                              critical=False))
    if issuer is not None:
        issuer_key_id = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_key_id.value),
            critical=False)
    signing_key = subject_key if issuer is None else issuer.key
    return _Issued(builder.sign(signing_key, hashes.SHA256()), subject_key)


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False,
               key_cert_sign: bool = False, key_agreement: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False,
        key_encipherment=key_encipherment, data_encipherment=False, key_agreement=key_agreement,
        key_cert_sign=key_cert_sign, crl_sign=key_cert_sign, encipher_only=False, decipher_only=False)


def _issue_ca(common_name: str, unit: str, issuer: _Issued | None = None) -> _Issued:
    # A root may sign intermediates; an intermediate (path length 0) only leaves.
    builder = (x509.CertificateBuilder()
               .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
                              critical=True)
               .add_extension(_key_usage(key_cert_sign=True), critical=True))
    return _sign(builder, _new_rsa_key(), _name(common_name, unit), issuer, CA_VALIDITY)


def _issue_leaf(unit: str, issuer: _Issued | None, *, names: tuple[str, ...] = SERVER_NAMES,
                usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
                validity: tuple[datetime, datetime] = LEAF_VALIDITY,
                key: PrivateKey | None = None) -> _Issued:
    key = key if key is not None else _new_rsa_key()
    # RSA key exchange suites (what old modules often pick) encrypt to the key; ECDSA keys sign,
    # and agree on keys with the static-ECDH suites.
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    builder = (x509.CertificateBuilder()
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if issuer is not None:
        # Left out when self-signed: without keyCertSign OpenSSL would not treat the certificate
        # as its own issuer, and trusting it directly (as real self-signed servers are) would fail.
        builder = builder.add_extension(
            _key_usage(digital_signature=True, key_encipherment=is_rsa, key_agreement=not is_rsa),
            critical=True)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]),
                                        critical=False)
    common_name = names[0] if names else unit
    return _sign(builder, key, _name(common_name, unit), issuer, validity)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _with_broken_signature(issued: _Issued) -> _Issued:
    """The same certificate with its signature's last byte flipped: well-formed, correctly chained,
    but failing signature verification (X509_V_ERR_CERT_SIGNATURE_FAILURE)."""
    der = bytearray(issued.certificate.public_bytes(serialization.Encoding.DER))
    # The signature BIT STRING is the last field of the DER, so its last byte is the DER's last byte.
    assert der.endswith(issued.certificate.signature)
    der[-1] ^= 0xFF
    return _Issued(x509.load_der_x509_certificate(bytes(der)), issued.key)


def _certificate_pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


@functools.cache
def _generate_once() -> dict[str, bytes]:
    root = _issue_ca("ecemu test root CA", "ca")
    intermediate = _issue_ca("ecemu test intermediate CA", "intermediate", root)
    other_root = _issue_ca("ecemu other test root CA", "other-ca")

    files: dict[str, bytes] = {}
    for stem, ca in (("ca", root), ("intermediate", intermediate), ("other-ca", other_root)):
        files[f"{stem}.pem"] = _certificate_pem(ca.certificate)
        files[f"{stem}.key"] = _key_pem(ca.key)

    # name -> (leaf, the CA certificates a peer sends after it: none when signed by a root)
    leaves: dict[str, tuple[_Issued, tuple[x509.Certificate, ...]]] = {
        "server-rsa": (_issue_leaf("server-rsa", intermediate), (intermediate.certificate,)),
        "server-ecdsa": (_issue_leaf("server-ecdsa", intermediate, key=_new_ecdsa_key()),
                         (intermediate.certificate,)),
        "client": (_issue_leaf("client", intermediate, names=(), usage=ExtendedKeyUsageOID.CLIENT_AUTH),
                   (intermediate.certificate,)),
        "server-expired": (_issue_leaf("server-expired", intermediate, validity=EXPIRED_VALIDITY),
                           (intermediate.certificate,)),
        "server-notyet": (_issue_leaf("server-notyet", intermediate, validity=NOT_YET_VALID_VALIDITY),
                          (intermediate.certificate,)),
        "server-wronghost": (_issue_leaf("server-wronghost", intermediate, names=("wrong.example",)),
                             (intermediate.certificate,)),
        "server-badsig": (_with_broken_signature(_issue_leaf("server-badsig", intermediate)),
                          (intermediate.certificate,)),
        "server-otherca": (_issue_leaf("server-otherca", other_root), ()),
        "server-selfsigned": (_issue_leaf("server-selfsigned", None), ()),
    }
    for stem, (leaf, chain) in leaves.items():
        files[f"{stem}.pem"] = _certificate_pem(leaf.certificate)
        files[f"{stem}.key"] = _key_pem(leaf.key)
        files[f"{stem}-chain.pem"] = _certificate_pem(leaf.certificate, *chain)
    return files


# Two threads racing through an empty cache would each generate, and get, a different PKI.
_generation_lock = threading.Lock()


def generate_test_pki() -> dict[str, bytes]:
    """File name -> PEM bytes of the test PKI, the same within one process (see certs/README.md)."""
    with _generation_lock:
        return dict(_generate_once())  # a fresh dict, so callers cannot change the cached one


def write_test_pki(folder: Path) -> dict[str, Path]:
    """Write the test PKI into ``folder`` (created if needed); private keys are owner-only (0600).

    Returns file name -> path. Existing files of the same names are replaced.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, data in generate_test_pki().items():
        path = folder / name
        mode = 0o600 if name.endswith(".key") else 0o644
        # Replace rather than overwrite, so a key never sits in a file that others can read, not
        # even for a moment, and a symbolic link planted in the folder is not followed.
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)  # the umask may have taken bits away; be exact
            file.write(data)
        paths[name] = path
    return paths
