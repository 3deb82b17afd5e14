"""Real ASGI frameworks on trio-http: Starlette, FastAPI and Quart-Trio, in memory (TestClient)
and on a socket (httpx, curl), with the lifespan run by the server."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.lowlevel
from fastapi import Depends, FastAPI
from pydantic import BaseModel
from quart_trio import QuartTrio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from trio_http import ServerConfig
from trio_http.asgi import ASGIHost, serve_asgi
from trio_http.asgi.types import ASGIApp
from trio_http.testing import TestClient

CONFIG = ServerConfig(access_log=False)

# ---------------------------------------------------------------- a Starlette app


def starlette_app(files: Path, events: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"greeting": "hello from lifespan"}
        events.append("shutdown")

    async def home(request: Request) -> Response:
        return PlainTextResponse(request.state.greeting)

    async def upload(request: Request) -> Response:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return JSONResponse({"size": size})

    async def form(request: Request) -> Response:
        async with request.form() as data:
            upload = data["file"]
            assert not isinstance(upload, str)
            content = await upload.read()
            return JSONResponse(
                {"name": data["name"], "filename": upload.filename, "size": len(content)}
            )

    async def stream(request: Request) -> Response:
        async def numbers() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"{i}\n".encode()
                await trio.lowlevel.checkpoint()

        return StreamingResponse(numbers(), media_type="text/plain")

    async def download(request: Request) -> Response:
        return FileResponse(files / "big.bin")

    async def background(request: Request) -> Response:
        return PlainTextResponse("later", background=BackgroundTask(events.append, "background"))

    class Stamp(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            response = await call_next(request)
            response.headers["x-stamp"] = "middleware"
            return response

    return Starlette(
        routes=[
            Route("/", home),
            Route("/upload", upload, methods=["POST"]),
            Route("/form", form, methods=["POST"]),
            Route("/stream", stream),
            Route("/download", download),
            Route("/background", background),
        ],
        middleware=[Middleware(Stamp)],
        lifespan=lifespan,
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    return tmp_path


async def test_starlette_in_memory(files: Path) -> None:
    events: list[str] = []
    app = starlette_app(files, events)
    async with TestClient(ASGIHost(app), CONFIG) as client:
        streamed = await client.get("/stream")
        assert (streamed.status, streamed.body) == (200, b"0\n1\n2\n3\n4\n")
        assert streamed.headers.get("x-stamp") == "middleware"
        uploaded = await client.post("/upload", b"x" * 300_000)
        assert json.loads(uploaded.body) == {"size": 300_000}
        download = await client.get("/download")
        assert download.body == (files / "big.bin").read_bytes()
        later = await client.get("/background")
        assert later.body == b"later"
    assert "background" in events


async def serve_on_socket(app: ASGIApp, nursery: trio.Nursery) -> str:
    addresses = await nursery.start(serve_asgi, app, "127.0.0.1", 0)
    return f"http://127.0.0.1:{addresses[0][1]}"


async def test_starlette_on_a_socket_with_httpx_and_lifespan(files: Path) -> None:
    events: list[str] = []
    app = starlette_app(files, events)
    async with trio.open_nursery() as nursery:
        url = await serve_on_socket(app, nursery)
        assert events == ["startup"]  # before the first connection
        async with httpx.AsyncClient(base_url=url) as client:
            home = await client.get("/")
            assert (home.status_code, home.text) == (200, "hello from lifespan")
            multipart = await client.post(
                "/form", data={"name": "report"}, files={"file": ("r.txt", b"abc" * 1000)}
            )
            assert multipart.json() == {"name": "report", "filename": "r.txt", "size": 3000}
            big = await client.post("/upload", content=b"y" * 5_000_000)
            assert big.json() == {"size": 5_000_000}
            download = await client.get("/download")
            assert download.content == (files / "big.bin").read_bytes()
            streamed = await client.get("/stream")
            assert streamed.text == "0\n1\n2\n3\n4\n"
        nursery.cancel_scope.cancel()
    assert events[-1] == "shutdown"


async def test_starlette_with_curl(files: Path) -> None:
    app = starlette_app(files, [])
    async with trio.open_nursery() as nursery:
        url = await serve_on_socket(app, nursery)
        result = await trio.run_process(
            ["curl", "-sS", "--max-time", "10", f"{url}/stream", f"{url}/"],
            capture_stdout=True,
        )
        assert result.stdout == b"0\n1\n2\n3\n4\nhello from lifespan"
        download = await trio.run_process(
            ["curl", "-sS", "--max-time", "10", "-o", str(files / "copy.bin"), f"{url}/download"]
        )
        assert download.returncode == 0
        assert (files / "copy.bin").read_bytes() == (files / "big.bin").read_bytes()
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- FastAPI


class Item(BaseModel):
    name: str
    price: float


def fastapi_app() -> FastAPI:
    app = FastAPI()

    def settings() -> dict[str, str]:
        return {"currency": "EUR"}

    dependency = Depends(settings)

    @app.post("/items")
    async def create(item: Item, config: dict[str, str] = dependency) -> dict[str, Any]:
        return {"name": item.name, "price": item.price, "currency": config["currency"]}

    @app.get("/sync")
    def sync_endpoint() -> dict[str, bool]:
        # A plain def endpoint: FastAPI runs it in a worker thread through anyio on trio.
        return {"in_thread": trio.lowlevel.in_trio_run() is False}

    return app


async def test_fastapi_in_memory_and_on_a_socket() -> None:
    app = fastapi_app()
    async with TestClient(ASGIHost(app), CONFIG) as client:
        created = await client.post(
            "/items", b'{"name": "pen", "price": 1.5}', headers={"content-type": "application/json"}
        )
        assert json.loads(created.body) == {"name": "pen", "price": 1.5, "currency": "EUR"}
        invalid = await client.post(
            "/items", b'{"name": "pen"}', headers={"content-type": "application/json"}
        )
        assert invalid.status == 422
        assert json.loads(invalid.body)["detail"][0]["loc"] == ["body", "price"]
        assert json.loads((await client.get("/sync")).body) == {"in_thread": True}
    async with trio.open_nursery() as nursery:
        url = await serve_on_socket(app, nursery)
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post("/items", json={"name": "ink", "price": 2})
            assert response.json()["currency"] == "EUR"
            docs = await http.get("/openapi.json")
            assert docs.json()["paths"]["/items"]
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- Quart-Trio


def quart_app() -> QuartTrio:
    app = QuartTrio(__name__)

    @app.route("/")
    async def index() -> str:
        return "quart on trio-http"

    @app.route("/echo", methods=["POST"])
    async def echo() -> dict[str, Any]:
        from quart import request

        data = await request.get_json()
        return {"echo": data}

    return app


async def test_quart_trio_in_memory_and_on_a_socket() -> None:
    app = quart_app()
    asgi: ASGIApp = app  # type: ignore[assignment]
    async with TestClient(ASGIHost(asgi), CONFIG) as client:
        assert (await client.get("/")).body == b"quart on trio-http"
    async with trio.open_nursery() as nursery:
        url = await serve_on_socket(asgi, nursery)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/")).text == "quart on trio-http"
            assert (await http.post("/echo", json={"a": 1})).json() == {"echo": {"a": 1}}
        nursery.cancel_scope.cancel()
