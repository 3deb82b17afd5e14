#!/bin/sh
# Installs what the server needs, once: .venv at the repository root with trio-http and its
# dependencies (trio, h11) installed from pyproject.toml, then byte-compiles trio_http/ so the
# first start does not pay for it.  CodeCrafters runs this before .codecrafters/run.sh;
# ./your_program.sh runs it when the install is missing.  An existing .venv that already has
# the dependencies (./test.sh makes one) is kept as it is.  All output goes to stderr.
set -e
exec >&2
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
py="$venv/bin/python"
[ -x "$py" ] || "${PYTHON:-python3}" -m venv "$venv"
# Exits non-zero when a dependency listed in pyproject.toml is not installed in .venv.
check='import importlib.metadata as m, re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
for dep in deps:
    m.distribution(re.split(r"[^A-Za-z0-9._-]", dep, maxsplit=1)[0])'
if ! "$py" -c "$check" "$root/pyproject.toml" 2>/dev/null; then
    echo "compile.sh: installing trio-http and its dependencies into $venv"
    # A venv made by uv has no pip of its own.
    "$py" -m pip --version >/dev/null 2>&1 || "$py" -m ensurepip --default-pip >/dev/null
    "$py" -m pip install --quiet --disable-pip-version-check -e "$root"
fi
"$py" -m compileall -q "$root/trio_http"
# ./your_program.sh compares this stamp with pyproject.toml to skip this script next time.
cksum <"$root/pyproject.toml" >"$venv/.codecrafters-compiled.$$"
mv "$venv/.codecrafters-compiled.$$" "$venv/.codecrafters-compiled"
