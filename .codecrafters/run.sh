#!/bin/sh
# Starts the server in CodeCrafters challenge mode: 127.0.0.1:4221, no Date or Server header, no
# access log; arguments are passed through (e.g. --directory /tmp/files/; a later --port wins).
# No install step here: .codecrafters/compile.sh must have run.  trio_http is imported from this
# checkout, whatever is installed in .venv.
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
if [ ! -x "$py" ]; then
    echo "run.sh: $py is missing; run .codecrafters/compile.sh first" >&2
    exit 1
fi
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
PYTHONSAFEPATH=1 # the working directory is not on sys.path
export PYTHONPATH PYTHONSAFEPATH
exec "$py" -m trio_http serve --host 127.0.0.1 --port 4221 \
    --no-date-header --no-server-header --no-access-log "$@"
