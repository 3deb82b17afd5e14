"""Case-insensitive, multi-valued HTTP header fields.

h11 hands us request headers as a list of ``(name, value)`` byte pairs with lower-cased names,
and wants the same shape back for responses.  :class:`Headers` keeps exactly that list as its
storage, so turning an h11 event into a request and a response into an h11 event copies
nothing; the ``str`` interface decodes on access (Latin-1, the only lossless choice for
arbitrary field bytes, RFC 9110 §5.5).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

__all__ = ["HeaderInput", "Headers"]

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]


class Headers:
    """An ordered list of header fields with case-insensitive lookup.

    Several fields may share a name; :meth:`get` returns the first and :meth:`get_list` all of
    them.  Values are returned as ``str``.  The raw pairs are in :attr:`raw` (names lower-cased
    bytes), which is what h11 consumes.
    """

    __slots__ = ("raw",)

    raw: list[tuple[bytes, bytes]]

    def __init__(self, fields: HeaderInput | None = None) -> None:
        if fields is None:
            self.raw = []
            return
        items = fields.items() if isinstance(fields, Mapping) else fields
        # Encoded inline, not by a helper: a file response's fields (a dict) are built per
        # request, and two calls per field were most of the cost.
        self.raw = [
            (
                (name if isinstance(name, bytes) else name.encode("latin-1")).lower(),
                value if isinstance(value, bytes) else value.encode("latin-1"),
            )
            for name, value in items
        ]

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Wrap an already-normalised list (lower-cased byte names) without copying it."""
        headers = cls.__new__(cls)
        headers.raw = raw
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first field called *name*, or *default*."""
        key = name.lower().encode("latin-1")
        for field_name, value in self.raw:
            if field_name == key:
                return value.decode("latin-1")
        return default

    def get_list(self, name: str) -> list[str]:
        """Every value of the fields called *name*, in order."""
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for field_name, value in self.raw if field_name == key]

    def get_comma_list(self, name: str) -> list[str]:
        """All members of a comma-separated list field, across repeated fields (RFC 9110 §5.3).

        Empty members are dropped and surrounding whitespace is stripped.  Not for fields whose
        members may contain quoted commas (use a dedicated parser for those).
        """
        members: list[str] = []
        for value in self.get_list(name):
            members.extend(part.strip() for part in value.split(",") if part.strip())
        return members

    def set(self, name: str, value: str) -> None:
        """Replace every field called *name* by one with *value*."""
        self.remove(name)
        self.raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any existing ones of the same name."""
        self.raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    def setdefault(self, name: str, value: str) -> str:
        """Set *name* to *value* unless present; return the value now in effect."""
        current = self.get(name)
        if current is None:
            self.add(name, value)
            return value
        return current

    def remove(self, name: str) -> None:
        """Drop every field called *name* (no error when there is none)."""
        key = name.lower().encode("latin-1")
        self.raw = [field for field in self.raw if field[0] != key]

    def copy(self) -> Headers:
        return Headers.from_raw(list(self.raw))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower().encode("latin-1")
        return any(field_name == key for field_name, _ in self.raw)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, value in self.raw:
            yield name.decode("latin-1"), value.decode("latin-1")

    def __len__(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"
