"""The test PKI behaves as certs/README.md promises: checked by OpenSSL at chosen dates (the module
checks certificates against its own clock) and by real TLS handshakes on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
import sys
import threading
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import crypto

from ecemu.pki import generate_test_pki, write_test_pki

# OpenSSL's X509_V_* verification results.
X509_V_OK = 0
X509_V_ERR_CERT_SIGNATURE_FAILURE = 7
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10
X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT = 18
X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_HOSTNAME_MISMATCH = 62

MID_2030 = datetime(2030, 6, 1, tzinfo=timezone.utc)
TIMEOUT = 10.0

LEAVES = ["server-rsa", "server-ecdsa", "client", "server-expired", "server-notyet", "server-wronghost",
          "server-badsig", "server-otherca", "server-selfsigned"]
GOOD_LEAVES = ["server-rsa", "server-ecdsa", "client"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)


def verification_result(chain_file: str, at: datetime, trusted: str = "ca.pem") -> tuple[int, int]:
    """(X509_V_* code, depth of the failing certificate) for the chain a peer would send, checked
    against the one trusted file at time ``at``."""
    pki = generate_test_pki()
    store = crypto.X509Store()
    store.add_cert(crypto.X509.from_cryptography(x509.load_pem_x509_certificate(pki[trusted])))
    # Strict, as Python 3.13's default context is, so the PKI suits users' default settings too.
    store.set_flags(crypto.X509StoreFlags.X509_STRICT)
    store.set_time(at)
    leaf, *untrusted = [crypto.X509.from_cryptography(c)
                        for c in x509.load_pem_x509_certificates(pki[chain_file])]
    try:
        crypto.X509StoreContext(store, leaf, untrusted).verify_certificate()
    except crypto.X509StoreContextError as error:
        code, depth, _message = error.errors
        return code, depth
    return X509_V_OK, 0


def verification_code(chain_file: str, at: datetime, trusted: str = "ca.pem") -> int:
    return verification_result(chain_file, at, trusted)[0]


def subject_alt_names(pem: bytes) -> set[str]:
    certificate = x509.load_pem_x509_certificate(pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in names}


def extended_key_usages(pem: bytes) -> list[x509.ObjectIdentifier]:
    certificate = x509.load_pem_x509_certificate(pem)
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# --- the mapping -------------------------------------------------------------------------------


def test_names_are_regular_and_callers_names_exist():
    pki = generate_test_pki()
    assert {"ca.pem", "server-rsa-chain.pem", "server-rsa.key"} <= pki.keys()
    for stem in ["ca", "intermediate", "other-ca"]:
        assert {f"{stem}.pem", f"{stem}.key"} <= pki.keys()
    for stem in LEAVES:
        assert {f"{stem}.pem", f"{stem}.key", f"{stem}-chain.pem"} <= pki.keys()


def test_generated_once_per_process_and_callers_cannot_corrupt_it():
    first = generate_test_pki()
    original_ca = first["ca.pem"]
    first["ca.pem"] = b"corrupted"
    del first["server-rsa.key"]
    second = generate_test_pki()
    assert second["ca.pem"] == original_ca
    assert "server-rsa.key" in second
    assert second is not generate_test_pki()


@pytest.mark.parametrize("stem", ["ca", "intermediate", "other-ca", *LEAVES])
def test_each_key_belongs_to_its_certificate(stem):
    pki = generate_test_pki()
    key = serialization.load_pem_private_key(pki[f"{stem}.key"], password=None)
    certificate = x509.load_pem_x509_certificate(pki[f"{stem}.pem"])
    assert key.public_key() == certificate.public_key()


@pytest.mark.parametrize("stem", LEAVES)
def test_chain_files_start_with_their_leaf(stem):
    pki = generate_test_pki()
    chain = x509.load_pem_x509_certificates(pki[f"{stem}-chain.pem"])
    assert chain[0] == x509.load_pem_x509_certificate(pki[f"{stem}.pem"])


def test_ecdsa_server_has_a_p256_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    key = x509.load_pem_x509_certificate(generate_test_pki()["server-ecdsa.pem"]).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


# --- verification at chosen dates ----------------------------------------------------------------


@pytest.mark.parametrize("stem", GOOD_LEAVES)
def test_good_leaves_are_valid_from_2020_to_2049(stem):
    chain = f"{stem}-chain.pem"
    assert verification_code(chain, MID_2030) == X509_V_OK
    assert verification_code(chain, utc(2020, 1, 1)) == X509_V_OK
    assert verification_code(chain, utc(2049, 12, 31, 23, 59, 59)) == X509_V_OK
    assert verification_code(chain, utc(2019, 12, 31, 23, 59, 59)) == X509_V_ERR_CERT_NOT_YET_VALID
    assert verification_code(chain, utc(2050, 1, 1)) == X509_V_ERR_CERT_HAS_EXPIRED


@pytest.mark.parametrize("at", [utc(2000, 1, 1), utc(2099, 12, 31, 23, 59, 59)])
def test_cas_are_valid_at_any_date_the_module_clock_can_show(at):
    assert verification_code("intermediate.pem", at) == X509_V_OK
    assert verification_code("other-ca.pem", at, trusted="other-ca.pem") == X509_V_OK


def test_good_leaves_carry_the_right_usage_and_names():
    pki = generate_test_pki()
    for stem in ["server-rsa", "server-ecdsa"]:
        assert subject_alt_names(pki[f"{stem}.pem"]) == {"localhost", "127.0.0.1"}
        assert extended_key_usages(pki[f"{stem}.pem"]) == [x509.ExtendedKeyUsageOID.SERVER_AUTH]
    assert extended_key_usages(pki["client.pem"]) == [x509.ExtendedKeyUsageOID.CLIENT_AUTH]


def test_expired_leaf_fails_only_for_its_dates():
    assert verification_code("server-expired-chain.pem", MID_2030) == X509_V_ERR_CERT_HAS_EXPIRED
    assert verification_code("server-expired-chain.pem", utc(2010, 6, 1)) == X509_V_OK


def test_not_yet_valid_leaf_fails_only_for_its_dates():
    assert verification_code("server-notyet-chain.pem", MID_2030) == X509_V_ERR_CERT_NOT_YET_VALID
    assert verification_code("server-notyet-chain.pem", utc(2090, 6, 1)) == X509_V_OK


def test_badsig_leaf_fails_on_its_signature_with_the_chain_otherwise_complete():
    assert verification_result("server-badsig-chain.pem", MID_2030) == (X509_V_ERR_CERT_SIGNATURE_FAILURE, 0)


def test_otherca_leaf_is_unknown_to_ca_pem_but_valid_under_its_own_ca():
    assert verification_code("server-otherca-chain.pem", MID_2030) == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    assert verification_code("server-otherca-chain.pem", MID_2030, trusted="other-ca.pem") == X509_V_OK


def test_selfsigned_leaf_is_rejected_unless_trusted_itself():
    assert verification_code("server-selfsigned-chain.pem", MID_2030) == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    assert verification_code("server-selfsigned-chain.pem", MID_2030,
                             trusted="server-selfsigned.pem") == X509_V_OK


def test_wronghost_leaf_is_valid_but_names_only_wrong_example():
    assert verification_code("server-wronghost-chain.pem", MID_2030) == X509_V_OK
    assert subject_alt_names(generate_test_pki()["server-wronghost.pem"]) == {"wrong.example"}


# --- real handshakes on 127.0.0.1 ----------------------------------------------------------------


def server_context(stem: str, tmp_path, client_ca: str | None = None) -> ssl.SSLContext:
    pki = generate_test_pki()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # TLS 1.2 at most, as the module speaks; it also makes a rejected client certificate fail the
    # client's handshake rather than its first read, as it would in TLS 1.3.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(*write_pair(pki, stem, tmp_path / "server"))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=pki[client_ca].decode())
    return context


def client_context(tmp_path, trusted: str = "ca.pem", own_stem: str | None = None) -> ssl.SSLContext:
    pki = generate_test_pki()
    context = ssl.create_default_context(cadata=pki[trusted].decode())
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default
    if own_stem is not None:
        context.load_cert_chain(*write_pair(pki, own_stem, tmp_path / "client"))
    return context


def write_pair(pki: dict[str, bytes], stem: str, folder) -> tuple[str, str]:
    folder.mkdir(exist_ok=True)
    chain_path, key_path = folder / f"{stem}-chain.pem", folder / f"{stem}.key"
    chain_path.write_bytes(pki[f"{stem}-chain.pem"])
    key_path.write_bytes(pki[f"{stem}.key"])
    return str(chain_path), str(key_path)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str = "localhost") -> dict:
    """Connect ``client`` to ``server`` over 127.0.0.1 and exchange a few bytes. Returns what each
    side saw; a client-side failure raises."""
    seen: dict = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def serve() -> None:
            try:
                connection, _ = listener.accept()
                connection.settimeout(TIMEOUT)
                with server.wrap_socket(connection, server_side=True) as tls:
                    seen["client_certificate"] = tls.getpeercert()
                    tls.sendall(b"hello")
            except OSError as error:  # ssl.SSLError included
                seen["server_error"] = error

        thread = threading.Thread(target=serve, name="pki-test-server", daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname()[:2], timeout=TIMEOUT) as raw, \
                    client.wrap_socket(raw, server_hostname=hostname) as tls:
                seen["cipher"] = tls.cipher()[0]
                seen["received"] = tls.recv(5)
        finally:
            thread.join(TIMEOUT)
            assert not thread.is_alive(), "the test server did not finish"
    return seen


@pytest.mark.parametrize("stem, cipher", [
    ("server-rsa", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("server-rsa", "AES128-GCM-SHA256"),  # RSA key exchange, common on old modules
    ("server-ecdsa", "ECDHE-ECDSA-AES128-GCM-SHA256"),
])
def test_server_certificates_serve_tls_to_a_client_trusting_ca_pem(tmp_path, stem, cipher):
    server, client = server_context(stem, tmp_path), client_context(tmp_path)
    for context in (server, client):
        context.set_ciphers(cipher)  # Python's defaults leave out RSA key exchange
    seen = handshake(server, client)
    assert "server_error" not in seen
    assert (seen["cipher"], seen["received"]) == (cipher, b"hello")


def test_wronghost_server_fails_hostname_check_for_localhost(tmp_path):
    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        handshake(server_context("server-wronghost", tmp_path), client_context(tmp_path))
    assert failure.value.verify_code == X509_V_ERR_HOSTNAME_MISMATCH


def test_client_certificate_is_accepted_by_a_server_requiring_ca_pem(tmp_path):
    seen = handshake(server_context("server-rsa", tmp_path, client_ca="ca.pem"),
                     client_context(tmp_path, own_stem="client"))
    assert "server_error" not in seen
    subject = dict(item for rdn in seen["client_certificate"]["subject"] for item in rdn)
    assert subject["organizationalUnitName"] == "client"


def test_server_certificate_is_refused_as_a_client_certificate(tmp_path):
    # serverAuth only, so the server's purpose check (not the chain) rejects it.
    with pytest.raises(ssl.SSLError) as failure:
        handshake(server_context("server-rsa", tmp_path, client_ca="ca.pem"),
                  client_context(tmp_path, own_stem="server-rsa"))
    assert failure.value.reason == "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"


# --- files on disk ---------------------------------------------------------------------------------


def test_write_test_pki_writes_every_file_with_owner_only_keys(tmp_path):
    folder = tmp_path / "not" / "yet" / "there"
    paths = write_test_pki(folder)
    pki = generate_test_pki()
    assert paths.keys() == pki.keys()
    for name, path in paths.items():
        assert path.parent == folder
        assert path.read_bytes() == pki[name]
        expected_mode = 0o600 if name.endswith(".key") else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == expected_mode, name


def test_write_test_pki_tightens_a_key_file_that_was_readable(tmp_path):
    (tmp_path / "ca.key").write_bytes(b"old")
    (tmp_path / "ca.key").chmod(0o644)
    write_test_pki(tmp_path)
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    assert (tmp_path / "ca.key").read_bytes() == generate_test_pki()["ca.key"]


def test_ecemu_certs_writes_and_lists_the_files(tmp_path):
    folder = tmp_path / "certs"
    result = subprocess.run([sys.executable, "-m", "ecemu", "certs", str(folder)],
                            capture_output=True, text=True, timeout=60, check=True)
    listed = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert listed.keys() == generate_test_pki().keys()
    for name, path in listed.items():
        assert path == str(folder / name)
        assert (folder / name).is_file()
    assert stat.S_IMODE((folder / "server-rsa.key").stat().st_mode) == 0o600
    # Another process generates its own PKI, but a consistent one.
    ca = crypto.X509.from_cryptography(x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes()))
    leaf, *untrusted = [crypto.X509.from_cryptography(c) for c in
                        x509.load_pem_x509_certificates((folder / "server-rsa-chain.pem").read_bytes())]
    store = crypto.X509Store()
    store.add_cert(ca)
    store.set_time(MID_2030)
    crypto.X509StoreContext(store, leaf, untrusted).verify_certificate()
