# Sourced by scripts/run and scripts/test: a virtual environment in the checkout with the project
# installed. PYTHON=/path/to/python3.13 picks the interpreter; each interpreter other than the
# default python3 gets its own environment, .venv-<version> (e.g. .venv-3.13), so several can be
# tested side by side; the default's is .venv. $venv names the one in use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extra="${1:-}"
python="${PYTHON:-python3}"
venv=.venv
if [ -n "${PYTHON:-}" ]; then
    command -v "$python" >/dev/null || { echo "PYTHON=$python: no such interpreter" >&2; exit 2; }
    venv=".venv-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
fi
if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || { echo "no $python to make $venv with (set PYTHON)" >&2; exit 2; }
    "$python" -m venv "$venv"
fi
stamp="$venv/.installed${extra:+-$extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".${extra:+[$extra]}"
    # python-mbedtls (the Mbed TLS engine: the static-ECDH suites) has no wheel past Python 3.12:
    # build it against Debian's Mbed TLS 2.28 headers, installing them first as root with apt-get.
    if ! "$venv/bin/python" -c 'import mbedtls.tls' 2>/dev/null; then
        if [ ! -f /usr/include/mbedtls/platform_util.h ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing libmbedtls-dev to build python-mbedtls (apt-get)" >&2
            { timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 \
                apt-get install -y -qq --no-install-recommends libmbedtls-dev; } >/dev/null 2>&1 || true
        fi
        echo "building python-mbedtls against the system's Mbed TLS (a minute or two)" >&2
        if ! "$venv/bin/python" -m pip install --quiet -e ".[mbedtls]" >"$venv/mbedtls-build.log" 2>&1; then
            echo "python-mbedtls could not be built (see $venv/mbedtls-build.log): the static-ECDH" \
                 "suites will fail with 566, and the tests that need Mbed TLS as a reference fail in CI" >&2
        fi
    fi
    touch "$stamp"
fi
# The checkout's sources compiled to bytecode now, not by every `ecemu run` (where
# PYTHONDONTWRITEBYTECODE is set or the checkout is read-only, compiling was a third of its start-up). An editable install reads the sources from here; pip compiled what it installed itself.
# Quick when nothing changed: only a source newer than its .pyc is compiled again.
"$venv/bin/python" -m compileall -q emulator >/dev/null
