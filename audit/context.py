"""Who is acting right now: the request's user, or "system" for tasks and commands.

A context variable rather than a thread-local so it is right under ASGI as well as WSGI.
`audit.middleware.AuditActorMiddleware` sets it for each request; commands, tasks and admin
actions that act for a known user wrap their work in `acting_as(user)`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

current_actor: ContextVar = ContextVar("audit_actor", default=None)

SYSTEM_ACTOR_LABEL = "system"


@contextmanager
def acting_as(user) -> Iterator[None]:
    """Record changes made inside the block as made by `user` (None means "system")."""
    token = current_actor.set(user if user is not None and user.is_authenticated else None)
    try:
        yield
    finally:
        current_actor.reset(token)
