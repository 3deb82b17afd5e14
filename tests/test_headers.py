from trio_http.headers import Headers


def test_lookup_is_case_insensitive_and_multi_valued() -> None:
    headers = Headers([("Content-Type", "text/plain"), ("X-A", "1"), ("x-a", "2")])
    assert headers.get("content-type") == "text/plain"
    assert headers["CONTENT-TYPE"] == "text/plain"
    assert headers.get_list("X-a") == ["1", "2"]
    assert "x-A" in headers
    assert "missing" not in headers
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"


def test_raw_is_lower_cased_bytes_for_h11() -> None:
    headers = Headers({"Content-Length": "3"})
    assert headers.raw == [(b"content-length", b"3")]


def test_set_replaces_all_add_appends_remove_drops() -> None:
    headers = Headers([("a", "1"), ("A", "2"), ("b", "3")])
    headers.set("a", "9")
    assert headers.get_list("a") == ["9"]
    headers.add("a", "10")
    assert headers.get_list("a") == ["9", "10"]
    headers.remove("A")
    assert "a" not in headers
    assert list(headers) == [("b", "3")]
    assert headers.setdefault("b", "x") == "3"
    assert headers.setdefault("c", "x") == "x"


def test_comma_list_joins_repeated_fields() -> None:
    headers = Headers([("connection", "keep-alive, Upgrade"), ("connection", " , close")])
    assert headers.get_comma_list("connection") == ["keep-alive", "Upgrade", "close"]


def test_latin1_values_round_trip() -> None:
    headers = Headers.from_raw([(b"x", b"caf\xe9")])
    assert headers.get("x") == "café"


def test_copy_is_independent_and_equality_compares_fields() -> None:
    headers = Headers({"a": "1"})
    copy = headers.copy()
    copy.add("b", "2")
    assert headers != copy
    assert headers == Headers([("A", "1")])
    assert len(copy) == 2
