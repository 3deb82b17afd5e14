#!/bin/sh
# Runs the server locally the way CodeCrafters does: .codecrafters/compile.sh first when the
# install is missing (no .venv, or pyproject.toml changed since compile.sh last ran; its output
# goes to stderr), then .codecrafters/run.sh with the arguments (e.g. --directory /tmp/files/).
set -e
here=$(cd "$(dirname "$0")" && pwd)
stamp="$here/.venv/.codecrafters-compiled"
if [ ! -x "$here/.venv/bin/python" ] || [ ! -f "$stamp" ] ||
    [ "$(cat "$stamp")" != "$(cksum <"$here/pyproject.toml")" ]; then
    echo "your_program.sh: setting up .venv with .codecrafters/compile.sh" >&2
    "$here/.codecrafters/compile.sh"
fi
exec "$here/.codecrafters/run.sh" "$@"
