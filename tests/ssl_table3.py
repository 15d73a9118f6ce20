"""The SSL note's table 3 (its cipher suites), as the tests' own independent table."""

from __future__ import annotations

# SSL note table 3, written out rather than read from the emulator: the code, the suite's
# IANA name (the note writes 0XC030 as MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), OpenSSL's
# name for it where OpenSSL is the server here, the lowest <SSL_version> it is valid at, and the
# engine that speaks it (docs/reference/tls.md "Versions and suites", REFERENCE.md "TLS engines").
# The lowest version: a suite with a SHA-256/384 MAC or GCM exists from TLS 1.2 (RFC 5246, RFC
# 5289), an elliptic-curve suite from TLS 1.0 (RFC 4492), the rest from SSL 3.0.
SSL3, TLS10, TLS12 = 0, 1, 3
TABLE_3: dict[int, tuple[str, str | None, int, str | None]] = {
    0x0035: ("TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA", SSL3, "openssl"),
    0x002F: ("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", SSL3, "openssl"),
    0x0005: ("TLS_RSA_WITH_RC4_128_SHA", None, SSL3, "tlslite"),
    0x0004: ("TLS_RSA_WITH_RC4_128_MD5", None, SSL3, "tlslite"),
    0x000A: ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", None, SSL3, "tlslite"),
    0x003D: ("TLS_RSA_WITH_AES_256_CBC_SHA256", "AES256-SHA256", TLS12, "openssl"),
    0xC002: ("TLS_ECDH_ECDSA_WITH_RC4_128_SHA", None, TLS10, None),
    0xC003: ("TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA", None, TLS10, None),
    0xC004: ("TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA", None, TLS10, "mbedtls"),
    0xC005: ("TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA", None, TLS10, "mbedtls"),
    0xC007: ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", None, TLS10, "tlslite"),
    0xC008: ("TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", None, TLS10, "tlslite"),
    0xC009: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA", TLS10, "openssl"),
    0xC00A: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA", TLS10, "openssl"),
    0xC011: ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", None, TLS10, "tlslite"),
    0xC012: ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", None, TLS10, "tlslite"),
    0xC013: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA", TLS10, "openssl"),
    0xC014: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA", TLS10, "openssl"),
    0xC00C: ("TLS_ECDH_RSA_WITH_RC4_128_SHA", None, TLS10, None),
    0xC00D: ("TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA", None, TLS10, None),
    0xC00E: ("TLS_ECDH_RSA_WITH_AES_128_CBC_SHA", None, TLS10, "mbedtls"),
    0xC00F: ("TLS_ECDH_RSA_WITH_AES_256_CBC_SHA", None, TLS10, "mbedtls"),
    0xC023: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256", TLS12, "openssl"),
    0xC024: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ECDHE-ECDSA-AES256-SHA384", TLS12, "openssl"),
    0xC025: ("TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256", None, TLS12, "mbedtls"),
    0xC026: ("TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384", None, TLS12, "mbedtls"),
    0xC027: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256", TLS12, "openssl"),
    0xC028: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384", TLS12, "openssl"),
    0xC029: ("TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256", None, TLS12, "mbedtls"),
    0xC02A: ("TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384", None, TLS12, "mbedtls"),
    0xC02F: ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", TLS12, "openssl"),
    0xC030: ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384", TLS12, "openssl"),
}
