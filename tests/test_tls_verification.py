"""The emulator accepts and refuses servers' certificates exactly as Mbed TLS 2.28 does.

A corpus of certificate situations is served, one at a time, by an OpenSSL server in memory; each
is judged twice: by python-mbedtls (Mbed TLS 2.28.8, default verification profile, the host's
clock) as the reference client, and by the emulator's AT+QSSLOPEN with secllevel 1 and
ignorelocaltime 0, its module clock set to the host's. The two verdicts must be equal, case by case.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL

from tests.core_network import SimulatedNetwork
from tests.harness import CoreHarness
from tests.parts import import_or_missing
from tests.wire import OK_END

mbedtls_tls = import_or_missing("mbedtls.tls", "python-mbedtls")  # the reference: Mbed TLS itself
from mbedtls.exceptions import TLSError  # noqa: E402
from mbedtls.x509 import CRT  # noqa: E402

NOW = datetime.now(timezone.utc).replace(microsecond=0)
VALID = (NOW - timedelta(days=2), NOW + timedelta(days=365))
EXPIRED = (NOW - timedelta(days=60), NOW - timedelta(days=2))
NOT_YET = (NOW + timedelta(days=2), NOW + timedelta(days=60))


@dataclass
class Issued:
    cert: x509.Certificate
    key: object


_keys: dict[tuple, list] = {}


def new_key(kind: str = "rsa", size: int = 2048, curve=ec.SECP256R1):
    """A fresh key; RSA keys come from a small pool per size (generating them is the slow part)."""
    if kind == "ec":
        return ec.generate_private_key(curve())
    pool = _keys.setdefault((kind, size), [])
    if len(pool) < 6:
        pool.append(rsa.generate_private_key(public_exponent=65537, key_size=size))
        return pool[-1]
    return pool[len(_keys) % 6]


def issue(name: str, issuer: Issued | None = None, *, key=None, ca: bool = False, pathlen: int | None = None,
          usage: dict | None = None, purposes=(ExtendedKeyUsageOID.SERVER_AUTH,), san=("localhost",),
          cn: str | None = None, digest=hashes.SHA256, validity=VALID, subject_key_id: bool = True,
          basic_constraints: bool = True) -> Issued:
    """One certificate; ``issuer`` None: self-signed."""
    key = key if key is not None else new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecemu verification corpus"),
                         x509.NameAttribute(NameOID.COMMON_NAME, cn or name)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(subject if issuer is None else issuer.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(validity[0]).not_valid_after(validity[1]))
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None),
                                        critical=True)
    if ca:
        usage = usage if usage is not None else {"key_cert_sign": True, "crl_sign": True}
    if usage is not None:
        bits = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                              "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                              "encipher_only", "decipher_only"), False)
        bits.update(usage)
        builder = builder.add_extension(x509.KeyUsage(**bits), critical=True)
    if not ca and purposes:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(purposes)), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in san]),
                                        critical=False)
    if subject_key_id:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                        critical=False)
    signer = key if issuer is None else issuer.key
    if digest is hashes.SHA1:
        return Issued(_signed_with_sha1(builder.sign(signer, hashes.SHA256()), signer), key)
    return Issued(builder.sign(signer, digest()), key)


SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105")


def _signed_with_sha1(cert: x509.Certificate, signer: rsa.RSAPrivateKey) -> x509.Certificate:
    """``cert`` re-signed with SHA-1, which cryptography no longer signs certificates with: both
    algorithm identifiers swapped (same length), and a new signature over the new TBS."""
    from cryptography.hazmat.primitives.asymmetric import padding

    tbs = cert.tbs_certificate_bytes.replace(SHA256_WITH_RSA, SHA1_WITH_RSA)
    signature = signer.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    der = cert.public_bytes(serialization.Encoding.DER).replace(SHA256_WITH_RSA, SHA1_WITH_RSA)
    assert len(signature) == len(cert.signature) and der.endswith(b"")
    return x509.load_der_x509_certificate(der[:-len(signature)] + signature)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def broken(issued: Issued) -> Issued:
    der = bytearray(issued.cert.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x55
    return Issued(x509.load_der_x509_certificate(bytes(der)), issued.key)


SERVER_RSA = "ECDHE-RSA-AES128-GCM-SHA256"
SERVER_ECDSA = "ECDHE-ECDSA-AES128-SHA256"
SERVER_RSA_KEY_EXCHANGE = "AES128-SHA"


@dataclass
class Case:
    name: str
    sent: list[Issued]  # the server's certificate first, then what it sends after it
    anchors: list[x509.Certificate]  # the CA file
    address: str = "localhost"
    suite: str = SERVER_RSA
    tags: set = field(default_factory=set)


def corpus() -> list[Case]:
    root = issue("root", ca=True)
    inter = issue("intermediate", root, ca=True)
    inter2 = issue("second intermediate", inter, ca=True)
    leaf = issue("leaf", inter)
    deep_leaf = issue("deep leaf", inter2)
    other_root = issue("other root", ca=True)
    cases = [
        Case("root as anchor", [leaf, inter], [root.cert]),
        Case("intermediate as anchor", [leaf, inter], [inter.cert]),
        Case("intermediate as anchor, leaf alone", [leaf], [inter.cert]),
        Case("leaf itself as anchor", [leaf], [leaf.cert]),
        Case("deeper intermediate as anchor", [deep_leaf, inter2, inter], [inter2.cert]),
        Case("unrelated root", [leaf, inter], [other_root.cert]),
        Case("missing intermediate", [leaf], [root.cert]),
        Case("root sent too", [leaf, inter, root], [root.cert]),
        Case("root sent, not trusted", [leaf, inter, root], [other_root.cert]),
        Case("order shuffled, one intermediate", [leaf, root, inter], [root.cert]),
        Case("two intermediates in order", [deep_leaf, inter2, inter], [root.cert]),
        Case("two intermediates shuffled", [deep_leaf, inter, inter2], [root.cert]),
        Case("extra unrelated certificates", [leaf, other_root, inter, issue("stray", other_root, ca=True)],
             [root.cert]),
        Case("several anchors", [leaf, inter], [other_root.cert, root.cert]),
        Case("several anchors, the intermediate second", [leaf], [other_root.cert, inter.cert]),
        # weak keys and hashes
        Case("1024-bit RSA leaf", [issue("weak leaf", inter, key=new_key(size=1024)), inter], [root.cert]),
        Case("1024-bit RSA intermediate", [issue("leaf under weak", w := issue("weak intermediate", root, ca=True,
                                                                               key=new_key(size=1024))), w],
             [root.cert]),
        Case("1024-bit RSA root", [issue("leaf under weak root", wi := issue(
            "intermediate under weak root", wr := issue("weak root", ca=True, key=new_key(size=1024)), ca=True)), wi],
            [wr.cert]),
        Case("SHA-1 signed leaf", [issue("sha1 leaf", inter, digest=hashes.SHA1), inter], [root.cert]),
        Case("SHA-1 signed intermediate", [issue("leaf under sha1", s1 := issue("sha1 intermediate", root, ca=True,
                                                                                digest=hashes.SHA1)), s1],
             [root.cert]),
        Case("SHA-1 self-signed root", [issue("leaf under sha1 root", si := issue(
            "intermediate under sha1 root", sr := issue("sha1 root", ca=True, digest=hashes.SHA1), ca=True)), si],
            [sr.cert]),
        Case("SHA-512 signed leaf", [issue("sha512 leaf", inter, digest=hashes.SHA512), inter], [root.cert]),
        Case("ECDSA P-256 leaf", [issue("ec leaf", inter, key=new_key("ec")), inter], [root.cert],
             suite=SERVER_ECDSA),
        Case("ECDSA P-384 chain", [issue("ec384 leaf", ei := issue("ec intermediate", root, ca=True,
                                                                   key=new_key("ec", curve=ec.SECP384R1)),
                                         key=new_key("ec")), ei], [root.cert], suite=SERVER_ECDSA),
        # names
        Case("CN only, right name", [issue("cn only", inter, san=(), cn="localhost"), inter], [root.cert]),
        Case("CN only, wrong name", [issue("cn only wrong", inter, san=(), cn="elsewhere.test"), inter],
             [root.cert]),
        Case("SAN wins over CN", [issue("san over cn", inter, san=("elsewhere.test",), cn="localhost"), inter],
             [root.cert]),
        Case("SAN DNS second entry", [issue("san second", inter, san=("a.test", "localhost")), inter],
             [root.cert]),
        Case("SAN upper case", [issue("san case", inter, san=("LOCALHOST",)), inter], [root.cert]),
        Case("SAN IP only, opened by name", [issue("san ip", inter, san=("127.0.0.1",)), inter], [root.cert]),
        Case("wildcard one label", [issue("wild", inter, san=("*.example.test",)), inter], [root.cert],
             address="a.example.test"),
        Case("wildcard two labels", [issue("wild2", inter, san=("*.example.test",)), inter], [root.cert],
             address="a.b.example.test"),
        Case("wildcard bare domain", [issue("wild3", inter, san=("*.example.test",)), inter], [root.cert],
             address="example.test"),
        Case("wildcard in CN", [issue("wild cn", inter, san=(), cn="*.example.test"), inter], [root.cert],
             address="www.example.test"),
        # time, at the module's clock
        Case("expired leaf", [issue("old leaf", inter, validity=EXPIRED), inter], [root.cert]),
        Case("leaf not yet valid", [issue("young leaf", inter, validity=NOT_YET), inter], [root.cert]),
        Case("expired intermediate", [issue("leaf under old", oi := issue("old intermediate", root, ca=True,
                                                                          validity=EXPIRED)), oi], [root.cert]),
        Case("expired root anchor", [issue("leaf under old root", ori := issue(
            "intermediate under old root", orr := issue("old root", ca=True, validity=EXPIRED), ca=True)), ori],
            [orr.cert]),
        # usages and constraints
        Case("key usage without digitalSignature, ECDHE",
             [issue("ku enc", inter, usage={"key_encipherment": True}), inter], [root.cert]),
        Case("key usage without digitalSignature, RSA key exchange",
             [issue("ku enc rsa", inter, usage={"key_encipherment": True}), inter], [root.cert],
             suite=SERVER_RSA_KEY_EXCHANGE),
        Case("key usage without keyEncipherment, RSA key exchange",
             [issue("ku sig rsa", inter, usage={"digital_signature": True}), inter], [root.cert],
             suite=SERVER_RSA_KEY_EXCHANGE),
        Case("extended key usage clientAuth only",
             [issue("eku client", inter, purposes=(ExtendedKeyUsageOID.CLIENT_AUTH,)), inter], [root.cert]),
        Case("extended key usage any",
             [issue("eku any", inter, purposes=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,)), inter], [root.cert]),
        Case("intermediate without the CA bit",
             [issue("leaf under non-ca", nc := issue("not a ca", root, usage={"key_cert_sign": True})), nc],
             [root.cert]),
        Case("intermediate without keyCertSign",
             [issue("leaf under no-certsign", nk := issue("no certsign", root, ca=True,
                                                          usage={"digital_signature": True})), nk], [root.cert]),
        Case("path length exceeded",
             [issue("leaf under pathlen", pi := issue("pl intermediate", pr := issue("pathlen 0 root", ca=True,
                                                                                      pathlen=0), ca=True)), pi],
             [pr.cert]),
        Case("path length enough",
             [issue("leaf under pathlen1", pi1 := issue("pl1 intermediate", pr1 := issue("pathlen 1 root", ca=True,
                                                                                         pathlen=1), ca=True)), pi1],
             [pr1.cert]),
        # signatures and self-signed servers
        Case("bad signature on the leaf", [broken(issue("tampered", inter)), inter], [root.cert]),
        Case("bad signature on the intermediate", [issue("leaf under tampered", ti := issue(
            "tampered intermediate", root, ca=True)), broken(ti)], [root.cert]),
        Case("bad signature on the intermediate, intermediate trusted",
             [issue("leaf under tampered anchor", ta := issue("tampered anchor", root, ca=True)), broken(ta)],
             [broken(ta).cert]),
        Case("self-signed leaf, not trusted", [ss := issue("self-signed", None)], [root.cert]),
        Case("self-signed leaf in the CA file", [ss], [ss.cert]),
        Case("self-signed leaf in the CA file, expired",
             [sse := issue("self-signed old", None, validity=EXPIRED)], [sse.cert]),
        Case("self-signed CA leaf", [ssc := issue("self-signed ca", None, ca=True, san=("localhost",))],
             [ssc.cert]),
    ]
    return cases


def server_context(case: Case) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(f"{case.suite}:@SECLEVEL=0".encode())
    context.use_certificate(case.sent[0].cert)
    for extra in case.sent[1:]:
        context.add_extra_chain_cert(extra.cert)
    context.use_privatekey(case.sent[0].key)
    return context


def mbedtls_accepts(case: Case) -> bool:
    """The reference: Mbed TLS 2.28's client, in memory against the case's server.

    python-mbedtls 2.10.1 gives Mbed TLS only the first certificate of a TrustStore as its CA
    chain, where the module parses the whole CA file into one; a path uses one trust anchor, so
    a file of several is judged anchor by anchor here (the same verdict for the cases below)."""
    return any(_mbedtls_accepts_with(case, anchor) for anchor in case.anchors)


def _mbedtls_accepts_with(case: Case, anchor: x509.Certificate) -> bool:
    store = mbedtls_tls.TrustStore([CRT.from_DER(anchor.public_bytes(serialization.Encoding.DER))])
    config = mbedtls_tls.TLSConfiguration(trust_store=store, validate_certificates=True,
                                          lowest_supported_version=mbedtls_tls.TLSVersion.TLSv1_2,
                                          highest_supported_version=mbedtls_tls.TLSVersion.TLSv1_2)
    # Mbed TLS given an address as host name compares it with the names as text; the module
    # checks no name for an address, as does Mbed TLS given none.
    client = mbedtls_tls.ClientContext(config).wrap_buffers(None if _is_address(case.address) else case.address)
    server = SSL.Connection(server_context(case), None)
    server.set_accept_state()
    for _ in range(20):
        try:
            while client._handshake_state is not mbedtls_tls.HandshakeStep.HANDSHAKE_OVER:
                client.do_handshake()  # one step of Mbed TLS's state machine per call
            return True
        except (mbedtls_tls.WantReadError, mbedtls_tls.WantWriteError):
            pass
        except TLSError:
            return False
        outgoing = client.peek_outgoing(1 << 20)
        client.consume_outgoing(len(outgoing))
        if outgoing:
            server.bio_write(outgoing)
            try:
                server.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error:
                pass
        answer = b""
        while True:
            try:
                answer += server.bio_read(1 << 20)
            except SSL.WantReadError:
                break
        if answer:
            client.receive_from_network(answer)
    raise AssertionError(f"{case.name}: the reference handshake never ended")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def emulator_accepts(case: Case) -> bool:
    harness = CoreHarness()
    network = SimulatedNetwork(harness, context=server_context(case))
    harness.files.write("cacert.pem", b"".join(a.public_bytes(serialization.Encoding.PEM) for a in case.anchors))
    clock = NOW.strftime("%y/%m/%d,%H:%M:%S") + "+00"
    for line in ("AT+QIACT=1", 'AT+QSSLCFG="secllevel",1,1', 'AT+QSSLCFG="ignorelocaltime",1,0',
                 f'AT+CCLK="{clock}"'):
        assert harness.command(line).endswith(OK_END), line
    out = harness.command(f'AT+QSSLOPEN=1,1,0,"{case.address}",4433,0') + network.run()
    if b"+QSSLOPEN: 0,0\r\n" in out:
        return True
    assert b"+QSSLOPEN: 0,566\r\n" in out, out
    return False


CASES = corpus()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_emulator_judges_the_certificate_as_mbedtls_does(case):
    assert emulator_accepts(case) == mbedtls_accepts(case)


def test_the_corpus_has_both_verdicts():
    verdicts = [mbedtls_accepts(case) for case in CASES]
    assert verdicts.count(True) >= 12 and verdicts.count(False) >= 20


# --- the SSL note's ignore settings on top of Mbed TLS's verdict (docs/reference/chosen-behaviour.md "TLS") ----------


def open_with(case: Case, *settings: tuple[str, int]) -> tuple[bool, SimulatedNetwork]:
    harness = CoreHarness()
    network = SimulatedNetwork(harness, context=server_context(case))
    harness.files.write("cacert.pem", b"".join(a.public_bytes(serialization.Encoding.PEM) for a in case.anchors))
    clock = NOW.strftime("%y/%m/%d,%H:%M:%S") + "+00"
    lines = ["AT+QIACT=1", 'AT+QSSLCFG="secllevel",1,1', 'AT+QSSLCFG="ignorelocaltime",1,0', f'AT+CCLK="{clock}"']
    lines += [f'AT+QSSLCFG="{name}",1,{value}' for name, value in settings]
    for line in lines:
        assert harness.command(line).endswith(OK_END), line
    out = harness.command(f'AT+QSSLOPEN=1,1,0,"{case.address}",4433,0') + network.run()
    assert re.search(rb"\+QSSLOPEN: 0,(0|566)\r\n", out), out
    return b"+QSSLOPEN: 0,0\r\n" in out, network


CASE = {case.name: case for case in CASES}


def test_ignorelocaltime_forgives_validity_at_every_depth():
    for name in ("expired leaf", "leaf not yet valid", "expired intermediate", "expired root anchor"):
        assert open_with(CASE[name])[0] is False
        assert open_with(CASE[name], ("ignorelocaltime", 1))[0] is True, name


def test_ignoremulticertchainverify_forgives_only_issuers_above_the_server_certificate():
    for name in ("unrelated root", "root sent, not trusted", "two intermediates shuffled"):
        assert open_with(CASE[name], ("ignoremulticertchainverify", 1))[0] is True, name
    for name in ("missing intermediate", "self-signed leaf, not trusted", "1024-bit RSA leaf",
                 "CN only, wrong name", "expired intermediate", "bad signature on the leaf"):
        assert open_with(CASE[name], ("ignoremulticertchainverify", 1))[0] is False, name


def test_ignoreinvalidcertsign_forgives_a_bad_signature_and_nothing_else():
    for name in ("bad signature on the leaf", "bad signature on the intermediate"):
        assert open_with(CASE[name])[0] is False
        assert open_with(CASE[name], ("ignoreinvalidcertsign", 1))[0] is True, name
    for name in ("missing intermediate", "self-signed leaf, not trusted", "SHA-1 signed leaf"):
        assert open_with(CASE[name], ("ignoreinvalidcertsign", 1))[0] is False, name


@pytest.mark.parametrize("name,alert", [("unrelated root", "unknown ca"), ("expired leaf", "certificate expired"),
                                        ("CN only, wrong name", "bad certificate"),
                                        ("1024-bit RSA leaf", "unsupported certificate")])
def test_the_server_hears_mbedtls_alert(name, alert):
    accepted, network = open_with(CASE[name])
    assert not accepted
    assert alert in network.server().failed.replace("_", " ").lower()
