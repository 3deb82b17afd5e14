import errno
import os
from pathlib import Path

import pytest

from trio_http.errors import HTTPError
from trio_http.files.paths import PathPolicy, http_error_for, resolve_path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "f.txt").write_text("x")
    (base / ".hidden").write_text("secret")
    (tmp_path / "outside.txt").write_text("outside")
    (tmp_path / "root2").mkdir()
    return Path(os.path.realpath(base))


def test_plain_paths(root: Path) -> None:
    policy = PathPolicy(root)
    assert resolve_path(policy, "") == root
    assert resolve_path(policy, "sub/") == root / "sub"
    assert resolve_path(policy, "sub/f.txt") == root / "sub" / "f.txt"
    assert resolve_path(policy, "new/file") == root / "new" / "file"  # need not exist


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("../outside.txt", 400),
        ("sub/../../outside.txt", 400),
        ("sub/./f.txt", 400),
        ("sub//f.txt", 400),
        ("/etc/passwd", 400),
        ("sub\\f.txt", 400),
        ("f\x00.txt", 400),
        (".hidden", 403),
        ("sub/.git/config", 403),
    ],
)
def test_refused(root: Path, path: str, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        resolve_path(PathPolicy(root), path)
    assert info.value.status == status


def test_hidden_allowed_when_asked(root: Path) -> None:
    assert resolve_path(PathPolicy(root, allow_hidden=True), ".hidden") == root / ".hidden"


def test_symlink_escaping_root_is_refused_unless_followed(root: Path) -> None:
    (root / "link").symlink_to(root.parent / "outside.txt")
    (root / "dirlink").symlink_to(root.parent)
    for name in ("link", "dirlink/outside.txt"):
        with pytest.raises(HTTPError) as info:
            resolve_path(PathPolicy(root), name)
        assert info.value.status == 403
    followed = resolve_path(PathPolicy(root, follow_symlinks=True), "link")
    assert followed == root.parent / "outside.txt"


def test_sibling_with_common_prefix_is_outside(root: Path) -> None:
    (root / "sneaky").symlink_to(root.parent / "root2")
    with pytest.raises(HTTPError):
        resolve_path(PathPolicy(root), "sneaky")


def test_symlink_inside_root_is_fine_but_not_to_hidden(root: Path) -> None:
    (root / "alias").symlink_to(root / "sub" / "f.txt")
    assert resolve_path(PathPolicy(root), "alias") == root / "sub" / "f.txt"
    (root / "peek").symlink_to(root / ".hidden")
    with pytest.raises(HTTPError) as info:
        resolve_path(PathPolicy(root), "peek")
    assert info.value.status == 403


@pytest.mark.parametrize(
    "url_path",
    [
        "sub/f.txt",
        "sub/f.txt/below-a-file",
        "missing/deeper/still",
        "dirlink/f.txt",
        "dirlink/missing",
        "chain",
        "loop/x",
        "out/outside.txt",
        "broken",
        "sub/",
    ],
)
def test_agrees_with_realpath(root: Path, url_path: str) -> None:
    """Walking only below the root gives what os.path.realpath gives for the whole path."""
    (root / "dirlink").symlink_to(root / "sub")
    (root / "chain").symlink_to("dirlink/f.txt")  # relative, through another link
    (root / "loop").symlink_to("loop")
    (root / "out").symlink_to(root.parent)
    (root / "broken").symlink_to(root / "nowhere")
    policy = PathPolicy(root, follow_symlinks=True)
    expected = Path(os.path.realpath(root / url_path))
    assert resolve_path(policy, url_path) == expected


def test_filesystem_root_as_root() -> None:
    assert resolve_path(PathPolicy(Path("/")), "") == Path("/")
    assert resolve_path(PathPolicy(Path("/")), "no-such-dir/x") == Path("/no-such-dir/x")


@pytest.mark.parametrize(
    ("code", "reading", "writing"),
    [
        (errno.ENAMETOOLONG, 414, 414),
        (errno.ENOENT, 404, 409),
        (errno.ENOTDIR, 404, 409),
        (errno.EACCES, 403, 403),
        (errno.EPERM, 403, 403),
        (errno.EROFS, 403, 403),
        (errno.ELOOP, 403, 403),
        (errno.ENXIO, 403, 403),
        (errno.EEXIST, 409, 409),
        (errno.EISDIR, 409, 409),
        (errno.ENOTEMPTY, 409, 409),
        (errno.EINVAL, 400, 400),
        (errno.EILSEQ, 400, 400),
        (errno.ENOSPC, 507, 507),
        (errno.EDQUOT, 507, 507),
        (errno.EFBIG, 413, 413),
    ],
)
def test_http_error_for(code: int, reading: int, writing: int) -> None:
    for is_writing, status in ((False, reading), (True, writing)):
        error = http_error_for(OSError(code, os.strerror(code)), writing=is_writing)
        assert isinstance(error, HTTPError)
        assert error.status == status
        # The body of an upload that cannot be stored is left unread: close after the answer.
        assert error.close == (status in (413, 507))


@pytest.mark.parametrize("code", [errno.EIO, errno.EMFILE, None])
def test_http_error_for_leaves_server_faults_alone(code: int | None) -> None:
    exc = OSError(code, "server fault") if code is not None else OSError("no errno")
    assert http_error_for(exc) is exc
    assert http_error_for(exc, writing=True) is exc


@pytest.mark.parametrize("url_path", ["a" * 300, "a" * 300 + "/x", "sub/" + "a" * 300])
def test_names_too_long_are_414(root: Path, url_path: str) -> None:
    # lstat meets the name. (A long path of missing short names stops at the first one,
    # as any missing name does; the open or stat that follows gets the 414.)
    with pytest.raises(HTTPError) as info:
        resolve_path(PathPolicy(root), url_path)
    assert info.value.status == 414


def test_missing_names_are_still_fine(root: Path) -> None:
    # Only a missing name (or a path through a file) is passed on for the caller to handle.
    assert resolve_path(PathPolicy(root), "sub/f.txt/x") == root / "sub" / "f.txt" / "x"
    assert resolve_path(PathPolicy(root), "nope/x") == root / "nope" / "x"
