"""Access rules (``--auth``): parsing, decisions, HTTP Basic, hashes, ``hash-password``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import select
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_http.errors import HTTPError
from trio_http.files import access, passwords
from trio_http.files.access import (
    AUTHENTICATE,
    AccessRules,
    Permission,
    Visitor,
    hash_password,
    normalize_path,
)

R, W, N = Permission.READ, Permission.WRITE, Permission.NONE
CLIENT = "192.0.2.7"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def fast_hash(password: str) -> str:
    """A real scrypt hash, cheap enough for tests."""
    return hash_password(password, n=2**10, r=8, p=1)


# ---------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("a", "/a"),
        ("a/b/", "/a/b"),
        ("/a//b///", "/a/b"),
        ("//a", "/a"),
        ("a b/ü", "/a b/ü"),
    ],
)
def test_normalize_path(given: str, expected: str) -> None:
    assert normalize_path(given) == expected


@pytest.mark.parametrize("bad", ["/public/../secret", "..", "a/./b", "/a/..", "a\x00b"])
def test_normalize_path_refuses_dot_segments(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_path(bad)


def test_dot_dot_cannot_borrow_a_more_permissive_prefix() -> None:
    rules = AccessRules.parse(["@/public:rw"])
    assert rules.permission(None, "/public/x") is W
    assert rules.permission(None, "/public/../secret") is N
    assert rules.permission(None, "public/../../etc") is N
    assert rules.permission(None, "/secret") is N


async def test_check_answers_400_for_dot_dot() -> None:
    rules = AccessRules.parse(["@/:rw"])
    with pytest.raises(HTTPError) as caught:
        await rules.check(None, "public/../secret", write=False, client=CLIENT)
    assert caught.value.status == 400


# ---------------------------------------------------------------------------- parsing


def test_parse_user_and_anonymous_rules() -> None:
    rules = AccessRules.parse(["me:secret@/:rw,/archive", "@/public"])
    assert rules and rules.enabled
    assert rules.users == {"me"}
    assert rules.permission("me", "/docs/a.txt") is W
    assert rules.permission("me", "/archive/old") is R
    assert rules.permission(None, "/public/x") is R
    assert rules.permission(None, "/docs") is N


def test_paths_are_percent_decoded() -> None:
    rules = AccessRules.parse(["@/a%40b%2Cc:rw,/x%3Ay,/50%25,/caf%C3%A9"])
    assert rules.permission(None, "/a@b,c/file") is W
    assert rules.permission(None, "/x:y") is R
    assert rules.permission(None, "/50%") is R
    assert rules.permission(None, "/café") is R


@pytest.mark.parametrize(
    "password", ["p@ss", "a:b:c", "$dollar", "x,/y:rw", "@/", "sp ace", "ünïcode"]
)
async def test_any_password_parses_after_the_first_colon_and_before_the_last_at(
    password: str,
) -> None:
    rules = AccessRules.parse([f"me:{password}@/home:rw"])
    assert rules.permission("me", "/home/f") is W
    assert rules.permission("me", "/other") is N
    assert await rules.authenticate(basic("me", password), CLIENT) == "me"


def test_a_user_in_several_rules_gets_all_their_paths() -> None:
    rules = AccessRules.parse(["me:pw@/a", "me:pw@/b:rw", "@/c", "@/d:rw"])
    assert [rules.permission("me", p) for p in ("/a", "/b", "/c", "/d", "/e")] == [R, W, R, W, N]


def test_no_rules_allows_everything() -> None:
    for rules in (AccessRules.none(), AccessRules.parse([])):
        assert not rules and not rules.enabled
        assert rules.permission(None, "/anything") is W
        assert rules.permission("who", "/a/../b") is W  # the file server refuses '..' itself


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("me:pw", "expected USER:PASSWORD@PATH"),
        ("me@/", "expected USER:PASSWORD before"),
        (":pw@/", "user name is empty"),
        ("me:@/", "password is empty"),
        ("@public", "must start with '/'"),
        ("@/a,", "must start with '/'"),
        ("@", "must start with '/'"),
        ("@/a:wr", "unknown permission"),
        ("@/a:b", "unknown permission"),
        ("@/a/../b", "'..'"),
        ("@/%ff", "not UTF-8"),
        ("@/a,/a:rw", "twice with different permissions"),
        ("me:p\tw@/", "control characters"),
        ("me:$scrypt$n=16384,r=8,p=1$c2FsdA@/", "$scrypt$n=N,r=R,p=P$SALT$HASH"),
        ("me:$scrypt$n=1000,r=8,p=1$c2FsdA$" + "A" * 43 + "@/", "out of range"),
        ("me:$scrypt$n=16384,r=8$c2FsdA$" + "A" * 43 + "@/", "parameters are n=N"),
        ("me:$scrypt$n=16384,r=8,p=1,q=2$c2FsdA$" + "A" * 43 + "@/", "unknown scrypt"),
        ("me:$scrypt$n=16384,r=8,p=1$c2F*dA$" + "A" * 43 + "@/", "base64"),
        ("me:$scrypt$n=16384,r=8,p=1$c2FsdA$AAAA@/", "at least 16 bytes"),
        ("me:$scrypt$n=2097152,r=8,p=1$c2FsdA$" + "A" * 43 + "@/", "out of range"),
    ],
)
def test_bad_rules_raise_value_error_naming_the_rule(rule: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        AccessRules.parse(["@/ok", rule])
    text = str(caught.value)
    assert message in text
    assert text.startswith("access rule '") and "@/ok" not in text  # the bad rule is named


def test_error_messages_do_not_show_the_password() -> None:
    for rule in ["me:hunter2@/a:wr", "me:hunter2", "me:hunter2@"]:
        with pytest.raises(ValueError) as caught:
            AccessRules.parse([rule])
        assert "hunter2" not in str(caught.value)
        assert "me:***" in str(caught.value)


def test_a_user_with_two_passwords_is_refused() -> None:
    with pytest.raises(ValueError, match="two different passwords"):
        AccessRules.parse(["me:one@/a", "me:two@/b"])


def test_a_path_given_twice_with_different_permissions_is_refused() -> None:
    with pytest.raises(ValueError, match="different permissions"):
        AccessRules.parse(["@/a", "@/a/:rw"])
    AccessRules.parse(["@/a", "@/a/"])  # the same grant twice is harmless


def test_auth_file(tmp_path: Path) -> None:
    file = tmp_path / "auth"
    file.write_text(
        "# who may do what\n\n   me:se#cret@/:rw  \n\t# indented comment\n@/public\n",
        encoding="utf-8",
    )
    rules = AccessRules.load(file, extra=["you:pw@/shared:rw"])
    assert rules.permission("me", "/x") is W
    assert rules.permission(None, "/public/y") is R
    assert rules.permission("you", "/shared/z") is W
    assert rules.permission("you", "/x") is N


def test_auth_file_errors_name_the_line(tmp_path: Path) -> None:
    file = tmp_path / "auth"
    file.write_text("# comment\n@/ok\n\nme:secret@/a:wx\n", encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        AccessRules.load(file)
    assert str(caught.value).startswith(f"{file}, line 4: unknown permission")
    assert "secret" not in str(caught.value)


def test_auth_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read the auth file .*No such file"):
        AccessRules.load(tmp_path / "missing")
    (tmp_path / "latin1").write_bytes(b"me:\xe9@/\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        AccessRules.load(tmp_path / "latin1")


def test_an_empty_auth_file_means_no_rules(tmp_path: Path) -> None:
    (tmp_path / "auth").write_text("# nobody yet\n", encoding="utf-8")
    assert not AccessRules.load(tmp_path / "auth")


# ---------------------------------------------------------------------------- decisions


def test_prefixes_match_by_whole_segments() -> None:
    rules = AccessRules.parse(["@/pub:rw"])
    assert rules.permission(None, "/pub") is W
    assert rules.permission(None, "/pub/") is W
    assert rules.permission(None, "pub/x/y") is W
    assert rules.permission(None, "/public") is N
    assert rules.permission(None, "/pu") is N
    assert rules.permission(None, "/") is N


def test_the_longest_prefix_decides() -> None:
    rules = AccessRules.parse(["me:pw@/:rw,/a,/a/b:rw,/a/b/c"])
    assert rules.permission("me", "/z") is W
    assert rules.permission("me", "/a") is R
    assert rules.permission("me", "/a/x") is R
    assert rules.permission("me", "/a/b") is W
    assert rules.permission("me", "/a/bb") is R
    assert rules.permission("me", "/a/b/x") is W
    assert rules.permission("me", "/a/b/c/d") is R


def test_a_user_never_gets_less_than_anonymous() -> None:
    rules = AccessRules.parse(["me:pw@/:rw,/drop", "@/drop:rw", "@/pub", "other:pw@/x"])
    # Own rules say read-only at /drop, anonymous may write there: the greater wins.
    assert rules.permission(None, "/drop/f") is W
    assert rules.permission("me", "/drop/f") is W
    assert rules.permission("other", "/pub/f") is R
    assert rules.permission("other", "/drop") is W
    assert rules.permission("other", "/x") is R
    assert rules.permission("other", "/y") is N
    assert rules.permission("nobody", "/pub") is R  # an unknown name is just anonymous
    for user in (None, "me", "other"):
        for path in ("/", "/drop", "/pub/a", "/x/y", "/z"):
            assert rules.permission(user, path) >= rules.permission(None, path)


def test_readable_below_a_readable_directory() -> None:
    """Rules only grant: an archive or search of a readable directory may include it all."""
    rules = AccessRules.parse(["me:pw@/a,/a/b:rw,/c/d", "@/a/b/c,/e:rw"])
    paths = ["/", "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/c", "/c/d", "/c/d/e", "/e", "/e/f"]
    for user in (None, "me"):
        visitor = Visitor(rules, user)
        for path in paths:
            if visitor.can_read(path):
                assert all(visitor.can_read(below) for below in paths if below.startswith(path))


def test_visitor() -> None:
    rules = AccessRules.parse(["me:pw@/home:rw", "@/public,/public/inbox:rw,/a/b/c"])
    anonymous, me = Visitor(rules, None), Visitor(rules, "me")
    assert anonymous.can_read("public/x") and not anonymous.can_write("public/x")
    assert anonymous.can_write("public/inbox/new.txt")
    assert not anonymous.can_read("home") and me.can_write("home/f") and me.can_read("home")
    assert me.can_read("public/x") and not me.can_write("public/x")
    # Directories on the way to something readable, for a listing of what can be reached.
    assert anonymous.can_reach("/") and anonymous.can_reach("a") and anonymous.can_reach("a/b")
    assert not anonymous.can_reach("home") and not anonymous.can_reach("a/x")
    assert not anonymous.can_reach("ab") and not anonymous.can_reach("pub")
    assert me.can_reach("home") and me.can_reach("/")
    assert not anonymous.can_reach("a/../public")
    everyone = Visitor(AccessRules.none(), None)
    assert everyone.can_write("anything") and everyone.can_reach("x")


# ---------------------------------------------------------------------------- checking requests


async def test_no_rules_check_allows_all_and_ignores_authorization() -> None:
    rules = AccessRules.none()
    visitor = await rules.check("Bearer garbage", "x/y", write=True, client=CLIENT)
    assert visitor.user is None and visitor.can_write("/")
    assert await rules.authenticate("garbage", CLIENT) is None


async def check_status(
    rules: AccessRules, authorization: str | None, path: str, *, write: bool
) -> int:
    try:
        await rules.check(authorization, path, write=write, client=CLIENT)
    except HTTPError as exc:
        if exc.status == 401:
            assert exc.headers == {"www-authenticate": AUTHENTICATE}
        else:
            assert "www-authenticate" not in exc.headers
        return exc.status
    return 200


async def test_check_401_vs_403() -> None:
    rules = AccessRules.parse(["me:secret@/:rw,/archive", "@/public"])
    me = basic("me", "secret")
    # Anonymous, allowed.
    assert await check_status(rules, None, "public/a.txt", write=False) == 200
    # Anonymous, not enough, but a user could: log in.
    assert await check_status(rules, None, "public/a.txt", write=True) == 401
    assert await check_status(rules, None, "private/", write=False) == 401
    # Logged in and enough.
    assert await check_status(rules, me, "private/", write=True) == 200
    assert await check_status(rules, me, "public/a.txt", write=True) == 200
    # Logged in, right password, not enough: 403.
    assert await check_status(rules, me, "archive/old.txt", write=True) == 403
    assert await check_status(rules, me, "archive/old.txt", write=False) == 200
    # Anonymous where nobody at all could write: 403, a login prompt would not help.
    assert await check_status(rules, None, "archive/x", write=True) == 403
    # Wrong credentials are 401 even where anonymous access would do.
    assert await check_status(rules, basic("me", "wrong"), "public/a", write=False) == 401
    assert await check_status(rules, basic("you", "secret"), "public/a", write=False) == 401


async def test_check_returns_the_visitor() -> None:
    rules = AccessRules.parse(["me:secret@/home:rw", "@/public"])
    visitor = await rules.check(basic("me", "secret"), "home/", write=False, client=CLIENT)
    assert visitor.user == "me" and visitor.can_write("home/x") and visitor.can_read("public")
    visitor = await rules.check(None, "public", write=False, client=CLIENT)
    assert visitor.user is None and not visitor.can_read("home")


async def test_a_logged_in_user_reads_what_anonymous_may() -> None:
    rules = AccessRules.parse(["me:secret@/home", "@/public:rw"])
    assert await check_status(rules, basic("me", "secret"), "public/x", write=True) == 200


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer abc", "not Basic"),
        ("Digest username=me", "not Basic"),
        ("Basic", "no credentials"),
        ("Basic    ", "no credentials"),
        ("Basic !!!notbase64", "not base64"),
        ("Basic bWU6c2VjcmV", "not base64"),  # truncated
        ("Basic bWU6c2VjcmV0é", "not base64"),  # non-ASCII
        ("Basic " + base64.b64encode(b"mesecret").decode(), "no ':'"),
        ("Basic " + base64.b64encode(b"me:\xff\xfe").decode(), "not UTF-8"),
    ],
)
async def test_malformed_authorization_is_401(
    header: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    rules = AccessRules.parse(["me:secret@/", "@/public"])
    with (
        caplog.at_level(logging.WARNING, logger="trio_http.error"),
        pytest.raises(HTTPError) as caught,
    ):
        await rules.check(header, "public/x", write=False, client=CLIENT)
    assert caught.value.status == 401
    assert caught.value.headers == {"www-authenticate": AUTHENTICATE}
    assert reason in (caught.value.detail or "")
    assert CLIENT in caplog.text


async def test_basic_scheme_is_case_insensitive_and_utf8() -> None:
    rules = AccessRules.parse(["jörg:pässwörd@/:rw"])
    header = "bAsIc  " + base64.b64encode("jörg:pässwörd".encode()).decode() + " "
    assert await rules.authenticate(header, CLIENT) == "jörg"


async def test_failed_login_is_logged_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules = AccessRules.parse(["me:s3cret-value@/:rw"])
    with caplog.at_level(logging.WARNING, logger="trio_http.error"):
        for user in ("me", "mallory"):
            with pytest.raises(HTTPError):
                await rules.authenticate(basic(user, "guess-xyzzy"), "198.51.100.9")
    records = [r for r in caplog.records if r.name == "trio_http.error"]
    assert len(records) == 2 and all(r.levelno == logging.WARNING for r in records)
    assert "'me'" in records[0].getMessage() and "'mallory'" in records[1].getMessage()
    for record in records:
        assert "198.51.100.9" in record.getMessage()
        assert "guess-xyzzy" not in record.getMessage()
        assert "s3cret-value" not in record.getMessage()


async def test_plain_passwords_are_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    rules = AccessRules.parse(["me:secret@/"])
    assert await rules.authenticate(basic("me", "secret"), CLIENT) == "me"
    assert calls == [(b"secret", b"secret")]
    with pytest.raises(HTTPError):
        await rules.authenticate(basic("me", "secreT"), CLIENT)
    # Then a comparison against a random value, as for an unknown user: the same time.
    assert calls[1] == (b"secreT", b"secret") and len(calls) == 3
    with pytest.raises(HTTPError):
        await rules.authenticate(basic("nobody", "secret"), CLIENT)
    assert len(calls) == 4  # an unknown user is compared too, against a random value


# ---------------------------------------------------------------------------- hashes


def count_scrypt(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count scrypt runs, and record the thread each ran in."""
    threads: list[str] = []
    real: Callable[..., bytes] = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return threads


def test_hash_format() -> None:
    hashed = hash_password("pw")
    assert hashed.startswith("$scrypt$n=16384,r=8,p=1$")
    _, _, _params, salt, key = hashed.split("$")
    assert len(base64.b64decode(salt + "==")) == 16 and len(base64.b64decode(key + "=")) == 32
    assert hash_password("pw") != hashed  # a fresh salt each time
    with pytest.raises(ValueError, match="empty"):
        hash_password("")
    with pytest.raises(ValueError, match="out of range"):
        hash_password("pw", n=1000)


async def test_hashed_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = fast_hash("p@ss:word")
    assert ":" not in hashed and "@" not in hashed
    rules = AccessRules.parse([f"me:{hashed}@/:rw"])
    threads = count_scrypt(monkeypatch)
    assert await rules.authenticate(basic("me", "p@ss:word"), CLIENT) == "me"
    with pytest.raises(HTTPError) as caught:
        await rules.authenticate(basic("me", hashed), CLIENT)  # the hash is not the password
    assert caught.value.status == 401
    assert len(threads) == 2
    assert threading.current_thread().name not in threads  # never on the event loop


async def test_a_successful_login_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = AccessRules.parse([f"me:{fast_hash('pw')}@/:rw", f"you:{fast_hash('pw2')}@/"])
    threads = count_scrypt(monkeypatch)
    for _ in range(5):
        assert await rules.authenticate(basic("me", "pw"), CLIENT) == "me"
    assert len(threads) == 1
    # A wrong password is not cached, and the cache is per user.
    for _ in range(2):
        with pytest.raises(HTTPError):
            await rules.authenticate(basic("me", "PW"), CLIENT)
        with pytest.raises(HTTPError):
            await rules.authenticate(basic("you", "pw"), CLIENT)
    assert len(threads) == 5
    assert await rules.authenticate(basic("you", "pw2"), CLIENT) == "you"
    assert await rules.authenticate(basic("you", "pw2"), CLIENT) == "you"
    assert len(threads) == 6


async def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "CACHE_SIZE", 2)
    users = [f"u{i}:{fast_hash(f'pw{i}')}@/" for i in range(3)]
    rules = AccessRules.parse(users)
    threads = count_scrypt(monkeypatch)
    for i in (0, 1, 2):  # u0 falls out
        await rules.authenticate(basic(f"u{i}", f"pw{i}"), CLIENT)
    await rules.authenticate(basic("u2", "pw2"), CLIENT)
    await rules.authenticate(basic("u1", "pw1"), CLIENT)
    assert len(threads) == 3
    await rules.authenticate(basic("u0", "pw0"), CLIENT)
    assert len(threads) == 4


async def test_an_unknown_user_costs_an_scrypt_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Otherwise the time a wrong login takes would tell which user names exist."""
    rules = AccessRules.parse([f"me:{fast_hash('pw')}@/"])
    threads = count_scrypt(monkeypatch)
    with pytest.raises(HTTPError):
        await rules.authenticate(basic("nobody", "pw"), CLIENT)
    assert len(threads) == 1


async def test_scrypt_checks_run_two_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = AccessRules.parse([f"u{i}:{fast_hash('pw')}@/" for i in range(4)])
    running = 0
    lock = threading.Lock()
    two_running = trio.Event()
    gate = threading.Event()
    real = hashlib.scrypt

    def slow(*args: Any, **kwargs: Any) -> bytes:
        nonlocal running
        with lock:
            running += 1
            if running == 2:
                trio.from_thread.run_sync(two_running.set)
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", slow)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(rules.authenticate, basic(f"u{i}", "pw"), CLIENT)
            await two_running.wait()
            # Every task is now in scrypt or queued for it: two of each.
            await trio.testing.wait_all_tasks_blocked()
            limiter = rules._limiter
            assert limiter is not None
            assert limiter.borrowed_tokens == 2 and limiter.statistics().tasks_waiting == 2
            assert running == 2
            gate.set()
    assert running == 4


# ---------------------------------------------------------------------------- hash-password


async def run_hash_password(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "trio_http", "hash-password"],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_hash_password_cli_from_stdin() -> None:
    done = await run_hash_password("pä ss@word:\r\n".encode())
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    hashed = done.stdout.decode().removesuffix("\n")
    assert "\n" not in hashed and hashed.startswith("$scrypt$")
    rules = AccessRules.parse([f"me:{hashed}@/"])
    assert await rules.authenticate(basic("me", "pä ss@word:"), CLIENT) == "me"
    with pytest.raises(HTTPError):
        await rules.authenticate(basic("me", "pä ss@word"), CLIENT)


@pytest.mark.parametrize(
    ("stdin", "message"), [(b"", b"no password"), (b"\n", b"the password is empty")]
)
async def test_hash_password_cli_errors(stdin: bytes, message: bytes) -> None:
    done = await run_hash_password(stdin)
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.count(b"\n") == 1 and message in done.stderr


def run_on_terminal(answers: list[bytes]) -> tuple[int, bytes]:
    """Run ``hash-password`` on a pseudo-terminal, typing *answers* at its prompts."""
    pid, fd = os.forkpty()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execv(sys.executable, [sys.executable, "-m", "trio_http", "hash-password"])
        finally:
            os._exit(127)
    output = b""
    answered = 0
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 20)
            assert ready, f"no output from hash-password: {output!r}"
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            # Answer each prompt once it has been written in full.
            if answered < len(answers) and output.count(b": ") > answered:
                os.write(fd, answers[answered] + b"\r")
                answered += 1
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def test_hash_password_cli_on_a_terminal_asks_twice() -> None:
    status, output = run_on_terminal([b"secret", b"secret"])
    assert status == 0, output
    assert output.count(b"Password") == 2
    assert b"secret" not in output  # not echoed
    hashed = output.split()[-1].decode()
    assert passwords.ScryptHash.parse(hashed).matches(b"secret")


def test_hash_password_cli_on_a_terminal_refuses_two_different_entries() -> None:
    status, output = run_on_terminal([b"secret", b"sekret"])
    assert status == 2
    assert b"the two passwords differ" in output and b"$scrypt$" not in output


async def test_a_wrong_plain_password_costs_an_scrypt_when_others_are_hashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mixed plain and hashed passwords: a failure takes the time of an scrypt for a known
    plain user too, so the time tells no user names apart."""
    rules = AccessRules.parse(["plain:pw@/", f"hashed:{hash_password('x', n=2**4)}@/"])
    runs = count_scrypt(monkeypatch)
    with pytest.raises(HTTPError):
        await rules.authenticate(basic("plain", "wrong"), CLIENT)
    assert len(runs) == 1
    with pytest.raises(HTTPError):
        await rules.authenticate(basic("nobody", "wrong"), CLIENT)
    assert len(runs) == 2
    assert await rules.authenticate(basic("plain", "pw"), CLIENT) == "plain"
    assert len(runs) == 2  # success is not slowed
