"""The files CodeCrafters' test runner reads: ``codecrafters.yml``, ``.codecrafters/compile.sh``
and ``.codecrafters/run.sh``, and ``./your_program.sh`` that runs them locally.

The servers here run from the ``.venv`` that ``./test.sh`` made; nothing is installed (a
``.venv`` that lacks trio-http's dependencies makes ``compile.sh`` install them, which these
tests report as a failure instead of waiting for it).  Each server gets ``--port 0`` (the last
``--port`` wins) and is found through its ``listening on`` line, so port 4221 stays free.
The startup bound is a hang guard, the official tester's 10 s budget; the measured
time-to-listen is in docs/codecrafters.md.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
from blackbox import REPO, ServerProcess, group_alive, request, running_server

SCRIPTS = [".codecrafters/compile.sh", ".codecrafters/run.sh", "your_program.sh"]
#: The official tester gives a program this long to start listening.
LISTEN_BOUND = 10.0
#: ``compile.sh`` on an installed ``.venv`` only checks and byte-compiles.
COMPILE_BOUND = 60.0
VENV_PYTHON = REPO / ".venv" / "bin" / "python"

needs_venv = pytest.mark.skipif(
    not VENV_PYTHON.exists(), reason="needs the .venv that ./test.sh creates"
)


def yml_settings() -> dict[str, str]:
    """The top-level ``key: value`` lines of codecrafters.yml (all it holds)."""
    text = (REPO / "codecrafters.yml").read_text(encoding="utf-8")
    return dict(re.findall(r"^([a-z_]+):[ \t]*(\S+)[ \t]*$", text, re.M))


# ------------------------------------------------------------------ the files


def test_codecrafters_yml() -> None:
    settings = yml_settings()
    assert settings.get("debug") == "false", settings
    assert "language_pack" not in settings, "the key is buildpack (language_pack is the old name)"
    match = re.fullmatch(r"python-(\d+)\.(\d+)", settings.get("buildpack", ""))
    assert match is not None, settings
    with open(REPO / "pyproject.toml", "rb") as f:
        requires = tomllib.load(f)["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", requires)
    assert minimum is not None, requires
    assert (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2])), requires


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_executable_posix_sh(name: str) -> None:
    path = REPO / name
    assert path.is_file(), name
    assert path.stat().st_mode & stat.S_IXUSR, f"{name} is not executable"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#!/bin/sh", lines[0]
    assert lines[1].startswith("# "), "a comment saying what the script does comes first"
    assert "set -e" in lines


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_committed_executable(name: str) -> None:
    """A clone (which is what CodeCrafters runs) gets the executable bit only from git."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "--stage", "--", name],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert listed.startswith("100755 "), f"{name} is not committed as executable: {listed!r}"


def test_run_sh_installs_nothing() -> None:
    """The install belongs in compile.sh; run.sh only starts the server."""
    text = (REPO / ".codecrafters" / "run.sh").read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for word in ("pip", "-m venv", "ensurepip", "uv "):
        assert word not in code, word


def test_run_sh_without_venv_says_so(tmp_path: Path) -> None:
    """In a tree where compile.sh never ran, run.sh stops with a message on stderr."""
    (tmp_path / ".codecrafters").mkdir()
    script = tmp_path / ".codecrafters" / "run.sh"
    shutil.copy2(REPO / ".codecrafters" / "run.sh", script)
    result = subprocess.run(
        [str(script)], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "compile.sh" in result.stderr


# ------------------------------------------------------------------ running them


@needs_venv
def test_compile_sh_keeps_an_installed_venv() -> None:
    """On the .venv that ./test.sh made, compile.sh installs nothing and prints to stderr only."""
    result = subprocess.run(
        [str(REPO / ".codecrafters" / "compile.sh")],
        capture_output=True,
        text=True,
        timeout=COMPILE_BOUND,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "installing" not in result.stderr, result.stderr
    stamp = (REPO / ".venv" / ".codecrafters-compiled").read_text(encoding="utf-8").strip()
    with open(REPO / "pyproject.toml", "rb") as f:
        crc = subprocess.run(["cksum"], stdin=f, capture_output=True, text=True, timeout=30)
    assert stamp == crc.stdout.strip()


def check_challenge_server(server: ServerProcess) -> None:
    """GET / is 200 without Date or Server; SIGTERM stops the whole group cleanly."""
    assert server.port not in (0, 4221)
    root = request(server.port, "GET", "/")
    assert root.status_line == "HTTP/1.1 200 OK"
    assert not {"date", "server"} & root.header_names(), root.headers
    status = server.stop(timeout=5.0)
    assert status == 0, server.stderr_text()
    assert not group_alive(server.pid), "processes left behind in the group"
    assert server.stdout_text() == "", "nothing on stdout in challenge mode"
    assert "Traceback" not in server.stderr_text()


@needs_venv
def test_run_sh_listens_and_stops() -> None:
    # From another directory, as a harness may start it.
    with running_server(
        argv=[str(REPO / ".codecrafters" / "run.sh"), "--port", "0"],
        cwd=Path(os.sep),
        startup_timeout=LISTEN_BOUND,
        expect_exit=0,
    ) as server:
        check_challenge_server(server)


@needs_venv
def test_your_program_sh_listens_and_stops(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"through your_program.sh")
    with running_server(
        argv=["./your_program.sh", "--directory", f"{tmp_path}/", "--port", "0"],
        cwd=REPO,
        startup_timeout=LISTEN_BOUND,
        expect_exit=0,
    ) as server:
        assert "installing" not in server.stderr_text(), "your_program.sh reinstalled"
        file = request(server.port, "GET", "/files/f.bin")
        assert file.status_line == "HTTP/1.1 200 OK"
        assert file.body == b"through your_program.sh"
        check_challenge_server(server)
