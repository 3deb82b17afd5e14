"""The documentation stays true to the code.

* The ``--help`` blocks in docs/cli.md are the real output of ``trio-http serve --help`` and
  ``trio-http run --help``, and every long option in them is also described outside the blocks.
* Code blocks in docs/*.md marked ``<!-- include: PATH -->`` equal the file at PATH.
* The tests in docs/examples/test_*.py run here, in-process (imported below).
* Every relative link in README.md, CHANGELOG.md and docs/*.md leads to an existing file,
  and every ``#anchor`` to a heading of the target.

``python tests/test_docs.py`` rewrites the --help blocks and the included code blocks from the
real output and files.  A new option still needs a line in the tables of docs/cli.md.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXAMPLES = DOCS / "examples"
CLI_MD = DOCS / "cli.md"
MARKDOWN = sorted([REPO / "README.md", REPO / "CHANGELOG.md", *DOCS.glob("*.md")])

#: The commands whose --help output docs/cli.md shows, each between its own markers.
COMMANDS = ["serve", "run"]


def help_markers(command: str) -> tuple[str, str]:
    return f"<!-- BEGIN {command} --help -->", f"<!-- END {command} --help -->"


def help_block(command: str) -> re.Pattern[str]:
    begin, end = help_markers(command)
    return re.compile(re.escape(begin) + r"\n```text\n(.*?)```\n" + re.escape(end), re.S)


INCLUDE_MARKER = re.compile(r"^<!-- include: (\S+) -->$", re.M)
FENCED = re.compile(r"```[\w-]*\n(.*?)^```$", re.S | re.M)
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)


@functools.cache
def real_help(command: str) -> str:
    """``trio-http COMMAND --help`` as printed on a 100-column terminal, without colour."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "PYTHON_COLORS": "0"}
    env.pop("FORWARDED_ALLOW_IPS", None)
    result = subprocess.run(
        [sys.executable, "-m", "trio_http", command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout


def normalise(text: str) -> str:
    """Trailing whitespace on each line and blank lines at either end do not count."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def documented_help(text: str, command: str) -> str:
    match = help_block(command).search(text)
    begin, _ = help_markers(command)
    assert match is not None, f"docs/cli.md needs a ```text block between {begin!r} and end"
    return match.group(1)


# ------------------------------------------------------------------ docs/cli.md


@pytest.mark.parametrize("command", COMMANDS)
def test_help_block_is_the_real_help(command: str) -> None:
    documented = documented_help(CLI_MD.read_text(encoding="utf-8"), command)
    assert normalise(documented) == normalise(real_help(command)), (
        f"docs/cli.md is out of date: run 'python tests/test_docs.py' to refresh the"
        f" {command} --help block"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_described_outside_the_help_block(command: str) -> None:
    prose = CLI_MD.read_text(encoding="utf-8")
    for each in COMMANDS:
        prose = help_block(each).sub("", prose)
    options = sorted(set(LONG_OPTION.findall(real_help(command))))
    assert "--port" in options, options  # the pattern found the options at all
    missing = [
        option
        for option in options
        if not re.search(r"(?<![\w-])" + re.escape(option) + r"(?![\w-])", prose)
    ]
    assert not missing, f"options in {command} --help but not described in docs/cli.md: {missing}"


# ------------------------------------------------------------------ included examples


def included_blocks() -> list[tuple[Path, str, str]]:
    """``(markdown file, included path, block content)`` for every include marker."""
    blocks = []
    for markdown in MARKDOWN:
        if not markdown.is_file():
            continue  # test_relative_links_resolve reports it
        text = markdown.read_text(encoding="utf-8")
        for marker in INCLUDE_MARKER.finditer(text):
            block = FENCED.match(text, marker.end() + 1)
            assert block is not None, f"{markdown.name}: no code block right after {marker[0]}"
            blocks.append((markdown, marker.group(1), block.group(1)))
    return blocks


def test_library_guide_includes_both_examples() -> None:
    included = {path for markdown, path, _ in included_blocks() if markdown.name == "library.md"}
    assert {"docs/examples/embed.py", "docs/examples/test_embed.py"} <= included


@pytest.mark.parametrize(
    ("markdown", "path", "content"),
    [pytest.param(*block, id=f"{block[0].name}:{block[1]}") for block in included_blocks()],
)
def test_included_block_equals_the_file(markdown: Path, path: str, content: str) -> None:
    source = REPO / path
    assert source.is_file(), f"{markdown.name} includes missing file {path}"
    assert content == source.read_text(encoding="utf-8"), (
        f"the block after '<!-- include: {path} -->' in {markdown.name} differs from {path}"
    )


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda path: path.name)
def test_python_blocks_compile(markdown: Path) -> None:
    """Every ```python block is valid Python (the included ones are also run, as files)."""
    text = markdown.read_text(encoding="utf-8") if markdown.is_file() else ""
    for number, block in enumerate(re.findall(r"^```python\n(.*?)^```$", text, re.S | re.M)):
        compile(block, f"{markdown.name}, python block {number + 1}", "exec")


def test_embed_example_imports_without_side_effects() -> None:
    module = import_example("embed")
    assert callable(module.main)


# ------------------------------------------------------------------ links


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`|\*\*|__|\[|\]\([^)]*\)", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    text = FENCE.sub("", markdown.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    result.update(re.findall(r'<a (?:name|id)="([^"]+)"', text))
    return result


def relative_links(markdown: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", markdown.read_text(encoding="utf-8")))
    targets = LINK.findall(text) + REFERENCE.findall(text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I)]


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda path: path.name)
def test_relative_links_resolve(markdown: Path) -> None:
    assert markdown.is_file(), markdown
    broken = []
    for target in relative_links(markdown):
        path_part, _, fragment = target.partition("#")
        destination = (markdown.parent / unquote(path_part)).resolve() if path_part else markdown
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{markdown.relative_to(REPO)}: broken links: {broken}"


def test_docs_map_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "index.md":
            assert f"({page.name})" in index or f"({page.name}#" in index, page.name


# ------------------------------------------------------------------ the example's tests


def import_example(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


def _example_tests() -> dict[str, Callable[..., object]]:
    """The test functions of every docs/examples/test_*.py, renamed ``test_<module>__<name>``."""
    tests = {}
    for path in sorted(EXAMPLES.glob("test_*.py")):
        module = import_example(path.stem)
        for name, test in vars(module).items():
            if name.startswith("test_") and callable(test):
                tests[f"{path.stem}__{name.removeprefix('test_')}"] = test
    return tests


# pytest collects module-level test functions: these are the examples' own tests, so they run
# with this file, in-process (pytest-trio's trio_mode runs the async ones under Trio).  Their
# parameters must be pytest's or pytest-trio's fixtures (tmp_path, autojump_clock, ...).
globals().update(_example_tests())


# ------------------------------------------------------------------ refreshing the docs


def refresh_help_block(command: str) -> bool:
    """Rewrite COMMAND's --help block in docs/cli.md from the real output; whether it changed."""
    text = CLI_MD.read_text(encoding="utf-8")
    documented_help(text, command)  # fails clearly if the markers are missing
    begin, end = help_markers(command)
    block = f"{begin}\n```text\n{normalise(real_help(command))}\n```\n{end}"
    updated = help_block(command).sub(lambda _: block, text)
    if updated != text:
        CLI_MD.write_text(updated, encoding="utf-8")
    return updated != text


def refresh_includes(markdown: Path) -> bool:
    """Copy each included file into the code block after its marker; returns whether any changed."""
    text = markdown.read_text(encoding="utf-8")
    pieces, position = [], 0
    for marker in INCLUDE_MARKER.finditer(text):
        block = FENCED.match(text, marker.end() + 1)
        assert block is not None, f"{markdown.name}: no code block right after {marker[0]}"
        pieces += [text[position : block.start(1)], (REPO / marker[1]).read_text("utf-8")]
        position = block.end(1)
    updated = "".join([*pieces, text[position:]])
    if updated != text:
        markdown.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    for name in COMMANDS:
        state = "updated" if refresh_help_block(name) else "current"
        print(f"docs/cli.md {name} --help block:", state)
    for page in MARKDOWN:
        if page.is_file() and refresh_includes(page):
            print(f"{page.relative_to(REPO)}: included files updated")
