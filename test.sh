#!/bin/sh
# The whole test suite: creates or updates .venv, installs the package with its test extra
# (and nginx, Chromium and Node.js, which the real-client tests need, when they are missing and
# we may install them, and tus-js-client from tests/node/package-lock.json), then runs ruff,
# mypy --strict and pytest.  Extra arguments go to pytest.
set -e
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
venv="$here/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
# The real-client tests drive nginx and headless Chromium; install them when missing.
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing$missing (for tests/test_real_clients.py, tests/test_browser.py," \
            "tests/test_tus_clients.py)"
        apt-get update -qq
        # shellcheck disable=SC2086 # one word per package
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "warning: missing$missing; the real-client tests will fail" >&2
    fi
fi
# tests/test_tus_clients.py runs tus-js-client under Node: the locked version, once.
if [ ! -d tests/node/node_modules/tus-js-client ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "== npm ci (tests/node: tus-js-client)"
        npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
    else
        echo "warning: npm missing; tests/test_tus_clients.py will fail" >&2
    fi
fi
echo "== ruff"
"$venv/bin/ruff" check trio_http tests bench docs
"$venv/bin/ruff" format --check trio_http tests bench docs
echo "== mypy --strict"
"$venv/bin/mypy"
echo "== pytest"
exec "$venv/bin/python" -m pytest "$@"
