"""The API's JSON parser: what cannot be stored or would exhaust the interpreter is a 400.

Set in REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]. A body with U+0000 (raw or as `\\u0000`) or a
lone surrogate in any key or value would fail later, at the database, as a 500; one nested
deeper than `MAX_JSON_DEPTH` would reach the interpreter's recursion limit in `json` (a
RecursionError, also a 500) or in whatever walks it next.
"""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from spokestack.errors import InvalidInput
from spokestack.hygiene import MAX_JSON_DEPTH, first_unstorable, json_depth_exceeds

TOO_DEEP = f"JSON nested more than {MAX_JSON_DEPTH} levels deep (objects and arrays); send a flatter document."


def unstorable_input(where: str) -> InvalidInput:
    """The 400 for a request that carries a character PostgreSQL cannot store."""
    return InvalidInput(f"{where}: contains a character that cannot be stored (U+0000 NUL or an unpaired UTF-16 "
                        "surrogate); remove it and send the request again.",
                        code="unstorable_character", details={"where": where})


class HygienicJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if json_depth_exceeds(data):
            raise ParseError(TOO_DEEP)
        where = first_unstorable(data)
        if where is not None:
            raise unstorable_input("body" if where == "$" else f"body{where}" if where[0] == "[" else f"body.{where}")
        return data
