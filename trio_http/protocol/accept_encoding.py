"""``Accept-Encoding`` parsing and content-coding negotiation (RFC 9110 §12.5.3).

Pure functions: no I/O, no knowledge of responses.  :func:`choose_coding` answers "which of
the codings we can produce should this response use?", ``None`` meaning identity.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["choose_coding", "parse_accept_encoding"]

# weight = OWS ";" OWS "q=" qvalue ; qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def parse_accept_encoding(value: str) -> dict[str, float]:
    """Map each listed coding (lower-cased; ``*`` and ``identity`` included) to its q-value.

    Members that do not parse (a bad token, a q-value out of range) are dropped rather than
    failing the whole field: a client that sends one odd member still gets the others honoured.
    When a coding is listed twice the first occurrence wins.
    """
    weights: dict[str, float] = {}
    for member in value.split(","):
        coding, _, params = member.partition(";")
        coding = coding.strip().lower()
        if not coding or not _TOKEN.match(coding):
            continue
        weight = 1.0
        params = params.strip()
        if params:
            name, _, qvalue = params.partition("=")
            qvalue = qvalue.strip()
            if name.strip().lower() != "q" or not _QVALUE.match(qvalue):
                continue
            weight = float(qvalue)
        weights.setdefault(coding, weight)
    return weights


def choose_coding(accept_encoding: str | None, available: Sequence[str]) -> str | None:
    """Pick the coding for a response, or ``None`` for identity.

    *available* lists the codings the server can produce, most preferred first; it breaks ties
    between equal q-values.  A coding is chosen only if its q-value is positive and at least
    that of ``identity`` (so ``gzip, identity`` compresses and ``gzip;q=0.5, identity`` does
    not; an unlisted ``identity`` ranks below any listed coding).  ``*`` stands for every
    coding not listed by name.  With no ``Accept-Encoding`` at all we send identity: RFC 9110
    allows any coding then, but a client that said nothing may not be able to decode one.
    When the client refuses identity as well as everything we have, we send identity anyway,
    which §12.5.3 permits instead of a 406.
    """
    if not accept_encoding:
        return None
    weights = parse_accept_encoding(accept_encoding)
    if not weights:
        return None
    star = weights.get("*")
    # identity is always acceptable unless excluded; unlisted, it ranks below every listed
    # coding (a client that lists "gzip;q=0.5" alone still wants gzip).
    identity = weights.get("identity", star if star is not None else 0.0)
    best, best_weight = None, 0.0
    for coding in available:
        weight = weights.get(coding, star if star is not None else 0.0)
        if weight > best_weight:
            best, best_weight = coding, weight
    if best is not None and best_weight >= identity:
        return best
    return None
