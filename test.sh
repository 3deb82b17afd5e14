#!/bin/sh
# The whole test suite: creates or updates .venv, installs the package with its test extra
# (and nginx, which the proxy tests need, when it is missing and we may install it), then
# runs ruff, mypy --strict and pytest.  Extra arguments go to pytest.
set -e
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
venv="$here/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing nginx (for tests/test_real_clients.py)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
    else
        echo "warning: nginx is missing; tests/test_real_clients.py will fail" >&2
    fi
fi
echo "== ruff"
"$venv/bin/ruff" check trio_http tests bench docs
"$venv/bin/ruff" format --check trio_http tests bench docs
echo "== mypy --strict"
"$venv/bin/mypy"
echo "== pytest"
exec "$venv/bin/python" -m pytest "$@"
