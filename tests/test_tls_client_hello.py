"""The module's ClientHello is Mbed TLS 2.28's: what it offers and in which order, compared with
the ClientHello python-mbedtls (Mbed TLS 2.28.8) sends, and what servers then choose."""

from __future__ import annotations

import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from OpenSSL._util import lib

from ecemu.core.tls import CIPHER_SUITES, ContextSettings, TlsClient, build_context
from ecemu.pki import generate_test_pki
from tests.core_network import SimulatedNetwork, server_context
from tests.harness import CoreHarness
from tests.parts import import_or_missing
from tests.wire import OK_END

mbedtls_tls = import_or_missing("mbedtls.tls", "python-mbedtls")  # the reference: Mbed TLS itself

SIGNATURE_ALGORITHMS, SUPPORTED_GROUPS = 13, 10
BRAINPOOL = {26, 27, 28}


def parse_client_hello(record: bytes) -> tuple[list[int], dict[int, bytes]]:
    """(cipher suites, extensions by type) of a ClientHello record."""
    assert record[0] == 22 and record[5] == 1
    body = record[9:]
    position = 2 + 32
    position += 1 + body[position]
    (length,) = struct.unpack(">H", body[position:position + 2])
    suites = [struct.unpack(">H", body[position + 2 + i:position + 4 + i])[0] for i in range(0, length, 2)]
    position += 2 + length
    position += 1 + body[position]
    (length,) = struct.unpack(">H", body[position:position + 2])
    position += 2
    extensions, end = {}, position + length
    while position < end:
        kind, size = struct.unpack(">HH", body[position:position + 4])
        extensions[kind] = body[position + 4:position + 4 + size]
        position += 4 + size
    return suites, extensions


def u16_list(extension: bytes) -> list[int]:
    return [struct.unpack(">H", extension[i:i + 2])[0] for i in range(2, len(extension), 2)]


def emulator_hello(code: int = 0xFFFF) -> bytes:
    return TlsClient(build_context(ContextSettings(4, code, False)), None).start().outgoing


def mbedtls_hello() -> bytes:
    names = [CIPHER_SUITES[code][0].removeprefix("MBEDTLS_").replace("_", "-") for code in CIPHER_SUITES]
    config = mbedtls_tls.TLSConfiguration(
        validate_certificates=False, ciphers=[n for n in mbedtls_tls.ciphers_available() if n in names],
        lowest_supported_version=mbedtls_tls.TLSVersion.TLSv1,
        highest_supported_version=mbedtls_tls.TLSVersion.TLSv1_2)
    client = mbedtls_tls.ClientContext(config).wrap_buffers("localhost")
    for _ in range(10):
        try:
            client.do_handshake()
        except mbedtls_tls.WantWriteError:
            continue
        except mbedtls_tls.WantReadError:
            break
    return client.peek_outgoing(1 << 16)


def test_signature_algorithms_are_mbedtls():
    _, ours = parse_client_hello(emulator_hello())
    _, theirs = parse_client_hello(mbedtls_hello())
    assert ours[SIGNATURE_ALGORITHMS] == theirs[SIGNATURE_ALGORITHMS]  # no RSA-PSS, no EdDSA


def test_groups_are_mbedtls_in_its_order_brainpool_included():
    _, ours = parse_client_hello(emulator_hello())
    _, theirs = parse_client_hello(mbedtls_hello())
    ours, theirs = u16_list(ours[SUPPORTED_GROUPS]), u16_list(theirs[SUPPORTED_GROUPS])
    assert BRAINPOOL <= set(ours)
    # OpenSSL has no TLS group for secp192/224 and secp256k1: those stay out (docs/reference/tls.md
    # "`0XFFFF`: the default offer").
    assert ours == [group for group in theirs if group in ours]
    assert set(theirs) - set(ours) <= {18, 19, 20, 21, 22}


def test_all_suites_are_offered_in_mbedtls_preference():
    ours, _ = parse_client_hello(emulator_hello())
    theirs, _ = parse_client_hello(mbedtls_hello())
    ours = [code for code in ours if code in CIPHER_SUITES]
    assert ours[0] == 0xC030
    assert ours == [code for code in theirs if code in ours]


def test_a_server_following_the_client_order_picks_ecdhe_gcm():
    harness = CoreHarness()
    context = server_context()  # OpenSSL's default: the client's order decides
    network = SimulatedNetwork(harness, context=context)
    assert harness.command("AT+QIACT=1").endswith(OK_END)
    out = harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run()
    assert b"+QSSLOPEN: 0,0\r\n" in out
    assert network.server().tls.get_cipher_name() == "ECDHE-RSA-AES256-GCM-SHA384"


def test_a_brainpool_ecdsa_server_connects():
    pki = generate_test_pki()
    issuer_cert = x509.load_pem_x509_certificate(pki["intermediate.pem"])
    issuer_key = load_pem_private_key(pki["intermediate.key"], None)
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(issuer_cert.not_valid_before_utc).not_valid_after(issuer_cert.not_valid_after_utc)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(b"ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384")
    assert lib.SSL_CTX_set1_curves_list(context._context, b"brainpoolP256r1") == 1
    context.use_certificate(cert)
    context.add_extra_chain_cert(issuer_cert)
    context.use_privatekey(key)
    harness = CoreHarness()
    network = SimulatedNetwork(harness, context=context)
    harness.files.write("cacert.pem", pki["ca.pem"])
    for line in ("AT+QIACT=1", 'AT+QSSLCFG="secllevel",1,1'):
        assert harness.command(line).endswith(OK_END)
    out = harness.command('AT+QSSLOPEN=1,1,0,"localhost",4433,0') + network.run()
    assert b"+QSSLOPEN: 0,0\r\n" in out, out
