"""What a modem loads before a host needs it: the TLS engines, HTTP/1.1 and libslirp wait for the
first connection, request or data call that uses them (docs/reference/cli.md "Start-up"), so that
`ecemu run` is ready sooner. A fresh interpreter boots a modem, a host asks it AT, and the
modules the interpreter then holds are listed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Loaded only by the feature that needs it; the names are the third-party packages' own and
# the emulator's modules that import them.
LOADED_WHEN_USED = {
    "cryptography": "certificates and keys (TLS)",
    "OpenSSL": "pyOpenSSL, the OpenSSL engine",
    "tlslite": "tlslite-ng, the legacy engine",
    "mbedtls": "python-mbedtls, the static-ECDH engine",
    "h11": "HTTP/1.1 (AT+QHTTPGET ...)",
    "ecemu.core.tls_openssl": "the OpenSSL engine",
    "ecemu.core.tls_verify": "the certificate checks",
    "ecemu.shell.slirp": "libslirp (ATD*99# data calls)",
}

BOOT_AND_ASK = textwrap.dedent("""
    import json, os, select, sys
    import ecemu.cli  # what `ecemu run` imports first
    from ecemu.api import Emulator  # and what it imports to serve (the runner, every command family)

    with Emulator() as modem:
        modem.wait_for_boot()
        fd = os.open(modem.port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"AT\\r")
            answer = b""
            while not answer.endswith(b"OK\\r\\n") and select.select([fd], [], [], 10)[0]:
                answer += os.read(fd, 256)
        finally:
            os.close(fd)
        print(json.dumps({"answer": answer.decode(), "modules": sorted(sys.modules)}))
""")


def test_a_booted_modem_answering_at_has_loaded_no_tls_engine_http_or_slirp():
    done = subprocess.run([sys.executable, "-c", BOOT_AND_ASK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["answer"].endswith("OK\r\n")  # the modem is up and answering
    early = sorted(name for name in seen["modules"]
                   if any(name == wanted or name.startswith(wanted + ".") for wanted in LOADED_WHEN_USED))
    assert early == [], f"loaded before any host used them: {early}"
