"""Dependencies point one way: pure modules load no trio; lower layers import no higher ones."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_http"

#: Modules that do no I/O: importing them must not load trio.
PURE = [
    "trio_http.protocol.rules",
    "trio_http.protocol.h11_events",
    "trio_http.headers",
    "trio_http.errors",
    "trio_http.protocol.httpdate",
    "trio_http.protocol.conditional",
    "trio_http.protocol.ranges",
    "trio_http.protocol.accept_encoding",
    "trio_http.protocol.digest",
    "trio_http.protocol.tus",
    "trio_http.files.listing",
    "trio_http.files.display",
    "trio_http.asgi.proxy",
    "trio_http.asgi.types",
    "trio_http.asgi.scope",
    "trio_http.websocket.handshake",
    "trio_http.websocket.settings",
]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_trio(module: str) -> None:
    """In a fresh interpreter, so nothing imported by other tests hides an import."""
    code = f"import sys, {module}; print('trio' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert output.strip() == "False", f"{module} loads trio"


def imports_of(path: Path) -> set[str]:
    """The trio_http subpackages and modules *path* imports (relative imports resolved)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("trio_http")}


#: Layer -> packages it must not import (the layers above it).
FORBIDDEN = {
    "protocol": ("trio_http.transport", "trio_http.http11", "trio_http.server", "trio_http.cli"),
    "transport": ("trio_http.http11", "trio_http.server", "trio_http.cli"),
    "http11": ("trio_http.server", "trio_http.cli", "trio_http.files", "trio_http.routing"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer: str) -> None:
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for name in imports_of(path):
            assert not name.startswith(FORBIDDEN[layer]), f"{path.name} imports {name}"


def test_no_module_outgrows_a_reading() -> None:
    """About 400 lines: past that a newcomer cannot hold a module in mind (one module, one job)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines <= 420, f"{path.relative_to(PACKAGE)} has {lines} lines"
