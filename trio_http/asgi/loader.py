"""Find the ASGI 3 application that a ``MODULE:ATTR`` string names (``trio-http run main:app``).

Everything that can go wrong while loading - a malformed target, a module that is missing or
fails to import, a missing attribute, a factory that raises, an object that is not an ASGI 3
application - is raised as :class:`AppLoadError`.  Its message is one line for the person at the
terminal; the exception behind it, if any, is chained as ``__cause__`` so a debug log can show
the traceback.  ``KeyboardInterrupt`` and ``SystemExit`` raised by the imported code are not
wrapped: they mean "stop", not "the application is broken".

Only ASGI 3 (single-callable) applications are accepted.  ASGI 2 (double-callable) ones are
recognised and refused with a message that says so, rather than wrapped: every current framework
speaks ASGI 3, and a wrapper would be one more layer to get wrong for almost no user.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import cast

from trio_http.asgi.types import ASGIApp

__all__ = ["AppLoadError", "load_app"]

_IMPORTLIB_DIR = str(Path(importlib.__file__).parent)


class AppLoadError(Exception):
    """The application could not be loaded.  ``str()`` is one line meant for the user."""


def load_app(target: str, *, app_dir: str | None = ".", factory: bool = False) -> ASGIApp:
    """Import *target*, ``"MODULE:ATTR"``, and return the ASGI 3 application it names.

    ATTR may be dotted (``"pkg.mod:obj.app"``).  *app_dir*, resolved to an absolute path, is put
    at the front of ``sys.path`` first, so ``main:app`` finds ``./main.py`` as ``python -m``
    would (``None`` leaves ``sys.path`` alone).  With *factory*, ATTR is called with no
    arguments and what it returns is the application.

    Importing runs the module's code.  Raises :class:`AppLoadError` for every failure described
    in the module docstring, and nothing else but the ``KeyboardInterrupt`` or ``SystemExit``
    that the imported code (or the factory) may raise.
    """
    module_name, attr_path = _parse_target(target)
    if app_dir is not None:
        _prepend_to_sys_path(app_dir)
    module = _import(module_name)
    obj = _lookup(module, module_name, attr_path)
    if factory:
        obj = _call_factory(obj, target)
        return _check_asgi3(obj, f"the object returned by the factory {target}")
    return _check_asgi3(obj, f'"{target}"')


def _parse_target(target: str) -> tuple[str, str]:
    module_name, colon, attr_path = target.partition(":")
    if not (colon and _is_dotted_name(module_name) and _is_dotted_name(attr_path)):
        raise AppLoadError(f"'{target}' is not in the form MODULE:ATTR (for example main:app)")
    return module_name, attr_path


def _is_dotted_name(text: str) -> bool:
    # Also rejects relative modules (".main"), a second colon and stray spaces, which would
    # otherwise surface as a confusing import or attribute error.
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _prepend_to_sys_path(app_dir: str) -> None:
    path = Path(app_dir).resolve()
    if not path.is_dir():
        raise AppLoadError(f'the application directory "{app_dir}" is not a directory')
    if not sys.path or sys.path[0] != str(path):
        sys.path.insert(0, str(path))


def _import(module_name: str) -> ModuleType:
    # The path finders cache directory listings; a module written a moment ago (by a test, by
    # a deploy script) could otherwise be reported missing.
    importlib.invalidate_caches()
    prefix = f'could not import module "{module_name}"'
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if _is_target_module(exc.name, module_name):
            raise AppLoadError(f"{prefix}: {exc}") from exc
        # The module exists but imports something that does not: tell the user to install a
        # dependency rather than to look for their own file.
        raise AppLoadError(f"{prefix}: a module it imports is missing: {exc}") from exc
    except ImportError as exc:
        raise AppLoadError(f"{prefix}: importing it raised ImportError: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(
            f"{prefix}: importing it raised {type(exc).__name__}: {exc}{_where(exc)}"
        ) from exc


def _is_target_module(missing: str | None, module_name: str) -> bool:
    """Whether the module reported missing is *module_name* or one of its parent packages."""
    if missing is None:
        return False
    return missing == module_name or module_name.startswith(missing + ".")


def _where(exc: BaseException) -> str:
    """`` (file:line)`` of the innermost frame in the user's code, or "" if there is none.

    A SyntaxError has no such frame (it is raised by the compiler inside importlib) but names
    the file and line in its own message.
    """
    skip = ("<frozen ", _IMPORTLIB_DIR, __file__)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(skip)]
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _lookup(module: ModuleType, module_name: str, attr_path: str) -> object:
    obj: object = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise AppLoadError(
                f'attribute "{attr_path}" not found in module "{module_name}"'
            ) from exc
    return obj


def _call_factory(factory: object, target: str) -> object:
    if not callable(factory):
        raise AppLoadError(
            f'"{target}" is not callable, so it cannot be an application factory'
            f" (got {type(factory).__qualname__})"
        )
    try:
        app = factory()
    except Exception as exc:
        raise AppLoadError(f"the factory {target} raised {type(exc).__name__}: {exc}") from exc
    if inspect.isawaitable(app):
        # An async factory: we load before any event loop runs, so we cannot await it.  Close
        # a coroutine so Python does not also warn that it was never awaited.
        if inspect.iscoroutine(app):
            app.close()
        raise AppLoadError(
            f"the factory {target} returned an awaitable; a factory must be a plain function"
            " that returns the application"
        )
    return app


def _check_asgi3(obj: object, what: str) -> ASGIApp:
    """Return *obj* if it is an ASGI 3 application; raise :class:`AppLoadError` if not."""
    if not callable(obj):
        raise AppLoadError(f"{what} is not an ASGI application (got {type(obj).__qualname__})")
    asgi2 = f"{what} looks like an ASGI 2 application; trio-http runs ASGI 3 applications"
    if inspect.isclass(obj):
        # Calling a class makes an instance: the ASGI 2 shape (``App(scope)`` then
        # ``await instance(receive, send)``).  The exception is a class whose instances would
        # be ASGI 3 applications: the user meant an instance of it.
        call = _instance_call(obj)
        if (
            call is not None
            and _is_coroutine_function(call)
            and _accepts(call, 4)
            and _accepts(obj, 0)
        ):
            raise AppLoadError(
                f"{what} is a class, not an application; create the instance in the module"
                f" (app = {obj.__name__}()) or load the class as a factory"
            )
        raise AppLoadError(asgi2)
    if _is_coroutine_function(obj):
        if not _accepts(obj, 3):
            raise AppLoadError(
                f"{what} is not an ASGI 3 application: it cannot be called with the three"
                " arguments (scope, receive, send)"
            )
        return cast(ASGIApp, obj)
    if _accepts(obj, 1) and not _accepts(obj, 3):
        raise AppLoadError(asgi2)
    raise AppLoadError(
        f"{what} is not an ASGI 3 application: it is callable but not a coroutine function"
        " (an ASGI 3 application is `async def app(scope, receive, send)`)"
    )


def _instance_call(cls: type) -> object | None:
    """The ``__call__`` that instances of *cls* would use, as a plain function, or None."""
    for klass in cls.__mro__:
        if "__call__" in vars(klass):
            return cast(object, vars(klass)["__call__"])
    return None


def _is_coroutine_function(obj: object) -> bool:
    """Whether calling *obj* returns a coroutine: an ``async def`` function or bound method, a
    ``functools.partial`` of one, or an object whose ``__call__`` is one."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    if _is_async_def(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - we want the method, not callable()
    return call is not None and _is_async_def(call)


def _is_async_def(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    # Before 3.12, asgiref's markcoroutinefunction (used by Django and sync_to_async) marks a
    # sync callable that returns a coroutine with asyncio's private marker.  If asyncio was
    # never imported, nothing can carry the marker, so there is no need to import it here.
    marker = getattr(sys.modules.get("asyncio.coroutines"), "_is_coroutine", None)
    return marker is not None and getattr(obj, "_is_coroutine", None) is marker


def _accepts(obj: object, count: int) -> bool:
    """Whether *obj* can be called with *count* positional arguments (True if unknowable)."""
    try:
        signature = inspect.signature(cast("Callable[..., object]", obj))
    except (TypeError, ValueError):
        # No signature to read: some builtins, or an instance whose ``__call__`` is a slot it
        # sets itself (Sentry's SentryAsgiMiddleware).  Read that ``__call__``, else give it
        # the benefit of the doubt.
        try:
            signature = inspect.signature(getattr(obj, "__call__"))  # noqa: B004, B009
        except (TypeError, ValueError, AttributeError):
            return True
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True
