#!/bin/sh
# The whole test suite: creates or updates .venv, installs the package with its test extra,
# then runs ruff, mypy --strict and pytest.  Extra arguments go to pytest.
set -e
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
venv="$here/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
echo "== ruff"
"$venv/bin/ruff" check trio_http tests bench
"$venv/bin/ruff" format --check trio_http tests bench
echo "== mypy --strict"
"$venv/bin/mypy"
echo "== pytest"
exec "$venv/bin/python" -m pytest "$@"
