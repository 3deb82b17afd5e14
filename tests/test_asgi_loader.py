"""load_app: MODULE:ATTR targets, factories, ASGI 3 validation, and one-line error messages.

Each test writes a small module into its own ``tmp_path`` and loads it from there; the
``isolated_imports`` fixture puts ``sys.path`` and ``sys.modules`` back afterwards, so tests can
reuse module names without seeing each other's modules.
"""

from __future__ import annotations

import asyncio.coroutines
import gc
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_http.asgi.loader import AppLoadError, load_app


@pytest.fixture(autouse=True)
def isolated_imports() -> Iterator[None]:
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def write(directory: Path, name: str, source: str) -> None:
    """Write module *name* ("pkg.mod" makes pkg/mod.py; packages need their own __init__)."""
    path = directory.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")


def load_error(target: str, directory: Path, *, factory: bool = False) -> AppLoadError:
    with pytest.raises(AppLoadError) as info:
        load_app(target, app_dir=str(directory), factory=factory)
    message = str(info.value)
    assert "\n" not in message, "the message must be one line"
    return info.value


APPS = """
import functools

async def app(scope, receive, send):
    pass

async def with_options(scope, receive, send, *, debug=False):
    pass

partial_app = functools.partial(with_options, debug=True)

class Framework:
    async def __call__(self, scope, receive, send):
        pass

    async def handle(self, scope, receive, send):
        pass

instance = Framework()
bound = instance.handle
partial_instance = functools.partial(instance)

class Holder:
    inner = instance

holder = Holder()
"""


@pytest.mark.parametrize(
    "attr",
    ["app", "partial_app", "instance", "bound", "partial_instance", "holder.inner", "Holder.inner"],
)
def test_loads_asgi3_applications(tmp_path: Path, attr: str) -> None:
    write(tmp_path, "apps", APPS)
    app = load_app(f"apps:{attr}", app_dir=str(tmp_path))
    expected: object = sys.modules["apps"]
    for part in attr.split("."):
        expected = getattr(expected, part)
    assert app is expected


def test_dotted_module_and_attribute(tmp_path: Path) -> None:
    write(tmp_path, "pkg.__init__", "")
    write(
        tmp_path,
        "pkg.web",
        """
        import types

        async def app(scope, receive, send):
            pass

        obj = types.SimpleNamespace(app=app)
        """,
    )
    assert load_app("pkg.web:obj.app", app_dir=str(tmp_path)) is sys.modules["pkg.web"].app


def test_default_app_dir_is_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "here", "async def app(scope, receive, send):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    load_app("here:app")
    assert sys.path[0] == str(tmp_path.resolve())


def test_app_dir_is_put_first_once(tmp_path: Path) -> None:
    write(tmp_path, "once", "async def app(scope, receive, send):\n    pass\n")
    load_app("once:app", app_dir=str(tmp_path))
    load_app("once:app", app_dir=str(tmp_path))
    assert sys.path[0] == str(tmp_path.resolve())
    assert sys.path.count(str(tmp_path.resolve())) == 1


def test_app_dir_none_leaves_sys_path_alone(tmp_path: Path) -> None:
    before = list(sys.path)
    with pytest.raises(AppLoadError, match='could not import module "elsewhere"'):
        load_app("elsewhere:app", app_dir=None)
    assert sys.path == before


def test_app_dir_that_is_not_a_directory(tmp_path: Path) -> None:
    error = load_error("main:app", tmp_path / "missing")
    assert str(error) == f'the application directory "{tmp_path / "missing"}" is not a directory'


@pytest.mark.skipif(
    not hasattr(asyncio.coroutines, "_is_coroutine"), reason="asyncio has no marker any more"
)
def test_asyncio_marked_coroutine_function(tmp_path: Path) -> None:
    # What asgiref's markcoroutinefunction does before Python 3.12 (Django's handlers use it).
    write(
        tmp_path,
        "marked",
        """
        import asyncio.coroutines

        def app(scope, receive, send):
            return None

        app._is_coroutine = asyncio.coroutines._is_coroutine
        """,
    )
    assert load_app("marked:app", app_dir=str(tmp_path)) is sys.modules["marked"].app


@pytest.mark.parametrize(
    "target",
    ["main", "main:", ":app", "main:app:x", "main:app.", ".main:app", "main: app", "", "a-b:app"],
)
def test_target_not_in_module_attr_form(tmp_path: Path, target: str) -> None:
    error = load_error(target, tmp_path)
    assert str(error) == f"'{target}' is not in the form MODULE:ATTR (for example main:app)"


def test_module_not_found(tmp_path: Path) -> None:
    error = load_error("nothere:app", tmp_path)
    assert str(error) == """could not import module "nothere": No module named 'nothere'"""
    assert isinstance(error.__cause__, ModuleNotFoundError)


def test_parent_package_not_found(tmp_path: Path) -> None:
    error = load_error("nopkg.web:app", tmp_path)
    assert str(error) == """could not import module "nopkg.web": No module named 'nopkg'"""


def test_submodule_not_found(tmp_path: Path) -> None:
    write(tmp_path, "pkg2.__init__", "")
    error = load_error("pkg2.web:app", tmp_path)
    assert str(error) == """could not import module "pkg2.web": No module named 'pkg2.web'"""


def test_missing_dependency_is_named_as_such(tmp_path: Path) -> None:
    write(tmp_path, "needsdep", "import trio_http_no_such_dependency\n")
    error = load_error("needsdep:app", tmp_path)
    assert str(error) == (
        'could not import module "needsdep": a module it imports is missing:'
        " No module named 'trio_http_no_such_dependency'"
    )
    assert isinstance(error.__cause__, ModuleNotFoundError)
    assert error.__cause__.name == "trio_http_no_such_dependency"


def test_import_error_inside_the_module(tmp_path: Path) -> None:
    write(tmp_path, "badimport", "from os import no_such_name\n")
    error = load_error("badimport:app", tmp_path)
    assert str(error).startswith(
        'could not import module "badimport": importing it raised ImportError:'
        " cannot import name 'no_such_name' from 'os'"
    )
    assert isinstance(error.__cause__, ImportError)


def test_exception_while_importing_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "crashes", "import os\nCONFIG = os.environ['TRIO_HTTP_NO_SUCH_VARIABLE']\n")
    error = load_error("crashes:app", tmp_path)
    path = tmp_path.resolve() / "crashes.py"
    assert str(error) == (
        'could not import module "crashes": importing it raised'
        f" KeyError: 'TRIO_HTTP_NO_SUCH_VARIABLE' ({path}:2)"
    )
    assert isinstance(error.__cause__, KeyError)


def test_syntax_error(tmp_path: Path) -> None:
    write(tmp_path, "broken", "def app(:\n")
    error = load_error("broken:app", tmp_path)
    assert str(error).startswith(
        'could not import module "broken": importing it raised SyntaxError'
    )
    assert "broken.py, line 1" in str(error)


def test_system_exit_is_not_wrapped(tmp_path: Path) -> None:
    write(tmp_path, "exits", "raise SystemExit(3)\n")
    with pytest.raises(SystemExit):
        load_app("exits:app", app_dir=str(tmp_path))


@pytest.mark.parametrize("attr", ["nope", "obj.nope", "nope.app"])
def test_attribute_not_found(tmp_path: Path, attr: str) -> None:
    write(tmp_path, "attrs", "import types\nobj = types.SimpleNamespace()\n")
    error = load_error(f"attrs:{attr}", tmp_path)
    assert str(error) == f'attribute "{attr}" not found in module "attrs"'
    assert isinstance(error.__cause__, AttributeError)


def test_not_callable(tmp_path: Path) -> None:
    write(tmp_path, "values", "app = 42\n")
    error = load_error("values:app", tmp_path)
    assert str(error) == '"values:app" is not an ASGI application (got int)'


def test_module_is_not_an_application(tmp_path: Path) -> None:
    write(tmp_path, "parent.__init__", "from . import child\n")
    write(tmp_path, "parent.child", "")
    error = load_error("parent:child", tmp_path)
    assert str(error) == '"parent:child" is not an ASGI application (got module)'


ASGI2 = "looks like an ASGI 2 application; trio-http runs ASGI 3 applications"


def test_asgi2_class(tmp_path: Path) -> None:
    write(
        tmp_path,
        "legacy",
        """
        class App:
            def __init__(self, scope):
                self.scope = scope

            async def __call__(self, receive, send):
                pass
        """,
    )
    assert str(load_error("legacy:App", tmp_path)) == f'"legacy:App" {ASGI2}'


def test_asgi2_function(tmp_path: Path) -> None:
    write(
        tmp_path,
        "legacyfn",
        """
        def app(scope):
            async def instance(receive, send):
                pass
            return instance
        """,
    )
    assert str(load_error("legacyfn:app", tmp_path)) == f'"legacyfn:app" {ASGI2}'


def test_class_whose_instances_are_applications(tmp_path: Path) -> None:
    write(
        tmp_path,
        "uninstantiated",
        """
        class Framework:
            async def __call__(self, scope, receive, send):
                pass
        """,
    )
    assert str(load_error("uninstantiated:Framework", tmp_path)) == (
        '"uninstantiated:Framework" is a class, not an application; create the instance in the'
        " module (app = Framework()) or load the class as a factory"
    )
    # ...and loading it as a factory works.
    app = load_app("uninstantiated:Framework", app_dir=str(tmp_path), factory=True)
    assert isinstance(app, sys.modules["uninstantiated"].Framework)


def test_sync_function_with_three_arguments(tmp_path: Path) -> None:
    write(tmp_path, "syncapp", "def app(scope, receive, send):\n    pass\n")
    assert str(load_error("syncapp:app", tmp_path)) == (
        '"syncapp:app" is not an ASGI 3 application: it is callable but not a coroutine function'
        " (an ASGI 3 application is `async def app(scope, receive, send)`)"
    )


def test_coroutine_function_with_wrong_arguments(tmp_path: Path) -> None:
    write(tmp_path, "arity", "async def app(scope):\n    pass\n")
    assert str(load_error("arity:app", tmp_path)) == (
        '"arity:app" is not an ASGI 3 application: it cannot be called with the three'
        " arguments (scope, receive, send)"
    )


FACTORIES = """
import functools

async def app(scope, receive, send):
    pass

calls = []

def create_app():
    calls.append("create_app")
    return app

def failing():
    raise RuntimeError("no database URL")

def needs_config(config):
    return app

async def async_factory():
    return app

def returns_none():
    return None

class Factories:
    make = staticmethod(create_app)

partial_factory = functools.partial(create_app)
not_callable = 3
"""


@pytest.mark.parametrize("attr", ["create_app", "Factories.make", "partial_factory"])
def test_factory(tmp_path: Path, attr: str) -> None:
    write(tmp_path, "factories", FACTORIES)
    app = load_app(f"factories:{attr}", app_dir=str(tmp_path), factory=True)
    module = sys.modules["factories"]
    assert app is module.app
    assert module.calls == ["create_app"]


def test_factory_that_raises(tmp_path: Path) -> None:
    write(tmp_path, "factories", FACTORIES)
    error = load_error("factories:failing", tmp_path, factory=True)
    assert str(error) == "the factory factories:failing raised RuntimeError: no database URL"
    assert isinstance(error.__cause__, RuntimeError)


def test_factory_that_needs_arguments(tmp_path: Path) -> None:
    write(tmp_path, "factories", FACTORIES)
    error = load_error("factories:needs_config", tmp_path, factory=True)
    assert str(error).startswith("the factory factories:needs_config raised TypeError:")


def test_async_factory(tmp_path: Path) -> None:
    write(tmp_path, "factories", FACTORIES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = load_error("factories:async_factory", tmp_path, factory=True)
        gc.collect()
    # The coroutine the factory returned was closed, not left to warn "never awaited".
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert str(error) == (
        "the factory factories:async_factory returned an awaitable; a factory must be a plain"
        " function that returns the application"
    )


def test_factory_that_returns_no_application(tmp_path: Path) -> None:
    write(tmp_path, "factories", FACTORIES)
    error = load_error("factories:returns_none", tmp_path, factory=True)
    assert str(error) == (
        "the object returned by the factory factories:returns_none is not an ASGI application"
        " (got NoneType)"
    )


def test_factory_that_is_not_callable(tmp_path: Path) -> None:
    write(tmp_path, "factories", FACTORIES)
    error = load_error("factories:not_callable", tmp_path, factory=True)
    assert str(error) == (
        '"factories:not_callable" is not callable, so it cannot be an application factory (got int)'
    )
