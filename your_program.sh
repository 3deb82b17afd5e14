#!/bin/sh
# The CodeCrafters entry point: the server on port 4221 in challenge mode (no Date or Server
# header, no access log), arguments passed through (e.g. --directory /tmp/files/).
# Creates .venv and installs the package on first use.
set -e
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
if [ ! -x "$venv/bin/trio-http" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$here" >&2
fi
exec "$venv/bin/trio-http" serve --host 127.0.0.1 --port 4221 \
    --no-date-header --no-server-header --no-access-log "$@"
