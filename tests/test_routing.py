import pytest

from trio_http import App, HTTPError, Request, Response
from trio_http.headers import Headers


async def ok(request: Request) -> Response:
    return Response("ok")


def make_app() -> App:
    app = App()
    app.add_route("/", ok, ["GET"])
    app.add_route("/items/{item}", ok, ["GET", "PUT"])
    app.add_route("/files/{path:path}", ok, ["GET", "POST"])
    app.add_route("/a/{x}/b/{y}", ok, ["DELETE"])
    return app


def test_static_and_parameters() -> None:
    app = make_app()
    assert app.resolve("GET", "/") == (ok, {})
    assert app.resolve("GET", "/items/42") == (ok, {"item": "42"})
    assert app.resolve("DELETE", "/a/1/b/2") == (ok, {"x": "1", "y": "2"})


def test_parameters_are_decoded_after_matching() -> None:
    app = make_app()
    # An encoded slash stays inside one segment.
    assert app.resolve("GET", "/items/a%2Fb%20c") == (ok, {"item": "a/b c"})
    assert app.resolve("GET", "/files/dir/sub/f%C3%A9.txt") == (ok, {"path": "dir/sub/fé.txt"})
    assert app.resolve("GET", "/files/") == (ok, {"path": ""})


def test_invalid_utf8_parameter_is_400() -> None:
    with pytest.raises(HTTPError) as info:
        make_app().resolve("GET", "/items/%ff")
    assert info.value.status == 400


def test_head_uses_get() -> None:
    assert make_app().resolve("HEAD", "/items/1") == (ok, {"item": "1"})


def test_segment_parameter_does_not_cross_slashes() -> None:
    with pytest.raises(HTTPError) as info:
        make_app().resolve("GET", "/items/a/b")
    assert info.value.status == 404


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("POST", "/items/1", 405, "GET, HEAD, PUT"),
        ("PUT", "/", 405, "GET, HEAD"),
        ("GET", "/nope", 404, None),
        ("PATCH", "/items/1", 501, None),
        ("get", "/", 501, None),  # methods are case-sensitive
    ],
)
def test_errors(method: str, path: str, status: int, allow: str | None) -> None:
    with pytest.raises(HTTPError) as info:
        make_app().resolve(method, path)
    assert info.value.status == status
    assert info.value.headers.get("allow") == allow


def test_decorators_register_and_duplicates_are_refused() -> None:
    app = App()

    @app.get("/x")
    async def x(request: Request) -> Response:
        return Response()

    @app.post("/x")
    async def y(request: Request) -> Response:
        return Response()

    @app.route("/z", methods=["put", "delete"])
    async def z(request: Request) -> Response:
        return Response()

    assert app.resolve("POST", "/x")[0] is y
    assert app.resolve("DELETE", "/z")[0] is z
    with pytest.raises(ValueError, match="already registered"):
        app.add_route("/x", x, ["GET"])
    with pytest.raises(ValueError, match="start with"):
        app.add_route("x", x, ["GET"])
    with pytest.raises(ValueError, match="twice"):
        app.add_route("/{a}/{a}", x, ["GET"])


async def test_app_call_sets_path_params() -> None:
    app = App()

    @app.get("/hello/{name}")
    async def hello(request: Request) -> Response:
        return Response(f"hi {request.path_params['name']}")

    response = await app(Request("GET", "/hello/bob?x=1", Headers()))
    assert isinstance(response, Response)
    assert response.body == b"hi bob"


def test_exact_path_does_not_shadow_patterns_for_other_methods() -> None:
    app = App()
    app.add_route("/items/new", ok, ["GET"])
    app.add_route("/items/{item}", ok, ["POST"])
    app.add_route("/elsewhere", ok, ["PUT"])
    assert app.resolve("POST", "/items/new") == (ok, {"item": "new"})
    assert app.resolve("GET", "/items/new") == (ok, {})
    with pytest.raises(HTTPError) as info:
        app.resolve("PUT", "/items/new")
    assert info.value.headers["allow"] == "GET, HEAD, POST"


def test_add_route_upper_cases_methods() -> None:
    app = App()
    app.add_route("/x", ok, ["put"])
    assert app.resolve("PUT", "/x")[0] is ok
    with pytest.raises(HTTPError) as info:
        app.resolve("put", "/x")
    assert info.value.status == 501
