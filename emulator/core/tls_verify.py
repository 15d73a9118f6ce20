"""The server's certificate checked as the module's TLS stack checks it: Mbed TLS 2.28 with its
default verification profile, at the module's clock, with the SSL note's ignore settings on top.

Every rule below is Mbed TLS's (``x509_crt_verify_chain`` and the profile
``mbedtls_x509_crt_profile_default`` of Mbed TLS 2.28, ``mbedtls_ssl_check_cert_usage``), unless
it says "chosen":

- every certificate in the CA file is a trust anchor, whatever its depth: a CA file holding only
  the intermediate that issued the server's certificate verifies;
- a parent is looked for first among the trust anchors (the signature must check), then among the
  certificates the server sent *after* the child, in the order sent; so a chain sent out of order
  can fail where a path exists;
- a parent needs the CA bit (except a version 1 trust anchor), keyCertSign when it has a key
  usage extension, and room in its path length; a parent valid at the clock is preferred;
- certificates are signed with SHA-224/256/384/512 only (the trust anchor's own signature is
  never checked); RSA keys are 2048 bits or more; any named curve Mbed TLS knows;
- every certificate of the path, the trust anchor included, must be valid at the clock;
- a self-signed server certificate verifies when the very same certificate is in the CA file;
- the name: subjectAltName dNSName entries when the extension is there, else the subject's CN;
  ``*.`` matches exactly one label. An IP address is not checked at all (chosen: Mbed TLS 2.x
  cannot match an address, and the SSL note's own examples verify servers opened by address);
- the server certificate's key usage must allow the negotiated key exchange, and its extended key
  usage, when present, must include serverAuth.

On top, the settings of SSL note 2.2.1 forgive (chosen, from their names): ``ignorelocaltime`` 1
every validity problem; ``ignoremulticertchainverify`` 1 an untrusted issuer above the server's
certificate (the server's certificate itself must still be issued by a certificate in the CA file
or one the server sent); ``ignoreinvalidcertsign`` 1 a signature that does not check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

# Mbed TLS's flags (MBEDTLS_X509_BADCERT_*), by name.
EXPIRED, FUTURE, NOT_TRUSTED, CN_MISMATCH = "expired", "not yet valid", "not trusted", "name mismatch"
BAD_MD, BAD_KEY, BAD_PK = "weak signature hash", "weak key", "unsupported key"
KEY_USAGE, EXT_KEY_USAGE = "key usage", "extended key usage"
BAD_SIGNATURE = "bad signature"  # Mbed TLS reports it as NOT_TRUSTED; kept apart for the ignore

ALLOWED_HASHES = (hashes.SHA224, hashes.SHA256, hashes.SHA384, hashes.SHA512)
RSA_MIN_BITS = 2048
MAX_INTERMEDIATES = 8  # MBEDTLS_X509_MAX_INTERMEDIATE_CA
KNOWN_CURVES = frozenset({"secp192r1", "secp224r1", "secp256r1", "secp384r1", "secp521r1", "secp192k1",
                          "secp224k1", "secp256k1", "brainpoolP256r1", "brainpoolP384r1",
                          "brainpoolP512r1"})

_RSA_SIGNATURES = "1.2.840.113549.1.1."  # PKCS #1: PKCS1 v1.5 and PSS signatures
_ECDSA_SIGNATURES = "1.2.840.10045.4."  # ecdsa-with-*

# TLS alerts Mbed TLS sends for a verification failure, most important flag first.
ALERT_BAD_CERTIFICATE, ALERT_UNSUPPORTED_CERTIFICATE = 42, 43
ALERT_CERTIFICATE_EXPIRED, ALERT_CERTIFICATE_UNKNOWN, ALERT_UNKNOWN_CA = 45, 46, 48
_ALERT_ORDER = ((CN_MISMATCH, ALERT_BAD_CERTIFICATE), (KEY_USAGE, ALERT_UNSUPPORTED_CERTIFICATE),
                (EXT_KEY_USAGE, ALERT_UNSUPPORTED_CERTIFICATE), (BAD_PK, ALERT_UNSUPPORTED_CERTIFICATE),
                (BAD_KEY, ALERT_UNSUPPORTED_CERTIFICATE), (EXPIRED, ALERT_CERTIFICATE_EXPIRED),
                (NOT_TRUSTED, ALERT_UNKNOWN_CA), (BAD_SIGNATURE, ALERT_UNKNOWN_CA))

# Key exchange -> the key usage bit the server's certificate needs (mbedtls_ssl_check_cert_usage).
KEY_USAGE_FOR = {"RSA": "key_encipherment", "ECDHE_RSA": "digital_signature",
                 "ECDHE_ECDSA": "digital_signature", "ECDH_RSA": "key_agreement",
                 "ECDH_ECDSA": "key_agreement"}


@dataclass(frozen=True)
class VerifyPolicy:
    """How one connection checks its server (SSL note 1.5, 2.2.1 secllevel and the ignore settings)."""

    server_name: str | None  # None: an IP address, no name to check
    at: datetime  # the module clock (AT+CCLK), UTC and aware
    check_time: bool = True
    forgive_chain: bool = False
    forgive_signature: bool = False


@dataclass
class Verdict:
    ok: bool
    problems: list[str] = field(default_factory=list)  # what failed, for the log
    forgiven: list[str] = field(default_factory=list)  # what an ignore setting let pass
    alert: int = ALERT_BAD_CERTIFICATE


def verify_server(chain_der: list[bytes], anchors: list[x509.Certificate], policy: VerifyPolicy,
                  key_exchange: str | None) -> Verdict:
    """The verdict on the certificates a server sent (``Certificate`` message, in its order)."""
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
        for cert in chain:
            cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        return Verdict(False, [f"the server's certificate cannot be read: {exc}"])
    if not chain:
        return Verdict(False, ["the server sent no certificate"])
    leaf = chain[0]
    leaf_flags: set[str] = set()
    if policy.server_name is not None and not _name_matches(leaf, policy.server_name):
        leaf_flags.add(CN_MISMATCH)
    leaf_flags |= _key_problems(leaf.public_key())
    path = _verify_path(chain, anchors, policy)
    path[0][1].update(leaf_flags)
    if key_exchange is not None:
        path[0][1].update(_usage_problems(leaf, key_exchange))

    verdict = Verdict(True)
    for depth, (cert, flags) in enumerate(path):
        for flag in sorted(flags):
            where = f"depth {depth} ({_common_name(cert)}): {flag}"
            if _forgiven(flag, depth, policy):
                verdict.forgiven.append(where)
            else:
                verdict.ok = False
                verdict.problems.append(where)
    if not verdict.ok:
        remaining = {flag for depth, (_, flags) in enumerate(path) for flag in flags
                     if not _forgiven(flag, depth, policy)}
        verdict.alert = next((alert for flag, alert in _ALERT_ORDER if flag in remaining),
                             ALERT_CERTIFICATE_UNKNOWN)
    return verdict


def _forgiven(flag: str, depth: int, policy: VerifyPolicy) -> bool:
    if flag in (EXPIRED, FUTURE):
        return not policy.check_time
    if flag == NOT_TRUSTED:
        return policy.forgive_chain and depth >= 1
    if flag == BAD_SIGNATURE:
        return policy.forgive_signature
    return False


def _verify_path(chain: list[x509.Certificate], anchors: list[x509.Certificate],
                 policy: VerifyPolicy) -> list[tuple[x509.Certificate, set[str]]]:
    """Mbed TLS's x509_crt_verify_chain: the path from the server's certificate up, each
    certificate with its flags."""
    path: list[tuple[x509.Certificate, set[str]]] = []
    child, child_position, child_is_trusted, self_issued = chain[0], 0, False, 0
    while True:
        flags: set[str] = set()
        path.append((child, flags))
        flags |= _time_problems(child, policy.at)
        if child_is_trusted:
            return path
        if not isinstance(child.signature_hash_algorithm, ALLOWED_HASHES):
            flags.add(BAD_MD)
        if len(path) == 1 and _locally_trusted(child, anchors):
            return path
        found = _find_parent(child, chain[child_position + 1:], anchors, len(path) - 1, self_issued, policy)
        if found is None:
            flags.add(NOT_TRUSTED)
            return path
        parent, parent_is_trusted, signature_good = found
        if len(path) != 1 and child.issuer == child.subject:
            self_issued += 1
        if not parent_is_trusted and len(path) > MAX_INTERMEDIATES:
            flags.add(NOT_TRUSTED)
            return path
        if not signature_good:
            flags.add(BAD_SIGNATURE)
        flags |= _key_problems(parent.public_key())
        if not parent_is_trusted:
            child_position = next(i for i, cert in enumerate(chain) if cert is parent)
        child, child_is_trusted = parent, parent_is_trusted


def _find_parent(child, sent_after, anchors, path_count, self_issued, policy):
    """Trust anchors first, then the certificates sent after the child (x509_crt_find_parent)."""
    for candidates, top in ((anchors, True), (sent_after, False)):
        fallback = None
        for parent in candidates:
            if not _may_issue(child, parent, top):
                continue
            max_path = _max_pathlen(parent)
            if max_path > 0 and max_path < 1 + path_count - self_issued:
                continue
            signature_good = _signature_checks(child, parent)
            if top and not (signature_good or policy.forgive_signature and _signed_by_kind(child, parent)):
                continue
            if _time_problems(parent, policy.at):
                fallback = fallback or (parent, top, signature_good)
                continue
            return parent, top, signature_good
        if fallback is not None:
            return fallback
    return None


def _may_issue(child: x509.Certificate, parent: x509.Certificate, top: bool) -> bool:
    if child.issuer != parent.subject:
        return False
    if top and parent.version is x509.Version.v1:
        return True
    try:
        if not parent.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return parent.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return True


def _max_pathlen(cert: x509.Certificate) -> int:
    """Mbed TLS's stored max_pathlen: 0 for no limit, else the constraint plus one."""
    try:
        length = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        return 0
    return 0 if length is None else length + 1


def _signature_checks(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if not _signed_by_kind(child, parent):
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _signed_by_kind(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """The parent's key is of the kind the child's signature needs (mbedtls_pk_can_do)."""
    algorithm = child.signature_algorithm_oid.dotted_string
    key = parent.public_key()
    return (algorithm.startswith(_ECDSA_SIGNATURES) and isinstance(key, ec.EllipticCurvePublicKey)
            or algorithm.startswith(_RSA_SIGNATURES) and isinstance(key, rsa.RSAPublicKey))


def _locally_trusted(cert: x509.Certificate, anchors: list[x509.Certificate]) -> bool:
    """A self-issued server certificate that is itself in the CA file."""
    return cert.issuer == cert.subject and any(cert == anchor for anchor in anchors)


def _time_problems(cert: x509.Certificate, at: datetime) -> set[str]:
    if at > cert.not_valid_after_utc:
        return {EXPIRED}
    if at < cert.not_valid_before_utc:
        return {FUTURE}
    return set()


def _key_problems(key) -> set[str]:
    if isinstance(key, rsa.RSAPublicKey):
        return set() if key.key_size >= RSA_MIN_BITS else {BAD_KEY}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return set() if key.curve.name in KNOWN_CURVES else {BAD_KEY}
    return {BAD_PK}


def _usage_problems(leaf: x509.Certificate, key_exchange: str) -> set[str]:
    problems = set()
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None:
        needed = KEY_USAGE_FOR.get(key_exchange)
        only = usage.key_agreement and (usage.encipher_only or usage.decipher_only)
        if needed is not None and not getattr(usage, needed) or only:
            problems.add(KEY_USAGE)
    try:
        purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        purposes = None
    if purposes is not None and not ({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
                                     & set(purposes)):
        problems.add(EXT_KEY_USAGE)
    return problems


def _name_matches(cert: x509.Certificate, server: str) -> bool:
    """x509_crt_verify_name: the SAN's entries when there is a SAN, else the subject's CNs."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [_san_text(entry) for entry in san]
    except x509.ExtensionNotFound:
        names = [attribute.value for attribute in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return any(_name_is(pattern, server) for pattern in names if isinstance(pattern, str))


def _san_text(entry: x509.GeneralName):
    # Mbed TLS compares each entry's raw bytes with the name; only dNSName entries can be equal
    # to a host name's text (an iPAddress entry holds 4 or 16 binary bytes).
    return entry.value if isinstance(entry, x509.DNSName) else None


def _name_is(pattern: str, server: str) -> bool:
    """x509_crt_check_cn: equal ignoring ASCII case, or ``*.rest`` against ``label.rest``."""
    if pattern.lower() == server.lower():
        return True
    if len(pattern) < 3 or not pattern.startswith("*."):
        return False
    dot = server.find(".")
    return dot > 0 and server[dot:].lower() == pattern[1:].lower()


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()
