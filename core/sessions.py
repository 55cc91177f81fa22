"""psycopg sessions a process opens beside Django's own: the replica monitor's, the outbox
relay's LISTEN connection."""

from typing import Any

from django.db import connections


def own_session_params(alias: str) -> dict[str, Any]:
    """psycopg's connect arguments for a session of its own with database `alias`: Django's,
    minus what only Django's cursors use (their class, adapters and statement preparing)."""
    params = connections[alias].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return params
