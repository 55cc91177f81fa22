"""JSON from outside the process, parsed so that no document can take a request down.

`json.loads` recurses once per level of nesting, and so do `json.dumps` and everything else
that walks the result later (saving it to a JSON column, the admin showing it): a document
nested a few hundred levels deep either fails to parse with a RecursionError, which is no
ValueError, or parses and exhausts the stack where it is next walked. Nothing Stockwire
receives nests more than a few levels, so a document nesting more than MAX_DEPTH objects and
arrays is refused as malformed, whatever the stack's depth at the moment.
"""

import json
from collections.abc import Iterator
from typing import Any

# The API's bodies nest three levels, a payment provider's events a handful.
MAX_DEPTH = 32


class TooDeep(ValueError):
    """A JSON document nesting more than MAX_DEPTH objects and arrays."""

    def __init__(self) -> None:
        super().__init__(f"it nests more than {MAX_DEPTH} objects and arrays")


def json_parse(document: bytes | str) -> Any:
    """Parse a JSON document; raise ValueError if it is not JSON or nests beyond MAX_DEPTH.

    NaN and ±Infinity, which `json.loads` takes, are not JSON (RFC 8259), and PostgreSQL's
    jsonb refuses them: they are refused here too. Invalid UTF-8 is a ValueError as well.
    """
    try:
        value = json.loads(document, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise TooDeep() from error
    if isinstance(value, dict | list):
        _depth_checked(value)
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _depth_checked(value: dict | list) -> None:
    """Raise TooDeep if `value` nests beyond MAX_DEPTH (walked without recursion)."""
    pending = [(value, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise TooDeep()
        children = container.values() if isinstance(container, dict) else container
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def unstorable_text(value: Any) -> str | None:
    """What in a parsed JSON value no database can store, or None: PostgreSQL refuses NUL
    characters in text, and no UTF-8 text holds an unpaired surrogate (which JSON's `\\ud800`
    escapes can spell). Every string is looked at, keys included."""
    for text in _strings(value):
        if "\x00" in text:
            return "a NUL character"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "an unpaired surrogate"
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value, keys included (walked without recursion, so no
    nesting that json.loads accepts can exhaust the stack)."""
    pending = [value]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from value.keys()
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
