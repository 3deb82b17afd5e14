import pytest

from trio_http.protocol.accept_encoding import choose_coding, parse_accept_encoding


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip", {"gzip": 1.0}),
        ("GZip;Q=0.5, br", {"gzip": 0.5, "br": 1.0}),
        ("gzip ; q=0.5 , identity;q=0", {"gzip": 0.5, "identity": 0.0}),
        ("*;q=0.1", {"*": 0.1}),
        ("gzip;q=1.5, br", {"br": 1.0}),  # out-of-range q drops that member only
        ("gzip;q=0.1234", {}),  # at most three decimals
        ("gzip;level=1", {}),  # only q is a valid parameter
        ("gzip, gzip;q=0", {"gzip": 1.0}),  # first occurrence wins
        (" , ,", {}),
        ("", {}),
        ("g zip", {}),
    ],
)
def test_parse(value: str, expected: dict[str, float]) -> None:
    assert parse_accept_encoding(value) == expected


@pytest.mark.parametrize(
    ("header", "available", "expected"),
    [
        (None, ("gzip",), None),
        ("", ("gzip",), None),
        ("gzip", ("gzip",), "gzip"),
        ("invalid-encoding", ("gzip",), None),
        ("encoding-1, gzip, encoding-2", ("gzip",), "gzip"),
        ("encoding-1, encoding-2", ("gzip",), None),
        ("GZIP", ("gzip",), "gzip"),
        ("gzip;q=0", ("gzip",), None),
        ("*", ("gzip",), "gzip"),
        ("*;q=0", ("gzip",), None),
        ("*, gzip;q=0", ("gzip",), None),
        ("gzip;q=0.5, identity", ("gzip",), None),  # identity preferred
        ("gzip, identity", ("gzip",), "gzip"),  # equal: compress
        ("identity;q=0", ("gzip",), None),  # nothing we have: identity anyway
        ("gzip;q=0.5, br;q=0.8", ("br", "gzip"), "br"),
        ("gzip, br", ("zstd", "br", "gzip"), "br"),  # tie: server preference
        ("gzip;q=0.9, br;q=0.9", ("gzip", "br"), "gzip"),
    ],
)
def test_choose(header: str | None, available: tuple[str, ...], expected: str | None) -> None:
    assert choose_coding(header, available) == expected
